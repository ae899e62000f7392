package h323

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stageNames are the steps of portico_h323_setup_stage_seconds, in order,
// then "portico": each call's setup less its callee step, the time spent
// in Portico (its CPU and the waits for one), per call.
var stageNames = []string{"admit", "dial", "forward", "callee", "connect", "portico"}

// stageHist is the cumulative bucket counts of each step's histogram, by
// upper bound in seconds (ascending, +Inf last).
type stageHist map[string][]bucket

// gcNames are the daemon's Go runtime figures read beside the steps:
// completed collections, and the heap in use and the next collection's
// goal at the time of the scrape.
var gcNames = []string{"go_gc_duration_seconds_count", "go_memstats_heap_inuse_bytes", "go_memstats_next_gc_bytes"}

// daemonStats is one scrape: the steps' histograms and the GC figures.
type daemonStats struct {
	steps stageHist
	gc    map[string]float64
}

// since is s minus the earlier scrape s0: the calls and collections
// between them (the heap figures are s's own).
func (s daemonStats) since(s0 daemonStats) daemonStats {
	gc := map[string]float64{}
	for k, v := range s.gc {
		gc[k] = v
	}
	gc[gcNames[0]] -= s0.gc[gcNames[0]]
	return daemonStats{steps: s.steps.since(s0.steps), gc: gc}
}

func (s daemonStats) String() string {
	return fmt.Sprintf("%v; %.0f collections, heap in use %.1f MB, next GC at %.1f MB", s.steps,
		s.gc[gcNames[0]], s.gc[gcNames[1]]/1e6, s.gc[gcNames[2]]/1e6)
}

type bucket struct {
	le    float64
	count float64
}

// scrapeStages reads the setup-step histograms and the GC figures from
// the daemon's metrics.
func scrapeStages(t *testing.T, mgmt netip.AddrPort) daemonStats {
	// The management listener's certificate is the daemon's own.
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get("https://" + mgmt.String() + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %s", resp.Status)
	}
	h := stageHist{}
	gc := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if name, val, ok := strings.Cut(line, " "); ok && slices.Contains(gcNames, name) {
			gc[name], _ = strconv.ParseFloat(val, 64)
			continue
		}
		// portico_h323_setup_stage_seconds_bucket{stage="admit",le="2e-05"} 12
		if !strings.HasPrefix(line, "portico_h323_setup_stage_seconds_bucket{") {
			continue
		}
		lbl, val, ok := strings.Cut(line[len("portico_h323_setup_stage_seconds_bucket{"):], "} ")
		if !ok {
			continue
		}
		var stage, le string
		for _, kv := range strings.Split(lbl, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "stage":
				stage = v
			case "le":
				le = v
			}
		}
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(val, 64)
		if stage == "" || err1 != nil || err2 != nil {
			continue
		}
		h[stage] = append(h[stage], bucket{bound, n})
	}
	return daemonStats{steps: h, gc: gc}
}

// since is h minus the earlier scrape h0: the calls between them.
func (h stageHist) since(h0 stageHist) stageHist {
	out := stageHist{}
	for st, bs := range h {
		prev := h0[st]
		d := make([]bucket, len(bs))
		for i, b := range bs {
			d[i] = b
			if i < len(prev) {
				d[i].count -= prev[i].count
			}
		}
		out[st] = d
	}
	return out
}

// quantile is the q-quantile of one step in seconds, interpolated within
// its bucket (as Prometheus' histogram_quantile does).
func (h stageHist) quantile(stage string, q float64) float64 {
	bs := h[stage]
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return 0
	}
	rank := q * bs[len(bs)-1].count
	lo, below := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if b.le > 1e9 { // +Inf: the last finite bound
				return lo
			}
			if b.count == below {
				return b.le
			}
			return lo + (b.le-lo)*(rank-below)/(b.count-below)
		}
		lo, below = b.le, b.count
	}
	return lo
}

func (h stageHist) String() string {
	var parts []string
	for _, st := range stageNames {
		parts = append(parts, fmt.Sprintf("%s %.2f / %.2f", st, h.quantile(st, 0.5)*1e3, h.quantile(st, 0.99)*1e3))
	}
	n := 0.0
	if bs := h["admit"]; len(bs) > 0 {
		n = bs[len(bs)-1].count
	}
	return fmt.Sprintf("%s ms (p50 / p99, %.0f calls)", strings.Join(parts, ", "), n)
}
