package sipedge

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests      *prometheus.CounterVec
	registrations prometheus.Gauge
	regEvents     *prometheus.CounterVec
	callsActive   prometheus.Gauge
	calls         *prometheus.CounterVec
	serverUp      *prometheus.GaugeVec
	rejected      *prometheus.CounterVec
	dropped       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_sip_requests_total",
			Help: "SIP requests received, by interface and method."}, []string{"interface", "method"}),
		registrations: prometheus.NewGauge(prometheus.GaugeOpts{Name: "portico_sip_registrations",
			Help: "Registrations currently held."}),
		regEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_sip_registration_events_total",
			Help: "Registration events, by kind."}, []string{"kind"}),
		callsActive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "portico_sip_calls_active",
			Help: "Calls in progress."}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_sip_calls_total",
			Help: "Ended calls, by call type and whether they were answered."}, []string{"type", "answered"}),
		serverUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portico_sip_call_server_up",
			Help: "1 when the call server answers OPTIONS probes."}, []string{"address"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_sip_rejected_total",
			Help: "Requests refused by the edge, by reason."}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_sip_dropped_total",
			Help: "Messages dropped unanswered, by interface and reason (not_sip, malformed_ack, unparsable, scanner, overload)."}, []string{"interface", "reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.registrations, m.regEvents, m.callsActive, m.calls, m.serverUp, m.rejected, m.dropped} {
			if err := reg.Register(c); err != nil {
				if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
					_ = are
					continue
				}
			}
		}
	}
	return m
}
