package turn

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	testRealm  = "portico.test"
	testSecret = "0123456789abcdef-test-secret"
	testUser   = "alice"
	testPass   = "wonderland"
)

// testConfig allows loopback peers explicitly: the built-in policy denies them.
func testConfig() Config {
	// Above the ephemeral range and the media defaults (40000-59999) that
	// other tests and benchmarks on this machine use.
	base := 61000 + rand.IntN(4000)
	return Config{
		Realm: testRealm,
		Relay: Relay{Address: "127.0.0.1", PortMin: base, PortMax: base + 499},
		Peers: PeerPolicy{Allow: []string{"127.0.0.0/8"}},
		Auth:  Auth{Secret: testSecret},
	}
}

type testServer struct {
	*Server
	udp  net.PacketConn
	tcp  net.Listener
	reg  *prometheus.Registry
	done chan error
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		w := &tWriter{t: t}
		// pion's read loops can still log after the server's Close returns;
		// logging into a finished test panics, so the writer goes quiet
		// once the test's cleanups reach it.
		t.Cleanup(w.stop)
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// tWriter writes log lines into the test's log until stop.
type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// startServer serves UDP and TCP on loopback sockets bound to port 0.
func startServer(t testing.TB, cfg Config, mod func(*Deps)) *testServer {
	t.Helper()
	users := NewMemoryUsers()
	users.Set(cfg.withDefaults().Realm, testUser, testPass)
	reg := prometheus.NewRegistry()
	deps := Deps{Logger: testLogger(t), Registerer: reg, Users: users}
	if mod != nil {
		mod(&deps)
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, udp: udp, tcp: tcp, reg: reg, done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(context.Background(), udp, tcp) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-ts.done; err != nil {
			t.Errorf("Serve returned %v", err)
		}
	})
	waitServing(t, s)
	return ts
}

func waitServing(t testing.TB, s *Server) {
	t.Helper()
	for i := 0; i < 200; i++ {
		s.mu.Lock()
		ok := s.handover != nil
		s.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("server did not start serving")
}

func newClient(t testing.TB, server net.Addr, user, pass string) *pturn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pturn.NewClient(&pturn.ClientConfig{
		STUNServerAddr: server.String(),
		TURNServerAddr: server.String(),
		Username:       user,
		Password:       pass,
		Realm:          testRealm,
		Conn:           conn,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

// echoPeer is a loopback UDP peer that echoes every datagram.
func echoPeer(t testing.TB) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], a)
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return pc
}

