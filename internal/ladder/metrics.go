package ladder

import "github.com/prometheus/client_golang/prometheus"

// Register exports the store's counters to reg (nil: nothing). A metric
// already registered (a second store on the same registry) is skipped.
func (s *Store) Register(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	for _, c := range []prometheus.Collector{
		gauge("portico_ladder_calls", "Calls whose signalling is kept.", func() float64 { c, _, _ := s.Len(); return float64(c) }),
		gauge("portico_ladder_bytes", "Bytes of message text kept.", func() float64 { _, _, b := s.Len(); return float64(b) }),
		gauge("portico_ladder_traces", "Live SIP traces running.", func() float64 { return float64(s.Subscribers()) }),
		counter("portico_ladder_messages_kept_total", "Messages stored.", func() float64 { return float64(s.stats.Kept.Load()) }),
		counter("portico_ladder_messages_dropped_total", "Messages not stored for the per-call bound.", func() float64 { return float64(s.stats.Dropped.Load()) }),
		counter("portico_ladder_evicted_total", "Calls and pending dialogs evicted for the count and byte bounds.", func() float64 { return float64(s.stats.Evicted.Load()) }),
	} {
		reg.Register(c) // AlreadyRegisteredError: the first store's stay
	}
}
