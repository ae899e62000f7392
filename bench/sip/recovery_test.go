package sip

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestSIPRecovery overloads Portico's B2BUA with one step of calls well
// past its ceiling (PORTICO_BENCH_OVERLOAD_RATE, 4,000/s for 5 s), then
// offers a step it passes when not overloaded (PORTICO_BENCH_NORMAL_RATE,
// 500/s, for 2 s) a second
// later, as the search does, and logs what the edge holds in between:
// calls, free relay ports, the overload counters. It runs with
// PORTICO_BENCH=1 and asserts that the normal step after the overload
// passes.
func TestSIPRecovery(t *testing.T) {
	if os.Getenv("PORTICO_BENCH") == "" {
		t.Skip("set PORTICO_BENCH=1 to run the SIP benchmark")
	}
	testpeer.Require(t, "sipp", "kamailio")
	over := 4000
	if v, err := strconv.Atoi(os.Getenv("PORTICO_BENCH_OVERLOAD_RATE")); err == nil && v > 0 {
		over = v
	}
	normal := 500
	if v, err := strconv.Atoi(os.Getenv("PORTICO_BENCH_NORMAL_RATE")); err == nil && v > 0 {
		normal = v
	}
	dir := t.TempDir()
	scen, _ := filepath.Abs("scenarios")
	uas := insideIP + ":" + port(t)
	startProc(t, dir, "sipp", "-nostdin", "-sf", filepath.Join(scen, "uas.xml"), "-i", insideIP, "-p", strings.Split(uas, ":")[1],
		"-mp", mediaPort(t), "-max_socket", "100", "-buff_size", "4194304")
	kam := kamIP + ":" + port(t)
	kamailio(t, dir, kam, 4, `MCU_URI="sip:`+uas+`"`, "WITH_RR")
	pt := startPortico(t, kam)
	calls := func(rate int, d time.Duration) bool {
		n := int(float64(rate) * d.Seconds())
		ok, el, _ := sippRun(t, dir, "-sn", "uac", "-s", "1000", "-i", loadIP, "-p", port(t), "-mp", mediaPort(t), "-d", "100",
			"-r", strconv.Itoa(rate), "-m", strconv.Itoa(n), "-l", strconv.Itoa(n), pt.ext.String())
		t.Logf("%d calls at %d/s: ok=%v in %v [%s]", n, rate, ok, el.Round(time.Millisecond), loadavg())
		return ok
	}
	state := func(when string) {
		ext, _ := pt.relay.Available(sipedge.External)
		in, _ := pt.relay.Available(sipedge.Internal)
		byState := map[string]int{}
		for _, c := range pt.s.Calls() {
			k := c.State
			if !c.Answered.IsZero() {
				k += fmt.Sprintf(" answered %ds ago", int(time.Since(c.Answered).Seconds()))
			} else {
				k += fmt.Sprintf(" started %ds ago", int(time.Since(c.Started).Seconds()))
			}
			byState[k]++
		}
		t.Logf("%s: %v", when, byState)
		t.Logf("%s: %d calls held, relay port pairs free %d external / %d internal, %d relay sessions; %s", when, len(pt.s.Calls()), ext, in,
			len(pt.relay.Sessions()), counters(t, pt))
	}
	state("before")
	calls(normal, 2*time.Second)
	state("after a normal step")
	calls(over, 5*time.Second)
	state("after the overload")
	time.Sleep(time.Second)
	state("a second later")
	ok := calls(normal, 2*time.Second)
	state("after the normal step")
	if !ok {
		t.Errorf("a normal step a second after an overload failed")
	}
}

// counters formats the edge's non-zero counters whose name says what the
// overload did (rejected, dropped, calls by outcome).
func counters(t testing.TB, pt portico) string {
	mfs, err := pt.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.Contains(name, "rejected") && !strings.Contains(name, "dropped") && !strings.Contains(name, "overload") &&
			name != "portico_sip_calls_total" && name != "portico_sip_registration_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if v != 0 {
				out = append(out, fmt.Sprintf("%s{%s} %.0f", strings.TrimPrefix(name, "portico_sip_"), strings.Join(labels, ","), v))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// edgeCounters is counters of edge, or "" without one.
func edgeCounters(t testing.TB, edge *portico) string {
	if edge == nil {
		return ""
	}
	return "portico " + counters(t, *edge)
}

// udpErrors is the machine's UDP receive buffer errors so far
// (RcvbufErrors in /proc/net/snmp; 0 where there is none): datagrams the
// kernel dropped because a socket's buffer was full.
func udpErrors() int64 {
	b, _ := os.ReadFile("/proc/net/snmp")
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	return 0
}
