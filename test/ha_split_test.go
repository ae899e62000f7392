package test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSplitBrainServePair: the serve pair of TestServePairFailover (each
// node owns one VIP, preemption on). The link between the nodes is cut:
// an nftables table in node b's namespace drops VRRP (IP protocol 112)
// both ways. Each node then hears no master and takes the other's group:
// both are masters of both groups and each VIP is on both nodes (ip addr).
// When the table goes, the masters hear each other: the lower priority of
// each group yields, one master remains per group, each VIP is on one
// node only, and the split brain is logged, counted
// (portico_ha_split_brain_total) and an event on the node that kept the
// group.
func TestSplitBrainServePair(t *testing.T) {
	l := newHALab(t, map[string]string{"a": haAddrA, "b": haAddrB, "o": haAddrOut})
	cfg := servePair(true)
	a := l.serve("a", "a", t.TempDir(), cfg)
	b := l.serve("b", "b", t.TempDir(), cfg)
	l.waitHolds("both nodes up", held(true, false, false, true))

	nft := func(script string) {
		t.Helper()
		cmd := exec.Command("ip", "netns", "exec", l.ns("b"), "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft in node b's namespace: %v\n%s", err, out)
		}
	}
	nft(`table inet splitbrain {
  chain in { type filter hook input priority 0; ip protocol 112 drop; }
  chain out { type filter hook output priority 0; ip protocol 112 drop; }
}`)
	cut := true
	t.Cleanup(func() {
		if cut {
			_ = exec.Command("ip", "netns", "exec", l.ns("b"), "nft", "delete", "table", "inet", "splitbrain").Run()
		}
	})
	l.waitHolds("link cut", held(true, true, true, true))
	a.waitState(52, "master")
	b.waitState(51, "master")

	nft("delete table inet splitbrain\n")
	cut = false
	l.waitHolds("link back", held(true, false, false, true))
	a.waitState(51, "master")
	a.waitState(52, "backup")
	b.waitState(51, "backup")
	b.waitState(52, "master")
	l.waitOptions(haVIPA + ":5060")
	l.waitOptions(haVIPB + ":5060")

	// Each node kept the group it owns against the other master: that
	// node counts the split brain and records one event for it; the one
	// that yielded records its transition.
	for _, w := range []struct {
		n     *haNode
		group string
	}{{a, "51"}, {b, "52"}} {
		n := w.n
		metrics := string(n.api.must(200, "GET", "/metrics", nil).body)
		if !strings.Contains(metrics, `portico_ha_split_brain_total{group="`+w.group+`"}`) || strings.Contains(metrics, `portico_ha_split_brain_total{group="`+w.group+`"} 0`+"\n") {
			t.Errorf("node %s counts no split brain in group %s:\n%s", n.name, w.group, grepLines(metrics, "portico_ha_"))
		}
		if !strings.Contains(n.out.String(), "another master on the segment") {
			t.Errorf("node %s logged no split brain", n.name)
		}
		var events []struct{ Component, Severity, Message string }
		n.api.must(200, "GET", "/api/v1/events", nil).json(t, &events)
		splits := 0
		for _, e := range events {
			if e.Component == "ha" && strings.Contains(e.Message, "split brain") {
				splits++
				if e.Severity != "warning" || !strings.HasPrefix(e.Message, "VIP group "+w.group+": split brain") {
					t.Errorf("node %s: split brain event %+v, want a warning for group %s", n.name, e, w.group)
				}
			}
		}
		if splits != 1 {
			t.Errorf("node %s has %d split brain events, want 1: %+v", n.name, splits, events)
		}
	}
	if t.Failed() {
		t.Logf("node a:\n%s\nnode b:\n%s", a.out, b.out)
	}
}
