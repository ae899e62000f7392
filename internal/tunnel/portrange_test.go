package tunnel

import (
	"net"
	"strconv"
	"testing"
)

func FuzzPortRange(f *testing.F) {
	for _, s := range []string{"127.0.0.3:50000-50999", "h:1", "[::1]:5-5", "h:9-8", "h:-1", "h:1-", "h:0-3", ":65535-65536", "h:1-2-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, lo, hi, err := portRange(s)
		if err != nil {
			return
		}
		if lo < 0 || lo > hi || hi > 65535 {
			t.Fatalf("%q: range %d-%d", s, lo, hi)
		}
		// The bounds name the same addresses again.
		h2, lo2, hi2, err := portRange(net.JoinHostPort(host, strconv.Itoa(lo)+"-"+strconv.Itoa(hi)))
		if lo != hi && (err != nil || h2 != host || lo2 != lo || hi2 != hi) {
			t.Fatalf("%q: %q %d-%d does not round trip: %v", s, h2, lo2, hi2, err)
		}
	})
}
