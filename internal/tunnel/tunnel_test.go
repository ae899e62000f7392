package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
	"github.com/prometheus/client_golang/prometheus"
)

// The peers here are loopback echo servers written in the test: the tunnel
// carries bytes, so any TCP and UDP endpoint that answers is a real peer.

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// eventually polls cond until it holds; it gives up after 15 s so a broken
// tunnel fails the test instead of hanging it.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("never happened: %s", what)
}

func tcpEcho(t testing.TB) string {
	return tcpServer(t, "127.0.0.1:0", func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// tcpServer serves each connection to addr ("127.0.0.1:0" for any
// loopback port) with handle (then closes it) until the test ends, and
// returns its address.
func tcpServer(t testing.TB, addr string, handle func(net.Conn)) string {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return ln.Addr().String()
}

// udpServer answers each datagram to addr with reply(datagram, sender,
// own port) until the test ends, and returns its address.
func udpServer(t testing.TB, addr string, reply func(b []byte, from *net.UDPAddr, port int) []byte) string {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	port := pc.LocalAddr().(*net.UDPAddr).Port
	go func() {
		buf := make([]byte, 65536)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(reply(buf[:n], a.(*net.UDPAddr), port), a)
		}
	}()
	return pc.LocalAddr().String()
}

func udpEcho(t testing.TB) string {
	return udpServer(t, "127.0.0.1:0", func(b []byte, _ *net.UDPAddr, _ int) []byte { return b })
}

// udpWho answers each datagram with the IP address it came from.
func udpWho(t testing.TB) string {
	return udpServer(t, "127.0.0.1:0", func(_ []byte, from *net.UDPAddr, _ int) []byte { return []byte(from.IP.String()) })
}

type runningServer struct {
	*Server
	addr string
	log  *logBuf
	reg  *prometheus.Registry
	stop func()
}

// startServer serves a tunnel server on addr ("127.0.0.1:0" for any port).
func startServer(t testing.TB, addr string, state StateStore) *runningServer {
	t.Helper()
	return startServerWith(t, addr, state, 0)
}

// startServerWith starts a server whose services take at most maxFlows
// flows each (0: the default).
func startServerWith(t testing.TB, addr string, state StateStore, maxFlows int) *runningServer {
	t.Helper()
	return startServerConfig(t, addr, state, Config{MaxFlows: maxFlows, Services: []Service{
		{Name: "web", Proto: "tcp", Listen: "127.0.0.1:0"},
		{Name: "rtp", Proto: "udp", Listen: "127.0.0.1:0"},
		{Name: "ldap", Proto: "tcp"},
	}})
}

// startServerConfig starts a server with cfg; it returns once the services
// cfg offers are bound.
func startServerConfig(t testing.TB, addr string, state StateStore, cfg Config) *runningServer {
	t.Helper()
	lb := &logBuf{}
	s, err := NewServer(cfg, Deps{State: state, Logger: slog.New(slog.NewTextHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return serveServerOn(t, addr, s, lb)
}

// serveServer serves s (which logs to lb) on a loopback port until the
// test ends; it returns once the services s offers are bound.
func serveServer(t testing.TB, s *Server, lb *logBuf) *runningServer {
	t.Helper()
	return serveServerOn(t, "127.0.0.1:0", s, lb)
}

func serveServerOn(t testing.TB, addr string, s *Server, lb *logBuf) *runningServer {
	t.Helper()
	cfg := s.cfg
	reg := prometheus.NewRegistry()
	register(reg, s.Stats)
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			pc.Close()
		})
	}
	t.Cleanup(stop)
	eventually(t, "server services bound", func() bool {
		for _, x := range cfg.Services {
			if x.Listen != "" && s.ServiceAddr(x.Name) == nil {
				return false
			}
		}
		return true
	})
	return &runningServer{Server: s, addr: pc.LocalAddr().String(), log: lb, reg: reg, stop: stop}
}

func newTestClient(t testing.TB, server string, state StateStore) *Client {
	t.Helper()
	c, err := NewClient(Config{Server: server, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Services: []Service{
		{Name: "web", Proto: "tcp", Target: tcpEcho(t)},
		{Name: "rtp", Proto: "udp", Target: udpEcho(t)},
		{Name: "ldap", Proto: "tcp", Target: tcpEcho(t)},
	}}, Deps{State: state})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func runClient(t testing.TB, c *Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("client Run: %v", err)
		}
	})
}

