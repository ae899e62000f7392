package h323proxy

import (
	"testing"

	"github.com/portico-edge/portico/internal/h323/ras"
)

// BenchmarkKeepAlive measures the path most RAS traffic takes: a
// lightweight RRQ answered by Portico itself (decode, table lookup, RCF
// encode and send).
func BenchmarkKeepAlive(b *testing.B) {
	t := &testing.T{}
	h := newHarnessDeps(t, nil, false)
	defer h.s.Close()
	rcf, _ := h.register("bench", true)
	e := endpoint("bench", true)
	e.KeepAlive, e.EndpointID = true, bmp(rcf.EndpointIdentifier)
	msg, err := ras.RRQ(3, e).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	src := h.ep.addr()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.s.handleExternal(src, msg)
	}
}
