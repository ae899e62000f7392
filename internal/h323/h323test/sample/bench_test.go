package sample

import (
	"runtime"
	"testing"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/h323test/capture"
)

func mustMarshal(b *testing.B, f func() ([]byte, error)) []byte {
	out, err := f()
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func benchDecode[T any, P interface {
	*T
	Decode(*asn1per.Decoder) error
}](b *testing.B, in []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var d asn1per.Decoder
	decode := func() {
		var v T
		d.Init(in)
		if err := P(&v).Decode(&d); err != nil {
			b.Fatal(err)
		}
	}
	warmUp(decode)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		decode()
	}
}

// warmUp runs f until the process has allocated and collected some 16 MB,
// so that a short run (-benchtime 2000x) measures the codec and the
// garbage collector in their steady state, not the page faults of a heap
// that a fresh process is still growing: on the 2-core VM those cost more
// than the decoding itself in the first few thousand iterations.
func warmUp(f func()) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for start := ms.TotalAlloc; ms.TotalAlloc-start < 16<<20; runtime.ReadMemStats(&ms) {
		for range 100 {
			f()
		}
	}
}

func benchEncode(b *testing.B, v interface{ Encode(*asn1per.Encoder) error }) {
	b.ReportAllocs()
	e := asn1per.NewEncoder(make([]byte, 0, 1024))
	for i := 0; i < b.N; i++ {
		e.Reset()
		if err := v.Encode(e); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(e.Bytes())))
}

func BenchmarkRRQDecode(b *testing.B) {
	benchDecode[h225.RasMessage](b, mustMarshal(b, RRQ().Marshal))
}

func BenchmarkRRQEncode(b *testing.B) { benchEncode(b, RRQ()) }

// BenchmarkRRQDecodeCaptured decodes the largest RAS message of the
// reference captures (an H.460.18 keep-alive RRQ from a Tandberg endpoint),
// read from ../shared/ref where it lies.
func BenchmarkRRQDecodeCaptured(b *testing.B) {
	if capture.RefDir() == "" {
		b.Skip("../shared/ref is absent: no reference captures to decode")
	}
	var in []byte
	for _, file := range capture.Captures(b) {
		for _, fr := range capture.Frames(b, file, "h225.registrationRequest_element") {
			if len(fr.Payload) > len(in) {
				in = fr.Payload
			}
		}
	}
	if in == nil {
		b.Fatal("no RRQ in the reference captures")
	}
	benchDecode[h225.RasMessage](b, in)
}

func BenchmarkSetupUUIERoundTrip(b *testing.B) {
	in := mustMarshal(b, SetupUUIE().Marshal)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var d asn1per.Decoder
	e := asn1per.NewEncoder(make([]byte, 0, 1024))
	roundTrip := func() {
		var v h225.H323UserInformation
		d.Init(in)
		if err := v.Decode(&d); err != nil {
			b.Fatal(err)
		}
		e.Reset()
		if err := v.Encode(e); err != nil {
			b.Fatal(err)
		}
	}
	warmUp(roundTrip)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		roundTrip()
	}
}

func BenchmarkOLCDecode(b *testing.B) {
	benchDecode[h245.MultimediaSystemControlMessage](b, mustMarshal(b, OLCMessage().Marshal))
}

func BenchmarkOLCEncode(b *testing.B) { benchEncode(b, OLCMessage()) }

// TestRRQDecodeAllocs holds the RRQ decode to the budget of ten
// allocations with a reused Decoder (the decoded value and its pointers,
// slices and the shared string storage, amortized).
func TestRRQDecodeAllocs(t *testing.T) {
	in, err := RRQ().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var d asn1per.Decoder
	n := testing.AllocsPerRun(1000, func() {
		var v h225.RasMessage
		d.Init(in)
		if err := v.Decode(&d); err != nil {
			t.Fatal(err)
		}
		sink = &v
	})
	if n > 10 {
		t.Errorf("RRQ decode: %.1f allocations, want at most 10", n)
	}
}

var sink *h225.RasMessage
