package turn

import (
	"net"
	"net/netip"
	"testing"

	"github.com/pion/stun/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/batchio"
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

// fastPair is a listener and a relay socket of one allocation with their
// fast paths, a loopback peer and a loopback client.
type fastPair struct {
	s              *Server
	lpc            *listenPacketConn
	relay          *relayPacketConn
	peer, client   *net.UDPConn
	peerAP, cliAP  netip.AddrPort
	relayAP, lisAP netip.AddrPort
}

func newFastPair(t testing.TB) *fastPair {
	t.Helper()
	s, err := New(testConfig(), Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	udp := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	f := &fastPair{s: s}
	listener, relaySock := udp(), udp()
	f.peer, f.client = udp(), udp()
	f.lpc = newListenPacketConn(s, listener, nil)
	f.relay = newRelayPacketConn(relaySock)
	f.relay.h = &relayHandle{a: s.alloc}
	ap := func(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }
	f.peerAP, f.cliAP, f.relayAP, f.lisAP = ap(f.peer), ap(f.client), ap(relaySock), ap(listener)
	f.relay.setClient(f.cliAP, listener)
	f.lpc.addAlloc(f.cliAP, f.relay)
	return f
}

func sendIndication(t testing.TB, peer netip.AddrPort, data []byte) []byte {
	t.Helper()
	m, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		peerAttr(peer), rawAttr(stun.AttrData, data))
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

// TestSendIndicationFastPath relays Send indications (built by pion/stun)
// to a peer with a permission without allocating, and leaves the rest to
// the engine: no permission, no allocation, other attributes, malformed.
func TestSendIndicationFastPath(t *testing.T) {
	f := newFastPair(t)
	msg := sendIndication(t, f.peerAP, []byte("hello"))
	if f.lpc.send(msg, f.cliAP) {
		t.Fatal("relayed without a permission")
	}
	f.relay.addPerm(f.peerAP.Addr())
	withLifetime, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		peerAttr(f.peerAP), rawAttr(stun.AttrData, []byte("x")), rawAttr(stun.AttrLifetime, []byte{0, 0, 0, 60}))
	tests := []struct {
		name string
		b    []byte
		from netip.AddrPort
		want bool
	}{
		{"permitted peer", msg, f.cliAP, true},
		{"client without allocation", msg, netip.MustParseAddrPort("127.0.0.1:9"), false},
		{"unexpected attribute", withLifetime.Raw, f.cliAP, false},
		{"truncated", msg[:len(msg)-4], f.cliAP, false},
		{"other peer", sendIndication(t, netip.MustParseAddrPort("127.0.0.2:5000"), []byte("x")), f.cliAP, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.lpc.send(tc.b, tc.from); got != tc.want {
				t.Errorf("send = %v, want %v", got, tc.want)
			}
		})
	}
	buf := make([]byte, 64)
	n, from, err := f.peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "hello" || from != f.relayAP {
		t.Fatalf("peer got %q from %v, %v", buf[:n], from, err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		f.lpc.send(msg, f.cliAP)
		_, _, _ = f.peer.ReadFromUDPAddrPort(buf)
	})
	if allocs != 0 {
		t.Errorf("send allocates %v times per packet", allocs)
	}
	f.relay.removePerm(f.peerAP.Addr())
	if f.lpc.send(msg, f.cliAP) {
		t.Error("removed permission still relayed")
	}
	f.lpc.removeAlloc(f.cliAP, f.relay)
	f.relay.addPerm(f.peerAP.Addr())
	if f.lpc.send(msg, f.cliAP) {
		t.Error("removed allocation still relayed")
	}
}

// TestSendIndicationOwnAddress drops a Send indication to one of the
// node's own transport addresses (the listener) and counts it.
func TestSendIndicationOwnAddress(t *testing.T) {
	f := newFastPair(t)
	f.s.refreshOwn(f.s.live.Load())
	own, _ := newOwnAddrs(f.s.live.Load(), nil, []netip.AddrPort{f.lisAP})
	f.s.own.Store(own)
	f.relay.addPerm(f.lisAP.Addr())
	if !f.lpc.send(sendIndication(t, f.lisAP, []byte("x")), f.cliAP) {
		t.Fatal("not handled")
	}
	if got := testutil.ToFloat64(f.s.m.peersDenied); got != 1 {
		t.Errorf("peers denied = %v, want 1", got)
	}
	if f.relay.h.toPeerPkts.Load() != 0 {
		t.Error("relayed to the node's own address")
	}
}