func TestRelayUDPLongTermAndREST(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	peer := echoPeer(t)
	restUser, restPass, _ := ts.MintCredentials("bob", time.Hour)
	tests := []struct {
		name, user, pass, wantUser string
	}{
		{"long-term", testUser, testPass, testUser},
		{"rest", restUser, restPass, "bob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, ts.udp.LocalAddr(), tc.user, tc.pass)
			relay, err := c.Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			defer relay.Close()
			msg := []byte("hello through portico " + tc.name)
			buf := make([]byte, 1500)
			for i := 0; i < 3; i++ {
				if _, err := relay.WriteTo(msg, peer.LocalAddr()); err != nil {
					t.Fatalf("WriteTo: %v", err)
				}
				_ = relay.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := relay.ReadFrom(buf)
				if err != nil {
					t.Fatalf("ReadFrom: %v", err)
				}
				if !bytes.Equal(buf[:n], msg) || from.String() != peer.LocalAddr().String() {
					t.Fatalf("got %q from %v", buf[:n], from)
				}
			}
			find := func() *AllocationInfo {
				for _, a := range ts.Allocations() {
					if a.Relay == relay.LocalAddr().String() {
						return &a
					}
				}
				t.Fatalf("allocation %v not listed in %+v", relay.LocalAddr(), ts.Allocations())
				return nil
			}
			// The relay counts a packet just after sending it; the echo
			// may overtake the count.
			waitFor(t, func() bool { return find().PacketsToPeer == 3 })
			info := find()
			if info.User != tc.wantUser || info.Transport != "udp" || info.RelayTransport != "udp" {
				t.Errorf("info = %+v", info)
			}
			if info.PacketsToPeer != 3 || info.PacketsFromPeer != 3 || info.BytesToPeer != uint64(3*len(msg)) {
				t.Errorf("counters = %+v", info)
			}
			if len(info.Permissions) != 1 || info.Permissions[0] != "127.0.0.1" {
				t.Errorf("permissions = %v", info.Permissions)
			}
			if d := time.Until(info.Expires); d < 9*time.Minute || d > 11*time.Minute {
				t.Errorf("expires in %v, want about 10m", d)
			}
		})
	}
	if got := testutil.ToFloat64(ts.m.allocUDP); got != 0 {
		// Both relays were closed by the deferred Close (Refresh lifetime 0).
		waitFor(t, func() bool { return testutil.ToFloat64(ts.m.allocUDP) == 0 })
	}
	if got := testutil.ToFloat64(ts.m.pktsToPeer); got != 6 {
		t.Errorf("relayed_packets_total{to_peer} = %v, want 6", got)
	}
	if got := testutil.ToFloat64(ts.m.allocationsTotal); got != 2 {
		t.Errorf("allocations_created_total = %v, want 2", got)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func TestAuthRefused(t *testing.T) {
	now := time.Now()
	ts := startServer(t, testConfig(), nil)
	expiredUser, expiredPass := RESTCredentials(testSecret, "eve", now.Add(-time.Minute))
	longUser, longPass := RESTCredentials(testSecret, "eve", now.Add(48*time.Hour))
	goodUser, _ := RESTCredentials(testSecret, "eve", now.Add(time.Hour))
	tests := []struct {
		name, user, pass string
		counter          func() float64
	}{
		{"wrong password", testUser, "not-the-password", func() float64 { return testutil.ToFloat64(ts.m.authIntegrity) }},
		{"unknown user", "mallory", "x", func() float64 { return testutil.ToFloat64(ts.m.authUnknown) }},
		{"expired rest", expiredUser, expiredPass, func() float64 { return testutil.ToFloat64(ts.m.authExpired) }},
		{"rest beyond max ttl", longUser, longPass, func() float64 { return testutil.ToFloat64(ts.m.authExpired) }},
		{"rest wrong password", goodUser, "AAAA", func() float64 { return testutil.ToFloat64(ts.m.authIntegrity) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.counter()
			c := newClient(t, ts.udp.LocalAddr(), tc.user, tc.pass)
			relay, err := c.Allocate()
			if err == nil {
				relay.Close()
				t.Fatal("Allocate succeeded with bad credentials")
			}
			if after := tc.counter(); after <= before {
				t.Errorf("failure counter did not move (%v -> %v): %v", before, after, err)
			}
		})
	}
	if n := len(ts.Allocations()); n != 0 {
		t.Errorf("%d allocations after refusals", n)
	}
}

// TestPeerPolicyRefusesPrivatePeers asks for permissions to denied peers.
// No packet is ever sent to them: CreatePermission is refused first.
func TestPeerPolicyRefusesPrivatePeers(t *testing.T) {
	cfg := testConfig()
	cfg.Peers.Inside = []string{"9.9.9.0/24"}
	ts := startServer(t, cfg, nil)
	c := allocated(t, ts)
	for _, peer := range []string{"10.0.0.1", "192.168.1.1", "172.16.5.4", "169.254.1.1", "9.9.9.7", "0.0.0.0", "224.0.0.1"} {
		t.Run(peer, func(t *testing.T) {
			before := testutil.ToFloat64(ts.m.peersDenied)
			err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(peer), Port: 9})
			if err == nil {
				t.Fatalf("CreatePermission(%s) succeeded", peer)
			}
			if !strings.Contains(err.Error(), "403") && !strings.Contains(err.Error(), "Forbidden") {
				t.Errorf("err = %v, want 403 Forbidden", err)
			}
			if testutil.ToFloat64(ts.m.peersDenied) != before+1 {
				t.Error("peer_denied_total did not move")
			}
		})
	}
	if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err != nil {
		t.Errorf("allowed loopback peer refused: %v", err)
	}
}

