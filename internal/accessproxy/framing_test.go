package accessproxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestContentLengthWithTransferEncodingCloses sends requests framed by
// both Content-Length and Transfer-Encoding (a request-smuggling shape):
// Transfer-Encoding wins, and the connection is closed after the response
// (RFC 9112 §6.3), so nothing the two framings disagree about can follow
// on it. net/http drops the Content-Length before the handler sees it, so
// a chunked request alone closes too; a Content-Length alone keeps the
// connection.
func TestContentLengthWithTransferEncodingCloses(t *testing.T) {
	p := newPKI(t, "portal.example.test")
	up := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		body := "got=" + string(b)
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(int64(len(body)))+"\r\n\r\n"+body)
		return true
	})
	cfg := Config{Routes: []Route{{Name: "portal", Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: "http://" + up.addr}}}
	_, addr := startProxy(t, cfg, Deps{Certs: p.store})
	tests := []struct {
		name    string
		framing string
		body    string
		closes  bool
	}{
		{"both", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n", true},
		{"both, length first wrong", "Transfer-Encoding: chunked\r\nContent-Length: 100\r\n", "5\r\nhello\r\n0\r\n\r\n", true},
		{"chunked only", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n", true},
		{"length only", "Content-Length: 5\r\n", "hello", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, br, resp := rawRequest(t, p, addr, "POST /x HTTP/1.1\r\nHost: portal.example.test\r\n"+tc.framing+"\r\n"+tc.body)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(b) != "got=hello" {
				t.Fatalf("status %d body %q", resp.StatusCode, b)
			}
			if resp.Close != tc.closes {
				t.Errorf("response Connection: close = %v, want %v", resp.Close, tc.closes)
			}
			if !tc.closes {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := br.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("connection still open after the response (read %d, %v)", n, err)
			}
		})
	}
}

// rawRequest sends req, as written, over a new HTTP/1.1 TLS connection to
// the proxy and reads the response header.
func rawRequest(t *testing.T, p *pki, addr, req string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, p.clientTLS("portal.example.test", "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, resp
}
