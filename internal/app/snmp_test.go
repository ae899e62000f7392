package app

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/ha"
	"github.com/portico-edge/portico/internal/snmp"
	"github.com/portico-edge/portico/internal/store"
)

// TestEventNotification: the tunnel's state events and console lockouts
// become SNMP notifications; other events do not.
func TestEventNotification(t *testing.T) {
	for _, tc := range []struct {
		e    store.Event
		kind snmp.Kind
		ok   bool
	}{
		{store.Event{Component: "tunnel", Message: "tunnel client up"}, snmp.ServiceUp, true},
		{store.Event{Component: "tunnel", Message: "tunnel client down"}, snmp.ServiceDown, true},
		{store.Event{Component: "management", Message: "account admin locked after repeated failed logins from 192.0.2.1"}, snmp.LoginLockout, true},
		{store.Event{Component: "guard", Message: "blocked 192.0.2.1/32: flood"}, 0, false},
	} {
		n, ok := eventNotification(tc.e)
		if ok != tc.ok || n.Kind != tc.kind || (ok && n.Message != tc.e.Message) {
			t.Errorf("%+v -> %+v %v, want %v %v", tc.e, n, ok, tc.kind, tc.ok)
		}
	}
}

// TestMetricsSum: the node's state for SNMP adds a family's series, or
// those with one label value.
func TestMetricsSum(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_turn_allocation_rejections_total"}, []string{"reason"})
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portico_sip_registrations"}, []string{"interface"})
	reg.MustRegister(c, g)
	c.WithLabelValues("total_quota").Add(3)
	c.WithLabelValues("no_port").Add(2)
	g.WithLabelValues("a").Set(4)
	g.WithLabelValues("b").Set(5)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := metrics(fams)
	for _, tc := range []struct {
		name, label, value string
		want               uint64
	}{
		{"portico_turn_allocation_rejections_total", "reason", "total_quota", 3},
		{"portico_turn_allocation_rejections_total", "", "", 5},
		{"portico_sip_registrations", "", "", 9},
		{"portico_absent", "", "", 0},
	} {
		if got := m.sum(tc.name, tc.label, tc.value); got != tc.want {
			t.Errorf("sum(%s, %s=%s) = %d, want %d", tc.name, tc.label, tc.value, got, tc.want)
		}
	}
}

// TestHARoles: the SNMP HA object names each group's role.
func TestHARoles(t *testing.T) {
	if got := haRoles(ha.Status{}); got != "initialize" {
		t.Errorf("no groups: %q", got)
	}
	st := ha.Status{Groups: []ha.GroupStatus{{VRID: 51, State: "master"}, {VRID: 52, State: "backup"}}}
	if got := haRoles(st); got != "51 master, 52 backup" {
		t.Errorf("two groups: %q", got)
	}
}