func TestQuotas(t *testing.T) {
	t.Run("per user", func(t *testing.T) {
		cfg := testConfig()
		cfg.Quota.PerUser = 2
		ts := startServer(t, cfg, nil)
		var relays []net.PacketConn
		defer func() {
			for _, r := range relays {
				r.Close()
			}
		}()
		for i := 0; i < 2; i++ {
			r, err := newClient(t, ts.udp.LocalAddr(), testUser, testPass).Allocate()
			if err != nil {
				t.Fatalf("allocation %d: %v", i, err)
			}
			relays = append(relays, r)
		}
		if _, err := newClient(t, ts.udp.LocalAddr(), testUser, testPass).Allocate(); err == nil || !strings.Contains(err.Error(), "486") {
			t.Fatalf("third allocation: %v, want 486", err)
		}
		if got := testutil.ToFloat64(ts.m.rejUser); got != 1 {
			t.Errorf("user_quota rejections = %v", got)
		}
		// Another user is not affected.
		u, p, _ := ts.MintCredentials("other", time.Minute)
		r, err := newClient(t, ts.udp.LocalAddr(), u, p).Allocate()
		if err != nil {
			t.Fatalf("other user: %v", err)
		}
		relays = append(relays, r)
	})
	t.Run("rate", func(t *testing.T) {
		cfg := testConfig()
		cfg.RateLimit = RateLimit{PerSecond: 0.001, Burst: 2}
		ts := startServer(t, cfg, nil)
		for i := 0; i < 2; i++ {
			r, err := newClient(t, ts.udp.LocalAddr(), testUser, testPass).Allocate()
			if err != nil {
				t.Fatalf("allocation %d: %v", i, err)
			}
			defer r.Close()
		}
		if _, err := newClient(t, ts.udp.LocalAddr(), testUser, testPass).Allocate(); err == nil || !strings.Contains(err.Error(), "486") {
			t.Fatalf("third allocation: %v, want 486", err)
		}
		if got := testutil.ToFloat64(ts.m.rejRate); got != 1 {
			t.Errorf("rate_limit rejections = %v", got)
		}
	})
}

