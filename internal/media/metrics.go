package media

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are looked up once in New; the packet path only adds to them
// (once per worker wake-up, not per packet).
type metrics struct {
	forwarded, forwardedBytes, strangers, noDest, sendErrors prometheus.Counter
	keepAlives, muxUnknown, lost                             prometheus.Counter
	relatched, timeouts, allocFailures, strandedCopies       prometheus.Counter
	sessions, streams, sockets                               prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	packets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portico", Subsystem: "media", Name: "packets_total",
		Help: "Datagrams handled by the media relay, by result.",
	}, []string{"result"})
	bytes := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "portico", Subsystem: "media", Name: "forwarded_bytes_total",
		Help: "Payload bytes forwarded by the media relay.",
	})
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portico", Subsystem: "media", Name: "events_total",
		Help: "Relay events: relatch, timeout, allocation_failure, standby_stranded.",
	}, []string{"event"})
	gauges := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "portico", Subsystem: "media", Name: "open",
		Help: "Open relay objects: sessions, streams, sockets.",
	}, []string{"object"})
	lost := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "portico", Subsystem: "media", Name: "packets_lost_total",
		Help: "RTP packets lost before the user-space relay: sequence numbers skipped in each leg's stream.",
	})
	cs := []prometheus.Collector{packets, bytes, events, gauges, lost}
	if reg != nil {
		for i, c := range cs {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
				cs[i] = are.ExistingCollector
			}
		}
		packets = cs[0].(*prometheus.CounterVec)
		bytes = cs[1].(prometheus.Counter)
		events = cs[2].(*prometheus.CounterVec)
		gauges = cs[3].(*prometheus.GaugeVec)
		lost = cs[4].(prometheus.Counter)
	}
	return &metrics{
		forwarded:      packets.WithLabelValues("forwarded"),
		strangers:      packets.WithLabelValues("dropped_stranger"),
		noDest:         packets.WithLabelValues("dropped_no_destination"),
		sendErrors:     packets.WithLabelValues("send_error"),
		keepAlives:     packets.WithLabelValues("keepalive"),
		muxUnknown:     packets.WithLabelValues("dropped_multiplex_unknown"),
		forwardedBytes: bytes,
		lost:           lost,
		relatched:      events.WithLabelValues("relatch"),
		timeouts:       events.WithLabelValues("timeout"),
		allocFailures:  events.WithLabelValues("allocation_failure"),
		strandedCopies: events.WithLabelValues("standby_stranded"),
		sessions:       gauges.WithLabelValues("sessions"),
		streams:        gauges.WithLabelValues("streams"),
		sockets:        gauges.WithLabelValues("sockets"),
	}, nil
}

// tally accumulates one worker's counts between flushes.
type tally struct {
	forwarded, forwardedBytes, strangers, noDest, sendErrors, relatched uint64
	keepAlives, muxUnknown, lost                                        uint64
}

func (t *tally) flush(m *metrics) {
	if t.forwarded != 0 {
		m.forwarded.Add(float64(t.forwarded))
		m.forwardedBytes.Add(float64(t.forwardedBytes))
	}
	if t.strangers != 0 {
		m.strangers.Add(float64(t.strangers))
	}
	if t.noDest != 0 {
		m.noDest.Add(float64(t.noDest))
	}
	if t.sendErrors != 0 {
		m.sendErrors.Add(float64(t.sendErrors))
	}
	if t.muxUnknown != 0 {
		m.muxUnknown.Add(float64(t.muxUnknown))
	}
	if t.keepAlives != 0 {
		m.keepAlives.Add(float64(t.keepAlives))
	}
	if t.relatched != 0 {
		m.relatched.Add(float64(t.relatched))
	}
	if t.lost != 0 {
		m.lost.Add(float64(t.lost))
	}
	*t = tally{}
}
