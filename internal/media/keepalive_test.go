package media

import (
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/media/rtp"
)

// TestKeepAliveLatchesAndStaysHere plays an H.460.19 endpoint behind NAT
// on leg 0: it signalled a private address the relay cannot reach, and
// receives media only. Its keep-alive (payload type 127, no payload) from
// its receive port latches the leg, so the callee's RTP reaches it; the
// keep-alive itself is counted and never reaches the callee. A keep-alive
// with another payload type but no payload counts the same; RTP with the
// keep-alive payload type is not forwarded either.
func TestKeepAliveLatchesAndStaysHere(t *testing.T) {
	cfg := testConfig(32400, 32500, 20)
	cfg.Latching = LatchNAT
	r, _ := startRelay(t, cfg, Deps{})
	nat, callee, private := udp(t), udp(t), udp(t)
	id, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{
		Kind: KindVideo, RTCPMux: true,
		// The private address is a socket of the test that must never
		// hear from the relay once the leg latched.
		Remote:    [2]netip.AddrPort{addr(private), addr(callee)},
		Source:    [2]netip.Addr{addr(nat).Addr()},
		KeepAlive: [2]KeepAlive{{Enabled: true, PayloadType: 127}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	in := infos[0]
	keep := rtp.AppendHeader(nil, rtp.Header{PayloadType: 127, Sequence: 1, SSRC: 9})
	nat.WriteToUDPAddrPort(keep, in.Local[0])
	waitFor(t, func() bool {
		st, _ := r.Session(id)
		return st.Streams[0].Legs[0].Latched
	})
	media := rtpPacket(2, 1, 172)
	callee.WriteToUDPAddrPort(media, in.Local[1])
	if got, from := recv(t, nat); string(got) != string(media) || from != in.Local[0] {
		t.Fatalf("the endpoint behind NAT got %d bytes from %v", len(got), from)
	}
	wrongType := rtp.AppendHeader(nil, rtp.Header{PayloadType: 0, Sequence: 2, SSRC: 9})
	nat.WriteToUDPAddrPort(wrongType, in.Local[0])
	nat.WriteToUDPAddrPort(append(rtp.AppendHeader(nil, rtp.Header{PayloadType: 127, Sequence: 3, SSRC: 9}), 1, 2, 3), in.Local[0])
	real := rtpPacket(9, 4, 172)
	nat.WriteToUDPAddrPort(real, in.Local[0])
	expectNext(t, callee, real) // the keep-alives before it were not forwarded
	nothingQueued(t, private)
	st, err := r.Release(id)
	if err != nil {
		t.Fatal(err)
	}
	if l := st.Streams[0].Legs[0]; l.KeepAlives != 3 || l.Packets != 1 || l.Forwarded != 1 {
		t.Errorf("leg 0: %d keep-alives, %d packets, %d forwarded; want 3, 1, 1", l.KeepAlives, l.Packets, l.Forwarded)
	}
	waitFor(t, func() bool { return testutil.ToFloat64(r.m.keepAlives) == 3 })
}

// TestKeepAliveOff: without KeepAlive, RTP without payload is relayed
// like any other packet.
func TestKeepAliveOff(t *testing.T) {
	r, _ := startRelay(t, testConfig(32600, 32700, 20), Deps{})
	a, b, _, in := pair(t, r, true)
	empty := rtp.AppendHeader(nil, rtp.Header{PayloadType: 127, Sequence: 1, SSRC: 9})
	a.WriteToUDPAddrPort(empty, in.Local[0])
	expectNext(t, b, empty)
}

func TestIsKeepAlive(t *testing.T) {
	ep := &endpoint{}
	ep.setKeepAlive(KeepAlive{Enabled: true, PayloadType: 127})
	hdr := func(pt byte) []byte { return rtp.AppendHeader(nil, rtp.Header{PayloadType: pt, Sequence: 1, SSRC: 1}) }
	for _, tt := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"signalled type", hdr(127), true},
		{"signalled type with payload", append(hdr(127), 1, 2), true},
		{"other type, no payload", hdr(8), true},
		{"other type, padding only", func() []byte { b := append(hdr(8), 0, 0, 0, 4); b[0] |= 0x20; return b }(), true},
		{"other type, extension only", func() []byte { b := append(hdr(8), 0xbe, 0xde, 0, 1, 1, 2, 3, 4); b[0] |= 0x10; return b }(), true},
		{"extension cut", func() []byte { b := append(hdr(8), 0xbe); b[0] |= 0x10; return b }(), false},
		{"media", append(hdr(8), make([]byte, 160)...), false},
		{"rtcp", rtp.AppendRR(nil, 1, nil), false},
		{"short", []byte{0x80, 127}, false},
		{"not rtp", make([]byte, 20), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ep.isKeepAlive(tt.b); got != tt.want {
				t.Fatalf("isKeepAlive = %v, want %v", got, tt.want)
			}
		})
	}
	ep.setKeepAlive(KeepAlive{})
	if ep.isKeepAlive(hdr(127)) {
		t.Fatal("keep-alive recognised on a leg without keep-alives")
	}
}

// FuzzIsKeepAlive: any datagram is judged without a panic, and only RTP
// (version 2, not RTCP) is ever a keep-alive.
func FuzzIsKeepAlive(f *testing.F) {
	f.Add([]byte{0x80, 127, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9}, uint8(127))
	f.Add([]byte{0x90, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0xbe, 0xde, 0xff, 0xff}, uint8(100))
	f.Add([]byte{0xa0, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 200}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, pt uint8) {
		ep := &endpoint{}
		ep.setKeepAlive(KeepAlive{Enabled: true, PayloadType: pt})
		if ep.isKeepAlive(b) && (len(b) < 12 || b[0]>>6 != 2 || isRTCP(b)) {
			t.Fatalf("% x judged a keep-alive", b)
		}
	})
}
