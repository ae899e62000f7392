package test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCallsToRegisteredEndpointAfterServeFailover: the serve pair of
// TestCallsSurviveServeFailover. An outside sipp endpoint registers as
// carol over UDP through VIP .100 (node a) to Kamailio inside; node b
// holds the binding over the ha.sync link. Node a is killed with -9 and
// node b takes the VIP. A sipp caller inside calls carol through Kamailio:
// the INVITE reaches the endpoint through node b, on the NAT flow node a
// made, without a new REGISTER, and the call connects with RTP both ways;
// node b's history has the call, inbound, with media counts.
func TestCallsToRegisteredEndpointAfterServeFailover(t *testing.T) {
	r := startHACalls(t)
	l, a, b := r.l, r.a, r.b

	const port = "5064"
	reg, _ := filepath.Abs("testdata/sipp/reg_only.xml")
	startSippVia(t, r.outNS, "-sf", reg, "-key", "user", "carol", "-i", haAddrOut, "-p", port, "-m", "1", haVIPA+":5060").wait(t, "carol's REGISTER")
	var regsA []struct{ AOR string }
	a.api.must(200, "GET", "/api/v1/registrations", nil).json(t, &regsA)
	if len(regsA) != 1 || !strings.Contains(regsA[0].AOR, "carol") {
		t.Fatalf("node a's registrations: %+v", regsA)
	}
	waitFor(t, 10*time.Second, func() bool {
		return strings.Contains(string(a.api.must(200, "GET", "/metrics", nil).body), "\nportico_ha_sync_lag_seconds 0\n")
	})

	a.kill()
	l.waitHolds("node a killed", map[string]map[string]bool{haVIPA: {"b": true}})
	b.waitState(51, "master")

	carol := startSippVia(t, r.outNS, "-sn", "uas", "-i", haAddrOut, "-p", port, "-mp", "6100", "-rtp_echo", "-m", "1")
	caller := startSippVia(t, r.inNS, "-sn", "uac_pcap", "-s", "carol", "-i", haAddrIn, "-p", "5090", "-mp", "6200",
		"-m", "1", "-d", "1000", haAddrIn+":5060")
	caller.wait(t, "inside caller")
	carol.wait(t, "carol, outside")

	var hist []struct {
		haCallRow
		To string
	}
	waitFor(t, 10*time.Second, func() bool {
		b.api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
		return len(hist) > 0
	})
	if len(hist) != 1 || hist[0].Status != 200 || !strings.Contains(hist[0].To, "carol") || len(hist[0].Streams) != 1 ||
		hist[0].Streams[0].PacketsIn == 0 || hist[0].Streams[0].PacketsOut == 0 {
		t.Errorf("node b's history: %+v", hist)
	}
	if t.Failed() {
		t.Logf("node b:\n%s", b.out)
	}
}
