package h323proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
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
