package tunnel

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Header
	}{
		{"tcp", Header{Kind: KindTCP, Flow: 1, Service: "ldap"}},
		{"udp max flow", Header{Kind: KindUDP, Flow: 0xffffffff, Service: "sip-udp"}},
		{"longest name", Header{Kind: KindUDP, Flow: 7, Service: "abcdefghijklmnopqrstuvwxyz012345"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.h.Append(nil)
			b = append(b, "payload"...)
			got, n, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.h || n != tc.h.Len() || string(b[n:]) != "payload" {
				t.Fatalf("got %+v n=%d", got, n)
			}
			got2, err := ReadHeader(bytes.NewReader(b))
			if err != nil || got2 != tc.h {
				t.Fatalf("ReadHeader: %+v %v", got2, err)
			}
		})
	}
}

func TestHeaderRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", []byte{0x11, 0, 0, 0}},
		{"version", []byte{0x21, 0, 0, 0, 1, 1, 'a'}},
		{"kind", []byte{0x15, 0, 0, 0, 1, 1, 'a'}},
		{"empty name", []byte{0x11, 0, 0, 0, 1, 0}},
		{"truncated name", []byte{0x11, 0, 0, 0, 1, 5, 'a'}},
		{"long name", append([]byte{0x11, 0, 0, 0, 1, 33}, bytes.Repeat([]byte{'a'}, 33)...)},
		{"bad byte", []byte{0x11, 0, 0, 0, 1, 1, '/'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := Parse(tc.b); !errors.Is(err, ErrHeader) {
				t.Fatalf("Parse: %v", err)
			}
			if _, err := ReadHeader(bytes.NewReader(tc.b)); !errors.Is(err, ErrHeader) {
				t.Fatalf("ReadHeader: %v", err)
			}
		})
	}
}

func TestParseAllocs(t *testing.T) {
	b := Header{Kind: KindUDP, Flow: 9, Service: "rtp"}.Append(nil)
	if n := testing.AllocsPerRun(100, func() { _, _, _ = Parse(b) }); n > 1 {
		t.Fatalf("Parse allocates %v times", n)
	}
}

func BenchmarkParse(b *testing.B) {
	buf := Header{Kind: KindUDP, Flow: 9, Service: "rtp"}.Append(make([]byte, 0, 200))
	buf = append(buf, make([]byte, 160)...)
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = Parse(buf)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Header{Kind: KindTCP, Flow: 1, Service: "ldap"}.Append(nil))
	f.Add(Header{Kind: KindUDP, Flow: 42, Service: "rtp"}.Append([]byte{}))
	f.Add([]byte{0x11, 0, 0, 0, 1, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if err != nil {
			return
		}
		if n > len(b) || n != h.Len() {
			t.Fatalf("n=%d len=%d", n, len(b))
		}
		if !bytes.Equal(h.Append(nil), b[:n]) {
			t.Fatalf("re-encode differs")
		}
		h2, err := ReadHeader(bytes.NewReader(b))
		if err != nil || h2 != h {
			t.Fatalf("ReadHeader %+v %v", h2, err)
		}
	})
}
