package accessproxy

import (
	"bufio"
	"io"
	"net"
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		first := true
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			stray := first
			first = false
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(int64(len(r.URL.Path)))+"\r\n\r\n"+r.URL.Path)
					if stray {
						// After the response, once the proxy has pooled
						// the connection: an answer nobody asked for.
						stray = false
						<-strayNow
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n/POISON")
						close(strayDone)
					}
				}
			}()
		}
	}()
	cfg := Config{Routes: []Route{{Name: "portal", Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: "http://" + l.Addr().String()}}}
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

// BenchmarkQuiet measures the check a pooled connection passes before each
// reuse (one non-blocking peek).
func BenchmarkQuiet(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	srv, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	pc := &h1Conn{c: c}
	b.ReportAllocs()
	for b.Loop() {
		if !pc.quiet() {
			b.Fatal("idle connection reported busy")
		}
	}
}
