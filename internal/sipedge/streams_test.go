package sipedge

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portico-edge/portico/internal/certs/certtest"
	"github.com/portico-edge/portico/internal/connlimit/connlimittest"
)

// startStreamEdge serves a SIP edge whose external side has a UDP socket
// and the stream listener ext (of transport), on loopback, with no media.
func startStreamEdge(t *testing.T, cfg Config, transport string, ext net.Listener) *Server {
	t.Helper()
	return startStreamEdgeTLS(t, cfg, transport, ext, nil)
}

// startStreamEdgeTLS is startStreamEdge with a server TLS config (for tls
// and wss listeners).
func startStreamEdgeTLS(t *testing.T, cfg Config, transport string, ext net.Listener, tlsCfg *tls.Config) *Server {
	t.Helper()
	extUDP := listenUDP(t, "127.0.0.1")
	intUDP := listenUDP(t, "127.0.0.1")
	cfg.Listeners = []Listener{
		{Interface: External, Transport: "udp", Address: extUDP.LocalAddr().String()},
		{Interface: External, Transport: transport, Address: ext.Addr().String()},
		{Interface: Internal, Transport: "udp", Address: intUDP.LocalAddr().String()},
	}
	cfg.CallServers = []CallServer{{Address: "127.0.0.1:9", Transport: "udp"}}
	cfg.ProbeInterval = -1
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg, Deps{Logger: log, Media: nopMedia{}, TLSConfig: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Serve(ctx, []BoundListener{
			{Interface: External, Transport: "udp", Packet: extUDP},
			{Interface: External, Transport: transport, Stream: ext},
			{Interface: Internal, Transport: "udp", Packet: intUDP},
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			mu.Lock()
			t.Logf("sip edge log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	return s
}

// dialFrom connects to addr over TCP from the loopback address src; nil
// when the connection was reset before connect returned.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// optionsRequest is an OPTIONS from local to remote over transport.
func optionsRequest(transport, local, remote string) string {
	id := time.Now().UnixNano()
	return fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK%d;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@portico.test>;tag=%d\r\nTo: <sip:%s>\r\nCall-ID: %d@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		remote, transport, local, id, id, remote, id)
}

// optionsOver sends OPTIONS over the stream c and returns the status line
// of the answer (waiting at most 10s).
func optionsOver(c net.Conn) (string, error) {
	return statusOver(c, optionsRequest("TCP", c.LocalAddr().String(), c.RemoteAddr().String()))
}

// closedBy reports whether the other end closed c before deadline.
func closedBy(c net.Conn, deadline time.Time) bool {
	if c == nil {
		return true
	}
	_ = c.SetReadDeadline(deadline)
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestStreamListenerSurvivesAcceptErrors: accept failing with EMFILE (the
// descriptor table full) must not end SIP over TCP; once accepting works
// again the listener answers.
func TestStreamListenerSurvivesAcceptErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS} {
		t.Run(errno.Error(), func(t *testing.T) {
			ln := listenTCP(t, "127.0.0.1")
			fl := &connlimittest.FailingListener{Listener: ln, N: 3, Errno: errno}
			startStreamEdge(t, Config{}, "tcp", fl)
			c := dialFrom(t, "127.0.0.1", ln.Addr().String())
			line, err := optionsOver(c)
			if err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
				t.Fatalf("OPTIONS over TCP after %d accept errors: %q, %v", 3, line, err)
			}
		})
	}
}

// TestStreamIdleFlood: one source opens more idle connections than its cap;
// the ones over the cap are refused, the rest closed when they send no
// request in time, a connection that went quiet after its request is
// closed as idle, and another client is answered throughout.
func TestStreamIdleFlood(t *testing.T) {
	ln := listenTCP(t, "127.0.0.1")
	cfg := Config{Streams: StreamLimits{MaxConnsPerSource: 4, HandshakeTimeout: time.Second, IdleTimeout: time.Second}}
	startStreamEdge(t, cfg, "tcp", ln)
	addr := ln.Addr().String()
	var flood []net.Conn
	for range 10 {
		flood = append(flood, dialFrom(t, "127.0.0.5", addr))
	}
	c := dialFrom(t, "127.0.0.6", addr)
	if line, err := optionsOver(c); err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("OPTIONS during the flood: %q, %v", line, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i, fc := range flood {
		if !closedBy(fc, deadline) {
			t.Errorf("flood connection %d is still open", i)
		}
	}
	if !closedBy(c, deadline) {
		t.Error("a connection idle after its request is still open")
	}
}

// TestStreamListenerDeathShowsInStatus: a stream listener whose serving
// ended while the edge runs is reported, so readiness can say so.
func TestStreamListenerDeathShowsInStatus(t *testing.T) {
	ln := listenTCP(t, "127.0.0.1")
	s := startStreamEdge(t, Config{}, "tcp", ln)
	c := dialFrom(t, "127.0.0.1", ln.Addr().String())
	if line, err := optionsOver(c); err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("OPTIONS: %q, %v", line, err)
	}
	for _, st := range s.ListenerStatus() {
		if st.Err != "" {
			t.Fatalf("listener %s/%s reported failing while serving: %s", st.Interface, st.Transport, st.Err)
		}
	}
	ln.Close() // closed under the edge: its serving ends
	deadline := time.Now().Add(10 * time.Second)
	for {
		var found bool
		for _, st := range s.ListenerStatus() {
			if st.Interface == External && st.Transport == "tcp" && st.Err != "" {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a dead tcp listener is not reported: %+v", s.ListenerStatus())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWSSilentClientDoesNotBlockUpgrades: a client that connects to the WS
// listener and sends nothing must not hold up another client's WebSocket
// upgrade (sipgo upgrades in its accept loop, one connection at a time).
func TestWSSilentClientDoesNotBlockUpgrades(t *testing.T) {
	ln := listenTCP(t, "127.0.0.1")
	// No handshake timeout: only the upgrade being read off the accept
	// loop lets the second client through.
	startStreamEdge(t, Config{Streams: StreamLimits{HandshakeTimeout: -1}}, "ws", ln)
	silent := dialFrom(t, "127.0.0.5", ln.Addr().String())
	_ = silent
	time.Sleep(50 * time.Millisecond) // let the silent one be accepted first
	c := dialFrom(t, "127.0.0.6", ln.Addr().String())
	req := "GET / HTTP/1.1\r\nHost: " + ln.Addr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "101") {
		t.Fatalf("upgrade behind a silent client: %q, %v", line, err)
	}
}

// TestWebSocketListeners: SIP over ws and wss listeners, whose upgrades
// (and TLS) are done before sipgo's accept loop, answers OPTIONS.
func TestWebSocketListeners(t *testing.T) {
	ca := certtest.NewCA(t, "Portico test CA")
	leaf := ca.Issue(t, []string{"portico.test", "127.0.0.1"}, certtest.Options{})
	kp, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srvTLS := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
	for _, tc := range []struct{ transport, scheme string }{{"ws", "ws"}, {"wss", "wss"}} {
		t.Run(tc.transport, func(t *testing.T) {
			ln := listenTCP(t, "127.0.0.1")
			startStreamEdgeTLS(t, Config{}, tc.transport, ln, srvTLS)
			d := ws.Dialer{Protocols: []string{"sip"}, TLSConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "portico.test"}, Timeout: 10 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, _, _, err := d.Dial(ctx, tc.scheme+"://"+ln.Addr().String()+"/")
			if err != nil {
				t.Fatalf("%s upgrade: %v", tc.transport, err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := optionsRequest(strings.ToUpper(tc.transport), c.LocalAddr().String(), ln.Addr().String())
			if err := wsutil.WriteClientText(c, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			res, err := wsutil.ReadServerText(c)
			if err != nil || !strings.HasPrefix(string(res), "SIP/2.0 200") {
				t.Fatalf("OPTIONS over %s: %q, %v", tc.transport, res, err)
			}
		})
	}
}

// statusOver writes msg to c and returns the status line of the first
// answer that is final (waiting at most 10s).
func statusOver(c net.Conn, msg string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		length := 0
		for { // the rest of the head, and the body
			h, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			if h == "\r\n" {
				break
			}
			if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
				fmt.Sscan(strings.TrimSpace(v), &length)
			}
		}
		if _, err := io.CopyN(io.Discard, r, int64(length)); err != nil {
			return "", err
		}
		if !strings.HasPrefix(line, "SIP/2.0 1") {
			return strings.TrimSpace(line), nil
		}
	}
}

// TestTCPRegistrationDuringIdleFlood: with one source holding idle
// connections beyond its cap, an endpoint registers over TCP through the
// edge to Kamailio; the flood is closed, a connection that only sent
// OPTIONS is closed once idle, and the registered flow, quiet just as long,
// stays open.
func TestTCPRegistrationDuringIdleFlood(t *testing.T) {
	k := startKamailio(t, 64)
	p := startPortico(t, Config{CallServers: kamailioServer(k),
		Streams: StreamLimits{MaxConnsPerSource: 4, HandshakeTimeout: time.Second, IdleTimeout: 2 * time.Second}})
	addr := p.extTCP.String()
	var flood []net.Conn
	for range 20 {
		flood = append(flood, dialFrom(t, "127.0.0.7", addr))
	}
	reg := dialFrom(t, outsideIP, addr)
	la := reg.LocalAddr().String()
	msg := fmt.Sprintf("REGISTER sip:portico.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK%d;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:tina@portico.test>;tag=t1\r\nTo: <sip:tina@portico.test>\r\nCall-ID: %d@tina\r\nCSeq: 1 REGISTER\r\n"+
		"Contact: <sip:tina@%s;transport=tcp>\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n", la, time.Now().UnixNano(), time.Now().UnixNano(), la)
	if line, err := statusOver(reg, msg); err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("REGISTER over TCP during the flood: %q, %v", line, err)
	}
	if regs := p.s.Registrations(); len(regs) != 1 || regs[0].Transport != "tcp" {
		t.Fatalf("Registrations() = %+v", regs)
	}
	quiet := dialFrom(t, outsideIP, addr)
	if line, err := optionsOver(quiet); err != nil || !strings.HasPrefix(line, "SIP/2.0 200") {
		t.Fatalf("OPTIONS: %q, %v", line, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i, fc := range flood {
		if !closedBy(fc, deadline) {
			t.Errorf("flood connection %d is still open", i)
		}
	}
	if !closedBy(quiet, deadline) {
		t.Fatal("a connection idle after its OPTIONS is still open")
	}
	// reg has been quiet since before quiet's OPTIONS.
	if closedBy(reg, time.Now().Add(50*time.Millisecond)) {
		t.Error("the registered TCP flow was closed as idle")
	}
}

func TestStreamLimitsDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   StreamLimits
		want StreamLimits
		err  string
	}{
		{"zero takes defaults", StreamLimits{}, StreamLimits{MaxConns: DefaultStreamMaxConns, MaxConnsPerSource: DefaultStreamMaxConnsPerSource, HandshakeTimeout: DefaultStreamHandshakeTimeout}, ""},
		{"negative turns off", StreamLimits{MaxConns: -1, MaxConnsPerSource: -1, HandshakeTimeout: -1, IdleTimeout: -1}, StreamLimits{MaxConns: -1, MaxConnsPerSource: -1, HandshakeTimeout: -1, IdleTimeout: -1}, ""},
		{"per source above total", StreamLimits{MaxConns: 10, MaxConnsPerSource: 20}, StreamLimits{MaxConns: 10, MaxConnsPerSource: 20, HandshakeTimeout: DefaultStreamHandshakeTimeout}, "sip.tcp.max_conns_per_source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Listeners: []Listener{{Interface: External, Transport: "tcp", Address: "127.0.0.1:5060"}, {Interface: Internal, Transport: "udp", Address: "127.0.0.1:5060"}},
				CallServers: []CallServer{{Address: "127.0.0.1:5070"}}, Streams: tc.in}
			got, err := cfg.withDefaults()
			if got.Streams != tc.want {
				t.Errorf("Streams = %+v, want %+v", got.Streams, tc.want)
			}
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("err = %v, want one naming %q", err, tc.err)
			}
		})
	}
}
