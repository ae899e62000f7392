package accessproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream is an inside HTTP/1.1 server written by hand, so a test
// can send what net/http would not: a keep-alive response followed by a
// close, 1xx responses, a response that never comes.
type rawUpstream struct {
	addr  string
	conns atomic.Int32
	seen  chan *http.Request // every request read, with its body drained
	gone  chan struct{}      // a connection was closed by the proxy
}

// startRawUpstream serves each request with reply, which writes the
// response and says whether to keep the connection open.
func startRawUpstream(t *testing.T, reply func(w *bufio.Writer, r *http.Request) (keep bool)) *rawUpstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{addr: l.Addr().String(), seen: make(chan *http.Request, 100), gone: make(chan struct{}, 100)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() {
				defer c.Close()
				br, bw := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						u.gone <- struct{}{}
						return
					}
					b, _ := io.ReadAll(r.Body)
					r.Body = io.NopCloser(strings.NewReader(string(b)))
					u.seen <- r
					keep := reply(bw, r)
					if bw.Flush() != nil || !keep {
						return
					}
				}
			}()
		}
	}()
	return u
}

// client is an HTTPS client of the proxy that keeps its connection alive.
func proxyClient(p *pki, h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: p.clientTLS("portal.example.test"), ForceAttemptHTTP2: h2, MaxIdleConnsPerHost: 1}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestLeanUpstream(t *testing.T) {
	p := newPKI(t, "portal.example.test")
	stalled := make(chan struct{}) // closed once the proxy gave up on /stall
	up := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) bool {
		switch r.URL.Path {
		case "/once": // keep-alive promised, then closed, as an idle timeout would
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce")
			return false
		case "/chunked":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\nX-Sum: 6\r\n\r\n")
		case "/eof": // delimited by the close
			io.WriteString(w, "HTTP/1.1 200 OK\r\n\r\nuntil close")
			return false
		case "/204":
			io.WriteString(w, "HTTP/1.1 204 No Content\r\nServer: nginx/1.2.3\r\n\r\n")
		case "/hints":
			io.WriteString(w, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		case "/hang": // no answer; the next read sees the proxy's close
			return true
		case "/stall": // no answer until the proxy's response header timeout fired
			<-stalled
			return false
		default:
			b, _ := io.ReadAll(r.Body)
			body := r.Method + " " + r.URL.Path + " xff=" + r.Header.Get("X-Forwarded-For") +
				" proto=" + r.Header.Get("X-Forwarded-Proto") + " hop=" + r.Header.Get("X-Hop") + " body=" + string(b)
			if r.Method == http.MethodHead {
				body = ""
			}
			io.WriteString(w, "HTTP/1.1 200 OK\r\nServer: nginx/1.2.3\r\nX-Powered-By: PHP/8\r\nConnection: X-Up\r\nX-Up: 1\r\nContent-Length: "+itoa(int64(len(body)))+"\r\n\r\n"+body)
		}
		return true
	})
	// The default response header timeout (60 s): only the /stall subtest,
	// on its own proxy, has a short one that a slow run could reach.
	cfg := Config{
		Routes: []Route{{Name: "portal", Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: "http://" + up.addr}},
	}
	_, addr := startProxy(t, cfg, Deps{Certs: p.store})
	base := "https://" + addr

	get := func(t *testing.T, c *http.Client, method, path, body string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body == "" {
			req.Body = nil
		}
		req.Host = "portal.example.test"
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	drain := func() {
		for {
			select {
			case <-up.seen:
			case <-up.gone:
			default:
				return
			}
		}
	}

	for _, h2 := range []bool{false, true} {
		name := "http/1.1 client"
		if h2 {
			name = "h2 client"
		}
		t.Run(name+" keep-alive upstream and header policy", func(t *testing.T) {
			c := proxyClient(p, h2)
			before := up.conns.Load()
			hdr := []string{"X-Forwarded-For", "10.6.6.6"}
			if !h2 { // HTTP/2 has no Connection header
				hdr = append(hdr, "Connection", "X-Hop", "X-Hop", "1")
			}
			for i := 0; i < 5; i++ {
				resp, body := get(t, c, "GET", "/x", "", hdr...)
				if want := "GET /x xff=127.0.0.1 proto=https hop= body="; resp.StatusCode != 200 || body != want {
					t.Fatalf("got %d %q, want %q", resp.StatusCode, body, want)
				}
				if resp.Header.Get("Server") != "" || resp.Header.Get("X-Powered-By") != "" || resp.Header.Get("X-Up") != "" {
					t.Fatalf("inside or hop-by-hop headers passed: %v", resp.Header)
				}
				if h2 != (resp.ProtoMajor == 2) {
					t.Fatalf("client spoke %s", resp.Proto)
				}
			}
			if n := up.conns.Load() - before; n > 1 { // 0: the previous subtest's is reused
				t.Fatalf("5 requests took %d new upstream connections, want at most 1", n)
			}
			resp, body := get(t, c, "HEAD", "/x", "")
			if resp.StatusCode != 200 || body != "" {
				t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
			}
			drain()
		})
	}

	c := proxyClient(p, false)
	t.Run("upstream closed the idle connection: request sent again", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if resp, body := get(t, c, "GET", "/once", ""); resp.StatusCode != 200 || body != "once" {
				t.Fatalf("try %d: %d %q", i, resp.StatusCode, body)
			}
		}
		drain()
	})
	t.Run("body takes the fallback transport", func(t *testing.T) {
		resp, body := get(t, c, "POST", "/p", "hello")
		if resp.StatusCode != 200 || body != "POST /p xff=127.0.0.1 proto=https hop= body=hello" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		drain()
	})
	t.Run("chunked with trailers, close-delimited, 204", func(t *testing.T) {
		resp, body := get(t, c, "GET", "/chunked", "")
		if body != "abcdef" || resp.Trailer.Get("X-Sum") != "6" {
			t.Fatalf("chunked: %q trailer %v", body, resp.Trailer)
		}
		if resp, body = get(t, c, "GET", "/eof", ""); resp.StatusCode != 200 || body != "until close" {
			t.Fatalf("close-delimited: %d %q", resp.StatusCode, body)
		}
		if resp, body = get(t, c, "GET", "/204", ""); resp.StatusCode != 204 || body != "" || resp.Header.Get("Server") != "" {
			t.Fatalf("204: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		drain()
	})
	t.Run("103 early hints forwarded", func(t *testing.T) {
		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, itoa(int64(code))+" "+h.Get("Link"))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", base+"/hints", nil)
		req.Host = "portal.example.test"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" || len(hints) != 1 || hints[0] != "103 </s.css>; rel=preload" {
			t.Fatalf("body %q hints %q", b, hints)
		}
		drain()
	})
	t.Run("response header timeout gives 502", func(t *testing.T) {
		cfg := cfg
		cfg.Timeouts = Timeouts{HTTPResponseHeader: 50 * time.Millisecond}
		_, addr := startProxy(t, cfg, Deps{Certs: p.store})
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/stall", nil)
		req.Host = "portal.example.test"
		resp, err := proxyClient(p, false).Do(req)
		close(stalled)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d", resp.StatusCode)
		}
		drain()
	})
	t.Run("client gone closes the upstream connection", func(t *testing.T) {
		drain()
		addr := strings.TrimPrefix(base, "https://")
		tc, err := tls.Dial("tcp", addr, p.clientTLS("portal.example.test"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(tc, "GET /hang HTTP/1.1\r\nHost: portal.example.test\r\n\r\n")
		select {
		case <-up.seen:
		case <-time.After(10 * time.Second):
			t.Fatal("request never reached the upstream")
		}
		tc.Close()
		select {
		case <-up.gone:
		case <-time.After(10 * time.Second):
			t.Fatal("upstream connection left open")
		}
	})
}

func TestLeanIdleSweep(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	tr := &h1Transport{idleFor: 20 * time.Millisecond, maxIdle: 4}
	tr.put(&h1Conn{c: a})
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection not closed by the sweep: %v", err)
	}
	if pc, _ := tr.get(); pc != nil {
		t.Fatal("swept connection still pooled")
	}
}

