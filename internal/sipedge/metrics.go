package sipedge

import (
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	registrations prometheus.Gauge
	regEvents     *prometheus.CounterVec
	callsActive   prometheus.Gauge
	calls         *prometheus.CounterVec
	serverUp      *prometheus.GaugeVec
	rejected      *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	txDuration    *prometheus.HistogramVec
	strayDialogs  prometheus.Counter
	// txRegister and txInvite are txDuration's handles, looked up once.
	txRegister, txInvite prometheus.Observer
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
		txDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portico_sip_transaction_duration_seconds",
			Help:    "Time from an outside REGISTER or initial INVITE arriving to its final response being sent, by method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 32}}, []string{"method"}),
		strayDialogs: prometheus.NewCounter(prometheus.CounterOpts{Name: "portico_sip_stray_answers_total",
			Help: "2xx answers to an INVITE no call knows, acknowledged and ended with BYE on the internal side."}),
	}
	m.txRegister = m.txDuration.WithLabelValues(string(sip.REGISTER))
	m.txInvite = m.txDuration.WithLabelValues(string(sip.INVITE))
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.registrations, m.regEvents, m.callsActive, m.calls, m.serverUp, m.rejected, m.dropped, m.txDuration, m.strayDialogs} {
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

// timedTx observes, on the first final response sent, the time since the
// request arrived (portico_sip_transaction_duration_seconds).
type timedTx struct {
	sip.ServerTransaction
	arrival time.Time
	obs     prometheus.Observer
	done    atomic.Bool
}

// timed wraps tx of a new outside REGISTER or INVITE that arrived at
// arrival; other requests keep tx as it is.
func (m *metrics) timed(tx sip.ServerTransaction, req *sip.Request, arrival time.Time) sip.ServerTransaction {
	if tx == nil {
		return tx
	}
	switch req.Method {
	case sip.REGISTER:
		return &timedTx{ServerTransaction: tx, arrival: arrival, obs: m.txRegister}
	case sip.INVITE:
		return &timedTx{ServerTransaction: tx, arrival: arrival, obs: m.txInvite}
	}
	return tx
}

func (t *timedTx) Respond(res *sip.Response) error {
	err := t.ServerTransaction.Respond(res)
	t.observe(res, err)
	return err
}

// respondFor passes truth on to a guarded transaction beneath.
func (t *timedTx) respondFor(res, truth *sip.Response) error {
	var err error
	if g, ok := t.ServerTransaction.(truthResponder); ok {
		err = g.respondFor(res, truth)
	} else {
		err = t.ServerTransaction.Respond(res)
	}
	t.observe(res, err)
	return err
}

func (t *timedTx) observe(res *sip.Response, err error) {
	if err == nil && res.StatusCode >= 200 && t.done.CompareAndSwap(false, true) {
		t.obs.Observe(time.Since(t.arrival).Seconds())
	}
}

// truthResponder sends a response while scoring the source by another
// (guardedTx, and timedTx over it).
type truthResponder interface {
	respondFor(res, truth *sip.Response) error
}
