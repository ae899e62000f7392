package test

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// relaySockets lists the UDP sockets host h has bound on VIP .100's relay
// ports (haCallsNode: 40000-40799).
func (l *haLab) relaySockets(t *testing.T, h string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.ns(h), "ss", "-Haun", "src", haVIPA).Output()
	if err != nil {
		t.Fatalf("ss in %s: %v", h, err)
	}
	var socks []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		_, p, _ := strings.Cut(f[3], haVIPA+":")
		if port, err := strconv.Atoi(p); err == nil && port >= 40000 && port <= 40799 {
			socks = append(socks, f[3])
		}
	}
	return socks
}

// TestCallsRingingAtServeFailover: the serve pair of
// TestCallsSurviveServeFailover with a call still ringing when node a is
// killed with -9. Early dialogs are not replicated (docs/ha.md): node b
// has no transaction for the call. The caller's CANCEL reaches node b and
// is answered 481, node b lists no call and writes no history row. Node b
// holds the standby copy of the call's relay session (replicated at the
// offer) until node a returns; node a's snapshot then removes it, and
// neither node keeps a relay port bound.
func TestCallsRingingAtServeFailover(t *testing.T) {
	r := startHACalls(t)
	l, a, b := r.l, r.a, r.b

	ring, _ := filepath.Abs("testdata/sipp/uas_ring.xml")
	startSippVia(t, r.inNS, "-sf", ring, "-i", haAddrIn, "-p", "5080", "-m", "1")
	cancel, _ := filepath.Abs("testdata/sipp/reg_ring_cancel.xml")
	caller := startSippVia(t, r.outNS, "-sf", cancel, "-key", "user", "alice", "-s", "1001", "-i", haAddrOut, "-p", "5062", "-mp", "6000",
		"-m", "1", haVIPA+":5060")
	// The call rings on node a: its relay session is replicated to node b.
	waitFor(t, 10*time.Second, func() bool {
		return len(l.relaySockets(t, "b")) > 0 &&
			strings.Contains(string(a.api.must(200, "GET", "/metrics", nil).body), "\nportico_ha_sync_lag_seconds 0\n")
	})
	a.kill()
	l.waitHolds("node a killed", map[string]map[string]bool{haVIPA: {"b": true}})
	b.waitState(51, "master")

	// The CANCEL, 3 s after the 180, reaches node b: 481.
	caller.wait(t, "outside caller")
	var calls []struct{ ID string }
	b.api.must(200, "GET", "/api/v1/calls", nil).json(t, &calls)
	if len(calls) != 0 {
		t.Errorf("node b lists %d calls: %+v", len(calls), calls)
	}
	held := l.relaySockets(t, "b")
	t.Logf("node b holds %d relay sockets of the lost call while node a is down: %v", len(held), held)

	a = l.serve("a", "a", r.dirA, haCallsNode(t, haAddrA, haAddrB))
	r.a = a
	a.waitRunning(t)
	waitFor(t, 10*time.Second, func() bool {
		return len(l.relaySockets(t, "a")) == 0 && len(l.relaySockets(t, "b")) == 0
	})
	for _, n := range []*haNode{a, b} {
		var hist []haCallRow
		n.api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
		if len(hist) != 0 {
			t.Errorf("node %s has history rows for the lost call: %+v", n.name, hist)
		}
	}
	if t.Failed() {
		t.Logf("node b:\n%s", b.out)
	}
}
