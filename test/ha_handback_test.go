package test

import (
	"os"
	"path/filepath"
	"slices"
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

// failOver places calls whose RTP flows for ~21 s after their answer and
// whose BYE follows 1 s later (long after a hand-back), kills node a with
// -9 while they are up and waits until node b holds VIP .100.
func (r *haCallsRig) failOver(t *testing.T, calls int) (callee, caller *sippRun, live []struct{ ID string }) {
	t.Helper()
	callee, caller, live = r.placeCalls(t, calls, longCallScenario(t), 1000)
	r.a.kill()
	r.l.waitHolds("node a killed", map[string]map[string]bool{haVIPA: {"b": true}})
	r.b.waitState(51, "master")
	// Node b keeps the calls dormant: it lists them only once a request
	// within one of their dialogs reaches it.
	time.Sleep(time.Second)
	return callee, caller, live
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
	l, b := r.l, r.b
	callee, caller, live := r.failOver(t, calls)

	a := l.serve("a", "a", r.dirA, haCallsNode(t, haAddrA, haAddrB))
	r.a = a
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
	checkHandedBack(t, r, back, live)
}

// checkHandedBack, once the calls live ended, asserts that every call's RTP reached its caller on both sides of the
// hand-back at back, that neither node lists a call, and that the two
// nodes' histories together hold exactly one row per call.
func checkHandedBack(t *testing.T, r *haCallsRig, back time.Time, live []struct{ ID string }) {
	t.Helper()
	calls := len(live)
	a, b := r.a, r.b
	logGaps(t, checkStreams(t, r.rtpAround(back), calls, "hand-back"), "hand-back")
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

// TestCallsSurviveHandBackNoPreempt: the calls of TestCallsSurviveHandBack
// with preemption off. Node a restarts after its kill -9 and stays backup
// while node b keeps VIP .100 and the calls; `POST /api/v1/cluster/handback`
// on node b gives the VIP back. The callers keep receiving RTP across the
// hand-back, their BYEs (sent after it) are answered and reach the callee,
// and the two nodes' histories together hold exactly one row per call.
func TestCallsSurviveHandBackNoPreempt(t *testing.T) {
	const calls = 5
	r := startHACallsPreempt(t, false)
	l, b := r.l, r.b
	callee, caller, live := r.failOver(t, calls)

	a := l.serve("a", "a", r.dirA, haCallsNodePreempt(t, haAddrA, haAddrB, false))
	r.a = a
	a.waitRunning(t)
	time.Sleep(time.Second) // ten advertisement intervals: nothing moves
	l.waitHolds("node a back, no preemption", held(false, true, false, true))
	a.waitState(51, "backup")
	var onB []struct{ ID string }
	b.api.must(200, "GET", "/api/v1/calls", nil).json(t, &onB)
	if len(onB) != calls {
		t.Errorf("node b lists %d calls before the hand-back, want %d: %+v", len(onB), calls, onB)
	}

	var hb struct{ Yielded []int }
	b.api.must(200, "POST", "/api/v1/cluster/handback", map[string]string{}).json(t, &hb)
	back := time.Now()
	if !slices.Equal(hb.Yielded, []int{51}) {
		t.Errorf("node b yielded %v, want [51]", hb.Yielded)
	}
	l.waitHolds("hand-back", held(true, false, false, true))
	a.waitState(51, "master")
	b.waitState(51, "backup")

	caller.wait(t, "outside callers")
	callee.wait(t, "inside callee")
	checkHandedBack(t, r, back, live)
}
