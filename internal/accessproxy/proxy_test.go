package accessproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/accessproxy/proxyproto"
	"github.com/portico-edge/portico/internal/certs/certtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestConfigValidation(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad action", Config{Routes: []Route{{Action: "ftp", Upstream: "a:1"}}}, "access_proxy.routes[0].action"},
		{"bad http upstream", Config{Routes: []Route{{Action: "http", Upstream: "a:1"}}}, "access_proxy.routes[0].upstream"},
		{"bad passthrough upstream", Config{Routes: []Route{{Action: "http", Upstream: "http://a"}, {Action: "passthrough", Upstream: "a:99999"}}}, "access_proxy.routes[1].upstream"},
		{"bad cidr", Config{Routes: []Route{{Action: "passthrough", Upstream: "a:1", Allow: []string{"10.0.0.0/33"}}}}, "access_proxy.routes[0].allow[0]"},
		{"unknown handler", Config{Routes: []Route{{Action: "handoff", Handler: "sip-wss"}}}, "access_proxy.routes[0].handler"},
		{"host on passthrough", Config{Routes: []Route{{Action: "passthrough", Upstream: "a:1", Match: Match{Host: []string{"x"}}}}}, "access_proxy.routes[0].match"},
		{"tls version", Config{TLS: TLSSettings{MinVersion: "1.4"}}, "access_proxy.tls.min_version"},
		{"ldap upstream mode", Config{Routes: []Route{{Action: "ldap", Upstream: "a:389", LDAP: LDAPOptions{Upstream: "ssl"}}}}, "access_proxy.routes[0].ldap.upstream"},
		{"tcp port reuse", Config{Listen: "127.0.0.1:8443", TCP: []TCPMapping{{Listen: "127.0.0.1:8443", Upstream: "a:1"}}}, "access_proxy.tcp[0].listen"},
		{"proxy send on http", Config{Routes: []Route{{Action: "http", Upstream: "http://a", SendProxyProtocol: 2}}}, "access_proxy.routes[0].send_proxy_protocol"},
		{"trusted cidr", Config{ProxyProtocol: ProxyProtocol{Trusted: []string{"lb"}}}, "access_proxy.proxy_protocol.trusted[0]"},
		{"upstream ca", Config{Routes: []Route{{Action: "http", Upstream: "https://a", UpstreamTLS: UpstreamTLS{CA: "junk"}}}}, "access_proxy.routes[0].upstream_tls.ca"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, Deps{Certs: p.store})
			if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
	s, err := New(Config{}, Deps{Certs: p.store})
	if err != nil {
		t.Fatalf("empty config: %v", err)
	}
	if s.Config().Listen != DefaultListen || s.Config().TLS.MinVersion != "1.2" {
		t.Fatalf("defaults not applied: %+v", s.Config())
	}
	s.Close()
	s.Close() // safe twice
}

