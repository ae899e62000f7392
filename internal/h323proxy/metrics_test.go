package h323proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/portico-edge/portico/internal/h323proxy/callsig"
)

// TestSetupStages: each step of a setup goes to its stage, and "portico"
// gets the whole setup less the callee's step, per call; a setup missing
// a moment (never answered) gives no "portico" sample.
func TestSetupStages(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	t0 := time.Now()
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	// admit 1, dial 2, forward 1, callee 10, connect 1: Portico adds 5 ms.
	m.observeSetup(callsig.SetupTimes{Read: ms(0), Admitted: ms(1), Dialled: ms(3), Forwarded: ms(4), Answered: ms(14), Connected: ms(15)})
	m.observeSetup(callsig.SetupTimes{Read: ms(0), Admitted: ms(1), Dialled: ms(3), Forwarded: ms(4)})
	got := map[string]*dto.Histogram{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "portico_h323_setup_stage_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			got[mt.GetLabel()[0].GetValue()] = mt.GetHistogram()
		}
	}
	for stage, want := range map[string]struct {
		n   uint64
		sum float64
	}{"admit": {2, 0.002}, "dial": {2, 0.004}, "forward": {2, 0.002}, "callee": {1, 0.010}, "connect": {1, 0.001}, "portico": {1, 0.005}} {
		h := got[stage]
		if h == nil || h.GetSampleCount() != want.n || h.GetSampleSum() < want.sum-1e-9 || h.GetSampleSum() > want.sum+1e-9 {
			t.Errorf("stage %s: %v, want %d samples summing to %v s", stage, h, want.n, want.sum)
		}
	}
}
