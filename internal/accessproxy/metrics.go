package accessproxy

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	conns    *prometheus.CounterVec
	routed   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	active   prometheus.Gauge
	requests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portico", Subsystem: "accessproxy",
			Name: "connections_total", Help: "Connections accepted, by detected protocol."}, []string{"kind"}),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portico", Subsystem: "accessproxy",
			Name: "routed_total", Help: "Connections and HTTP requests routed, by route."}, []string{"route"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portico", Subsystem: "accessproxy",
			Name: "rejected_total", Help: "Connections or requests refused, by reason."}, []string{"reason"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "portico", Subsystem: "accessproxy",
			Name: "active_connections", Help: "Connections open on the shared port(s) and TCP mappings."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portico", Subsystem: "accessproxy",
			Name: "http_responses_total", Help: "HTTP responses by route and status class."}, []string{"route", "class"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.conns, m.routed, m.rejected, m.active, m.requests} {
			_ = reg.Register(c)
		}
	}
	return m
}
