package tunnel

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// delayHist counts durations in power-of-two microsecond buckets (bucket i
// holds those under 2^i µs, bucket 0 those under 1 µs), so that the
// steady path records one with an atomic add and no lock.
type delayHist struct{ b [26]atomic.Uint64 }

func (h *delayHist) add(d time.Duration) {
	i := 0
	if us := d.Microseconds(); us > 0 {
		i = min(bits.Len64(uint64(us)), len(h.b)-1)
	}
	h.b[i].Add(1)
}

// DelayStats summarises where one end holds flow datagrams, each figure
// the upper bound of a power-of-two bucket (a value v was under it and at
// least half of it).
type DelayStats struct {
	Count uint64        `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

func (h *delayHist) stats() DelayStats {
	var n [len(delayHist{}.b)]uint64
	var s DelayStats
	for i := range h.b {
		n[i] = h.b[i].Load()
		s.Count += n[i]
	}
	if s.Count == 0 {
		return s
	}
	bound := func(i int) time.Duration { return time.Duration(uint64(1)<<i) * time.Microsecond }
	var seen uint64
	for i, c := range n {
		seen += c
		if s.P50 == 0 && seen*2 >= s.Count {
			s.P50 = bound(i)
		}
		if s.P99 == 0 && seen*100 >= s.Count*99 {
			s.P99 = bound(i)
		}
		if s.P999 == 0 && seen*1000 >= s.Count*999 {
			s.P999 = bound(i)
		}
		if c > 0 {
			s.Max = bound(i)
		}
	}
	return s
}

// String is the summary as the bench prints it.
func (s DelayStats) String() string {
	return "p50 <" + s.P50.String() + " p99 <" + s.P99.String() + " p99.9 <" + s.P999.String() + " max <" + s.Max.String()
}