// TestRouting drives every connection-level decision with Go clients.
func TestRouting(t *testing.T) {
	p := newPKI(t, "portal.example.test", "api.example.test")
	inside := httptest.NewServer(echoHeaders())
	defer inside.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api") }))
	defer api.Close()
	// A passthrough target with its own CA: the client sees ITS certificate.
	insideCA := certtest.NewCA(t, "Inside CA")
	inLeaf := insideCA.Issue(t, []string{"inside.example.test"}, certtest.Options{})
	inCert, _ := tls.X509KeyPair(inLeaf.CertPEM, inLeaf.KeyPEM)
	passSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "passthrough") }))
	passSrv.TLS = &tls.Config{Certificates: []tls.Certificate{inCert}}
	passSrv.StartTLS()
	defer passSrv.Close()

	handed := make(chan string, 4)
	turn := ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
		defer c.Close()
		buf := make([]byte, 20)
		n, _ := io.ReadFull(c, buf)
		proto := "raw"
		if tc, ok := c.(*tls.Conn); ok {
			proto = "tls:" + tc.ConnectionState().NegotiatedProtocol
		}
		handed <- proto + ":" + c.RemoteAddr().(*net.TCPAddr).IP.String() + ":" + itoa(int64(n))
		c.Write(buf[:n])
	})
	cfg := Config{
		Routes: []Route{
			{Name: "turn-tls", Match: Match{ALPN: []string{"stun.turn"}}, Action: ActionHandoff, Handler: "turn"},
			{Name: "api", Match: Match{SNI: []string{"portal.example.test"}, Host: []string{"portal.example.test"}, PathPrefix: "/api/"}, Action: ActionHTTP, Upstream: api.URL},
			{Name: "portal", Match: Match{SNI: []string{"portal.example.test"}, Host: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: inside.URL + "/base"},
			{Name: "restricted", Match: Match{SNI: []string{"api.example.test"}}, Action: ActionHTTP, Upstream: inside.URL, Allow: []string{"192.0.2.0/24"}},
			{Name: "inside", Match: Match{SNI: []string{"*.inside.test", "inside.example.test"}}, Action: ActionPassthrough, Upstream: passSrv.Listener.Addr().String()},
			{Name: "plain", Match: Match{Host: []string{"plain.example.test"}, Plaintext: true}, Action: ActionHTTP, Upstream: inside.URL},
		},
		MaxRequestBody: 1000,
	}
	cfg0 := cfg
	_, addr := startProxy(t, cfg, Deps{Certs: p.store, Handlers: map[string]ConnHandler{"turn": turn}})

	t.Run("http by sni host and path", func(t *testing.T) {
		resp, body, err := httpsGet(t, addr, p.clientTLS("portal.example.test"), "portal.example.test", "/index.html")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || !strings.Contains(body, "path=/base/index.html") || !strings.Contains(body, "xff=127.0.0.1") || !strings.Contains(body, "proto=https") {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
		if resp.Header.Get("Server") != "" || resp.Header.Get("X-Powered-By") != "" || resp.Header.Get("X-Inside") != "yes" {
			t.Fatalf("headers leaked or lost: %v", resp.Header)
		}
		_, body, err = httpsGet(t, addr, p.clientTLS("portal.example.test"), "portal.example.test", "/api/v1")
		if err != nil || body != "api" {
			t.Fatalf("path route: %q %v", body, err)
		}
	})
	t.Run("spoofed x-forwarded-for replaced", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, p.clientTLS("portal.example.test"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: portal.example.test\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		if strings.Contains(string(b), "10.9.9.9") || !strings.Contains(string(b), "xff=127.0.0.1\n") {
			t.Fatalf("response %q", b)
		}
	})
	t.Run("unknown host on known sni is 421", func(t *testing.T) {
		resp, _, err := httpsGet(t, addr, p.clientTLS("portal.example.test"), "other.example.test", "/")
		if err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("resp %v err %v", resp, err)
		}
	})
	t.Run("acl denies with 403", func(t *testing.T) {
		resp, _, err := httpsGet(t, addr, p.clientTLS("api.example.test"), "api.example.test", "/")
		if err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("resp %v err %v", resp, err)
		}
	})
	t.Run("body limit", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, p.clientTLS("portal.example.test"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: portal.example.test\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n"+strings.Repeat("x", 5000))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("resp %v err %v", resp, err)
		}
	})
	t.Run("passthrough keeps inside certificate", func(t *testing.T) {
		cfg := &tls.Config{RootCAs: insideCA.Pool(), ServerName: "inside.example.test"}
		leaf, err := servedLeaf(t, addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if leaf.Issuer.CommonName != "Inside CA" {
			t.Fatalf("issuer %s", leaf.Issuer.CommonName)
		}
		_, body, err := httpsGet(t, addr, cfg, "inside.example.test", "/")
		if err != nil || body != "passthrough" {
			t.Fatalf("%q %v", body, err)
		}
	})
	t.Run("unknown sni gets alert not hang", func(t *testing.T) {
		cfg := p.clientTLS("nobody.example.test")
		cfg.InsecureSkipVerify = true
		// A proxy without catch-all route (the plain route above matches any SNI).
		_, addr := startProxy(t, Config{Routes: cfg0.Routes[:5]}, Deps{Certs: p.store, Handlers: map[string]ConnHandler{"turn": turn}})
		start := time.Now()
		_, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err == nil || !strings.Contains(err.Error(), "unrecognized name") {
			t.Fatalf("err = %v", err)
		}
		if time.Since(start) > 4*time.Second {
			t.Fatal("close took the timeout")
		}
	})
	t.Run("alpn stun.turn handed off after TLS", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, p.clientTLS("portal.example.test", "stun.turn"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := "\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl"
		io.WriteString(c, msg)
		got := make([]byte, 20)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q %v", got, err)
		}
		if h := <-handed; h != "tls:stun.turn:127.0.0.1:20" {
			t.Fatalf("handed %s", h)
		}
	})
	t.Run("stun over plain tcp handed to turn", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := "\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl"
		io.WriteString(c, msg)
		got := make([]byte, 20)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q %v", got, err)
		}
		if h := <-handed; h != "raw:127.0.0.1:20" {
			t.Fatalf("handed %s", h)
		}
	})
	t.Run("plain http only where allowed", func(t *testing.T) {
		c, _ := net.Dial("tcp", addr)
		resp, body, err := doRequest(c, "plain.example.test", "/x")
		c.Close()
		if err != nil || resp.StatusCode != 200 || !strings.Contains(body, "proto=http\n") {
			t.Fatalf("%v %q %v", resp, body, err)
		}
		c, _ = net.Dial("tcp", addr)
		resp, _, err = doRequest(c, "portal.example.test", "/x")
		c.Close()
		if err != nil || resp.StatusCode == 200 {
			t.Fatalf("plain request reached a TLS-only route: %v %v", resp, err)
		}
	})
	t.Run("garbage closed", func(t *testing.T) {
		c, _ := net.Dial("tcp", addr)
		defer c.Close()
		io.WriteString(c, "\xff\xfe hello")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 10)); err != io.EOF {
			t.Fatalf("read = %v, want EOF", err)
		}
	})
}

