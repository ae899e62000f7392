package accessproxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLeanStrayResponseNotDelivered reproduces response-queue poisoning:
// an upstream sends an extra, unsolicited response on a keep-alive
// connection after the proxy has put it back in its pool. The next
// request, from another client, must get its own response, never the
// stray one (the connection is discarded, as net/http's Transport does).
func TestLeanStrayResponseNotDelivered(t *testing.T) {
	p := newPKI(t, "portal.example.test")
	strayNow, strayDone := make(chan struct{}), make(chan struct{})
	up := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(int64(len(r.URL.Path)))+"\r\n\r\n"+r.URL.Path)
		if r.URL.Path == "/first" {
			go func() {
				<-strayNow
				io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n/POISON")
				w.Flush()
				close(strayDone)
			}()
		}
		return true
	})
	cfg := Config{Routes: []Route{{Name: "portal", Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: "http://" + up.addr}}}
	s, addr := startProxy(t, cfg, Deps{Certs: p.store})
	get := func(path string) string {
		t.Helper()
		c := proxyClient(p, false) // a new client each time: another user
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
		req.Host = "portal.example.test"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get("/first"); got != "/first" {
		t.Fatalf("first response %q", got)
	}
	h1 := s.state.Load().routes[0].h1
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		h1.mu.Lock()
		n := len(h1.idle)
		h1.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("upstream connection never pooled")
		}
	}
	close(strayNow)
	<-strayDone
	for i := range 3 {
		if got := get("/second"); strings.Contains(got, "POISON") || got != "/second" {
			t.Fatalf("request %d got %q, want /second", i, got)
		}
	}
}
