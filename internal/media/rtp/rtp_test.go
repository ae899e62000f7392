package rtp

import (
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want Class
	}{
		{"empty", nil, ClassUnknown},
		{"stun binding", []byte{0x00, 0x01, 0, 0}, ClassSTUN},
		{"dtls handshake", []byte{22, 0xfe, 0xfd}, ClassDTLS},
		{"rtp pcmu", []byte{0x80, 0x00}, ClassRTP},
		{"rtp marker pt 96", []byte{0x80, 0xe0}, ClassRTP},
		{"rtcp sr", []byte{0x80, 200}, ClassRTCP},
		{"rtcp rr", []byte{0x81, 201}, ClassRTCP},
		{"one byte rtp", []byte{0x80}, ClassUnknown},
		{"zrtp/other", []byte{0x10}, ClassUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.b); got != tc.want {
				t.Fatalf("Classify = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	basic := AppendHeader(nil, Header{Marker: true, PayloadType: 8, Sequence: 513, Timestamp: 160, SSRC: 0xdeadbeef})
	withCSRC := append([]byte{0x82}, basic[1:]...)
	withCSRC = append(withCSRC, 1, 2, 3, 4, 5, 6, 7, 8)
	withExt := append([]byte{0x90}, basic[1:]...)
	withExt = append(withExt, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0xff)
	for _, tc := range []struct {
		name    string
		b       []byte
		wantErr error
		off     int
	}{
		{"basic", basic, nil, 12},
		{"csrc", withCSRC, nil, 20},
		{"extension", withExt, nil, 20},
		{"short", basic[:11], ErrShort, 0},
		{"version 1", append([]byte{0x40}, basic[1:]...), ErrVersion, 0},
		{"csrc beyond end", append([]byte{0x8f}, basic[1:]...), ErrLength, 0},
		{"extension beyond end", append([]byte{0x90}, basic[1:]...), ErrLength, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeader(tc.b)
			if err != tc.wantErr {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if h.SSRC != 0xdeadbeef || h.Sequence != 513 || h.PayloadType != 8 || !h.Marker || h.Timestamp != 160 {
				t.Errorf("header = %+v", h)
			}
			if h.PayloadOffset != tc.off {
				t.Errorf("payload offset %d, want %d", h.PayloadOffset, tc.off)
			}
		})
	}
}

func TestParseCompound(t *testing.T) {
	rb := ReportBlock{SSRC: 7, FractionLost: 25, TotalLost: -3, HighestSeq: 70000, Jitter: 160, LSR: 0x11223344, DLSR: 65536}
	sr := AppendSR(nil, 42, SenderInfo{NTP: 1 << 40, RTPTime: 8000, PacketCount: 50, OctetCount: 8000}, []ReportBlock{rb})
	compound := AppendRR(append([]byte(nil), sr...), 42, nil)
	compound = append(compound, 0x81, TypeSDES, 0, 2, 0, 0, 0, 42, 0, 0, 0, 0)
	for _, tc := range []struct {
		name    string
		b       []byte
		wantErr error
		hasSR   bool
		blocks  int
		packets int
	}{
		{"sr", sr, nil, true, 1, 1},
		{"compound sr rr sdes", compound, nil, true, 1, 3},
		{"rr only", AppendRR(nil, 9, []ReportBlock{rb, rb}), nil, false, 2, 1},
		{"truncated", sr[:len(sr)-4], ErrLength, false, 0, 0},
		{"short sr", []byte{0x80, TypeSR, 0, 1, 0, 0, 0, 1}, ErrShort, false, 0, 1},
		{"block count lies", []byte{0x85, TypeRR, 0, 1, 0, 0, 0, 1}, ErrLength, false, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Report
			err := ParseCompound(tc.b, &r)
			if err != tc.wantErr {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if r.HasSR != tc.hasSR || r.NBlocks != tc.blocks || r.Packets != tc.packets {
				t.Fatalf("report hasSR=%v blocks=%d packets=%d", r.HasSR, r.NBlocks, r.Packets)
			}
			if r.Blocks[0] != rb {
				t.Errorf("block = %+v, want %+v", r.Blocks[0], rb)
			}
		})
	}
}

func TestParseZeroAllocs(t *testing.T) {
	pkt := AppendHeader(nil, Header{PayloadType: 0, SSRC: 1})
	pkt = append(pkt, make([]byte, 160)...)
	rr := AppendRR(nil, 9, []ReportBlock{{SSRC: 1}})
	var r Report
	if n := testing.AllocsPerRun(100, func() {
		ParseHeader(pkt)
		Classify(pkt)
		ParseCompound(rr, &r)
	}); n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(AppendHeader(nil, Header{PayloadType: 0, SSRC: 1}))
	f.Add([]byte{0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0xff, 0xff})
	f.Add([]byte{0x8f})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err == nil && (h.PayloadOffset < 12 || h.PayloadOffset > len(b)) {
			t.Fatalf("payload offset %d outside packet of %d", h.PayloadOffset, len(b))
		}
		Classify(b)
		SSRC(b)
	})
}

func FuzzParseCompound(f *testing.F) {
	f.Add(AppendSR(nil, 1, SenderInfo{}, []ReportBlock{{SSRC: 2}}))
	f.Add(AppendRR(AppendRR(nil, 1, nil), 3, []ReportBlock{{SSRC: 2}, {SSRC: 4}}))
	f.Add([]byte{0x9f, TypeRR, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Report
		ParseCompound(b, &r)
		if r.NBlocks > MaxBlocks {
			t.Fatalf("%d blocks", r.NBlocks)
		}
	})
}

func BenchmarkParseHeader(b *testing.B) {
	pkt := append(AppendHeader(nil, Header{PayloadType: 0, SSRC: 1}), make([]byte, 160)...)
	b.ReportAllocs()
	for b.Loop() {
		ParseHeader(pkt)
	}
}

func BenchmarkParseCompound(b *testing.B) {
	pkt := AppendSR(nil, 1, SenderInfo{}, []ReportBlock{{SSRC: 2}, {SSRC: 3}})
	var r Report
	b.ReportAllocs()
	for b.Loop() {
		ParseCompound(pkt, &r)
	}
}
