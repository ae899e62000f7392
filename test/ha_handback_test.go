package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// longCallScenario is reg_call.xml with the caller's 7 s G.711 file played
// three times back to back, so that RTP flows for about 21 s after the
// answer, then the -d pause and the BYE.
func longCallScenario(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../internal/sipedge/testdata/sipp/reg_call.xml")
	if err != nil {
		t.Fatal(err)
	}
	const again = `<pause milliseconds="7050"/>
  <nop>
    <action>
      <exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/>
    </action>
  </nop>
  `
	s := string(b)
	if strings.Count(s, "<pause/>") != 1 {
		t.Fatal("reg_call.xml has not exactly one <pause/>")
	}
	s = strings.Replace(s, "<pause/>", again+again+"<pause/>", 1)
	file := filepath.Join(t.TempDir(), "reg_long_call.xml")
	if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestCallsSurviveHandBack: the calls of TestCallsSurviveServeFailover, up
// on node a, survive its kill -9 on node b, and come back with it: node a
// restarts with the same file (preemption on), resynchronises from node b
// before it claims, and takes VIP .100 back while the calls are in
// progress. The callers keep receiving RTP after the hand-back, their BYEs
// (sent after the hand-back) are answered and reach the callee, and the
// two nodes' histories together hold exactly one row per call.
func TestCallsSurviveHandBack(t *testing.T) {
	const calls = 5
	r := startHACalls(t)
	l, a, b := r.l, r.a, r.b

	// RTP for ~21 s after the answer, the BYE 1 s later: long after
	// node a holds the VIP again.
	callee, caller, live := r.placeCalls(t, calls, longCallScenario(t), 1000)

	a.kill()
	l.waitHolds("node a killed", map[string]map[string]bool{haVIPA: {"b": true}})
	b.waitState(51, "master")
	// Node b keeps the calls dormant: it lists them only once a request
	// within one of their dialogs reaches it.
	time.Sleep(time.Second)

	a = l.serve("a", "a", r.dirA, haCallsNode(t, haAddrA, haAddrB))
	l.waitHolds("node a back, preemption", held(true, false, false, true))
	back := time.Now()
	a.waitState(51, "master")
	b.waitState(51, "backup")
	// Node a's restart dropped the calls from its snapshot while node b's
	// relay carried their media: node b took them over and replicated
	// them to node a. They stay node b's until a request within them
	// reaches node a; none has yet, so the callers' BYEs come after the
	// hand-back.
	var onB []struct{ ID string }
	b.api.must(200, "GET", "/api/v1/calls", nil).json(t, &onB)
	if len(onB) != calls {
		t.Errorf("node b lists %d calls at the hand-back, want %d: %+v", len(onB), calls, onB)
	}

	caller.wait(t, "outside callers")
	callee.wait(t, "inside callee")
	worst := checkStreams(t, r.rtpAround(back), calls, "hand-back")
	t.Logf("hand-back gap (worst call): %.0f ms", worst*1000)
	for _, n := range []*haNode{a, b} {
		var left []struct{ ID string }
		n.api.must(200, "GET", "/api/v1/calls", nil).json(t, &left)
		if len(left) != 0 {
			t.Errorf("node %s lists %d calls after the BYEs: %+v", n.name, len(left), left)
		}
	}

	// One row per call across the two nodes.
	rows := map[string]int{}
	var all []haCallRow
	waitFor(t, 10*time.Second, func() bool {
		clear(rows)
		all = all[:0]
		for _, n := range []*haNode{a, b} {
			var hist []haCallRow
			n.api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
			for _, h := range hist {
				rows[h.ID]++
			}
			all = append(all, hist...)
		}
		return len(all) >= calls
	})
	for _, h := range all {
		checkHistoryRow(t, "a or b", h)
	}
	for _, c := range live {
		if rows[c.ID] != 1 {
			t.Errorf("call %s has %d history rows across the nodes, want 1", c.ID, rows[c.ID])
		}
	}
	if len(all) != calls {
		t.Errorf("%d history rows across the nodes for %d calls: %+v", len(all), calls, all)
	}
	if t.Failed() {
		t.Logf("node a:\n%s\nnode b:\n%s", a.out, b.out)
	}
}
