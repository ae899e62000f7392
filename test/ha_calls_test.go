package test

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// haAddrIn is the inside host of the calls test: Kamailio and the callee.
const haAddrIn = "192.0.2.4"

// haCallsNode is one node's file for the calls test: servePair (node a
// owns VIP .100, node b VIP .101) with both nodes' relay and SIP edge on
// VIP .100 only, Kamailio inside as the call server, and the ha.sync link from
// self to peer.
func haCallsNode(t *testing.T, self, peer string) string {
	t.Helper()
	return haCallsNodePreempt(t, self, peer, true)
}

// haCallsNodePreempt is haCallsNode with the groups' preemption on or off.
func haCallsNodePreempt(t *testing.T, self, peer string, preempt bool) string {
	t.Helper()
	cfg := servePair(preempt)
	for _, r := range [][2]string{
		{"{external: {address: " + haAddrA + "}, internal: {address: " + haAddrA + "}}", "{external: {address: " + haVIPA + "}, internal: {address: " + haVIPA + "}}"},
		{"{external: {address: " + haAddrB + "}, internal: {address: " + haAddrB + "}}", "{external: {address: " + haVIPA + "}, internal: {address: " + haVIPA + "}}"},
		{"  external: {address: " + haAddrA + "}\n  internal: {address: " + haAddrA + ", networks: [10.0.0.0/8]}", "  external: {address: " + haVIPA + "}\n  internal: {address: " + haVIPA + ", networks: [" + haAddrIn + "/32]}"},
		{"10.9.9.9:5060", haAddrIn + ":5060"},
		// Room for 50 calls: an RTP and an RTCP port per call and leg.
		{"external: {port_min: 40000, port_max: 40099}", "external: {port_min: 40000, port_max: 40399}"},
		{"internal: {port_min: 40100, port_max: 40199}", "internal: {port_min: 40400, port_max: 40799}"},
		// The SIP edge only on VIP .100: requests to Kamailio leave from it.
		{"    - {interface: external, transport: udp, address: \"" + haVIPB + ":5060\"}\n", ""},
		{"    - {interface: internal, transport: udp, address: \"" + haVIPB + ":5070\"}\n", ""},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("servePair has no %q", r[0])
		}
		cfg = strings.ReplaceAll(cfg, r[0], r[1])
	}
	// 50 calls from one outside host: above the per-source defaults.
	cfg = strings.Replace(cfg, "\nha:\n", "\nguard:\n  rate_limits:\n    register: {per_second: 100, burst: 200}\n    invite: {per_second: 100, burst: 200}\nha:\n", 1)
	return cfg + fmt.Sprintf("  sync:\n    listen: %s:7946\n    peer: %s:7946\n    secret: 6f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f\n", self, peer)
}

// haCallsRig is the lab of the calls tests: the serve pair with the ha.sync
// link, Kamailio inside, and tshark on the outside host capturing the RTP
// the VIP sends to the callers.
type haCallsRig struct {
	l           *haLab
	a, b        *haNode
	dirA        string
	inNS, outNS []string
	tshark      *exec.Cmd
	received    chan haRTP
}

// haRTP is one RTP packet to a caller: its capture time and the relay port
// it came from.
type haRTP struct {
	at   float64
	port string
}

// haCallRow is a call history row as the calls tests read it.
type haCallRow struct {
	ID      string
	Status  int
	EndedBy string `json:"ended_by"`
	Streams []struct {
		PacketsIn  int64 `json:"packets_in"`
		PacketsOut int64 `json:"packets_out"`
	}
}

// startHACalls brings the pair up (node a holds VIP .100, both speakers
// running after the peer's snapshot) and starts the capture.
func startHACalls(t *testing.T) *haCallsRig {
	t.Helper()
	return startHACallsPreempt(t, true)
}

