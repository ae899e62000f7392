package accessproxy

import (
	"bufio"
	"io"
	"net/http"
	"testing"
)

// TestUpgradeOnlyWebSocket sends upgrade requests through an http route
// to an upstream that accepts any upgrade (an h2c-capable server would):
// an h2c upgrade (RFC 7540 §3.2) would open a tunnel past the route's
// path_prefix and X-Forwarded-For rewriting, so it is stripped and the
// request answered as plain HTTP/1.1; a WebSocket upgrade passes.
func TestUpgradeOnlyWebSocket(t *testing.T) {
	p := newPKI(t, "portal.example.test")
	up := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) bool {
		if u := r.Header.Get("Upgrade"); u != "" {
			io.WriteString(w, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+u+"\r\n\r\n")
			return false
		}
		body := "plain settings=" + r.Header.Get("HTTP2-Settings")
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(int64(len(body)))+"\r\n\r\n"+body)
		return true
	})
	cfg := Config{Routes: []Route{{Name: "portal", Match: Match{SNI: []string{"portal.example.test"}, PathPrefix: "/app/"},
		Action: ActionHTTP, Upstream: "http://" + up.addr}}}
	_, addr := startProxy(t, cfg, Deps{Certs: p.store})
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"h2c", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n", http.StatusOK},
		{"h2c upper case", "Connection: upgrade\r\nUpgrade: H2C\r\n", http.StatusOK},
		{"h2c beside websocket", "Connection: Upgrade\r\nUpgrade: websocket, h2c\r\n", http.StatusOK},
		{"tls upgrade", "Connection: Upgrade\r\nUpgrade: TLS/1.2\r\n", http.StatusOK},
		{"websocket", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n", http.StatusSwitchingProtocols},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, resp := rawRequest(t, p, addr, "GET /app/x HTTP/1.1\r\nHost: portal.example.test\r\n"+tc.header+"\r\n")
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, b, tc.want)
			}
			if tc.want == http.StatusOK && string(b) != "plain settings=" {
				t.Errorf("upstream saw %q, want no HTTP2-Settings", b)
			}
		})
	}
}
