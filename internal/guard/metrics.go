package guard

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	observed     [numKinds]prometheus.Counter
	blocks       *prometheus.CounterVec
	evicted      prometheus.Counter
	kernelErrors prometheus.Counter
	limited      [numLimits]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, g *Guard) *metrics {
	obs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_guard_observations_total",
		Help: "Events counted against sources, by kind."}, []string{"kind"})
	m := &metrics{
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_guard_blocks_total",
			Help: "Sources blocked, by reason (the kind whose limit was reached, user, or manual)."}, []string{"reason"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "portico_guard_evictions_total",
			Help: "Scored sources forgotten to keep the table within max_sources."}),
		kernelErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "portico_guard_kernel_errors_total",
			Help: "Blocks that could not be mirrored into the kernel set."}),
	}
	for k := range numKinds {
		m.observed[k] = obs.WithLabelValues(k.String())
	}
	lim := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_guard_rate_limited_total",
		Help: "Requests refused by the per-source rate limits, by method."}, []string{"method"})
	for k := range numLimits {
		m.limited[k] = lim.WithLabelValues(k.String())
	}
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portico_guard_blocked_sources",
		Help: "Blocks in force."}, func() float64 {
		bs := g.blocks.Load()
		return float64(len(bs.exact) + len(bs.wide))
	})
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_guard_dropped_total",
		Help: "Packets and connections dropped from blocked sources."}, func() float64 { return float64(g.dropped.Load()) })
	tracked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portico_guard_tracked_sources",
		Help: "Sources being scored."}, func() float64 { return float64(g.sources.len()) })
	if reg != nil {
		for _, c := range []prometheus.Collector{obs, lim, m.blocks, m.evicted, m.kernelErrors, active, dropped, tracked} {
			_ = reg.Register(c) // a second guard on one registry (tests) keeps the first's
		}
	}
	return m
}