// startHACallsPreempt is startHACalls with the groups' preemption on or off.
func startHACallsPreempt(t *testing.T, preempt bool) *haCallsRig {
	t.Helper()
	l := newHALab(t, map[string]string{"a": haAddrA, "b": haAddrB, "o": haAddrOut, "i": haAddrIn})
	testpeer.Require(t, "sipp", "kamailio", "tshark")
	r := &haCallsRig{l: l, inNS: []string{"ip", "netns", "exec", l.ns("i")}, outNS: []string{"ip", "netns", "exec", l.ns("o")}}
	kam := haAddrIn + ":5060"
	startKamailioVia(t, r.inNS, kam, func() bool {
		out, _ := exec.Command("ip", "netns", "exec", l.ns("i"), "ss", "-Hlun", "src", kam).Output()
		return len(strings.TrimSpace(string(out))) > 0
	}, `MCU_URI="sip:`+haAddrIn+`:5080"`, "WITH_RR")

	r.dirA = t.TempDir()
	r.a = l.serve("a", "a", r.dirA, haCallsNodePreempt(t, haAddrA, haAddrB, preempt))
	r.b = l.serve("b", "b", t.TempDir(), haCallsNodePreempt(t, haAddrB, haAddrA, preempt))
	if !preempt {
		// Without preemption the node whose speaker started first may hold
		// both groups: a hand-back gives each to its owner.
		for _, n := range []*haNode{r.a, r.b} {
			n.waitRunning(t)
		}
		waitFor(t, 20*time.Second, func() bool {
			for _, n := range []*haNode{r.a, r.b} {
				n.api.must(200, "POST", "/api/v1/cluster/handback", map[string]string{})
			}
			time.Sleep(500 * time.Millisecond)
			return l.holds("a", haVIPA) && l.holds("b", haVIPB) && !l.holds("b", haVIPA) && !l.holds("a", haVIPB)
		})
	}
	l.waitHolds("pair up", held(true, false, false, true))
	l.waitOptions(haVIPA + ":5060")
	// Each speaker starts once the peer's snapshot arrived over the link.
	for _, n := range []*haNode{r.a, r.b} {
		n.waitRunning(t)
	}
	r.b.waitState(51, "backup")

	// The callers' RTP, as the outside host receives it from the VIP:
	// one relay port per call.
	outNS := r.outNS
	r.tshark = exec.Command(outNS[0], append(outNS[1:], "tshark", "-n", "-l", "-i", "eth0", "-T", "fields", "-e", "frame.time_epoch", "-e", "udp.srcport",
		"-f", "udp and src host "+haVIPA+" and src portrange 40000-40399")...)
	pipe, _ := r.tshark.StdoutPipe()
	stderr, _ := r.tshark.StderrPipe()
	if err := r.tshark.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.tshark.Process.Kill(); r.tshark.Wait() })
	capturing := make(chan struct{})
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			if strings.Contains(s.Text(), "Capturing on") {
				close(capturing)
				break
			}
		}
		for s.Scan() {
		}
	}()
	r.received = make(chan haRTP, 1<<16)
	go func() {
		s := bufio.NewScanner(pipe)
		for s.Scan() {
			ts, port, _ := strings.Cut(strings.TrimSpace(s.Text()), "\t")
			if f, err := strconv.ParseFloat(ts, 64); err == nil {
				r.received <- haRTP{f, port}
			}
		}
		close(r.received)
	}()
	select {
	case <-capturing:
	case <-time.After(20 * time.Second):
		t.Fatal("tshark did not start capturing")
	}
	return r
}

// waitRunning waits until the node's VRRP speaker runs.
func (n *haNode) waitRunning(t *testing.T) {
	t.Helper()
	waitFor(t, 20*time.Second, func() bool {
		var c struct{ Running bool }
		n.api.must(200, "GET", "/api/v1/cluster", nil).json(t, &c)
		return c.Running
	})
}

// placeCalls starts the inside callee (a sipp UAS echoing RTP) and calls
// outside callers running scen through the VIP, each holding hold ms after
// its answer, and returns once node a carries every call and node b
// acknowledged every change.
func (r *haCallsRig) placeCalls(t *testing.T, calls int, scen string, hold int) (callee, caller *sippRun, live []struct{ ID string }) {
	t.Helper()
	uas, _ := filepath.Abs("testdata/sipp/uas_pcap.xml")
	callee = startSippVia(t, r.inNS, "-sf", uas, "-i", haAddrIn, "-p", "5080", "-mp", "6000", "-rtp_echo", "-m", strconv.Itoa(calls))
	caller = startSippVia(t, r.outNS, "-sf", scen, "-key", "user", "alice", "-s", "1001", "-i", haAddrOut, "-p", "5062", "-mp", "6000",
		"-m", strconv.Itoa(calls), "-l", strconv.Itoa(calls), "-r", strconv.Itoa(calls), "-d", strconv.Itoa(hold), haVIPA+":5060")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r.a.api.must(200, "GET", "/api/v1/calls", nil).json(t, &live)
		if len(live) == calls {
			break
		}
		if time.Now().After(deadline) {
			caller.cmd.Process.Kill()
			caller.cmd.Wait()
			t.Fatalf("node a carries %d calls, want %d\ncallers:\n%s\nnode a:\n%s", len(live), calls, caller.out.String(), r.a.out)
		}
	}
	time.Sleep(time.Second) // the legs latch on the echoed RTP; the latches replicate
	waitFor(t, 10*time.Second, func() bool {
		return strings.Contains(string(r.a.api.must(200, "GET", "/metrics", nil).body), "\nportico_ha_sync_lag_seconds 0\n")
	})
	return callee, caller, live
}

// haStream is the RTP one relay port sent to its caller, split at a moment:
// packets before and after it, and the longest silence that ended within
// gapWindow after it (the silence may have begun after the moment: a node
// killed at it may still send for a while).
type haStream struct {
	before, after int
	prev, gap     float64
}

