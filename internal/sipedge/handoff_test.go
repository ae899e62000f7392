package sipedge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/portico-edge/portico/internal/certs/certtest"
)

// proxiedConn stands for a connection whose source the access proxy took
// from a PROXY protocol header.
type proxiedConn struct {
	net.Conn
	remote net.Addr
}

func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }

// fakeAccessProxy plays the access proxy: it accepts TCP on extIP,
// terminates TLS and hands every connection to h, reporting the source it
// claimed for it.
func fakeAccessProxy(t *testing.T, p *portico, h *WSHandoff, source netip.AddrPort) (netip.AddrPort, chan struct{}) {
	t.Helper()
	l := listenTCP(t, extIP)
	leaf := p.ca.Issue(t, []string{"portico.test", extIP}, certtest.Options{})
	kp, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			raw := &proxiedConn{Conn: &tapStream{Conn: c, tap: p.tap}, remote: net.TCPAddrFromAddrPort(source)}
			go h.HandleConn(ctx, tls.Server(raw, cfg))
		}
	}()
	t.Cleanup(func() { cancel(); l.Close(); <-done })
	return netip.MustParseAddrPort(l.Addr().String()), done
}

// TestWSHandoff registers a sipgo WSS client through a connection handed
// off after TLS termination (as the access proxy does on 443) and receives
// a call from inside over that same connection.
func TestWSHandoff(t *testing.T) {
	k := startKamailio(t, 64)
	p := startPortico(t, Config{CallServers: kamailioServer(k)})
	h, err := p.s.WSHandoff()
	if err != nil {
		t.Fatal(err)
	}
	source := netip.MustParseAddrPort("127.0.0.1:41000") // the "PROXY protocol" source
	proxy, _ := fakeAccessProxy(t, p, h, source)

	e := newWSEndpoint(t, "x8q2kd1lz0.invalid", &tls.Config{RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS12})
	e.register(t, "wanda", "wss", proxy.String())
	regs := p.s.Registrations()
	if len(regs) != 1 || regs[0].Transport != "wss" || regs[0].Source != source.String() {
		t.Fatalf("Registrations() = %+v, want one wss binding from %s", regs, source)
	}
	inv := e.declinedInboundCall(t, p, k, "wanda", "wss")
	if via := inv.Via(); via == nil || !strings.EqualFold(via.Transport, "WSS") || via.Port != int(proxy.Port()) {
		t.Errorf("INVITE Via = %v, want WSS and the handoff port %d", via, proxy.Port())
	}
}

// TestWSHandoffClose checks that HandleConn returns when its context ends
// before the upgrade, and when the SIP edge closes under an upgraded
// connection, closing the connection in both cases.
func TestWSHandoffClose(t *testing.T) {
	p := startPortico(t, Config{CallServers: []CallServer{{Address: kamIP + ":9"}}})
	h, err := p.s.WSHandoff()
	if err != nil {
		t.Fatal(err)
	}
	handle := func(ctx context.Context, c net.Conn) chan struct{} {
		done := make(chan struct{})
		go func() { defer close(done); h.HandleConn(ctx, c) }()
		return done
	}
	waitEOF := func(name string, c net.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("%s: connection not closed by the handoff: %v", name, err)
		}
	}
	wait := func(name string, done chan struct{}) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: HandleConn did not return", name)
		}
	}

	// Silent client: no upgrade request, the caller's context ends.
	silent, theirs := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := handle(ctx, theirs)
	cancel()
	wait("silent", done)
	waitEOF("silent", silent)

	// Upgraded client: the SIP edge closes.
	client, theirs := tcpPair(t)
	done = handle(context.Background(), theirs)
	client.SetDeadline(time.Now().Add(10 * time.Second))
	u := ws.Dialer{Protocols: []string{"sip"}}
	if _, _, err := u.Upgrade(client, mustURL(t, "ws://"+extIP+"/")); err != nil {
		t.Fatal(err)
	}
	client.SetDeadline(time.Time{})
	select {
	case <-done:
		t.Fatal("HandleConn returned while the connection was open")
	case <-time.After(100 * time.Millisecond):
	}
	p.s.Close()
	wait("upgraded", done)
	waitEOF("upgraded", client)

	// After Close a handoff is refused at once.
	late, theirs := tcpPair(t)
	done = handle(context.Background(), theirs)
	if _, err := late.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	wait("after close", done)
	waitEOF("after close", late)
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l := listenTCP(t, extIP)
	defer l.Close()
	type acc struct {
		c   net.Conn
		err error
	}
	ch := make(chan acc, 1)
	go func() { c, err := l.Accept(); ch <- acc{c, err} }()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Cleanup(func() { client.Close(); a.c.Close() })
	return client, a.c
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
