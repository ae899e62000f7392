package h323proxy

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// TestSCIFromTheRegisteredAddress: on a multi-homed host, with the
// outside RAS socket bound to the wildcard address, an H.460.18
// endpoint that registered to one of the host's addresses gets its SCI
// from that address (the only one its NAT lets in), not from whichever
// address the kernel would pick. The host's second address is a second
// loopback address here.
func TestSCIFromTheRegisteredAddress(t *testing.T) {
	announced, second := netip.MustParseAddr("127.0.0.161"), netip.MustParseAddr("127.0.0.162")
	ep, gk := newPeer(t, kaEPIP), newPeer(t, gatekeeperIP)
	ext, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	in, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(porticoIn, 0)))
	if err != nil {
		t.Fatal(err)
	}
	port := addrOf(ext.LocalAddr()).Port()
	s, err := New(Config{ExternalRAS: netip.AddrPortFrom(netip.IPv4Unspecified(), port), PublicAddress: announced,
		InternalRAS: addrOf(in.LocalAddr()), ExternalSignalPort: 11720, InternalSignal: insideSignal,
		Gatekeeper: gk.addr(), Traversal: true}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ext, in) }()
	defer func() { cancel(); <-done }()

	to := netip.AddrPortFrom(second, port)
	e := endpoint("multi", true)
	ep.send(to, ras.RRQ(2, e))
	from, m := gk.expect(h225.RasMessage_RegistrationRequest)
	gk.send(from, ras.RCF(m.RegistrationRequest, insideGKID, insideEPID, gkSignal, 60))
	if src, _ := ep.expect(h225.RasMessage_RegistrationConfirm); src.Addr() != second {
		t.Errorf("RCF from %v, want %v (where the RRQ went)", src, second)
	}
	reg, ok := s.Outside("multi")
	if !ok {
		t.Fatal("not registered")
	}
	go s.Connect(ctx, reg, [16]byte{1, 2, 3})
	src, _ := ep.expect(h225.RasMessage_ServiceControlIndication)
	if src.Addr() != second {
		t.Errorf("SCI from %v, want %v: the address the endpoint registered to", src, second)
	}
}
