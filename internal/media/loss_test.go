package media

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLossCountsSequenceGaps sends one leg's RTP with sequence numbers
// skipped and checks portico_media_packets_lost_total: a gap counts its
// skipped numbers, a late packet after the gap, a new SSRC and a jump past
// the dropout limit (a restarted sender) count nothing.
func TestLossCountsSequenceGaps(t *testing.T) {
	r, reg := startRelay(t, testConfig(35800, 35900, 20), Deps{})
	a, b, _, in := pair(t, r, true)
	send := func(ssrc uint32, seq uint16) {
		t.Helper()
		p := rtpPacket(ssrc, seq, 172)
		a.WriteToUDPAddrPort(p, in.Local[0])
		expectNext(t, b, p)
	}
	for _, seq := range []uint16{65534, 65535, 2, 3} { // wraps; 0 and 1 lost
		send(0xA, seq)
	}
	send(0xA, 6)    // 4 and 5 lost
	send(0xA, 5)    // late: not taken back
	send(0xB, 9000) // a new SSRC starts its own sequence
	send(0xB, 9001)
	send(0xB, 20000) // beyond maxDropout: a restart, not loss
	send(0xB, 20002) // 20001 lost
	waitFor(t, func() bool { return testutil.ToFloat64(r.m.lost) == 5 })
	want := "# HELP portico_media_packets_lost_total RTP packets lost before the user-space relay: sequence numbers skipped in each leg's stream.\n" +
		"# TYPE portico_media_packets_lost_total counter\nportico_media_packets_lost_total 5\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "portico_media_packets_lost_total"); err != nil {
		t.Fatal(err)
	}
}
