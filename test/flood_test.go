package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// TestRejectedFloodKeepsNodeReady: 40,000 rejected guest INVITEs sent by
// sipp as fast as it can (loopback on the guard's allow list) leave /readyz at 200 throughout (history waiting
// for the store is not a reason to pull the node), and call history holds
// a few rows that count them instead of one row each.
func TestRejectedFloodKeepsNodeReady(t *testing.T) {
	sipp := testpeer.Require(t, "sipp")[0]
	dir := t.TempDir()
	mgmt := freeAddr(t)
	extPort, intPort := testpeer.FreePort(t), testpeer.FreePort(t)
	cfg := sipNodeConfig(mgmt, extPort, intPort, "127.0.0.9:5999")
	cfg = strings.Replace(cfg, "level: info", "level: error", 1)
	// The guard would rate-limit and then block this one loopback source
	// within a second; a real flood comes from spoofed addresses that no
	// per-source limit holds back, which allow-listing loopback stands for.
	cfg += "guard:\n  allow: [127.0.0.0/8]\n"
	d := startDaemon(t, dir, cfg, mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	c := newClient(t, d.url)
	c.csrf = true
	c.must(200, "POST", "/api/v1/login", map[string]string{"name": "admin", "password": adminPassword})

	// Readiness, polled all through the flood.
	probe := insecureClient(nil)
	stop := make(chan struct{})
	var mu sync.Mutex
	var probes int
	var unready []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			resp, err := probe.Get(d.url + "/readyz")
			mu.Lock()
			probes++
			if err != nil {
				unready = append(unready, err.Error())
			} else {
				if resp.StatusCode != http.StatusOK {
					var b bytes.Buffer
					b.ReadFrom(resp.Body)
					unready = append(unready, fmt.Sprint(resp.StatusCode, " ", b.String()))
				}
				resp.Body.Close()
			}
			mu.Unlock()
		}
	}()

	const invites = 40000
	scen, _ := filepath.Abs("testdata/sipp/guest_flood.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, sipp, "-sf", scen, "-i", "127.0.0.1", "-p", strconv.Itoa(testpeer.FreePort(t)),
		"-m", strconv.Itoa(invites), "-r", "10000", "-l", "20000", "-nostdin", "-timeout", "120s", "-recv_timeout", "10000",
		"127.0.0.2:"+strconv.Itoa(extPort))
	run.Dir = t.TempDir()
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	started := time.Now()
	err := run.Run() // sipp exits non-zero if any call timed out; the load is what matters here
	t.Logf("sipp: %d INVITEs in %s (exit %v)", invites, time.Since(started).Round(time.Millisecond), err)
	// The fold window closes 10 s after the first rejection; keep probing
	// while the folded rows are written.
	type row struct {
		Count      int64  `json:"count"`
		SourceAddr string `json:"source_addr"`
	}
	var rows []row
	var total, last int64
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		c.must(200, "GET", "/api/v1/history/calls?limit=10000", nil).json(t, &rows)
		last, total = total, 0
		for _, r := range rows {
			total += max(r.Count, 1)
		}
		if len(rows) >= 2 && total == last && time.Since(started) > 15*time.Second {
			break // the fold has closed and nothing more is being written
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d readiness probes; call history: %d rows standing for %d rejected INVITEs", probes, len(rows), total)
	if len(unready) > 0 {
		t.Errorf("/readyz was not 200 for %d of %d probes during the flood; first: %s", len(unready), probes, unready[0])
	}
	if len(rows) > 20 {
		t.Errorf("%d call history rows for one flooding source; want a few rows that count them", len(rows))
	}
	// How many of the 40,000 datagrams the node read depends on the
	// machine's load (the rest overflow the socket buffer); what it
	// rejected, history must account for, and the flood must have been one.
	metrics := string(c.must(200, "GET", "/metrics", nil).body)
	rejected := metricSum(metrics, `portico_sip_rejected_total{reason="policy"}`)
	dropped := metricSum(metrics, "portico_history_spool_dropped_total")
	if rejected < 1000 {
		t.Errorf("the node rejected only %v INVITEs of %d sent: not a flood", rejected, invites)
	}
	if float64(total)+dropped < rejected {
		t.Errorf("history counts %d rejected INVITEs (%v dropped by the spool); the node rejected %v", total, dropped, rejected)
	}
	d.stop()
	if t.Failed() {
		log := readLog(t, dir)
		t.Logf("daemon log (last 3000 bytes):\n%s", log[max(0, len(log)-3000):])
	}
}

// metricSum adds the values of the Prometheus text lines that start with
// name (a metric name, with its labels if given).
func metricSum(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			f := strings.Fields(rest)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}