func enrolledPair(t *testing.T) (*runningServer, *Client) {
	t.Helper()
	s := startServer(t, "127.0.0.1:0", &MemState{})
	c := newTestClient(t, s.addr, &MemState{})
	tok, _, err := s.CreateToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Enroll(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestEnrollment(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", &MemState{})
	ctx := context.Background()
	good, _, err := s.CreateToken()
	if err != nil {
		t.Fatal(err)
	}
	a := newTestClient(t, s.addr, &MemState{})

	// Before enrolling, a client has nothing to connect with.
	if _, _, err := a.connect(ctx); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("connect before enrollment: %v", err)
	}
	if err := a.Enroll(ctx, good); err != nil {
		t.Fatalf("good token: %v", err)
	}
	if p := s.Peers(); len(p) != 1 || p[0] != a.Fingerprint() {
		t.Fatalf("server pinned %v, want %s", p, a.Fingerprint())
	}
	conn, release, err := a.connect(ctx)
	if err != nil {
		t.Fatalf("enrolled client refused: %v", err)
	}
	_ = conn.CloseWithError(0, "")
	release()

	b := newTestClient(t, s.addr, &MemState{})
	secret, _, _ := newTokenSecret()
	for _, tc := range []struct {
		name, token, log string
	}{
		{"replayed", good, "already used"},
		{"wrong secret", tokenPrefix + secret + "." + s.Fingerprint(), "wrong enrollment token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Stats().EnrollRefused
			err := b.Enroll(ctx, tc.token)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("Enroll: %v", err)
			}
			if got := s.Stats().EnrollRefused; got != before+1 {
				t.Fatalf("enroll_refused %d, want %d", got, before+1)
			}
			if !strings.Contains(s.log.String(), tc.log) {
				t.Fatalf("refusal not logged: %s", s.log.String())
			}
		})
	}
	t.Run("token of another server", func(t *testing.T) {
		other := tokenPrefix + secret + "." + strings.Repeat("ab", 32)
		if err := b.Enroll(ctx, other); err == nil {
			t.Fatal("enrolled against a server the token does not name")
		}
	})
	t.Run("malformed token", func(t *testing.T) {
		if err := b.Enroll(ctx, "hello"); !errors.Is(err, ErrToken) {
			t.Fatalf("Enroll: %v", err)
		}
	})
	t.Run("unknown client certificate", func(t *testing.T) {
		// b trusts the server but was never enrolled: the server refuses it.
		st, _ := b.deps.State.Load()
		st.Peers = []string{s.Fingerprint()}
		b.st = st
		before := s.Stats().Rejected
		// In TLS 1.3 the client's certificate is checked after the client
		// finished its side, so the refusal may come as the server closing
		// the new connection.
		if conn, release, err := b.connect(ctx); err == nil {
			defer release()
			select {
			case <-conn.Context().Done():
			case <-time.After(10 * time.Second):
				t.Fatal("unenrolled client accepted")
			}
		}
		if got := s.Stats().Rejected; got != before+1 {
			t.Fatalf("rejected %d, want %d", got, before+1)
		}
		if !strings.Contains(s.log.String(), "certificate not pinned") {
			t.Fatalf("refusal not logged: %s", s.log.String())
		}
	})
	if p := s.Peers(); len(p) != 1 {
		t.Fatalf("refused attempts pinned something: %v", p)
	}
}

func tcpRoundTrip(addr, msg string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return errors.New("echo differs")
	}
	return nil
}

func udpRoundTrip(c net.Conn, msg []byte) error {
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, 65536)
	n, err := c.Read(got)
	if err != nil {
		return err
	}
	if !bytes.Equal(got[:n], msg) {
		return errors.New("echo differs")
	}
	return nil
}

// udpEchoes sends 21 RTP-sized datagrams to an echoed UDP service at addr,
// each answered, and returns the socket (closed at the test's end) and the
// datagram.
func udpEchoes(t *testing.T, addr string) (net.Conn, []byte) {
	t.Helper()
	uc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	pkt := bytes.Repeat([]byte{0x80}, 172)
	eventually(t, "udp echo", func() bool { return udpRoundTrip(uc, pkt) == nil })
	for i := 0; i < 20; i++ {
		if err := udpRoundTrip(uc, pkt); err != nil {
			t.Fatalf("udp packet %d: %v", i, err)
		}
	}
	return uc, pkt
}

