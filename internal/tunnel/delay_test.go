package tunnel

import (
	"testing"
	"time"
)

func TestDelayHist(t *testing.T) {
	tests := []struct {
		name string
		add  []time.Duration
		want DelayStats
	}{
		{"empty", nil, DelayStats{}},
		{"under a microsecond", []time.Duration{500 * time.Nanosecond}, DelayStats{Count: 1, P50: time.Microsecond, P99: time.Microsecond, P999: time.Microsecond, Max: time.Microsecond}},
		{"bucket bounds", []time.Duration{3 * time.Microsecond, 4 * time.Microsecond}, DelayStats{Count: 2, P50: 4 * time.Microsecond, P99: 8 * time.Microsecond, P999: 8 * time.Microsecond, Max: 8 * time.Microsecond}},
		{"beyond the last bucket", []time.Duration{time.Hour}, DelayStats{Count: 1, P50: 1 << 25 * time.Microsecond, P99: 1 << 25 * time.Microsecond, P999: 1 << 25 * time.Microsecond, Max: 1 << 25 * time.Microsecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h delayHist
			for _, d := range tc.add {
				h.add(d)
			}
			if got := h.stats(); got != tc.want {
				t.Errorf("stats = %+v, want %+v", got, tc.want)
			}
		})
	}
	// 98 fast and 2 slow: p50 and p99 differ, the maximum is the slow one.
	var h delayHist
	for range 98 {
		h.add(10 * time.Microsecond)
	}
	h.add(5 * time.Millisecond)
	h.add(5 * time.Millisecond)
	if s := h.stats(); s.P50 != 16*time.Microsecond || s.P99 != 8192*time.Microsecond || s.Max != 8192*time.Microsecond {
		t.Errorf("stats = %+v", s)
	}
}