// TestRelayToClient sends a peer's datagrams to the client as ChannelData
// when the peer has a channel and as Data indications (decoded by
// pion/stun) when it has only a permission, in one batch and without
// allocating; a stranger's datagram is left to the engine.
func TestRelayToClient(t *testing.T) {
	f := newFastPair(t)
	msg := func(from netip.AddrPort, data string) *batchio.Message {
		m := &batchio.Message{Buf: make([]byte, batchio.MaxDatagram), Addr: from}
		m.N = copy(m.Buf, data)
		return m
	}
	stranger := netip.MustParseAddrPort("127.0.0.3:4000")
	if f.relay.relay(msg(f.peerAP, "x")) || f.relay.relay(msg(stranger, "x")) {
		t.Fatal("relayed without a permission or channel")
	}
	f.relay.addPerm(f.peerAP.Addr())
	if !f.relay.relay(msg(f.peerAP, "data!")) {
		t.Fatal("permitted peer not relayed")
	}
	f.relay.addPeer(f.peerAP, 0x4001, f.cliAP, f.lpc.udp)
	if !f.relay.relay(msg(f.peerAP, "chan")) || f.relay.relay(msg(stranger, "x")) {
		t.Fatal("channel peer not relayed, or stranger relayed")
	}
	if f.relay.on != 2 {
		t.Fatalf("%d queued, want 2 in one batch", f.relay.on)
	}
	f.relay.flush()

	buf := make([]byte, 2048)
	n, from, err := f.client.ReadFromUDPAddrPort(buf)
	if err != nil || from != f.lisAP {
		t.Fatalf("client read from %v: %v", from, err)
	}
	m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
	if err := m.Decode(); err != nil {
		t.Fatalf("data indication: %v", err)
	}
	var pa stun.XORMappedAddress
	data, derr := m.Get(stun.AttrData)
	if m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) || pa.GetFromAs(m, stun.AttrXORPeerAddress) != nil || derr != nil {
		t.Fatalf("not a data indication: %v", m)
	}
	if string(data) != "data!" || pa.Port != int(f.peerAP.Port()) || !pa.IP.Equal(f.peerAP.Addr().AsSlice()) {
		t.Errorf("data indication carries %q from %v", data, pa)
	}
	n, _, err = f.client.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "\x40\x01\x00\x04chan" {
		t.Fatalf("channel data %q, %v", buf[:n], err)
	}

	cm, dm := msg(f.peerAP, "chan"), msg(netip.AddrPortFrom(f.peerAP.Addr(), f.peerAP.Port()+1), "data")
	allocs := testing.AllocsPerRun(200, func() {
		f.relay.relay(cm)
		f.relay.relay(dm)
		f.relay.flush()
		_, _, _ = f.client.ReadFromUDPAddrPort(buf)
		_, _, _ = f.client.ReadFromUDPAddrPort(buf)
	})
	if allocs != 0 {
		t.Errorf("relay allocates %v times per batch", allocs)
	}
	f.relay.removePeer(f.peerAP, 0x4001)
	f.relay.removePerm(f.peerAP.Addr())
	if f.relay.relay(cm) {
		t.Error("removed channel and permission still relayed")
	}
}

