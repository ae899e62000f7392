package h323proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/policy"

	"github.com/portico-edge/portico/internal/testpeer"
)

func loopbackPair(t *testing.T) (net.PacketConn, net.PacketConn) {
	t.Helper()
	var cs [2]net.PacketConn
	for i := range cs {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c
	}
	return cs[0], cs[1]
}

func testConfig() Config {
	return Config{ExternalRAS: netip.MustParseAddrPort("127.0.0.1:0"), InternalRAS: netip.MustParseAddrPort("127.0.0.1:0"),
		InternalSignal: netip.MustParseAddrPort("127.0.0.1:1720"), Gatekeeper: netip.MustParseAddrPort("127.0.0.1:1719")}
}

// TestAttachedRunners: what is attached (the call-signalling proxy) runs
// while RAS serves, stops with it, and its failure ends Serve with its
// error; Close is safe twice and Serve after Close refuses.
func TestAttachedRunners(t *testing.T) {
	s, err := New(testConfig(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	started, stopped := make(chan struct{}), make(chan struct{})
	s.Attach(func(ctx context.Context) error { close(started); <-ctx.Done(); close(stopped); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	ext, in := loopbackPair(t)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ext, in) }()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	<-stopped
	s.Close()
	ext, in = loopbackPair(t)
	if err := s.Serve(context.Background(), ext, in); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close = %v, want ErrClosed", err)
	}

	s, _ = New(testConfig(), Deps{})
	boom := errors.New("callsig: listen: address in use")
	s.Attach(func(ctx context.Context) error { return boom })
	ext, in = loopbackPair(t)
	if err := s.Serve(context.Background(), ext, in); !errors.Is(err, boom) {
		t.Errorf("Serve = %v, want the attached runner's failure", err)
	}
}

// TestRunServesSignalling: with AttachSignalling, Run binds the external
// and internal call-signalling listeners and hands each, with its side,
// to the call-signalling proxy (here a stand-in that reports accepted
// connections).
func TestRunServesSignalling(t *testing.T) {
	cfg := testConfig()
	cfg.ExternalRAS = netip.AddrPortFrom(cfg.ExternalRAS.Addr(), uint16(testpeer.FreePort(t)))
	cfg.ExternalSignalPort = uint16(testpeer.FreePort(t))
	cfg.InternalSignal = netip.AddrPortFrom(cfg.InternalSignal.Addr(), uint16(testpeer.FreePort(t)))
	s, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan bool, 2)
	bound := make(chan struct{}, 2)
	s.AttachSignalling(func(ctx context.Context, ln net.Listener, outside bool) error {
		stop := context.AfterFunc(ctx, func() { ln.Close() })
		defer stop()
		bound <- struct{}{}
		for {
			c, err := ln.Accept()
			if err != nil {
				return nil
			}
			accepted <- outside
			c.Close()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-bound
	<-bound
	for _, tc := range []struct {
		addr    netip.AddrPort
		outside bool
	}{{netip.AddrPortFrom(cfg.ExternalRAS.Addr(), cfg.ExternalSignalPort), true}, {cfg.InternalSignal, false}} {
		c, err := net.Dial("tcp", tc.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		if got := <-accepted; got != tc.outside {
			t.Errorf("connection to %s served as outside=%v", tc.addr, got)
		}
		c.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestReloadWhileServing: Reload applies live values while both sockets
// carry traffic (run under -race), and names what needs a restart.
func TestReloadWhileServing(t *testing.T) {
	h := newHarness(t, nil)
	h.register("olga", false)
	h.s.mu.Lock()
	base := h.s.cfg
	h.s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			// Unmatched answers from the gatekeeper's address, and GRQs.
			h.gk.send(h.in, ras.UCF(&h225.UnregistrationRequest{RequestSeqNum: h225.RequestSeqNum(60000 + i)}))
			h.ep.send(h.ext, ras.GRQ(i+1, endpoint("olga", false)))
		}
	}()
	// Reload until the traffic is sent and the server answered the last
	// GRQ, so reloads and handling overlap.
	reload := func(i int) {
		next := base
		next.TimeToLive = time.Duration(100+i%50) * time.Second
		if restart, err := h.s.Reload(next); err != nil || len(restart) != 0 {
			t.Errorf("Reload = %v, %v", restart, err)
		}
	}
	for i := 0; ; i++ {
		reload(i)
		select {
		case <-done:
		default:
			continue
		}
		break
	}
	for i := 0; i < 20; i++ {
		reload(i)
		h.ep.expect(h225.RasMessage_GatekeeperConfirm)
	}
	next := base
	next.Gatekeeper = netip.MustParseAddrPort("127.0.0.9:1719")
	if restart, err := h.s.Reload(next); err != nil || len(restart) != 1 || restart[0] != "h323.gatekeeper" {
		t.Errorf("Reload(new gatekeeper) = %v, %v", restart, err)
	}
}

// TestListenerACL: policy.acl.listeners narrows the outside RAS socket
// beyond policy.acl.h323.
func TestListenerACL(t *testing.T) {
	ext, in := loopbackPair(t)
	ls, err := policy.Listeners("policy.acl.listeners", []policy.ListenerACL{{Listen: ext.LocalAddr().String(), Deny: []string{"127.0.0.7"}}})
	if err != nil {
		t.Fatal(err)
	}
	base, err := policy.NewACL("policy.acl.h323", policy.ACLConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var acl policy.LiveACL
	acl.Set(base.WithListeners(ls))
	s, err := New(testConfig(), Deps{ACL: &acl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ext, in) }()
	defer func() { cancel(); <-done }()
	denied, allowed := newPeer(t, netip.MustParseAddr("127.0.0.7")), newPeer(t, netip.MustParseAddr("127.0.0.1"))
	denied.send(addrOf(ext.LocalAddr()), ras.GRQ(1, endpoint("p", false)))
	allowed.send(addrOf(ext.LocalAddr()), ras.GRQ(2, endpoint("q", false)))
	allowed.expect(h225.RasMessage_GatekeeperConfirm)
	if got := testutilCount(s.m.dropped.WithLabelValues(External, "acl")); got != 1 {
		t.Errorf("acl drops = %v, want the listener's deny", got)
	}
}