// dialUDP opens n UDP sockets to addr, each its own source address,
// closed at the test's end.
func dialUDP(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := 0; i < n; i++ {
		uc, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { uc.Close() })
		conns = append(conns, uc)
	}
	return conns
}

func TestFlowsEcho(t *testing.T) {
	s, c := enrolledPair(t)
	runClient(t, c)
	eventually(t, "tunnel up", func() bool { return c.Stats().State == "up" && s.Stats().State == "up" })

	msg := strings.Repeat("through the tunnel ", 5000)
	if err := tcpRoundTrip(s.ServiceAddr("web").String(), msg); err != nil {
		t.Fatalf("tcp flow: %v", err)
	}
	// Through Dial, as the access proxy uses it.
	rc, err := s.Dial(context.Background(), "ldap")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Write([]byte("bind")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(rc, got); err != nil || string(got) != "bind" {
		t.Fatalf("Dial echo %q %v", got, err)
	}
	rc.Close()
	if _, err := s.Dial(context.Background(), "rtp"); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("Dial of a udp service: %v", err)
	}

	uc, pkt := udpEchoes(t, s.ServiceAddr("rtp").String())

	st := s.Stats()
	byName := map[string]ServiceStats{}
	for _, x := range st.Services {
		byName[x.Name] = x
	}
	if w := byName["web"]; w.BytesOut < uint64(len(msg)) || w.BytesIn < uint64(len(msg)) || w.FlowsTotal != 1 {
		t.Fatalf("web accounting %+v", w)
	}
	if r := byName["rtp"]; r.BytesIn < 21*172 || r.FlowsTotal != 1 || r.Flows != 1 {
		t.Fatalf("rtp accounting %+v", r)
	}
	if st.RTT <= 0 || st.CongestionWindow == 0 {
		t.Fatalf("no RTT or congestion window: %+v", st)
	}
	if got := metricValue(t, s.reg, "portico_tunnel_up", nil); got != 1 {
		t.Fatalf("portico_tunnel_up %v", got)
	}
	if got := metricValue(t, s.reg, "portico_tunnel_bytes_total", map[string]string{"service": "web", "direction": "out"}); got < float64(len(msg)) {
		t.Fatalf("portico_tunnel_bytes_total{web,out} %v", got)
	}
	eventually(t, "web flow closed", func() bool {
		for _, x := range s.Stats().Services {
			if x.Name == "web" && x.Flows == 0 {
				return true
			}
		}
		return false
	})

	// Too large for a datagram: counted and dropped, and the flow goes on.
	before := s.Stats().DroppedTooLarge
	if _, err := uc.Write(make([]byte, 1500)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "oversized datagram counted", func() bool { return s.Stats().DroppedTooLarge == before+1 })
	if err := udpRoundTrip(uc, pkt); err != nil {
		t.Fatalf("udp after an oversized datagram: %v", err)
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s %v not found", name, labels)
	return 0
}

func TestReconnectAfterServerRestart(t *testing.T) {
	state := &MemState{}
	s := startServer(t, "127.0.0.1:0", state)
	c := newTestClient(t, s.addr, &MemState{})
	tok, _, _ := s.CreateToken()
	if err := c.Enroll(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var states []string
	c.deps.OnState = func(st string) { mu.Lock(); states = append(states, st); mu.Unlock() }
	runClient(t, c)
	eventually(t, "tunnel up", func() bool { return c.Stats().State == "up" })

	s.stop()
	eventually(t, "client sees the tunnel down", func() bool { return c.Stats().State == "down" })

	s2 := startServer(t, s.addr, state)
	eventually(t, "tunnel up again", func() bool { return c.Stats().State == "up" && s2.Stats().State == "up" })
	if err := tcpRoundTrip(s2.ServiceAddr("web").String(), "again"); err != nil {
		t.Fatalf("tcp after reconnect: %v", err)
	}
	if got := c.Stats().Reconnects; got != 1 {
		t.Fatalf("reconnects %d, want 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(states, ",") != "up,down,up" {
		t.Fatalf("state changes %v", states)
	}
}

func TestDatagramQueueBounded(t *testing.T) {
	e := newEnd(Config{DatagramQueue: 4, Services: []Service{{Name: "rtp", Proto: "udp"}}}, slog.New(slog.DiscardHandler))
	for range 10 {
		e.enqueue(Header{Kind: KindUDP, Flow: 1, Service: "rtp"}, make([]byte, 100), e.svc["rtp"])
	}
	if got := e.droppedQueue.Load(); got != 6 {
		t.Fatalf("dropped %d, want 6", got)
	}
	if got := len(e.lanes[0].queue); got != 4 {
		t.Fatalf("queued %d, want 4", got)
	}
	e.enqueue(Header{Kind: KindUDP, Flow: 1, Service: "rtp"}, make([]byte, 9000), e.svc["rtp"])
	if got := e.droppedLarge.Load(); got != 1 {
		t.Fatalf("too large %d, want 1", got)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for n := range 40 {
		want := min(hi, lo<<min(n, 20))
		for range 20 {
			d := backoff(lo, hi, n)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"server", Config{Role: "server", Listen: ":4443", Services: []Service{{Name: "web", Proto: "tcp", Listen: "127.0.0.1:8443"}}}, ""},
		{"client", Config{Role: "client", Server: "dmz.example:4443", Services: []Service{{Name: "web", Proto: "tcp", Target: "10.0.0.5:443"}}}, ""},
		{"no role", Config{}, "tunnel.role: required"},
		{"bad role", Config{Role: "both"}, `tunnel.role: "both" is not server or client`},
		{"client without server", Config{Role: "client"}, "tunnel.server: required for role client (or discover"},
		{"bad listen", Config{Role: "server", Listen: "4443"}, "tunnel.listen:"},
		{"bad name", Config{Role: "server", Services: []Service{{Name: "Web/1", Proto: "tcp"}}}, "tunnel.services[0].name:"},
		{"duplicate", Config{Role: "server", Services: []Service{{Name: "a", Proto: "tcp"}, {Name: "a", Proto: "udp"}}}, "tunnel.services[1].name: \"a\" is listed twice"},
		{"bad proto", Config{Role: "server", Services: []Service{{Name: "a", Proto: "sctp"}}}, "tunnel.services[0].proto:"},
		{"client target missing", Config{Role: "client", Server: "h:1", Services: []Service{{Name: "a", Proto: "tcp"}}}, "tunnel.services[0].target: required"},
		{"reverse service", Config{Role: "client", Server: "h:1", Services: []Service{{Name: "sip", Proto: "udp", Listen: "127.0.0.1:5070"}}}, ""},
		{"reverse target", Config{Role: "server", Services: []Service{{Name: "sip", Proto: "udp", Target: "127.0.0.1:5060"}}}, ""},
		{"source", Config{Role: "server", Services: []Service{{Name: "sip", Proto: "udp", Target: "127.0.0.3:5060", Source: "127.0.0.4"}}}, ""},
		{"bad source", Config{Role: "server", Services: []Service{{Name: "sip", Proto: "udp", Target: "127.0.0.3:5060", Source: "h:1"}}}, "tunnel.services[0].source: \"h:1\" is not an IP"},
		{"source without target", Config{Role: "server", Services: []Service{{Name: "sip", Proto: "udp", Source: "127.0.0.4"}}}, "tunnel.services[0].source: only"},
		{"discover", Config{Role: "client", Discover: "_portico-tunnel._udp.example.com", Resolver: "127.0.0.1:53", Services: []Service{{Name: "a", Proto: "tcp", Target: "h:1"}}}, ""},
		{"discover and server", Config{Role: "client", Server: "h:1", Discover: "_t._udp.example.com"}, "tunnel.discover: a client with a server"},
		{"bad discover", Config{Role: "client", Discover: "a..b"}, "tunnel.discover: \"a..b\" is not a DNS name"},
		{"bad resolver", Config{Role: "client", Discover: "_t._udp.x", Resolver: "x"}, "tunnel.resolver:"},
		{"server discovers", Config{Role: "server", Discover: "_t._udp.x"}, "tunnel.discover: only a client"},
		{"priority", Config{Role: "client", Server: "h:1", Priority: 200}, ""},
		{"priority too high", Config{Role: "client", Server: "h:1", Priority: 256}, "tunnel.priority: 256 is not 1-255"},
		{"server priority", Config{Role: "server", Priority: 10}, "tunnel.priority: only a client"},
		{"port range", Config{Role: "server", Services: []Service{{Name: "media", Proto: "udp", Listen: "127.0.0.3:30000-30999"}}}, ""},
		{"host name with a dash", Config{Role: "server", Services: []Service{{Name: "web", Proto: "tcp", Target: "web-1.inside:80"}}}, ""},
		{"tcp port range", Config{Role: "server", Services: []Service{{Name: "web", Proto: "tcp", Listen: "127.0.0.3:80-81"}}}, ""},
		{"reversed range", Config{Role: "server", Services: []Service{{Name: "m", Proto: "udp", Target: "h:9-8"}}}, "tunnel.services[0].target: \"h:9-8\" is not"},
		{"range too wide", Config{Role: "server", Services: []Service{{Name: "m", Proto: "udp", Listen: "h:1-5000"}}}, "tunnel.services[0].listen: 5000 ports is more than 4096"},
		{"listen and target", Config{Role: "server", Services: []Service{{Name: "a", Proto: "tcp", Listen: ":1", Target: "h:2"}}}, "tunnel.services[0].target: a service is offered"},
		{"keepalive too long", Config{Role: "server", KeepAlive: 3 * time.Second}, "tunnel.keep_alive:"},
		{"negative queue", Config{Role: "server", DatagramQueue: -1}, "tunnel.datagram_queue:"},
		{"datagram connections", Config{Role: "server", DatagramConnections: 16}, ""},
		{"too many datagram connections", Config{Role: "server", DatagramConnections: 17}, "tunnel.datagram_connections: 17 is not 1-16"},
		{"negative datagram connections", Config{Role: "client", Server: "h:1", DatagramConnections: -1}, "tunnel.datagram_connections: -1 is not 1-16"},
		{"mode all", Config{Role: "server", Services: []Service{{Name: "media", Proto: "udp", Listen: "h:1", Mode: "all"}, {Name: "web", Proto: "tcp", Mode: "one"}}}, ""},
		{"bad mode", Config{Role: "server", Services: []Service{{Name: "m", Proto: "udp", Listen: "h:1", Mode: "both"}}}, `tunnel.services[0].mode: "both" is not one or all`},
		{"client mode", Config{Role: "client", Server: "h:1", Services: []Service{{Name: "m", Proto: "udp", Target: "h:1", Mode: "all"}}}, "tunnel.services[0].mode: only the server"},
		{"mode of a delivered service", Config{Role: "server", Services: []Service{{Name: "m", Proto: "udp", Target: "h:1", Mode: "all"}}}, "tunnel.services[0].mode: a service delivered here"},
		{"service priority", Config{Role: "client", Server: "h:1", Services: []Service{{Name: "sip", Proto: "udp", Target: "h:1", Priority: 255}}}, ""},
		{"service priority too high", Config{Role: "client", Server: "h:1", Services: []Service{{Name: "sip", Proto: "udp", Target: "h:1", Priority: 300}}}, "tunnel.services[0].priority: 300 is not 1-255"},
		{"server service priority", Config{Role: "server", Services: []Service{{Name: "sip", Proto: "udp", Listen: "h:1", Priority: 3}}}, "tunnel.services[0].priority: only a client"},
		{"reverse service priority", Config{Role: "client", Server: "h:1", Services: []Service{{Name: "sip", Proto: "udp", Listen: "h:1", Priority: 3}}}, "tunnel.services[0].priority: only a service this client delivers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate("tunnel")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFileState(t *testing.T) {
	f := FileState{Path: t.TempDir() + "/tunnel/state.json"}
	st, err := f.Load()
	if err != nil || len(st.CertPEM) != 0 {
		t.Fatalf("fresh load %+v %v", st, err)
	}
	_, fp, err := identity(&st)
	if err != nil {
		t.Fatal(err)
	}
	st.Peers = []string{"aa"}
	if err := f.Save(st); err != nil {
		t.Fatal(err)
	}
	back, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if _, fp2, _ := identity(&back); fp2 != fp || len(back.Peers) != 1 {
		t.Fatalf("identity not kept: %s vs %s, %v", fp, fp2, back.Peers)
	}
}

func TestRunEnrollsWithConfiguredToken(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", &MemState{})
	tok, _, err := s.CreateToken()
	if err != nil {
		t.Fatal(err)
	}
	state := &MemState{}
	c, err := NewClient(Config{Server: s.addr, EnrollmentToken: tok}, Deps{State: state})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := state.Load(); len(st.CertPEM) != 0 {
		t.Fatal("NewClient wrote the state")
	}
	runClient(t, c)
	eventually(t, "enrolled and up", func() bool { return c.Stats().State == "up" })
	if st, _ := state.Load(); len(st.Peers) != 1 || st.Peers[0] != s.Fingerprint() || len(st.CertPEM) == 0 {
		t.Fatalf("client state after enrollment: peers %v", st.Peers)
	}

	// The same token in a second client's configuration is a replay.
	c2, err := NewClient(Config{Server: s.addr, EnrollmentToken: tok}, Deps{State: &MemState{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Run(context.Background()); !errors.Is(err, ErrRefused) {
		t.Fatalf("Run with a replayed token: %v", err)
	}
}

// udpPath forwards UDP between the client and the server so a test can cut
// the path (drop everything) without either end closing anything.
type udpPath struct {
	pc  net.PacketConn
	cut atomic.Bool
}

func newUDPPath(t *testing.T, server string) *udpPath {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	p := &udpPath{pc: pc}
	up, err := net.Dial("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	var client atomic.Pointer[net.Addr]
	go func() {
		buf := make([]byte, 65536)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			client.Store(&a)
			if !p.cut.Load() {
				_, _ = up.Write(buf[:n])
			}
		}
	}()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			if a := client.Load(); a != nil && !p.cut.Load() {
				_, _ = pc.WriteTo(buf[:n], *a)
			}
		}
	}()
	return p
}

func TestPathCutDetectedAndRecovered(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", &MemState{})
	path := newUDPPath(t, s.addr)
	c := newTestClient(t, path.pc.LocalAddr().String(), &MemState{})
	tok, _, _ := s.CreateToken()
	if err := c.Enroll(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	runClient(t, c)
	eventually(t, "tunnel up", func() bool { return c.Stats().State == "up" })

	path.cut.Store(true)
	cutAt := time.Now()
	// Nothing is closed: only keep-alives going unanswered tell the ends.
	eventually(t, "both ends see the path fail", func() bool { return c.Stats().State == "down" && s.Stats().State == "down" })
	t.Logf("path failure seen by both ends after %s (idle timeout %s)", time.Since(cutAt).Round(10*time.Millisecond), DefaultIdleTimeout)
	path.cut.Store(false)
	eventually(t, "tunnel up again", func() bool { return c.Stats().State == "up" && s.Stats().State == "up" })
	if err := tcpRoundTrip(s.ServiceAddr("web").String(), "after the cut"); err != nil {
		t.Fatalf("tcp after the cut: %v", err)
	}
	if got := c.Stats().Reconnects; got < 1 {
		t.Fatalf("reconnects %d", got)
	}
}

// TestServiceFlowsBounded: users of an offered service cannot grow the
// server's flow tables without bound: beyond max_flows a new UDP source is
// dropped and counted, and a new TCP connection is refused, while the
// flows already admitted go on. Before, both tables had no bound.
func TestServiceFlowsBounded(t *testing.T) {
	s := startServerWith(t, "127.0.0.1:0", &MemState{}, 2)
	runEnrolled(t, s, Config{Services: []Service{
		{Name: "web", Proto: "tcp", Target: tcpEcho(t)},
		{Name: "rtp", Proto: "udp", Target: udpEcho(t)},
	}})
	pkt := bytes.Repeat([]byte{0x80}, 172)
	conns := dialUDP(t, s.ServiceAddr("rtp").String(), 3)
	for _, uc := range conns[:2] {
		eventually(t, "udp echo", func() bool { return udpRoundTrip(uc, pkt) == nil })
	}
	if err := udpRoundTrip(conns[2], pkt); err == nil {
		t.Fatal("a third UDP source was carried beyond max_flows 2")
	}
	rtp := func() ServiceStats {
		for _, x := range s.Stats().Services {
			if x.Name == "rtp" {
				return x
			}
		}
		return ServiceStats{}
	}
	if r := rtp(); r.FlowsRefused == 0 || r.Flows != 2 {
		t.Fatalf("rtp accounting %+v, want 2 flows and refusals counted", r)
	}
	if err := udpRoundTrip(conns[0], pkt); err != nil {
		t.Fatalf("an admitted flow after the refusal: %v", err)
	}

	for i := 0; i < 2; i++ {
		tc, err := net.Dial("tcp", s.ServiceAddr("web").String())
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close() // held open: the flows count until they close
		if _, err := tc.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(tc, b); err != nil {
			t.Fatalf("tcp flow %d: %v", i, err)
		}
	}
	third, err := net.Dial("tcp", s.ServiceAddr("web").String())
	if err != nil {
		return // refused (reset) before the dial returned
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	third.Write([]byte("x"))
	if _, err := third.Read(make([]byte, 1)); err == nil {
		t.Fatal("a third TCP connection was carried beyond max_flows 2")
	}
}

// TestReverseServices: services offered on the inside node (listen on the
// client) reach targets beside the DMZ node through the connection the
// client dialed, and are bounded there as the DMZ side's are.
func TestReverseServices(t *testing.T) {
	s := startServerConfig(t, "127.0.0.1:0", &MemState{}, Config{Services: []Service{
		{Name: "web", Proto: "tcp", Listen: "127.0.0.1:0"},
		{Name: "back", Proto: "tcp", Target: tcpEcho(t)},
		{Name: "backudp", Proto: "udp", Target: udpEcho(t)},
		{Name: "who", Proto: "udp", Target: udpWho(t), Source: "127.0.0.7"},
	}})
	c := runEnrolled(t, s, Config{MaxFlows: 2, Services: []Service{
		{Name: "web", Proto: "tcp", Target: tcpEcho(t)},
		{Name: "back", Proto: "tcp", Listen: "127.0.0.1:0"},
		{Name: "backudp", Proto: "udp", Listen: "127.0.0.1:0"},
		{Name: "who", Proto: "udp", Listen: "127.0.0.1:0"},
	}})

	// Both directions on one connection.
	msg := strings.Repeat("from the inside ", 4000)
	if err := tcpRoundTrip(c.ServiceAddr("back").String(), msg); err != nil {
		t.Fatalf("reverse tcp flow: %v", err)
	}
	if err := tcpRoundTrip(s.ServiceAddr("web").String(), "forward"); err != nil {
		t.Fatalf("forward tcp flow: %v", err)
	}
	_, pkt := udpEchoes(t, c.ServiceAddr("backudp").String())
	// The delivering end's flow socket uses the service's source address.
	wc, err := net.Dial("udp", c.ServiceAddr("who").String())
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	var from string
	eventually(t, "source address seen by the target", func() bool {
		wc.Write([]byte("?"))
		wc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		b := make([]byte, 64)
		n, err := wc.Read(b)
		from = string(b[:max(n, 0)])
		return err == nil
	})
	if from != "127.0.0.7" {
		t.Fatalf("the target saw the flow from %q, want the configured source 127.0.0.7", from)
	}
	byName := func(st Stats) map[string]ServiceStats {
		m := map[string]ServiceStats{}
		for _, x := range st.Services {
			m[x.Name] = x
		}
		return m
	}
	if b := byName(s.Stats())["back"]; b.BytesIn < uint64(len(msg)) || b.FlowsTotal != 1 {
		t.Fatalf("server accounting of the reverse tcp service %+v", b)
	}
	if b := byName(s.Stats())["backudp"]; b.BytesIn < 21*172 || b.FlowsTotal != 1 {
		t.Fatalf("server accounting of the reverse udp service %+v", b)
	}

	// Each service is opened from the end that offers it only.
	if _, err := s.Dial(context.Background(), "back"); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("server Dial of a reverse service: %v", err)
	}
	if _, err := c.Dial(context.Background(), "web"); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("client Dial of a forward service: %v", err)
	}

	// max_flows 2 on the client bounds its offered UDP service.
	more := dialUDP(t, c.ServiceAddr("backudp").String(), 2)
	eventually(t, "second reverse udp flow", func() bool { return udpRoundTrip(more[0], pkt) == nil })
	if err := udpRoundTrip(more[1], pkt); err == nil {
		t.Fatal("a third UDP source was carried beyond the client's max_flows 2")
	}
	if b := byName(c.Stats())["backudp"]; b.FlowsRefused == 0 || b.Flows != 2 {
		t.Fatalf("client accounting of the reverse udp service %+v, want 2 flows and refusals", b)
	}
}

// enrolledClient makes a client of s from cfg (Server and quick backoff
// filled in) and enrolls it.
func enrolledClient(t testing.TB, s *runningServer, cfg Config) *Client {
	t.Helper()
	cfg.Server, cfg.BackoffMin, cfg.BackoffMax = s.addr, 20*time.Millisecond, 200*time.Millisecond
	c, err := NewClient(cfg, Deps{State: &MemState{}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.CreateToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Enroll(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return c
}

// runEnrolled makes a client of s from cfg (Server and quick backoff filled
// in), enrolls it, runs it until the test ends and waits until the tunnel
// is up and the client's offered services are bound.
func runEnrolled(t testing.TB, s *runningServer, cfg Config) *Client {
	t.Helper()
	c := enrolledClient(t, s, cfg)
	runClient(t, c)
	eventually(t, "tunnel up and the client's services bound", func() bool {
		for _, x := range cfg.Services {
			if x.Listen != "" && c.ServiceAddr(x.Name) == nil {
				return false
			}
		}
		return c.Stats().State == "up" && s.Stats().State == "up"
	})
	return c
}

// TestPortRangeService: a UDP service offered on a range of ports reaches
// the port at the same offset in the peer's target range, each port with
// its own flows, both ways.
func TestPortRangeService(t *testing.T) {
	const n = 3
	tbase := testpeer.FreePorts(t, n)
	for i := 0; i < n; i++ { // each answers with its own port
		udpServer(t, fmt.Sprintf("127.0.0.1:%d", tbase+i), func(_ []byte, _ *net.UDPAddr, port int) []byte { return []byte(strconv.Itoa(port)) })
	}
	lbase := testpeer.FreePorts(t, n)
	s := startServerConfig(t, "127.0.0.1:0", &MemState{}, Config{Services: []Service{
		{Name: "media", Proto: "udp", Target: fmt.Sprintf("127.0.0.1:%d-%d", tbase, tbase+n-1)},
	}})
	runEnrolled(t, s, Config{Services: []Service{
		{Name: "media", Proto: "udp", Listen: fmt.Sprintf("127.0.0.1:%d-%d", lbase, lbase+n-1)},
	}})
	for i := n - 1; i >= 0; i-- {
		uc, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", lbase+i))
		if err != nil {
			t.Fatal(err)
		}
		defer uc.Close()
		var got string
		eventually(t, fmt.Sprintf("answer through range port %d", i), func() bool {
			uc.Write([]byte("?"))
			uc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			b := make([]byte, 16)
			k, err := uc.Read(b)
			got = string(b[:max(k, 0)])
			return err == nil
		})
		if want := strconv.Itoa(tbase + i); got != want {
			t.Fatalf("range port %d reached target port %s, want %s", i, got, want)
		}
	}
	for _, x := range s.Stats().Services {
		if x.FlowsTotal != n {
			t.Fatalf("target flows %+v, want %d", x, n)
		}
	}
}

// BenchmarkUDPRoundTrip sends one 172-byte RTP-sized datagram into a UDP
// service on the DMZ end and waits for the inside echo's answer: both
// directions of the tunnel and both ends' user-space paths per operation.
func BenchmarkUDPRoundTrip(b *testing.B) {
	s := startServer(b, "127.0.0.1:0", &MemState{})
	runEnrolled(b, s, Config{Services: []Service{{Name: "rtp", Proto: "udp", Target: udpEcho(b)}}})
	uc, err := net.Dial("udp", s.ServiceAddr("rtp").String())
	if err != nil {
		b.Fatal(err)
	}
	defer uc.Close()
	pkt := bytes.Repeat([]byte{0x80}, 172)
	eventually(b, "udp echo", func() bool { return udpRoundTrip(uc, pkt) == nil })
	b.SetBytes(int64(2 * len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	lost := 0
	for i := 0; i < b.N; i++ {
		if udpRoundTrip(uc, pkt) != nil {
			lost++
		}
	}
	b.ReportMetric(float64(lost), "lost")
}