func TestTLSPolicy(t *testing.T) {
	p := newPKI(t, "portal.example.test")
	inside := httptest.NewServer(echoHeaders())
	defer inside.Close()
	route := Route{Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: inside.URL}
	// Weak suites Go can still offer as a client when asked explicitly.
	weak := []uint16{tls.TLS_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA,
		tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA}
	for _, min := range []string{"", "1.0"} {
		t.Run("min="+min, func(t *testing.T) {
			_, addr := startProxy(t, Config{Routes: []Route{route}, TLS: TLSSettings{MinVersion: min}}, Deps{Certs: p.store})
			c11 := p.clientTLS("portal.example.test")
			c11.MinVersion, c11.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
			_, err := servedLeaf(t, addr, c11)
			if min == "" && err == nil {
				t.Fatal("TLS 1.1 accepted by default")
			}
			if min == "1.0" && err != nil {
				t.Fatalf("TLS 1.1 refused though enabled: %v", err)
			}
			for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12} {
				cw := p.clientTLS("portal.example.test")
				cw.MinVersion, cw.MaxVersion, cw.CipherSuites = v, v, weak
				if _, err := servedLeaf(t, addr, cw); err == nil {
					t.Fatalf("RC4/3DES negotiated at version %#x", v)
				}
			}
			c12 := p.clientTLS("portal.example.test")
			c12.MaxVersion = tls.VersionTLS12
			if _, err := servedLeaf(t, addr, c12); err != nil {
				t.Fatalf("TLS 1.2: %v", err)
			}
		})
	}
}

