package hasync

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	sent, received, applyErrors, dropped prometheus.Counter
	resyncConnect, resyncOverflow        prometheus.Counter
	linkErrors                           prometheus.Counter
}

// newMetrics registers the node's collectors; lag reports the replication
// lag in seconds when scraped. A node registers its collectors once per
// registry (a second node on one registry is an error).
func newMetrics(reg prometheus.Registerer, lag func() float64) (*metrics, error) {
	records := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portico", Subsystem: "ha_sync", Name: "records_total",
		Help: "State records replicated: sent to the peer, received from it, dropped from a full queue (a resync follows), refused by the service applying them.",
	}, []string{"direction"})
	resyncs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portico", Subsystem: "ha_sync", Name: "resyncs_total",
		Help: "Full snapshots sent to the peer, by reason: connect (the link was (re)established) or overflow (the change queue was full).",
	}, []string{"reason"})
	lagG := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "portico", Subsystem: "ha_sync", Name: "lag_seconds",
		Help: "Age of the oldest state change the peer has not acknowledged yet; 0 when it has every change.",
	}, lag)
	errs := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "portico", Subsystem: "ha_sync", Name: "link_errors_total",
		Help: "Replication links that failed (dial, authentication, malformed frame, timeout).",
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{records, resyncs, lagG, errs} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return &metrics{
		sent:           records.WithLabelValues("sent"),
		received:       records.WithLabelValues("received"),
		dropped:        records.WithLabelValues("dropped"),
		applyErrors:    records.WithLabelValues("refused"),
		resyncConnect:  resyncs.WithLabelValues("connect"),
		resyncOverflow: resyncs.WithLabelValues("overflow"),
		linkErrors:     errs,
	}, nil
}
