package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h323test"
)

// h323HAPartyEnv names the environment variable that makes the test
// binary, started in a host's namespace, run the simulated H.323 parties
// of that host (TestH323HAParty) for TestH323CallsSurviveServeFailover:
// "inside" or "outside". h323HARASEnv and h323HACallsEnv give the
// outside party Portico's RAS address and the number of calls to place.
const (
	h323HAPartyEnv = "PORTICO_TEST_H323_HA_PARTY"
	h323HARASEnv   = "PORTICO_TEST_H323_HA_RAS"
	h323HACallsEnv = "PORTICO_TEST_H323_HA_CALLS"
)

// h323HANode is one node's file for the H.323 failover test: the calls
// test's pair (both nodes' relay on VIP .100, the ha.sync link) with the
// H.323 edge on VIP .100 outside and on the node's own address inside
// (call signalling uses one port on both sides), the inside gatekeeper at
// gkRAS and gkSig, and a media inactivity timeout of 2 s.
func h323HANode(t *testing.T, self, peer, gkRAS, gkSig string) string {
	t.Helper()
	cfg := haCallsNode(t, self, peer)
	if !strings.Contains(cfg, "  fast_path: off\n") {
		t.Fatal("servePair's media section has changed")
	}
	cfg = strings.Replace(cfg, "  fast_path: off\n", "  fast_path: off\n  inactivity_timeout: 2s\n", 1)
	return cfg + fmt.Sprintf(`h323:
  enabled: true
  internal_address: %s
  ras_port: 1719
  signal_port: 1720
  gatekeeper: %s
  gatekeeper_signal: %s
`, self, gkRAS, gkSig)
}

// party is a TestH323HAParty child in a host's namespace: commands go to
// its standard input, its "party: " lines come back.
type party struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	out   syncBuffer
}

func startParty(t *testing.T, ctx context.Context, ns, role string, env ...string) *party {
	t.Helper()
	p := &party{t: t, name: role, lines: make(chan string, 256)}
	p.cmd = exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestH323HAParty$", "-test.v")
	p.cmd.Env = append(append(os.Environ(), h323HAPartyEnv+"="+role), env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(io.TeeReader(stdout, &p.out))
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "party: "); ok {
				p.lines <- l
			}
		}
	}()
	t.Cleanup(func() {
		p.in.Close()
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s party:\n%s", p.name, p.out.String())
		}
	})
	return p
}

// next returns the party's next line, which must start with want.
func (p *party) next(want string) string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if ok && strings.HasPrefix(l, want) {
			return l
		}
		p.t.Fatalf("%s party: %q, want %s\n%s", p.name, l, want, p.out.String())
	case <-time.After(90 * time.Second):
		p.t.Fatalf("%s party: no %s\n%s", p.name, want, p.out.String())
	}
	return ""
}

func (p *party) send(cmd string) {
	p.t.Helper()
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		p.t.Fatalf("%s party: %v", p.name, err)
	}
}

// partyReport is one call's RTP as a party received it since the last
// mark: packets, and the longest silence between two of them (the
// silence that straddles the mark included), in milliseconds.
type partyReport struct {
	since, total int
	gap          int
}

// report asks for the calls' RTP since the last mark, by call ID.
func (p *party) report() map[string]partyReport {
	p.t.Helper()
	p.send("report")
	out := map[string]partyReport{}
	for {
		l := p.next("")
		if l == "reported" {
			return out
		}
		var id string
		var r partyReport
		if _, err := fmt.Sscanf(l, "call %s %d %d %d", &id, &r.since, &r.gap, &r.total); err != nil {
			p.t.Fatalf("%s party: %q: %v", p.name, l, err)
		}
		out[id] = r
	}
}