// TestCertificateSwap replaces the served certificate while a connection
// stays open: the open one keeps working, new ones get the new certificate.
func TestCertificateSwap(t *testing.T) {
	p := newPKI(t)
	old := p.add(t, "portal", []string{"portal.example.test"})
	inside := httptest.NewServer(echoHeaders())
	defer inside.Close()
	_, addr := startProxy(t, Config{Routes: []Route{{Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: inside.URL, Certificate: "portal"}}}, Deps{Certs: p.store})

	c, err := tls.Dial("tcp", addr, p.clientTLS("portal.example.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp, _, err := doRequest(c, "portal.example.test", "/1"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("before swap: %v %v", resp, err)
	}
	if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(old.Cert.SerialNumber) != 0 {
		t.Fatal("unexpected first certificate")
	}
	fresh := p.add(t, "portal", []string{"portal.example.test"})
	for i := 0; i < 3; i++ {
		if resp, _, err := doRequest(c, "portal.example.test", "/again"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("old connection after swap: %v %v", resp, err)
		}
	}
	leaf, err := servedLeaf(t, addr, p.clientTLS("portal.example.test"))
	if err != nil {
		t.Fatal(err)
	}
	if leaf.SerialNumber.Cmp(fresh.Cert.SerialNumber) != 0 {
		t.Fatalf("new connection got serial %v, want the replacement %v", leaf.SerialNumber, fresh.Cert.SerialNumber)
	}
}

// TestProxyProtocolACL: a trusted balancer's PROXY header sets the client
// address the ACL and X-Forwarded-For see.
func TestProxyProtocolACL(t *testing.T) {
	p := newPKI(t, "portal.example.test")
	inside := httptest.NewServer(echoHeaders())
	defer inside.Close()
	cfg := Config{
		ProxyProtocol: ProxyProtocol{Trusted: []string{"127.0.0.1/32"}},
		Routes:        []Route{{Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: inside.URL, Allow: []string{"203.0.113.0/24"}}},
	}
	_, addr := startProxy(t, cfg, Deps{Certs: p.store})
	dst := netip.MustParseAddrPort(addr)
	tests := []struct {
		name   string
		header []byte
		status int
		xff    string
	}{
		{"v2 allowed client", proxyproto.AppendV2(nil, netip.MustParseAddrPort("203.0.113.9:40000"), dst), 200, "xff=203.0.113.9\n"},
		{"v1 allowed client", proxyproto.AppendV1(nil, netip.MustParseAddrPort("203.0.113.77:40000"), dst), 200, "xff=203.0.113.77\n"},
		{"v2 denied client", proxyproto.AppendV2(nil, netip.MustParseAddrPort("198.51.100.1:40000"), dst), 403, ""},
		{"missing header from balancer", nil, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.Write(tc.header)
			c := tls.Client(raw, p.clientTLS("portal.example.test"))
			resp, body, err := doRequest(c, "portal.example.test", "/")
			if tc.status == 0 {
				if err == nil {
					t.Fatalf("served without PROXY header: %v", resp.Status)
				}
				return
			}
			if err != nil || resp.StatusCode != tc.status || !strings.Contains(body, tc.xff) {
				t.Fatalf("%v %q %v", resp, body, err)
			}
		})
	}
}

func TestTCPMapping(t *testing.T) {
	p := newPKI(t)
	echo, _ := net.Listen("tcp", "127.0.0.1:0")
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	cfg := Config{Listen: "127.0.0.1:1", TCP: []TCPMapping{{Listen: l.Addr().String(), Upstream: echo.Addr().String(), MaxConns: 1, IdleTimeout: 300 * time.Millisecond}}}
	s, err := New(cfg, Deps{Certs: p.store})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go s.ServeTCP(context.Background(), 0, l)

	c1, _ := net.Dial("tcp", l.Addr().String())
	defer c1.Close()
	io.WriteString(c1, "hello")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c1, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo %q %v", buf, err)
	}
	// Second connection is over the limit of 1: closed at once.
	c2, _ := net.Dial("tcp", l.Addr().String())
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c2.Read(buf); err == nil {
		t.Fatalf("over-limit connection served (%d bytes)", n)
	}
	// The first one is closed after the idle timeout.
	c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c1.Read(buf); err == nil {
		t.Fatal("idle connection not closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("idle timeout not enforced")
	}
}

