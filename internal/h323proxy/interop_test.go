package h323proxy

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h323test"
	"github.com/portico-edge/portico/internal/h323/q931"
)

// TestSimulatorsThroughPortico puts Portico between the shared H.323
// simulators (package h323test: an endpoint standing in for a room system
// behind NAT, a gatekeeper standing in for GnuGk or a VCS), written apart
// from this package: the endpoint registers with H.460.18 through
// Portico, the gatekeeper holds it at Portico's addresses, the
// endpoint's keep-alives stay at Portico, an incoming call's SCI makes it
// connect to Portico's listener (a stand-in for callsig's) and the
// Facility binds the connection, and unregistration crosses both ways.
func TestSimulatorsThroughPortico(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gk := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: gatekeeperIP, TimeToLive: 60})
	defer gk.Close()
	sigLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sigLn.Close()
	ext, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(outsideIP, 0)))
	if err != nil {
		t.Fatal(err)
	}
	in, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(porticoIn, 0)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{ExternalRAS: addrOf(ext.LocalAddr()), InternalRAS: addrOf(in.LocalAddr()),
		ExternalSignalPort: addrOf(sigLn.Addr()).Port(), InternalSignal: insideSignal,
		Gatekeeper: gk.RASAddr(), Traversal: true, KeepAliveInterval: time.Second, TimeToLive: 10 * time.Second}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx, ext, in) }()
	defer func() { stop(); <-served }()

	ep := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "room-7", Gatekeeper: addrOf(ext.LocalAddr()), H46018: true,
		KeepAlive: 20 * time.Millisecond, AdvertiseCallSignal: epDeclaredSig})
	defer ep.Close()
	if err := ep.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if !ep.H46018() {
		t.Error("the endpoint did not get H.460.18 confirmed")
	}
	r, ok := gk.Registered("room-7")
	if !ok || r.CallSignal != insideSignal || r.RAS.Addr() != porticoIn || r.H46018 {
		t.Fatalf("gatekeeper holds %+v, %v; want Portico's inside addresses and no H.460.18", r, ok)
	}
	// Keep-alives are answered by Portico: the endpoint sends several,
	// the gatekeeper sees none.
	for ep.KeepAlives() < 3 {
		select {
		case <-ctx.Done():
			t.Fatal("no keep-alives answered")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if r, _ := gk.Registered("room-7"); r.KeepAlives != 0 {
		t.Errorf("%d keep-alives crossed to the gatekeeper", r.KeepAlives)
	}

	// An incoming call: SCI, the endpoint connects and sends Facility.
	outside, ok := s.Outside("room-7")
	if !ok {
		t.Fatal("room-7 not in the registry")
	}
	callID := [16]byte{7, 7, 7}
	go func() {
		c, err := sigLn.Accept()
		if err != nil {
			return
		}
		first, err := q931.NewTPKTReader(c).Next()
		if id, ok := FacilityCallID(first); err != nil || !ok || !s.Arrived(id, c) {
			c.Close()
		}
	}()
	conn, err := s.Connect(ctx, outside, callID)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	conn.Close()

	// The gatekeeper unregisters the endpoint: it is told, and gone.
	if err := gk.Unregister(ctx, "room-7"); err != nil {
		t.Fatalf("gatekeeper URQ: %v", err)
	}
	if _, ok := s.Outside("room-7"); ok {
		t.Error("unregistered endpoint still in the registry")
	}
}