// gapWindow bounds where the silence of a failover or hand-back ends: well
// past Master_Down_Interval, well before the callers' next pause.
const gapWindow = 3.0

// rtpAround stops the capture and splits each relay port's RTP at cut.
func (r *haCallsRig) rtpAround(cut time.Time) map[string]*haStream {
	r.tshark.Process.Kill()
	r.tshark.Wait()
	at := float64(cut.UnixNano()) / 1e9
	streams := map[string]*haStream{}
	for p := range r.received {
		st := streams[p.port]
		if st == nil {
			st = &haStream{}
			streams[p.port] = st
		}
		if p.at < at {
			st.before++
		} else {
			st.after++
			if st.prev > 0 && p.at < at+gapWindow {
				st.gap = max(st.gap, p.at-st.prev)
			}
		}
		st.prev = max(st.prev, p.at)
	}
	return streams
}

// checkStreams asserts that every call's RTP reached its caller on both
// sides of the moment what and returns each call's gap at it (haStream),
// in seconds, sorted.
func checkStreams(t *testing.T, streams map[string]*haStream, calls int, what string) (gaps []float64) {
	t.Helper()
	if len(streams) != calls {
		t.Errorf("RTP to the callers from %d relay ports, want %d", len(streams), calls)
	}
	for port, st := range streams {
		if st.before == 0 || st.after == 0 {
			t.Errorf("RTP from relay port %s to the caller: %d packets before the %s, %d after", port, st.before, what, st.after)
			continue
		}
		gaps = append(gaps, st.gap)
		t.Logf("relay port %s: %d RTP packets to the caller before the %s, %d after; gap %.0f ms", port, st.before, what, st.after, st.gap*1000)
	}
	slices.Sort(gaps)
	return gaps
}

// logGaps logs the distribution of the calls' RTP gaps across what.
func logGaps(t *testing.T, gaps []float64, what string) {
	t.Helper()
	if len(gaps) == 0 {
		return
	}
	at := func(q float64) float64 { return gaps[int(q*float64(len(gaps)-1))] * 1000 }
	t.Logf("%s gap over %d calls: min %.0f ms, median %.0f ms, p90 %.0f ms, worst %.0f ms", what, len(gaps), at(0), at(0.5), at(0.9), at(1))
}

// checkHistoryRow asserts a row of a call the caller ended normally, with
// media both ways.
func checkHistoryRow(t *testing.T, node string, h haCallRow) {
	t.Helper()
	if h.Status != 200 || h.EndedBy != "caller" || len(h.Streams) != 1 || h.Streams[0].PacketsIn == 0 || h.Streams[0].PacketsOut == 0 {
		t.Errorf("node %s's history row: %+v", node, h)
	}
}

// TestCallsSurviveServeFailover: the serve pair of TestServePairFailover
// with the ha.sync link; node a's VIP carries the SIP edge and the relay.
// An outside sipp registers through the VIP to Kamailio inside and places
// 50 calls to an inside sipp UAS, with G.711 RTP both ways. With the
// calls up, node a is killed with -9: node b takes the VIP, every caller
// keeps receiving RTP through it (tshark on the outside host), no call
// drops, their BYEs are answered and reach the callee, and node b's
// history has one row per call.
func TestCallsSurviveServeFailover(t *testing.T) {
	const calls = 50
	r := startHACalls(t)
	l, a, b := r.l, r.a, r.b

	// RTP for ~21 s after each answer, the BYE 1 s later: long after
	// node b holds the VIP.
	callee, caller, live := r.placeCalls(t, calls, longCallScenario(t), 1000)

	kill := time.Now()
	a.kill()
	l.waitHolds("node a killed", map[string]map[string]bool{haVIPA: {"b": true}})
	b.waitState(51, "master")

	caller.wait(t, "outside callers")
	callee.wait(t, "inside callee")
	// Per call (relay port): packets before and after the kill, and the
	// gap from the last packet before it to the first after it.
	logGaps(t, checkStreams(t, r.rtpAround(kill), calls, "kill"), "failover")

	var hist []haCallRow
	waitFor(t, 10*time.Second, func() bool {
		b.api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
		return len(hist) >= calls
	})
	seen := map[string]bool{}
	for _, h := range hist {
		seen[h.ID] = true
		checkHistoryRow(t, "b", h)
	}
	for _, c := range live {
		if !seen[c.ID] {
			t.Errorf("call %s has no history row on node b: %+v", c.ID, hist)
		}
	}
	if len(hist) != calls || len(seen) != calls {
		t.Errorf("node b's history: %d rows for %d calls: %+v", len(hist), calls, hist)
	}
	if t.Failed() {
		t.Logf("node b:\n%s", b.out)
	}
}