// h323HARow is a call history row as the H.323 failover test reads it.
type h323HARow struct {
	ID          string
	Protocol    string
	EndedBy     string    `json:"ended_by"`
	Disposition string    `json:"disposition"`
	AnsweredAt  time.Time `json:"answered_at"`
	EndedAt     time.Time `json:"ended_at"`
	DurationMs  int64     `json:"duration_ms"`
	Streams     []struct {
		PacketsIn  int64 `json:"packets_in"`
		PacketsOut int64 `json:"packets_out"`
	}
}

// TestH323CallsSurviveServeFailover: the serve pair of
// TestCallsSurviveServeFailover with the H.323 edge on node a's VIP. No
// H.323 product is packaged for Debian: the project's simulators (package
// h323test) stand in for the endpoints and the inside gatekeeper, run by
// this test binary in the outside and inside namespaces (TestH323HAParty).
// An outside endpoint registers through the VIP and places five calls
// through it to an inside endpoint (gatekeeper-routed); both send RTP
// every 20 ms. With the calls up and replicated, node a dies: its link goes
// down (its kernel sends nothing more, as when a machine fails) and it is
// killed with -9. Node b takes the VIP; every call's RTP reaches both
// endpoints again through it. The call signalling (TCP) is lost with node
// a; the endpoints then end their calls, the media stops, and node b's
// history holds exactly one row per call: ended by portico, "call
// signalling lost at failover", with the answer time and node b's media
// counts. Node a returns and writes no row of its own.
func TestH323CallsSurviveServeFailover(t *testing.T) {
	const calls = 5
	l := newHALab(t, map[string]string{"a": haAddrA, "b": haAddrB, "o": haAddrOut, "i": haAddrIn})
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()

	inside := startParty(t, ctx, l.ns("i"), "inside")
	var gkRAS, gkSig string
	if _, err := fmt.Sscanf(inside.next("gatekeeper"), "gatekeeper %s %s", &gkRAS, &gkSig); err != nil {
		t.Fatal(err)
	}
	inside.next("registered")

	dirA := t.TempDir()
	a := l.serve("a", "a", dirA, h323HANode(t, haAddrA, haAddrB, gkRAS, gkSig))
	b := l.serve("b", "b", t.TempDir(), h323HANode(t, haAddrB, haAddrA, gkRAS, gkSig))
	l.waitHolds("pair up", held(true, false, false, true))
	for _, n := range []*haNode{a, b} {
		n.waitRunning(t)
	}
	b.waitState(51, "backup")

	outside := startParty(t, ctx, l.ns("o"), "outside", h323HARASEnv+"="+haVIPA+":1719", h323HACallsEnv+"="+strconv.Itoa(calls))
	outside.next("called")
	var live []struct {
		ID, Protocol, State string
	}
	waitFor(t, 20*time.Second, func() bool {
		a.api.must(200, "GET", "/api/v1/calls", nil).json(t, &live)
		n := 0
		for _, c := range live {
			if c.Protocol == "h323" && c.State == "confirmed" {
				n++
			}
		}
		return n == calls
	})
	// Both ways on every call through node a, the latches replicated.
	var flowing string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ok := true
		flowing = ""
		for _, p := range []*party{outside, inside} {
			rs := p.report()
			flowing += fmt.Sprintf("%s: %+v; ", p.name, rs)
			ok = ok && len(rs) == calls
			for _, r := range rs {
				ok = ok && r.total >= 25
			}
		}
		if ok && strings.Contains(string(a.api.must(200, "GET", "/metrics", nil).body), "\nportico_ha_sync_lag_seconds 0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RTP through node a: %s\nnode a's calls: %s\nnode a:\n%s", flowing, a.api.must(200, "GET", "/api/v1/calls", nil).body, a.out)
		}
	}

	for _, p := range []*party{outside, inside} {
		p.send("mark")
		p.next("marked")
	}
	l.ip("-n", l.ns("a"), "link", "set", "dev", "eth0", "down")
	a.kill()
	l.waitHolds("node a dead", map[string]map[string]bool{haVIPA: {"b": true}})
	b.waitState(51, "master")

	// RTP through node b: the silence across the failover, then every
	// call's media in both directions over the next two seconds.
	time.Sleep(2 * time.Second)
	var gaps []float64
	for _, p := range []*party{outside, inside} {
		for id, r := range p.report() {
			gaps = append(gaps, float64(r.gap)/1000)
			t.Logf("%s party, call %s: %d RTP packets since node a died, longest silence %d ms", p.name, id, r.since, r.gap)
		}
		p.send("mark")
		p.next("marked")
	}
	time.Sleep(2 * time.Second)
	ids := map[string]bool{}
	for _, p := range []*party{outside, inside} {
		rs := p.report()
		if len(rs) != calls {
			t.Errorf("%s party reports %d calls, want %d", p.name, len(rs), calls)
		}
		for id, r := range rs {
			ids[id] = true
			if r.since == 0 {
				t.Errorf("%s party, call %s: no RTP through node b", p.name, id)
			}
		}
	}
	slices.Sort(gaps)
	logGaps(t, gaps, "H.323 failover (both directions)")

	// The endpoints end their calls (their ReleaseCompletes go nowhere):
	// the media stops and node b writes the rows.
	ended := time.Now()
	for _, p := range []*party{outside, inside} {
		p.send("hangup")
	}
	for _, p := range []*party{outside, inside} {
		p.next("ended")
	}
	var hist []h323HARow
	waitFor(t, 30*time.Second, func() bool {
		b.api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
		return len(hist) >= calls
	})
	time.Sleep(3 * time.Second) // a second row would come within a check or two
	b.api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
	if len(hist) != calls {
		t.Errorf("node b's history: %d rows for %d calls: %+v", len(hist), calls, hist)
	}
	seen := map[string]int{}
	for _, h := range hist {
		seen[h.ID]++
		if !ids[h.ID] || h.Protocol != "h323" || h.EndedBy != "portico" || h.Disposition != "call signalling lost at failover" ||
			h.AnsweredAt.IsZero() || h.DurationMs <= 0 || h.EndedAt.After(ended.Add(time.Second)) ||
			len(h.Streams) != 1 || h.Streams[0].PacketsIn == 0 || h.Streams[0].PacketsOut == 0 {
			t.Errorf("node b's row %+v (calls %v, the endpoints hung up at %v)", h, ids, ended)
		}
	}
	for id := range ids {
		if seen[id] != 1 {
			t.Errorf("call %s: %d rows on node b", id, seen[id])
		}
	}

	// Node a returns: it lost the calls and writes no row.
	l.ip("-n", l.ns("a"), "link", "set", "dev", "eth0", "up")
	a = l.serve("a", "a", dirA, h323HANode(t, haAddrA, haAddrB, gkRAS, gkSig))
	a.waitRunning(t)
	time.Sleep(3 * time.Second)
	var histA []h323HARow
	a.api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &histA)
	if len(histA) != 0 {
		t.Errorf("node a wrote %d rows after it returned: %+v", len(histA), histA)
	}
	b.api.must(200, "GET", "/api/v1/history/calls", nil).json(t, &hist)
	if len(hist) != calls {
		t.Errorf("node b's history after node a returned: %d rows", len(hist))
	}
	if t.Failed() {
		t.Logf("node b:\n%s", b.out)
	}
}