func TestReloadKeepsConnections(t *testing.T) {
	p := newPKI(t, "portal.example.test", "new.example.test")
	inside := httptest.NewServer(echoHeaders())
	defer inside.Close()
	cfg := Config{Routes: []Route{{Name: "portal", Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: inside.URL}}}
	s, addr := startProxy(t, cfg, Deps{Certs: p.store})
	c, err := tls.Dial("tcp", addr, p.clientTLS("portal.example.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp, _, err := doRequest(c, "portal.example.test", "/"); err != nil || resp.StatusCode != 200 {
		t.Fatal(resp, err)
	}
	cfg2 := s.Config()
	cfg2.Routes = append(cfg2.Routes, Route{Name: "new", Match: Match{SNI: []string{"new.example.test"}}, Action: ActionHTTP, Upstream: inside.URL})
	if _, err := s.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if resp, _, err := doRequest(c, "portal.example.test", "/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("established connection after reload: %v %v", resp, err)
	}
	if resp, _, err := httpsGet(t, addr, p.clientTLS("new.example.test"), "new.example.test", "/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("new route: %v %v", resp, err)
	}
	// A new listen address waits for a restart (and says so); the rest of
	// the change applies.
	cfg3 := s.Config()
	cfg3.Listen = "127.0.0.1:1"
	cfg3.Routes = cfg3.Routes[:1]
	restart, err := s.Reload(cfg3)
	if err != nil || !slices.Equal(restart, []string{"access_proxy.listen"}) {
		t.Fatalf("listen change: restart %v, %v", restart, err)
	}
	if got := s.Config(); got.Listen == "127.0.0.1:1" || len(got.Routes) != 1 {
		t.Errorf("after a listen change: listen %s, %d routes", got.Listen, len(got.Routes))
	}
}

func TestMetrics(t *testing.T) {
	p := newPKI(t, "portal.example.test")
	inside := httptest.NewServer(echoHeaders())
	defer inside.Close()
	reg := prometheus.NewRegistry()
	_, addr := startProxy(t, Config{Routes: []Route{{Name: "portal", Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: inside.URL}}},
		Deps{Certs: p.store, Registerer: reg})
	for i := 0; i < 3; i++ {
		if _, _, err := httpsGet(t, addr, p.clientTLS("portal.example.test"), "portal.example.test", "/"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := p.clientTLS("nobody.example.test")
	cfg.InsecureSkipVerify = true
	tls.Dial("tcp", addr, cfg)
	if got := testutil.ToFloat64(mustCounter(t, reg, "portico_accessproxy_http_responses_total", "2xx")); got != 3 {
		t.Fatalf("2xx responses = %v, want 3", got)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "portico_accessproxy_rejected_total", "no_route")); got != 1 {
		t.Fatalf("rejected no_route = %v, want 1", got)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetValue() == reason {
					c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
					c.Add(m.Counter.GetValue())
					return c
				}
			}
		}
	}
	t.Fatalf("no %s{reason=%q}", name, reason)
	return nil
}

// TestSessionResumption: a client's next connection resumes its TLS
// session (TLS 1.2 and 1.3), also after a reload.
func TestSessionResumption(t *testing.T) {
	p := newPKI(t, "portal.example.test")
	inside := httptest.NewServer(echoHeaders())
	defer inside.Close()
	cfg := Config{Routes: []Route{{Match: Match{SNI: []string{"portal.example.test"}}, Action: ActionHTTP, Upstream: inside.URL}}}
	s, addr := startProxy(t, cfg, Deps{Certs: p.store})
	for _, tc := range []struct {
		name    string
		version uint16
	}{{"tls 1.2", tls.VersionTLS12}, {"tls 1.3", tls.VersionTLS13}} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg := p.clientTLS("portal.example.test")
			ccfg.MinVersion, ccfg.MaxVersion = tc.version, tc.version
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			resumed := func() bool {
				c, err := tls.Dial("tcp", addr, ccfg)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if resp, _, err := doRequest(c, "portal.example.test", "/"); err != nil || resp.StatusCode != 200 {
					t.Fatalf("request: %v %v", resp, err)
				}
				return c.ConnectionState().DidResume
			}
			if resumed() {
				t.Fatal("first connection resumed")
			}
			if !resumed() {
				t.Fatal("second connection did not resume")
			}
			if _, err := s.Reload(s.Config()); err != nil {
				t.Fatal(err)
			}
			if !resumed() {
				t.Fatal("connection after reload did not resume")
			}
		})
	}
}
