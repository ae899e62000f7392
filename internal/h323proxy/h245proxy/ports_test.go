package h245proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestPortsRange: bridges listen on the ports of their range, each on
// another, and a full range fails with ErrPorts until a port is freed.
func TestPortsRange(t *testing.T) {
	base := testpeer.FreePorts(t, 2)
	ports := NewPorts(PortRange{Min: uint16(base), Max: uint16(base + 1)})
	start := func() (*Bridge, error) {
		return StartBridge(BridgeConfig{Session: NewSession(&fakeMedia{}, SessionConfig{}), Listen: Outside,
			ListenAddr: ap("127.0.0.1:0"), ListenPorts: ports, Target: ap("127.0.0.1:9"), AcceptTimeout: time.Minute})
	}
	a, err := start()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := start()
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]bool{int(a.Addr().Port()): true, int(b.Addr().Port()): true}
	if !got[base] || !got[base+1] {
		t.Fatalf("bridges on %s and %s, want ports %d and %d", a.Addr(), b.Addr(), base, base+1)
	}
	if _, err := start(); !errors.Is(err, ErrPorts) {
		t.Fatalf("third bridge on a range of two: %v, want ErrPorts", err)
	}
	freed := b.Addr().Port()
	b.Close()
	c, err := start()
	if err != nil {
		t.Fatalf("after a port was freed: %v", err)
	}
	defer c.Close()
	if c.Addr().Port() != freed {
		t.Fatalf("bridge on %s, want the freed port %d", c.Addr(), freed)
	}
}

// TestBridgeDial: with Dial set the bridge reaches Target through it
// (the tunnel's dial service), not directly.
func TestBridgeDial(t *testing.T) {
	target := newBridgeTarget(t)
	asked := make(chan netip.AddrPort, 1)
	announced := ap("10.9.9.9:1234") // not reachable: only Dial knows where it is
	b, err := StartBridge(BridgeConfig{Session: NewSession(&fakeMedia{}, SessionConfig{}), Listen: Outside,
		ListenAddr: ap("127.0.0.2:0"), Target: announced,
		Dial: func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
			asked <- to
			var d net.Dialer
			return d.DialContext(ctx, "tcp", target.Addr().String())
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := dialBridge(t, b, netip.Addr{})
	in := target.accept(t)
	if to := <-asked; to != announced {
		t.Fatalf("Dial asked for %s, want %s", to, announced)
	}
	c.Write(AppendFrame(nil, olcPDU(t, olc(1, 1, "", "192.0.2.10:5001"))))
	in.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := NewFrameReader(in, 0).Next(); err != nil {
		t.Fatalf("PDU through the dialled connection: %v", err)
	}
}