// partyCall is one call of a party: RTP sent every 20 ms, and what
// arrived counted at the same pace.
type partyCall struct {
	c *h323test.Call

	mu       sync.Mutex
	received int       // RTP packets received so far
	lastRx   time.Time // when received last grew
	marked   int       // received at the last mark
	gap      time.Duration
}

func (pc *partyCall) run(ctx context.Context) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-pc.c.Done():
			return
		case <-ctx.Done():
			return
		case now := <-tick.C:
			// Audio first: a callee's channels it was not offered have no
			// remote address, and SendRTP fails on them after the audio.
			pc.c.SendRTP(1)
			n := pc.c.Stats(h323test.Audio).Received
			pc.mu.Lock()
			if n > pc.received {
				if !pc.lastRx.IsZero() {
					pc.gap = max(pc.gap, now.Sub(pc.lastRx))
				}
				pc.received, pc.lastRx = n, now
			}
			pc.mu.Unlock()
		}
	}
}

func (pc *partyCall) mark() {
	pc.mu.Lock()
	pc.marked, pc.gap = pc.received, 0
	pc.mu.Unlock()
}

func (pc *partyCall) report() string {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return fmt.Sprintf("call %x %d %d %d", pc.c.ID, pc.received-pc.marked, pc.gap.Milliseconds(), pc.received)
}