// TestRelayReadBatch reads a relay socket through ReadFrom: datagrams of
// channel peers reach the client, a stranger's reaches the engine.
func TestRelayReadBatch(t *testing.T) {
	f := newFastPair(t)
	f.relay.addPeer(f.peerAP, 0x4002, f.cliAP, f.lpc.udp)
	stranger := f.sendFromPeers(t)
	p := make([]byte, 1600)
	n, from, err := f.relay.ReadFrom(p)
	if err != nil || string(p[:n]) != "engine" || from.String() != stranger.LocalAddr().String() {
		t.Fatalf("engine got %q from %v, %v", p[:n], from, err)
	}
	for i := 0; i < 3; i++ {
		n, _, err := f.client.ReadFromUDPAddrPort(p)
		if err != nil || string(p[:n]) != "\x40\x02\x00\x01"+string(rune('a'+i)) {
			t.Fatalf("client got %q, %v", p[:n], err)
		}
	}
	if got := f.relay.h.fromPeerPkts.Load(); got != 4 {
		t.Errorf("counted %d datagrams from peers, want 4", got)
	}
}

// sendFromPeers sends "a", "b" and "c" from the peer and then "engine"
// from a stranger (returned) to the relay socket.
func (f *fastPair) sendFromPeers(t testing.TB) *net.UDPConn {
	t.Helper()
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stranger.Close() })
	for i := 0; i < 3; i++ {
		_, _ = f.peer.WriteToUDPAddrPort([]byte{'a' + byte(i)}, f.relayAP)
	}
	_, _ = stranger.WriteToUDPAddrPort([]byte("engine"), f.relayAP)
	return stranger
}

// FuzzSendIndication parses arbitrary datagrams as Send indications: never
// a panic, and data and peer only from a well-formed one.
func FuzzSendIndication(f *testing.F) {
	f.Add(sendIndication(f, netip.MustParseAddrPort("192.0.2.1:5000"), []byte("hello")))
	f.Add(sendIndication(f, netip.MustParseAddrPort("[2001:db8::1]:5000"), nil))
	f.Add([]byte{0x00, 0x16, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x13, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		peer, data, ok := parseSendIndication(b)
		if !ok {
			return
		}
		m := &stun.Message{Raw: append([]byte(nil), b...)}
		if err := m.Decode(); err != nil {
			t.Fatalf("accepted %x that pion/stun refuses: %v", b, err)
		}
		var pa stun.XORMappedAddress
		d, derr := m.Get(stun.AttrData)
		if pa.GetFromAs(m, stun.AttrXORPeerAddress) != nil || derr != nil {
			t.Fatalf("accepted %x without peer or data", b)
		}
		if string(d) != string(data) || int(peer.Port()) != pa.Port || !pa.IP.Equal(peer.Addr().AsSlice()) {
			t.Fatalf("parsed %v %q, pion/stun %v %q", peer, data, pa, d)
		}
	})
}

func BenchmarkChannelDataToPeer(b *testing.B) {
	f := newFastPair(b)
	f.lpc.addChannel(f.cliAP, 0x4001, f.relay, f.peerAP)
	msg := appendChannelData(nil, 0x4001, make([]byte, 172))
	go drain(f.peer)
	b.ReportAllocs()
	for b.Loop() {
		f.lpc.forward(msg, f.cliAP)
	}
}

func BenchmarkSendIndicationToPeer(b *testing.B) {
	f := newFastPair(b)
	f.relay.addPerm(f.peerAP.Addr())
	msg := sendIndication(b, f.peerAP, make([]byte, 172))
	go drain(f.peer)
	b.ReportAllocs()
	for b.Loop() {
		f.lpc.send(msg, f.cliAP)
	}
}

func BenchmarkRelayToClient(b *testing.B) {
	for _, kind := range []string{"channeldata", "dataindication"} {
		b.Run(kind, func(b *testing.B) {
			f := newFastPair(b)
			if kind == "channeldata" {
				f.relay.addPeer(f.peerAP, 0x4001, f.cliAP, f.lpc.udp)
			} else {
				f.relay.addPerm(f.peerAP.Addr())
			}
			m := &batchio.Message{Buf: make([]byte, batchio.MaxDatagram), N: 172, Addr: f.peerAP}
			go drain(f.client)
			b.ReportAllocs()
			for b.Loop() {
				f.relay.relay(m)
				if f.relay.on == relayBatch {
					f.relay.flush()
				}
			}
			f.relay.flush()
		})
	}
}

// drain reads c until it is closed.
func drain(c *net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			return
		}
	}
}