// TestLeanRetiredPoolsNothing: a request still in flight when its route's
// state was retired (reload, Close) closes its upstream connection instead
// of pooling it where nothing would reuse it.
func TestLeanRetiredPoolsNothing(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	tr := &h1Transport{idleFor: time.Hour, maxIdle: 4}
	tr.retire()
	tr.put(&h1Conn{c: a})
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection put back after retire not closed: %v", err)
	}
	if pc, _ := tr.get(); pc != nil {
		t.Fatal("a retired transport pooled a connection")
	}
}

func TestLeanChoice(t *testing.T) {
	tr := &h1Transport{host: "10.1.1.20:8080"}
	for _, tc := range []struct {
		name   string
		method string
		url    string
		body   string
		hdr    string
		want   bool
	}{
		{"get", "GET", "http://10.1.1.20:8080/", "", "", true},
		{"head", "HEAD", "http://10.1.1.20:8080/", "", "", true},
		{"post", "POST", "http://10.1.1.20:8080/", "", "", false},
		{"get with body", "GET", "http://10.1.1.20:8080/", "x", "", false},
		{"upgrade", "GET", "http://10.1.1.20:8080/", "", "Upgrade", false},
		{"expect", "GET", "http://10.1.1.20:8080/", "", "Expect", false},
		{"other host", "GET", "http://10.1.1.21:8080/", "", "", false},
		{"https", "GET", "https://10.1.1.20:8080/", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			if tc.body == "" {
				req.Body, req.ContentLength = nil, 0
			}
			if tc.hdr != "" {
				req.Header.Set(tc.hdr, "x")
			}
			if got := tr.lean(req); got != tc.want {
				t.Fatalf("lean = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestValidHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
		want bool
	}{
		{"plain", http.Header{"X-A": {"b c\td"}}, true},
		{"obs-text", http.Header{"X-A": {"caf\xc3\xa9"}}, true},
		{"newline in value", http.Header{"X-A": {"b\r\nX-Evil: 1"}}, false},
		{"nul in value", http.Header{"X-A": {"b\x00"}}, false},
		{"space in name", http.Header{"X A": {"b"}}, false},
		{"colon in name", http.Header{"X:A": {"b"}}, false},
		{"empty name", http.Header{"": {"b"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := validHeader(tc.h); got != tc.want {
				t.Fatalf("validHeader = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLeanBodyCancelled(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	body := &h1Body{body: io.NopCloser(a), ctx: ctx, t: &h1Transport{}, pc: &h1Conn{c: a}, stop: func() bool { return false }}
	cancel()
	_ = a.SetDeadline(aLongTimeAgo) // what the cancellation does to the connection
	if _, err := body.Read(make([]byte, 8)); err != context.Canceled {
		t.Fatalf("read after cancel: %v, want context.Canceled (ReverseProxy does not log it)", err)
	}
	body.Close()
	if _, err := b.Write([]byte("x")); err == nil {
		t.Fatal("connection of a cancelled body still open")
	}
}

func TestLeanHeaderLimit(t *testing.T) {
	up := startRawUpstream(t, func(w *bufio.Writer, r *http.Request) bool {
		switch r.URL.Path {
		case "/big-header":
			io.WriteString(w, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 4096)+"\r\nContent-Length: 0\r\n\r\n")
		case "/many-1xx": // each one small, together past the limit
			for i := 0; i < 200; i++ {
				io.WriteString(w, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
			}
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		default:
			io.WriteString(w, "HTTP/1.1 200 OK\r\nX-Small: "+strings.Repeat("a", 512)+"\r\nContent-Length: 2\r\n\r\nok")
		}
		return true
	})
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &h1Transport{host: up.addr, addr: up.addr, dial: d.DialContext, idleFor: time.Minute, maxIdle: 4, maxHeader: 1024}
	defer tr.CloseIdleConnections()
	for _, tc := range []struct {
		path string
		ok   bool
	}{{"/small", true}, {"/big-header", false}, {"/many-1xx", false}, {"/small", true}} {
		t.Run(tc.path, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+up.addr+tc.path, nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// BenchmarkHTTPProxyGet is small GETs through an http route on kept-alive
// TLS connections to a Go upstream, client and upstream in the same process
// (so their work counts too), on the lean upstream path and on
// http.Transport. bench/proxy measures against nginx with wrk.
func BenchmarkHTTPProxyGet(b *testing.B) {
	for _, lean := range []bool{true, false} {
		name := "lean"
		if !lean {
			name = "http.Transport"
		}
		b.Run(name, func(b *testing.B) {
			p := newPKI(b, "portal.example.test")
			up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "hello from the inside web server\n")
			})}
			ul, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go up.Serve(ul)
			defer up.Close()
			cfg := Config{Routes: []Route{{Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: "http://" + ul.Addr().String()}}}
			s, addr := startProxy(b, cfg, Deps{Certs: p.store})
			if !lean {
				for _, rt := range s.state.Load().routes {
					rt.proxy.Transport = rt.transport
				}
			}
			b.ReportAllocs()
			b.SetParallelism(8) // 16 keep-alive client connections on 2 CPUs
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := proxyClient(p, false)
				req, _ := http.NewRequest("GET", "https://"+addr+"/", nil)
				req.Host = "portal.example.test"
				for pb.Next() {
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