func TestBindingAndTCPClient(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	// STUN binding over UDP.
	c := newClient(t, ts.udp.LocalAddr(), "", "")
	mapped, err := c.SendBindingRequest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mapped.String(), "127.0.0.1:") {
		t.Errorf("mapped = %v", mapped)
	}
	// STUN binding over TCP, framed by hand.
	conn, err := net.Dial("tcp", ts.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := conn.Write(req.Raw); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var res stun.Message
	res.Raw = buf[:n]
	if err := res.Decode(); err != nil {
		t.Fatal(err)
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(&res); err != nil {
		t.Fatalf("binding response over TCP: %v (%v)", err, res)
	}
	if xor.Port != conn.LocalAddr().(*net.TCPAddr).Port {
		t.Errorf("mapped port %d, local %v", xor.Port, conn.LocalAddr())
	}
}

func TestCloseAndLifecycle(t *testing.T) {
	s, err := New(testConfig(), Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer b.Close()
	if err := s.HandleConn(context.Background(), a); !errors.Is(err, ErrNotServing) {
		t.Errorf("HandleConn before Serve = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc) }()
	waitServing(t, s)
	pc2, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	if err := s.Serve(ctx, pc2); !errors.Is(err, ErrAlreadyServing) {
		t.Errorf("second Serve = %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	s.Close()
	s.Close()
	pc3, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	if err := s.Serve(context.Background(), pc3); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close = %v", err)
	}
}

func TestMaxAgeAndCloseAllocation(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	c := newClient(t, ts.udp.LocalAddr(), testUser, testPass)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if !ts.CloseAllocation(relay.LocalAddr().String(), "udp") {
		t.Fatal("CloseAllocation found nothing")
	}
	waitFor(t, func() bool { return len(ts.Allocations()) == 0 })
	if got := testutil.ToFloat64(ts.m.allocUDP); got != 0 {
		t.Errorf("allocations gauge = %v", got)
	}
	if ts.CloseAllocation(relay.LocalAddr().String(), "udp") {
		t.Error("CloseAllocation found a closed allocation")
	}
}

func TestMaxConns(t *testing.T) {
	cfg := testConfig()
	cfg.Listen.MaxConns = 1
	ts := startServer(t, cfg, nil)
	binding := func(c net.Conn) error {
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
		if _, err := c.Write(req.Raw); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 1500)
		_, err := c.Read(buf)
		return err
	}
	first, err := net.Dial("tcp", ts.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := binding(first); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	second, err := net.Dial("tcp", ts.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := binding(second); err == nil {
		t.Fatal("second connection served past listen.max_conns")
	}
	if got := testutil.ToFloat64(ts.m.connsRefused); got != 1 {
		t.Errorf("conns_refused_total = %v", got)
	}
	first.Close()
	waitFor(t, func() bool { return ts.streams.Load() == 0 })
	third, err := net.Dial("tcp", ts.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if err := binding(third); err != nil {
		t.Fatalf("connection after one closed: %v", err)
	}
}

func TestIdleStreamConnClosed(t *testing.T) {
	cfg := testConfig()
	cfg.Listen.IdleTimeout = 200 * time.Millisecond
	ts := startServer(t, cfg, nil)
	c, err := net.Dial("tcp", ts.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 10)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle connection not closed by the server: %v", err)
	}
	if got := testutil.ToFloat64(ts.m.connsIdle); got != 1 {
		t.Errorf("conns_idle_closed_total = %v", got)
	}
}

func TestTCPAllocationOutlivesIdleTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.Listen.IdleTimeout = 200 * time.Millisecond
	ts := startServer(t, cfg, nil)
	conn, err := net.Dial("tcp", ts.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := pturn.NewClient(&pturn.ClientConfig{
		STUNServerAddr: ts.tcp.Addr().String(), TURNServerAddr: ts.tcp.Addr().String(),
		Username: testUser, Password: testPass, Realm: testRealm,
		Conn: pturn.NewSTUNConn(conn),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	time.Sleep(600 * time.Millisecond)
	list := ts.Allocations()
	if len(list) != 1 || list[0].Transport != "tcp" {
		t.Fatalf("allocations after idle timeout: %+v", list)
	}
	if got := testutil.ToFloat64(ts.m.connsIdle); got != 0 {
		t.Errorf("conns_idle_closed_total = %v", got)
	}
}

// TestHandleConnALPN plays the one-port demultiplexer: it terminates TLS
// with the server's TLSConfig, checks that ALPN chose "stun.turn" (RFC
// 7443) and hands the connection over with HandleConn; a TURN client then
// allocates and relays through it.
func TestHandleConnALPN(t *testing.T) {
	ts := startServer(t, testConfig(), func(d *Deps) {
		cert, _ := selfSigned(t, t.TempDir())
		d.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }
	})
	ln, err := tls.Listen("tcp4", "127.0.0.1:0", ts.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	handled := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			handled <- err
			return
		}
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			handled <- err
			return
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "stun.turn" {
			c.Close()
			handled <- fmt.Errorf("ALPN %q", p)
			return
		}
		handled <- ts.HandleConn(context.Background(), tc)
	}()
	conn, err := tls.Dial("tcp4", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"stun.turn"}}) //nolint:gosec // test certificate
	if err != nil {
		t.Fatal(err)
	}
	c, err := pturn.NewClient(&pturn.ClientConfig{
		STUNServerAddr: ln.Addr().String(), TURNServerAddr: ln.Addr().String(),
		Username: testUser, Password: testPass, Realm: testRealm,
		Conn: pturn.NewSTUNConn(conn),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	peer := echoPeer(t)
	if _, err := relay.WriteTo([]byte("over 443"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 100)
	n, _, err := relay.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "over 443" {
		t.Fatalf("echo %q, %v", buf[:n], err)
	}
	list := ts.Allocations()
	if len(list) != 1 || list[0].Transport != "tls" {
		t.Errorf("allocations = %+v", list)
	}
	relay.Close()
	c.Close()
	conn.Close()
	select {
	case err := <-handled:
		if err != nil {
			t.Errorf("HandleConn: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("HandleConn did not return after the connection closed")
	}
}
