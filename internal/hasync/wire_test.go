package hasync

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
	}{
		{"hello", Frame{Type: FrameHello, Node: "edge-a", Epoch: 42}},
		{"put", Frame{Type: FrameRecord, Seq: 7, Kind: KindMedia, Op: OpPut, Key: "m12", Body: []byte(`{"id":12}`)}},
		{"put empty body", Frame{Type: FrameRecord, Seq: 8, Kind: KindRegistration, Op: OpPut, Key: "k", Body: []byte{}}},
		{"delete", Frame{Type: FrameRecord, Seq: 9, Kind: KindDialog, Op: OpDelete, Key: "d1"}},
		{"snapshot begin", Frame{Type: FrameSnapshotBegin, Seq: 1}},
		{"snapshot end", Frame{Type: FrameSnapshotEnd, Seq: 2}},
		{"ack", Frame{Type: FrameAck, Seq: 1 << 40}},
		{"ping", Frame{Type: FramePing, Seq: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Append([]byte("x"), &tt.f)[1:]
			got, n, err := Parse(append(b, 0xff), DefaultMaxFrame)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(b) {
				t.Fatalf("took %d bytes of %d", n, len(b))
			}
			if got.Type != tt.f.Type || got.Seq != tt.f.Seq || got.Node != tt.f.Node || got.Epoch != tt.f.Epoch ||
				got.Kind != tt.f.Kind || got.Op != tt.f.Op || got.Key != tt.f.Key || !bytes.Equal(got.Body, tt.f.Body) {
				t.Fatalf("got %+v, want %+v", got, tt.f)
			}
			for i := range b {
				if _, _, err := Parse(b[:i], DefaultMaxFrame); !errors.Is(err, ErrShort) {
					t.Fatalf("prefix of %d bytes: %v, want ErrShort", i, err)
				}
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	put := Append(nil, &Frame{Type: FrameRecord, Seq: 1, Kind: KindMedia, Op: OpPut, Key: "k", Body: []byte("body")})
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), put...)) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"version", mod(func(b []byte) []byte { b[4] = 2; return b }), ErrVersion},
		{"type", mod(func(b []byte) []byte { b[5] = 99; return b }), ErrFrame},
		{"op", mod(func(b []byte) []byte { b[6+9] = 3; return b }), ErrFrame},
		{"key past end", mod(func(b []byte) []byte { b[6+10], b[6+11] = 0, 200; return b }), ErrFrame},
		{"length below header", []byte{0, 0, 0, 1, 1}, ErrFrame},
		{"too large", []byte{0, 0x10, 0, 0, 1, 3}, ErrTooLarge},
		{"ack of 4 bytes", []byte{0, 0, 0, 6, 1, 5, 0, 0, 0, 0}, ErrFrame},
		{"delete with body", Append(nil, &Frame{Type: FrameRecord, Kind: KindMedia, Op: OpDelete, Key: "k", Body: []byte("x")}), ErrFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Parse(tt.b, 4096); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Append(nil, &Frame{Type: FrameHello, Node: "edge-a", Epoch: 1}))
	f.Add(Append(nil, &Frame{Type: FrameRecord, Seq: 3, Kind: KindMedia, Op: OpPut, Key: "m1", Body: []byte(`{"streams":[]}`)}))
	f.Add(Append(nil, &Frame{Type: FrameAck, Seq: 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := Parse(b, 4096)
		if err != nil {
			return
		}
		if n > len(b) || n > 4096 {
			t.Fatalf("took %d bytes of %d", n, len(b))
		}
		again, m, err := Parse(Append(nil, &fr), 4096)
		if err != nil || m != n || again.Key != fr.Key || !bytes.Equal(again.Body, fr.Body) || again.Seq != fr.Seq {
			t.Fatalf("re-encoded frame differs: %+v %d %v", again, m, err)
		}
	})
}
