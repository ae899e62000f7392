package ha

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/config/field"
)

// TestNodeOwnership: a node owns the groups where no other node has a
// priority as high as its own; group priorities override the nodes'.
func TestNodeOwnership(t *testing.T) {
	sec := Section{Enabled: true, Interface: "eth0", Groups: []Group{
		{VRID: 51, Addresses: []string{"192.0.2.100"}, Peers: []string{"192.0.2.1", "192.0.2.2"}, Priorities: map[string]int{"a": 150, "b": 100}},
		{VRID: 52, Addresses: []string{"192.0.2.101"}, Peers: []string{"192.0.2.1", "192.0.2.2"}, Priorities: map[string]int{"a": 100, "b": 150}},
		{VRID: 53, Addresses: []string{"192.0.2.102"}, Peers: []string{"192.0.2.1", "192.0.2.2"}},
	}}
	reg := prometheus.NewRegistry()
	n, err := NewNode(NodeConfig{Section: sec, Name: "a", Priorities: map[string]int{"a": 120, "b": 100}}, NodeDeps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for vrid, want := range map[int]bool{51: true, 52: false, 53: true} {
		if n.Owned(vrid) != want {
			t.Errorf("group %d owned: %v, want %v", vrid, !want, want)
		}
	}
	if got := testutil.CollectAndCount(reg, "portico_ha_state"); got != 3 {
		t.Errorf("portico_ha_state has %d series, want one per group", got)
	}
	if _, err := n.Handback(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("hand-back before Run: %v", err)
	}
	if st := n.Status(); st.Running || len(st.Groups) != 3 || st.Groups[1].State != "initialize" || st.Groups[1].Owner {
		t.Errorf("status before Run: %+v", st)
	}
	// Equal priorities: neither node owns the group.
	n, err = NewNode(NodeConfig{Section: Section{Enabled: true, Interface: "eth0", Groups: sec.Groups[2:]}, Name: "a", Priorities: map[string]int{"a": 100, "b": 100}}, NodeDeps{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Owned(53) {
		t.Error("a tie is owned")
	}
}

// TestNodeRefusesBadSections: what the speaker cannot run is refused with
// the field at fault.
func TestNodeRefusesBadSections(t *testing.T) {
	tests := []struct {
		name string
		sec  Section
		path string
	}{
		{"disabled", Section{Interface: "eth0", Groups: []Group{{VRID: 1, Addresses: []string{"192.0.2.100"}, Peers: []string{"192.0.2.1"}}}}, "ha.enabled"},
		{"ipv6 peer not link-local", Section{Enabled: true, Interface: "eth0", Groups: []Group{{VRID: 1, Addresses: []string{"2001:db8::1"}, Peers: []string{"fe80::1", "2001:db8::2"}}}}, "ha.groups[0].peers[1]"},
		{"no peers", Section{Enabled: true, Interface: "eth0", Groups: []Group{{VRID: 1, Addresses: []string{"192.0.2.100"}}}}, "ha.groups[0].peers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewNode(NodeConfig{Section: tc.sec, Name: "a", Priorities: map[string]int{"a": 100}}, NodeDeps{})
			es, ok := field.As(err)
			if !ok || len(es) == 0 || es[0].Path != tc.path {
				t.Errorf("got %v, want an error at %s", err, tc.path)
			}
		})
	}
}

// TestNodeSplitBrainReports: a master of some standing that hears another
// master and keeps the group counts every such advertisement; subscribers
// hear of the split brain once when it starts, again only after
// splitQuiet without one. A node that just became master (a preemption
// or takeover) or that yields counts nothing.
func TestNodeSplitBrainReports(t *testing.T) {
	sec := Section{Enabled: true, Interface: "eth0", Groups: []Group{
		{VRID: 51, Addresses: []string{"192.0.2.100"}, Peers: []string{"192.0.2.1", "192.0.2.2"}, Priorities: map[string]int{"a": 150, "b": 100}, Interval: field.Duration(100 * time.Millisecond)},
	}}
	reg := prometheus.NewRegistry()
	n, err := NewNode(NodeConfig{Section: sec, Name: "a", Priorities: map[string]int{"a": 100, "b": 100}}, NodeDeps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	var got []Transition
	n.Subscribe(func(tr Transition) { got = append(got, tr) })
	other := netip.MustParseAddr("192.0.2.2")
	kept := Actions{From: Master, To: Master, SplitBrain: true, Other: other}
	count := func() float64 { return testutil.ToFloat64(n.splits.WithLabelValues("51")) }

	// Just became master: the old master's last advertisements.
	n.transition(51, Actions{From: Backup, To: Master})
	got = nil
	n.splitBrain(51, kept)
	if len(got) != 0 || count() != 0 {
		t.Fatalf("a takeover reported as a split brain: %+v, count %v", got, count())
	}
	// Master for a while: a split brain.
	n.masterSince[51] = n.masterSince[51].Add(-splitAfter * 100 * time.Millisecond)
	for range 3 {
		n.splitBrain(51, kept)
	}
	if len(got) != 1 || got[0].Other != other || got[0].From != Master || got[0].To != Master || len(got[0].VIPs) != 1 {
		t.Fatalf("reports of one split brain: %+v", got)
	}
	// Heard again after splitQuiet: a new one.
	n.lastSplit[51] = n.lastSplit[51].Add(-splitQuiet)
	n.splitBrain(51, kept)
	if len(got) != 2 || count() != 4 {
		t.Fatalf("reports after a quiet spell: %+v, count %v", got, count())
	}
	// The node that yields reports its transition, not a split brain.
	n.splitBrain(51, Actions{From: Master, To: Backup, SplitBrain: true, Other: other})
	if len(got) != 2 || count() != 4 {
		t.Fatalf("a yield reported as a split brain: %+v, count %v", got, count())
	}
}
