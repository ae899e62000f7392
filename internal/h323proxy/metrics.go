package h323proxy

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/h323proxy/callsig"
)

type metrics struct {
	received      *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	registrations prometheus.Gauge
	regEvents     *prometheus.CounterVec
	traversal     *prometheus.CounterVec
	setup         *prometheus.HistogramVec
	// setupStage are setup's handles by stage, looked up once;
	// setupOwn is the "portico" one.
	setupStage [len(setupStages)]prometheus.Observer
	setupOwn   prometheus.Observer
}

// setupStages name the steps of a call setup (callsig.SetupTimes) in
// portico_h323_setup_stage_seconds.
var setupStages = [...]string{"admit", "dial", "forward", "callee", "connect"}

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
		setup: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portico_h323_setup_stage_seconds",
			Help:    "Time of each step of an answered H.323 call's setup through Portico: admit (Setup read to policy and route decided), dial (connection to the called side), forward (Setup rewritten, relay ports allocated, written), callee (Setup written to Connect read: the called side), connect (Connect rewritten and written to the caller); portico is the call's whole setup less the callee step, the time Portico adds to it.",
			Buckets: prometheus.ExponentialBucketsRange(20e-6, 2, 32)}, []string{"stage"}),
	}
	for i, st := range setupStages {
		m.setupStage[i] = m.setup.WithLabelValues(st)
	}
	m.setupOwn = m.setup.WithLabelValues("portico")
	m.register(reg, m.received, m.dropped, m.registrations, m.regEvents, m.traversal, m.setup)
	return m
}

// observeSetup records the steps of one call's setup.
func (m *metrics) observeSetup(t callsig.SetupTimes) {
	at := [...]time.Time{t.Read, t.Admitted, t.Dialled, t.Forwarded, t.Answered, t.Connected}
	for i := range m.setupStage {
		if !at[i].IsZero() && !at[i+1].IsZero() {
			m.setupStage[i].Observe(at[i+1].Sub(at[i]).Seconds())
		}
	}
	for _, x := range at {
		if x.IsZero() {
			return
		}
	}
	// Per call, not a sum of the steps' quantiles.
	m.setupOwn.Observe((t.Connected.Sub(t.Read) - t.Answered.Sub(t.Forwarded)).Seconds())
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
