package turn

import (
	"net"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestChannelDataFastPath forwards ChannelData through the listener's fast
// path to a loopback peer, without allocating, and leaves unknown channels
// and malformed data to the engine.
func TestChannelDataFastPath(t *testing.T) {
	s, err := New(testConfig(), Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	listener, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer listener.Close()
	relaySock, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	peer, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer peer.Close()
	h := &relayHandle{a: s.alloc}
	relay := newRelayPacketConn(relaySock)
	relay.h = h
	defer relaySock.Close()

	lpc := newListenPacketConn(s, listener, nil)
	client := netip.MustParseAddrPort("127.0.0.1:5000")
	lpc.addChannel(client, 0x4001, relay, peer.LocalAddr().(*net.UDPAddr).AddrPort())

	msg := []byte{0x40, 0x01, 0x00, 0x03, 'a', 'b', 'c', 0x00}
	tests := []struct {
		name string
		b    []byte
		from netip.AddrPort
		want bool
	}{
		{"known channel", msg, client, true},
		{"other client", msg, netip.MustParseAddrPort("127.0.0.1:5001"), false},
		{"other channel", []byte{0x40, 0x02, 0x00, 0x00}, client, false},
		{"length beyond datagram", []byte{0x40, 0x01, 0x00, 0x09, 'a'}, client, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lpc.forward(tc.b, tc.from); got != tc.want {
				t.Errorf("forward = %v, want %v", got, tc.want)
			}
		})
	}
	buf := make([]byte, 64)
	n, _, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("peer got %q, %v", buf[:n], err)
	}
	if h.toPeerPkts.Load() != 1 || testutil.ToFloat64(s.m.pktsToPeer) != 1 {
		t.Errorf("not counted: %d", h.toPeerPkts.Load())
	}
	allocs := testing.AllocsPerRun(200, func() { lpc.forward(msg, client) })
	if allocs != 0 {
		t.Errorf("forward allocates %v times per packet", allocs)
	}
	lpc.removeChannel(client, 0x4001)
	if lpc.forward(msg, client) {
		t.Error("removed channel still forwarded")
	}
}

// FuzzChannelDataFastPath feeds arbitrary datagrams from a client with a
// bound channel to the listener's fast path: it must never panic, and only
// a well-formed ChannelData on the bound channel may be forwarded, with
// exactly its payload. The peer is a loopback socket.
func FuzzChannelDataFastPath(f *testing.F) {
	f.Add([]byte{0x40, 0x01, 0x00, 0x03, 'a', 'b', 'c', 0x00})
	f.Add([]byte{0x40, 0x01, 0xff, 0xff})
	f.Add([]byte{0x7f, 0xff, 0x00, 0x00})
	f.Add([]byte{0x40, 0x01})
	s, err := New(testConfig(), Deps{Logger: testLogger(f)})
	if err != nil {
		f.Fatal(err)
	}
	listener, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer listener.Close()
	relaySock, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer relaySock.Close()
	peer, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer peer.Close()
	relay := newRelayPacketConn(relaySock)
	relay.h = &relayHandle{a: s.alloc}
	lpc := newListenPacketConn(s, listener, nil)
	client := netip.MustParseAddrPort("127.0.0.1:5000")
	lpc.addChannel(client, 0x4001, relay, peer.LocalAddr().(*net.UDPAddr).AddrPort())
	f.Fuzz(func(t *testing.T, b []byte) {
		before := relay.h.toPeerBytes.Load()
		forwarded := lpc.forward(b, client)
		want := len(b) >= 4 && b[0] == 0x40 && b[1] == 0x01 && int(b[2])<<8|int(b[3]) <= len(b)-4
		if forwarded != want {
			t.Fatalf("forward(%x) = %v, want %v", b, forwarded, want)
		}
		if forwarded {
			if got := relay.h.toPeerBytes.Load() - before; got != uint64(int(b[2])<<8|int(b[3])) {
				t.Fatalf("forwarded %d bytes of %x", got, b)
			}
		}
	})
}
