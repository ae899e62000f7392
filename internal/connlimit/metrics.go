package connlimit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	refused      *prometheus.CounterVec
	closed       *prometheus.CounterVec
	acceptErrors *prometheus.CounterVec
	active       *prometheus.GaugeVec
}

// listenerMetrics are one listener's handles, looked up once.
type listenerMetrics struct {
	name         string
	all          *metrics
	acceptErrors prometheus.Counter
	active       prometheus.Gauge
}

func (m listenerMetrics) refused(reason string) prometheus.Counter {
	return m.all.refused.WithLabelValues(m.name, reason)
}

func (m listenerMetrics) closed(reason string) prometheus.Counter {
	return m.all.closed.WithLabelValues(m.name, reason)
}

func (m *metrics) forListener(name string) listenerMetrics {
	return listenerMetrics{name: name, all: m,
		acceptErrors: m.acceptErrors.WithLabelValues(name), active: m.active.WithLabelValues(name)}
}

// newMetrics makes the metric families, or reuses those another listener
// already registered with reg.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portico", Subsystem: "listener",
			Name: "connections_refused_total", Help: "Connections closed at accept, by listener and reason (max_conns, per_source, descriptors)."},
			[]string{"listener", "reason"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portico", Subsystem: "listener",
			Name: "connections_expired_total", Help: "Connections closed by the listener's timeouts, by listener and reason (handshake_timeout, idle_timeout)."},
			[]string{"listener", "reason"}),
		acceptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portico", Subsystem: "listener",
			Name: "accept_errors_total", Help: "Failed accepts (retried with backoff), by listener."}, []string{"listener"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "portico", Subsystem: "listener",
			Name: "connections_active", Help: "Connections open, by listener."}, []string{"listener"}),
	}
	if reg == nil {
		return m
	}
	m.refused = register(reg, m.refused)
	m.closed = register(reg, m.closed)
	m.acceptErrors = register(reg, m.acceptErrors)
	m.active = register(reg, m.active)
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if prev, ok := are.ExistingCollector.(C); ok {
				return prev
			}
		}
	}
	return c
}
