package media

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/media/rtp"
)

func muxConfig(extMin, intMin, n, muxPort int) Config {
	c := testConfig(extMin, intMin, n)
	ext := c.Interfaces["external"]
	ext.MultiplexPort = muxPort
	c.Interfaces["external"] = ext
	c.Latching = LatchNAT
	return c
}

func withID(id uint32, b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, id), b...)
}

// muxPair allocates a stream whose leg 0 (an H.460.19 endpoint, client)
// sends multiplexed and asks to receive multiplexed with sendID; leg 1 is
// callee, plain.
func muxPair(t testing.TB, r *Relay, sendID uint32) (client, clientRTCP, callee, calleeRTCP *net.UDPConn, id SessionID, in StreamInfo) {
	client, clientRTCP, callee, calleeRTCP = udp(t), udp(t), udp(t), udp(t)
	id, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{
		Kind:          KindAudio,
		Remote:        [2]netip.AddrPort{addr(client), addr(callee)},
		RemoteRTCP:    [2]netip.AddrPort{addr(clientRTCP), addr(calleeRTCP)},
		Multiplex:     [2]bool{true},
		MultiplexSend: [2]uint32{sendID},
		KeepAlive:     [2]KeepAlive{{Enabled: true, PayloadType: 127}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return client, clientRTCP, callee, calleeRTCP, id, infos[0]
}

// TestMultiplexedMedia: an H.460.19 endpoint sends RTP and RTCP to the
// interface's multiplexed ports, prefixed with the multiplexID the relay
// gave its leg; the relay strips the ID and relays to the other leg. Media
// toward the endpoint leaves from the multiplexed port, prefixed with the
// ID the endpoint asked for. Unknown IDs, cut datagrams, strangers and
// IDs of released streams are dropped and counted; keep-alives sent
// multiplexed latch and stay here.
func TestMultiplexedMedia(t *testing.T) {
	r, _ := startRelay(t, muxConfig(32800, 32900, 20, 32850), Deps{})
	const sendID = 0x01020304
	client, clientRTCP, callee, calleeRTCP, id, in := muxPair(t, r, sendID)
	muxRTP, muxRTCP := netip.MustParseAddrPort("127.0.0.1:32850"), netip.MustParseAddrPort("127.0.0.1:32851")
	if in.MultiplexID[0] == 0 || in.MultiplexID[1] != 0 || in.LocalMux[0] != muxRTP || in.LocalMuxRTCP[0] != muxRTCP {
		t.Fatalf("stream info %+v", in)
	}
	mid := in.MultiplexID[0]

	keep := rtp.AppendHeader(nil, rtp.Header{PayloadType: 127, Sequence: 1, SSRC: 7})
	client.WriteToUDPAddrPort(withID(mid, keep), muxRTP)
	pa := rtpPacket(7, 2, 172)
	client.WriteToUDPAddrPort(withID(mid, pa), muxRTP)
	if got, from := recv(t, callee); string(got) != string(pa) || from != in.Local[1] {
		t.Fatalf("callee got %d bytes from %v (keep-alive forwarded or prefix kept?)", len(got), from)
	}
	pb := rtpPacket(8, 1, 172)
	callee.WriteToUDPAddrPort(pb, in.Local[1])
	if got, from := recv(t, client); string(got) != string(withID(sendID, pb)) || from != muxRTP {
		t.Fatalf("client got % x... from %v; want the prefixed packet from %v", got[:8], from, muxRTP)
	}
	sr := rtp.AppendSR(nil, 7, rtp.SenderInfo{NTP: 1 << 32}, nil)
	clientRTCP.WriteToUDPAddrPort(withID(mid, sr), muxRTCP)
	if got, from := recv(t, calleeRTCP); string(got) != string(sr) || from != in.LocalRTCP[1] {
		t.Fatalf("callee RTCP got %d bytes from %v", len(got), from)
	}
	rr := rtp.AppendRR(nil, 8, nil)
	calleeRTCP.WriteToUDPAddrPort(rr, in.LocalRTCP[1])
	if got, from := recv(t, clientRTCP); string(got) != string(withID(sendID, rr)) || from != muxRTCP {
		t.Fatalf("client RTCP got % x from %v", got, from)
	}

	// Dropped: an unknown ID, a cut datagram, a stranger with the right ID.
	stranger := udpOn(t, "127.0.0.2")
	client.WriteToUDPAddrPort(withID(mid^0xffff0000, pa), muxRTP)
	client.WriteToUDPAddrPort([]byte{1, 2, 3}, muxRTP)
	stranger.WriteToUDPAddrPort(withID(mid, rtpPacket(99, 1, 172)), muxRTP)
	pc := rtpPacket(7, 3, 172)
	client.WriteToUDPAddrPort(withID(mid, pc), muxRTP)
	expectNext(t, callee, pc)
	st, err := r.Release(id)
	if err != nil {
		t.Fatal(err)
	}
	if l := st.Streams[0].Legs[0]; l.KeepAlives != 1 || l.Packets != 3 || l.Dropped != 1 {
		t.Errorf("leg 0: %+v; want 1 keep-alive, 3 packets, the stranger dropped", l)
	}
	waitFor(t, func() bool { return testutil.ToFloat64(r.m.muxUnknown) == 2 })

	// The ID of a released stream selects nothing any more.
	c2, _, callee2, _, _, in2 := muxPair(t, r, 0)
	client.WriteToUDPAddrPort(withID(mid, pa), muxRTP)
	p2 := rtpPacket(5, 1, 172)
	c2.WriteToUDPAddrPort(withID(in2.MultiplexID[0], p2), muxRTP)
	expectNext(t, callee2, p2)
	// Without MultiplexSend the endpoint gets plain packets, still from the multiplexed port.
	callee2.WriteToUDPAddrPort(pb, in2.Local[1])
	if got, from := recv(t, c2); string(got) != string(pb) || from != muxRTP {
		t.Fatalf("client got %d bytes from %v", len(got), from)
	}
	waitFor(t, func() bool { return testutil.ToFloat64(r.m.muxUnknown) == 3 })

	// An endpoint that receives multiplexed but sends to the stream's own
	// port gets its media prefixed from that port.
	c3, callee3 := udp(t), udp(t)
	_, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{
		Kind: KindAudio, RTCPMux: true, Remote: [2]netip.AddrPort{addr(c3), addr(callee3)}, MultiplexSend: [2]uint32{77},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	c3.WriteToUDPAddrPort(rtpPacket(3, 1, 100), infos[0].Local[0])
	recv(t, callee3)
	callee3.WriteToUDPAddrPort(pb, infos[0].Local[1])
	if got, from := recv(t, c3); string(got) != string(withID(77, pb)) || from != infos[0].Local[0] {
		t.Fatalf("client got % x... from %v, want prefixed from %v", got[:8], from, infos[0].Local[0])
	}
}

// TestMultiplexWithoutPort: Multiplex on an interface without a
// multiplexed port is ignored; MultiplexSend still prefixes.
func TestMultiplexWithoutPort(t *testing.T) {
	r, _ := startRelay(t, testConfig(33000, 33100, 20), Deps{})
	client, _, callee, _, _, in := muxPair(t, r, 42)
	if in.MultiplexID[0] != 0 || in.LocalMux[0].IsValid() {
		t.Fatalf("multiplexed without a port: %+v", in)
	}
	client.WriteToUDPAddrPort(rtpPacket(1, 1, 100), in.Local[0])
	recv(t, callee)
	pb := rtpPacket(2, 1, 100)
	callee.WriteToUDPAddrPort(pb, in.Local[1])
	if got, from := recv(t, client); string(got) != string(withID(42, pb)) || from != in.Local[0] {
		t.Fatalf("client got % x... from %v", got[:8], from)
	}
}

func TestMultiplexPortValidation(t *testing.T) {
	for _, tt := range []struct {
		port int
		want string
	}{{33201, "not an even port"}, {33210, "inside media.interfaces.external"}, {33310, "inside media.interfaces.internal"}, {80, "not an even port"}} {
		_, err := New(muxConfig(33200, 33300, 20, tt.port), Deps{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("multiplex_port %d: %v, want %q", tt.port, err, tt.want)
		}
	}
}

func TestMuxTable(t *testing.T) {
	tb := newMuxTable()
	a, b := &endpoint{}, &endpoint{}
	ida, err := tb.add(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	idb, _ := tb.add(b, nil)
	if ida == idb || ida == 0 || tb.lookup(ida).rtp != a || tb.lookup(idb).rtp != b || tb.lookup(ida^0x10000) != nil {
		t.Fatal("lookup")
	}
	tb.remove(ida)
	if tb.lookup(ida) != nil {
		t.Fatal("removed ID still selects")
	}
	idc, _ := tb.add(a, nil)
	if idc&0xffff != ida&0xffff || tb.lookup(idc) == nil {
		t.Fatal("slot not reused")
	}
	tb.tab.next = slotChunk * muxChunks
	tb.tab.free = nil
	if _, err := tb.add(a, nil); !errors.Is(err, ErrMultiplexFull) {
		t.Fatalf("full table: %v", err)
	}
}

// muxRound sends one multiplexed packet each way through the relay.
func muxRound(t testing.TB, r *Relay) func() {
	client, _, callee, _, _, in := muxPair(t, r, 0x0a0b0c0d)
	muxRTP := in.LocalMux[0]
	pa, pb := withID(in.MultiplexID[0], rtpPacket(1, 1, 172)), rtpPacket(2, 1, 172)
	buf := make([]byte, 2048)
	client.SetReadDeadline(time.Now().Add(time.Minute))
	callee.SetReadDeadline(time.Now().Add(time.Minute))
	seq := uint16(1)
	return func() {
		seq++
		binary.BigEndian.PutUint16(pa[6:], seq)
		client.WriteToUDPAddrPort(pa, muxRTP)
		callee.ReadFromUDPAddrPort(buf)
		callee.WriteToUDPAddrPort(pb, in.Local[1])
		client.ReadFromUDPAddrPort(buf)
	}
}

// TestMultiplexZeroAllocs: demultiplexing, relaying and prefixing
// allocate nothing per packet.
func TestMultiplexZeroAllocs(t *testing.T) {
	r, _ := startRelay(t, muxConfig(33400, 33500, 20, 33450), Deps{})
	round := muxRound(t, r)
	for i := 0; i < 50; i++ {
		round()
	}
	if n := testing.AllocsPerRun(2000, round); n != 0 {
		t.Fatalf("allocations per multiplexed packet pair = %v, want 0", n)
	}
}

// BenchmarkMultiplexedForward: one multiplexed RTP packet from the
// endpoint to the relay's multiplexed port and on, and one back, prefixed
// (go test -bench Multiplexed -benchmem ./internal/media/).
func BenchmarkMultiplexedForward(b *testing.B) {
	r, _ := startRelay(b, muxConfig(33600, 33700, 20, 33650), Deps{})
	round := muxRound(b, r)
	for i := 0; i < 50; i++ {
		round()
	}
	b.ReportAllocs()
	for b.Loop() {
		round()
	}
}

// FuzzDemux: any datagram on a multiplexed port either selects the leg of
// its (known) multiplexID, stripped of it, or is dropped and counted.
func FuzzDemux(f *testing.F) {
	r := &Relay{mux: newMuxTable()}
	leg := &endpoint{}
	id, err := r.mux.add(leg, nil)
	if err != nil {
		f.Fatal(err)
	}
	mux := &endpoint{muxSock: true}
	f.Add(withID(id, rtpPacket(1, 1, 20)))
	f.Add(withID(id^1, rtpPacket(1, 1, 20)))
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		buf := make([]byte, 2048)
		n := copy(buf, b)
		orig := n
		var tl tally
		switch got := r.demux(mux, buf, &n, &tl); {
		case got == nil:
			if n != orig || tl.muxUnknown != 1 {
				t.Fatalf("dropped datagram: length %d→%d, counted %d", orig, n, tl.muxUnknown)
			}
		case got == leg:
			if binary.BigEndian.Uint32(b) != id || n != orig-4 || string(buf[:n]) != string(b[4:orig]) {
				t.Fatalf("% x selected the leg as % x", b, buf[:n])
			}
		default:
			t.Fatal("an unknown leg selected")
		}
	})
}
