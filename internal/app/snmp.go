package app

import (
	"context"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/ha"
	"github.com/portico-edge/portico/internal/logging"
	"github.com/portico-edge/portico/internal/snmp"
	"github.com/portico-edge/portico/internal/store"
)

// buildSNMP makes the SNMP agent of cfg.
func (b *built) buildSNMP(cfg *config.Config, d serviceDeps) (*service, error) {
	prov := d.snmp
	if prov == nil {
		prov = noState{} // validation: nothing is served
	}
	node := d.node
	if node == "" {
		node = cfg.Node.Name
	}
	ag, err := snmp.New(cfg.SNMP, snmp.Env{Node: node, ManagementAddress: cfg.Interfaces.Management.Address, Version: Version, DataDir: d.dataDir},
		snmp.Deps{Logger: logging.Component(d.log, "snmp"), Registerer: d.reg, Provider: prov})
	if err != nil {
		return nil, asConfigErrors(err)
	}
	b.snmp = ag
	b.closers = append(b.closers, ag)
	b.reloads = append(b.reloads, reload{"snmp", func(next *config.Config) ([]string, error) {
		return ag.Reload(next.SNMP, snmp.Env{ManagementAddress: next.Interfaces.Management.Address})
	}})
	return &service{name: "snmp", run: ag.Run}, nil
}

// noState is the provider of an agent built only to validate a document.
type noState struct{}

func (noState) Snapshot() snmp.Snapshot { return snmp.Snapshot{} }

// recordEvent keeps e in the event history and hands it to the SNMP agent,
// which turns the events it knows into notifications (eventNotification).
func (a *App) recordEvent(e store.Event) {
	a.spool.AddEvent(e)
	if b := a.built; b != nil && b.snmp != nil {
		if n, ok := eventNotification(e); ok {
			b.snmp.Notify(n)
		}
	}
}

// eventNotification is the SNMP notification an event record stands for:
// the tunnel going down or up, and a console account locked. The
// notifications of state (services, store, HA, capacity, certificates) the
// agent finds itself by watching the node (nodeState).
func eventNotification(e store.Event) (snmp.Notification, bool) {
	switch {
	case e.Component == "tunnel" && strings.HasSuffix(e.Message, " up"):
		return snmp.Notification{Kind: snmp.ServiceUp, Component: e.Component, Message: e.Message}, true
	case e.Component == "tunnel":
		return snmp.Notification{Kind: snmp.ServiceDown, Component: e.Component, Message: e.Message}, true
	case e.Component == "management" && strings.Contains(e.Message, "locked"):
		return snmp.Notification{Kind: snmp.LoginLockout, Component: e.Component, Message: e.Message}, true
	}
	return snmp.Notification{}, false
}

// loginLockout records a console account locked after failed logins.
func (a *App) loginLockout(user, source string) {
	a.recordEvent(store.Event{Time: time.Now().UTC(), Severity: "warning", Component: "management",
		Message: "account " + user + " locked after repeated failed logins from " + source})
}

// nodeState is the node's state for the SNMP agent, read from the same
// sources as the API and the Prometheus metrics.
type nodeState struct{ a *App }

func (n nodeState) Snapshot() snmp.Snapshot {
	a := n.a
	s := snmp.Snapshot{Node: a.nodeName(), Version: Version, Started: a.started, StoreUp: a.storeErr.Load() == nil, HA: "disabled", Tunnel: "disabled"}
	if r := a.cur.Load(); r != nil {
		s.ConfigVersion = r.version.Version
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if a.built != nil {
		s.Ready = true
		for _, c := range a.ready(ctx) {
			s.Services = append(s.Services, snmp.Service{Name: c.Name, Up: c.OK, Error: c.Error})
			s.Ready = s.Ready && c.OK
		}
		if t := a.built.tunnel; t != nil {
			s.Tunnel = t.Stats().State
		}
		if h := a.built.ha; h != nil {
			s.HA = haRoles(h.Status())
		}
	}
	fams, _ := a.reg.Gather()
	m := metrics(fams)
	s.Protocols = []snmp.Protocol{
		{Name: "sip", Registrations: m.sum("portico_sip_registrations", "", ""), ActiveCalls: m.sum("portico_sip_calls_active", "", ""), CallsTotal: m.sum("portico_sip_calls_total", "", "")},
		{Name: "h323", Registrations: m.sum("portico_h323_registrations", "", ""), ActiveCalls: m.sum("portico_h323_calls", "", ""), CallsTotal: m.sum("portico_h323_calls_ended_total", "", "")},
	}
	s.Relay = snmp.Relay{Sessions: m.sum("portico_media_open", "object", "sessions"), Packets: m.sum("portico_media_packets_total", "", ""),
		Bytes: m.sum("portico_media_forwarded_bytes_total", "", ""), PacketsLost: m.sum("portico_media_packets_lost_total", "", "")}
	s.TURNAllocations = m.sum("portico_turn_allocations", "", "")
	s.CapacityRefused = map[string]uint64{
		"listener max_conns": m.sum("portico_listener_connections_refused_total", "reason", "max_conns"),
		"turn total_quota":   m.sum("portico_turn_allocation_rejections_total", "reason", "total_quota"),
		"turn no_port":       m.sum("portico_turn_allocation_rejections_total", "reason", "no_port"),
		"media allocation":   m.sum("portico_media_events_total", "event", "allocation_failure"),
	}
	if a.certs != nil {
		for _, c := range a.certs.List() {
			if !c.NotAfter.IsZero() {
				s.Certificates = append(s.Certificates, snmp.Certificate{Name: c.Name, NotAfter: c.NotAfter})
			}
		}
	}
	return s
}

// metrics indexes gathered metric families by name.
type metrics []*dto.MetricFamily

// sum adds the values of family name's series (those whose label equals
// value, when label is given).
func (ms metrics) sum(name, label, value string) uint64 {
	var total float64
	for _, f := range ms {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			if label != "" && !hasLabel(m, label, value) {
				continue
			}
			switch {
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Counter != nil:
				total += m.Counter.GetValue()
			}
		}
	}
	if total < 0 {
		return 0
	}
	return uint64(total)
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}

// haRoles names this node's role in each VIP group, e.g. "51 master, 52
// backup" ("initialize" before the speaker runs).
func haRoles(st ha.Status) string {
	if len(st.Groups) == 0 {
		return "initialize"
	}
	parts := make([]string, len(st.Groups))
	for i, g := range st.Groups {
		parts[i] = strconv.Itoa(g.VRID) + " " + g.State
	}
	return strings.Join(parts, ", ")
}
