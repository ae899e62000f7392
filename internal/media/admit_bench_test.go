package media

import (
	"net/netip"
	"testing"

	"github.com/portico-edge/portico/internal/batchio"
)

// BenchmarkAdmit measures the latching decision alone for packets from the
// latched peer (the common case) and from a stranger (dropped).
func BenchmarkAdmit(b *testing.B) {
	r, err := New(testConfig(40000, 41000, 10), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	peerAddr := netip.MustParseAddrPort("192.0.2.1:4000")
	for _, bc := range []struct {
		name string
		src  netip.AddrPort
	}{
		{"latched peer", peerAddr},
		{"stranger", netip.MustParseAddrPort("198.51.100.9:5000")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ep := &endpoint{r: r}
			ep.peer.Store(&peer{addr: peerAddr, signalled: peerAddr, latched: true})
			m := batchio.Message{Buf: rtpPacket(1, 1, 172), N: 172, Addr: bc.src}
			var t tally
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m.Buf[3] = byte(i) // the sequence number moves on
				ep.admit(&m, 1, &t)
			}
		})
	}
}
