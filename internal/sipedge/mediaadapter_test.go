package sipedge

import (
	"net/netip"
	"testing"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/sdp"
)

// TestSignallingSourceReachesRelay checks that the IP of an outside leg's
// NAT flow goes to the relay with the stream, so media from it may latch
// although the SDP shows a private address, and that an inside leg (no
// flow) gives the relay no such source.
func TestSignallingSourceReachesRelay(t *testing.T) {
	c := &call{a: &leg{idx: 0, fixed: "203.0.113.7:5062"}, b: &leg{idx: 1}}
	st := sdp.Stream{Kind: "audio", Proto: "RTP/AVP", RTP: netip.MustParseAddrPort("192.168.1.20:4000")}
	for _, tc := range []struct {
		name string
		leg  int
		want netip.Addr
	}{
		{"outside caller behind NAT", 0, netip.MustParseAddr("203.0.113.7")},
		{"inside callee", 1, netip.Addr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := streamConfig(media.StreamConfig{}, tc.leg, st, c.signallingSource(tc.leg))
			if sc.Source[tc.leg] != tc.want || sc.Remote[tc.leg] != st.RTP {
				t.Fatalf("leg %d: source %v remote %v, want source %v remote %v", tc.leg, sc.Source[tc.leg], sc.Remote[tc.leg], tc.want, st.RTP)
			}
		})
	}
}
