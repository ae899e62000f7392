package app

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Commit is the source revision, set at build time (-ldflags -X); empty:
// the revision Go stamped into the binary, if any.
var Commit = ""

// registerOpsMetrics adds the node-wide metrics: build information (with
// the node's name), one readiness gauge per check, certificate expiry and
// relay port-pool usage. Each is computed when scraped.
func (a *App) registerOpsMetrics(node string) {
	commit := Commit
	if bi, ok := debug.ReadBuildInfo(); ok && commit == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				commit = s.Value
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "portico_build_info",
		Help:        "Always 1; the labels name the build and the node (join on node to label other series).",
		ConstLabels: prometheus.Labels{"version": Version, "go": runtime.Version(), "commit": commit, "node": node}})
	build.Set(1)
	a.reg.MustRegister(build, opsCollector{a})
}

var (
	readyDesc = prometheus.NewDesc("portico_ready_check",
		"1 when the readiness check passes, 0 when it fails (the checks of GET /readyz).", []string{"check"}, nil)
	certDesc = prometheus.NewDesc("portico_certificate_expiry_seconds",
		"Seconds until the stored certificate expires (negative once expired).", []string{"name"}, nil)
	portsDesc = prometheus.NewDesc("portico_media_port_pairs",
		"Media relay RTP/RTCP port pairs of an interface's range, by state (free, total).", []string{"interface", "state"}, nil)
)

// opsCollector computes the scrape-time gauges.
type opsCollector struct{ a *App }

func (c opsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- readyDesc
	ch <- certDesc
	ch <- portsDesc
}

func (c opsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for _, chk := range c.a.ready(ctx) {
		if seen[chk.Name] {
			continue // one series per check name
		}
		seen[chk.Name] = true
		v := 0.0
		if chk.OK {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, v, chk.Name)
	}
	if c.a.certs != nil {
		now := time.Now()
		for _, ci := range c.a.certs.List() {
			ch <- prometheus.MustNewConstMetric(certDesc, prometheus.GaugeValue, ci.NotAfter.Sub(now).Seconds(), ci.Name)
		}
	}
	if b := c.a.built; b != nil && b.relay != nil {
		cfg := b.relay.Config()
		for name, ic := range cfg.Interfaces {
			free, err := b.relay.Available(name)
			if err != nil {
				continue
			}
			base := ic.PortMin + ic.PortMin%2
			total := 0
			if ic.PortMax >= base+1 {
				total = (ic.PortMax - base + 1) / 2
			}
			ch <- prometheus.MustNewConstMetric(portsDesc, prometheus.GaugeValue, float64(free), name, "free")
			ch <- prometheus.MustNewConstMetric(portsDesc, prometheus.GaugeValue, float64(total), name, "total")
		}
	}
}

// timeHTTP observes how long each management request takes, by area
// (api, ui, metrics, health) and method. Event streams (server-sent
// events) last as long as the page is open and are not observed.
func timeHTTP(next http.Handler, reg prometheus.Registerer) http.Handler {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portico_http_request_duration_seconds",
		Help:    "Management requests (REST API, console, metrics, health) from arrival to the end of the answer, by area and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"area", "method"})
	reg.MustRegister(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		next.ServeHTTP(w, r)
		h.WithLabelValues(httpArea(r.URL.Path), httpMethod(r.Method)).Observe(time.Since(start).Seconds())
	})
}

func httpArea(p string) string {
	switch {
	case strings.HasPrefix(p, "/api/"):
		return "api"
	case p == "/metrics":
		return "metrics"
	case p == "/healthz" || p == "/readyz":
		return "health"
	default:
		return "ui"
	}
}

// httpMethod keeps the label's values few: any other method is "other".
func httpMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead:
		return m
	}
	return "other"
}