// TestH323HAParty is a half of TestH323CallsSurviveServeFailover, run by it
// in the inside or outside namespace: the inside gatekeeper and endpoint
// 2001, or the outside endpoint that calls 2001 through Portico. Each call
// sends RTP every 20 ms. It reports on lines of its own and obeys mark,
// report and hangup on its standard input.
func TestH323HAParty(t *testing.T) {
	role := os.Getenv(h323HAPartyEnv)
	if role == "" {
		t.Skip("a half of TestH323CallsSurviveServeFailover, which runs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 160*time.Second)
	defer cancel()
	say := func(format string, args ...any) { fmt.Printf("party: "+format+"\n", args...) }
	var mu sync.Mutex
	var calls []*partyCall
	add := func(c *h323test.Call) {
		pc := &partyCall{c: c}
		mu.Lock()
		calls = append(calls, pc)
		mu.Unlock()
		go pc.run(ctx)
	}
	switch role {
	case "inside":
		ip := netip.MustParseAddr(haAddrIn)
		gk := h323test.NewGatekeeper(t, h323test.GatekeeperConfig{IP: ip, TimeToLive: 600, Routed: true})
		say("gatekeeper %s %s", gk.RASAddr(), gk.CallSignalAddr())
		ep := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "2001", Gatekeeper: gk.RASAddr(), IP: ip, TimeToLive: 600})
		if err := ep.Register(ctx); err != nil {
			t.Fatal(err)
		}
		say("registered")
		go func() {
			for {
				c, err := ep.Incoming(ctx)
				if err != nil {
					return
				}
				add(c)
			}
		}()
	case "outside":
		ras, err := netip.ParseAddrPort(os.Getenv(h323HARASEnv))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(os.Getenv(h323HACallsEnv))
		ep := h323test.NewEndpoint(t, h323test.EndpointConfig{Alias: "room-9", Gatekeeper: ras, IP: netip.MustParseAddr(haAddrOut), TimeToLive: 600})
		for i := 0; ; i++ {
			if err = ep.Register(ctx); err == nil {
				break
			}
			if i == 50 {
				t.Fatalf("registration through %s: %v", ras, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		for range n {
			c, err := ep.Call(ctx, "2001", h323test.CallOptions{FastStart: true, Kinds: []h323test.Kind{h323test.Audio}})
			if err != nil {
				t.Fatalf("call 2001: %v", err)
			}
			add(c)
		}
		say("called %d", n)
	default:
		t.Fatalf("%s=%q", h323HAPartyEnv, role)
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		mu.Lock()
		list := append([]*partyCall(nil), calls...)
		mu.Unlock()
		switch sc.Text() {
		case "mark":
			for _, pc := range list {
				pc.mark()
			}
			say("marked %d", len(list))
		case "report":
			for _, pc := range list {
				say("%s", pc.report())
			}
			say("reported")
		case "hangup":
			var wg sync.WaitGroup
			for _, pc := range list {
				wg.Go(func() { pc.c.Hangup() })
			}
			wg.Wait()
			say("ended")
		}
	}
}
