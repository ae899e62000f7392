package h323proxy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	received      *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	registrations prometheus.Gauge
	regEvents     *prometheus.CounterVec
	traversal     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_h323_ras_received_total",
			Help: "RAS messages received, by interface and message (RRQ, ARQ, ...)."}, []string{"interface", "message"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_h323_ras_dropped_total",
			Help: "RAS datagrams dropped unanswered, by interface and reason (malformed, oversize, acl, blocked, unknown_source, unmatched, unsupported, pending_full)."}, []string{"interface", "reason"}),
		registrations: prometheus.NewGauge(prometheus.GaugeOpts{Name: "portico_h323_registrations",
			Help: "Outside H.323 endpoints currently registered through Portico."}),
		regEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_h323_registration_events_total",
			Help: "H.323 registration events, by kind (registered, rejected, unregistered, expired)."}, []string{"kind"}),
		traversal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_h323_traversal_total",
			Help: "H.460.18 incoming-call indications, by outcome (bound, no_answer, no_connection, timeout)."}, []string{"outcome"}),
	}
	m.register(reg, m.received, m.dropped, m.registrations, m.regEvents, m.traversal)
	return m
}

// register adds cs to reg (nil: none); one already registered, by an
// earlier server of a reloaded configuration, stays.
func (m *metrics) register(reg prometheus.Registerer, cs ...prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		var are prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &are) {
			continue
		}
	}
}
