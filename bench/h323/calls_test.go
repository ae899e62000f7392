package h323

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/testpeer"
)

const (
	// callStep is how long each offered rate of the ceiling search runs,
	// halfStep the latency measurement at half the ceiling.
	callStep = 2 * time.Second
	halfStep = 5 * time.Second
	// callTimeout fails a call that has not ended within it.
	callTimeout = 5 * time.Second
	// maxInFlight fails calls beyond it: the generator does not queue.
	maxInFlight = 2000
	// callSources is how many loopback addresses the callers use (guests
	// from many addresses; Portico's guard scores Setups per address).
	callSources = 1000
)

// loadavg is the machine's load average (/proc/loadavg, the figures of
// uptime), recorded with each measurement.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// callee is the scripted inside endpoint every call reaches (it stands in
// for an MCU's VMR or a room system behind the inside gatekeeper): it
// answers each Setup with Connect carrying its fastStart choice, and
// closes on ReleaseComplete. It runs in a process of its own (the test
// binary started again with PORTICO_BENCH_CALLEE, see TestMain), as it
// would on a machine of its own: it does not share the generator's
// scheduler and collector, and its CPU time is read apart. For each call
// it keeps its own time, from the moment the Setup reached its socket
// (the kernel's receive stamp) to the moment it hands Connect to the
// kernel: that part of a setup is the callee's, not the network's.
type callee struct {
	answer [][]byte // fastStart choice, the same for every call
	mu     sync.Mutex
	own    map[[16]byte]time.Duration // per call identifier, under mu
}

// runCallee is the callee process: it listens on ip, writes "addr
// <address>" to stdout, then answers calls; each "dump" line on stdin is
// answered with "<call identifier> <nanoseconds>" per call answered since
// the last dump and "end <collections>". It returns when stdin closes.
func runCallee(ip string) int {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err == nil {
		err = enableRxStamps(ln.(*net.TCPListener))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "callee:", err)
		return 1
	}
	a := netip.MustParseAddr(ip)
	rtp, rtcp := netip.AddrPortFrom(a, 6000), netip.AddrPortFrom(a, 6001)
	c := &callee{answer: encOLCs(olcTx(1, rtp, rtcp), olcRx(2, netip.AddrPort{}, rtcp)), own: map[[16]byte]time.Duration{}}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(conn)
		}
	}()
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "addr %s\n", ln.Addr())
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		c.mu.Lock()
		own := c.own
		c.own = make(map[[16]byte]time.Duration, len(own))
		c.mu.Unlock()
		for id, d := range own {
			fmt.Fprintf(out, "%x %d\n", id, d.Nanoseconds())
		}
		fmt.Fprintf(out, "end %d\n", gcCycles())
		out.Flush()
	}
	ln.Close()
	return 0
}

func (c *callee) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(callTimeout))
	sr, err := newStampReader(conn)
	if err != nil {
		return
	}
	fr := h245proxy.NewFrameReader(sr, 0)
	m, ui, err := readQ931(fr)
	if err != nil || m.Type != q931.Setup || ui.H323UuPdu.H323MessageBody.Setup == nil {
		return
	}
	in := sr.last
	s := ui.H323UuPdu.H323MessageBody.Setup
	if s.CallIdentifier == nil || len(s.CallIdentifier.Guid) != 16 {
		return
	}
	b, err := frameQ931(q931.Connect, m.CallRef, true, connectUI(s.CallIdentifier.Guid, c.answer))
	if err != nil {
		return
	}
	out := time.Now()
	if _, err := conn.Write(b); err != nil {
		return
	}
	if !in.IsZero() {
		c.mu.Lock()
		c.own[[16]byte(s.CallIdentifier.Guid)] = out.Sub(in)
		c.mu.Unlock()
	}
	for {
		if m, _, err := readQ931(fr); err != nil || m.Type == q931.ReleaseComplete {
			return
		}
	}
}

// calleeProc is the benchmark's handle on a callee process.
type calleeProc struct {
	cmd  *exec.Cmd
	ap   netip.AddrPort
	ctl  io.Writer
	resp *bufio.Scanner
}

// startCallee runs a callee process listening on ip; it ends with the
// test. The callee collects garbage only past 1 GiB (GOGC=off,
// GOMEMLIMIT): in a 5 s step it does not collect at all, as a callee on
// its own machine would not be delayed by the generator's collections.
func startCallee(t *testing.T, ip netip.Addr) *calleeProc {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PORTICO_BENCH_CALLEE="+ip.String(), "GOGC=off", "GOMEMLIMIT=1GiB")
	cmd.Stderr = os.Stderr
	ctl, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close(); cmd.Wait() })
	c := &calleeProc{cmd: cmd, ctl: ctl, resp: bufio.NewScanner(out)}
	if !c.resp.Scan() {
		t.Fatalf("callee did not start: %v", c.resp.Err())
	}
	a, ok := strings.CutPrefix(c.resp.Text(), "addr ")
	if !ok {
		t.Fatalf("callee: %q", c.resp.Text())
	}
	c.ap = netip.MustParseAddrPort(a)
	return c
}

func (c *calleeProc) addr() netip.AddrPort { return c.ap }

// dump returns the callee's own time per call identifier for the calls it
// answered since the last dump, and its collections so far.
func (c *calleeProc) dump(t *testing.T) (map[[16]byte]time.Duration, uint64) {
	if _, err := io.WriteString(c.ctl, "dump\n"); err != nil {
		t.Fatal(err)
	}
	own := map[[16]byte]time.Duration{}
	for c.resp.Scan() {
		line := c.resp.Text()
		if n, ok := strings.CutPrefix(line, "end "); ok {
			gc, _ := strconv.ParseUint(n, 10, 64)
			return own, gc
		}
		h, ns, _ := strings.Cut(line, " ")
		var id [16]byte
		d, err := strconv.ParseInt(ns, 10, 64)
		if _, err2 := hex.Decode(id[:], []byte(h)); err != nil || err2 != nil {
			t.Fatalf("callee: %q", line)
		}
		own[id] = time.Duration(d)
	}
	t.Fatalf("callee: %v", c.resp.Err())
	return nil, 0
}

// callGen places calls: Setup with two fastStart proposals (G.711 both
// ways), wait for Connect, ReleaseComplete, wait for the far end to
// close. Two latencies are taken per call:
//   - end to end: Setup about to be encoded → Connect read by the caller
//     (the figure of the earlier runs, kept as it was);
//   - on the wire, less the callee: Setup handed to the kernel → Connect
//     in the caller's socket (the kernel's receive stamp), minus the
//     callee's own time (Setup in its socket → Connect handed to its
//     kernel). This leaves out the time both endpoints, which stand for
//     other machines, take to get a CPU and do their part; what remains
//     is Portico's (or, called straight, nothing but the kernel's).
type callGen struct {
	target   netip.AddrPort
	cal      *calleeProc
	proposal [][]byte
	next     atomic.Uint64
	inFlight atomic.Int64
}

func newCallGen(target netip.AddrPort, cal *calleeProc) *callGen {
	rtp, rtcp := netip.MustParseAddrPort("127.10.0.1:5000"), netip.MustParseAddrPort("127.10.0.1:5001")
	return &callGen{target: target, cal: cal, proposal: encOLCs(olcTx(1, netip.AddrPort{}, rtcp), olcRx(2, rtp, rtcp))}
}

// source returns the loopback address of the nth call (127.10.x.y).
func source(n uint64) net.IP {
	k := n % callSources
	return net.IPv4(127, 10, byte(k/250), byte(k%250+1))
}

// timing is one call's latencies: lat end to end; wire Setup handed to
// the kernel → Connect in the caller's socket, zero when the kernel gave
// no receive stamp.
type timing struct {
	id        [16]byte
	lat, wire time.Duration
}

// place runs one call and returns its timing.
func (g *callGen) place() (timing, error) {
	n := g.next.Add(1)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: source(n)}, Timeout: callTimeout}
	conn, err := d.Dial("tcp", g.target.String())
	if err != nil {
		return timing{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(callTimeout))
	sr, err := newStampReader(conn)
	if err != nil {
		return timing{}, err
	}
	var tm timing
	rand.Read(tm.id[:])
	crv := uint32(n%32767 + 1)
	t0 := time.Now()
	b, err := frameQ931(q931.Setup, crv, false, setupUI(tm.id[:], g.proposal))
	if err != nil {
		return timing{}, err
	}
	tw := time.Now()
	if _, err := conn.Write(b); err != nil {
		return timing{}, err
	}
	fr := h245proxy.NewFrameReader(sr, 0)
	for {
		m, ui, err := readQ931(fr)
		if err != nil {
			return timing{}, fmt.Errorf("before Connect: %w", err)
		}
		if m.Type == q931.ReleaseComplete {
			c, _ := m.Cause()
			return timing{}, fmt.Errorf("released before Connect, cause %d", c.Value)
		}
		if m.Type != q931.Connect {
			continue
		}
		tm.lat = time.Since(t0)
		if !sr.last.IsZero() {
			tm.wire = sr.last.Sub(tw)
		}
		if c := ui.H323UuPdu.H323MessageBody.Connect; c == nil || len(c.FastStart) != 2 {
			return timing{}, errors.New("Connect without the fastStart answer")
		}
		rc := &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{H323MessageBody: h225.H323UUPDUH323MessageBody{
			Choice: h225.H323UUPDUH323MessageBody_ReleaseComplete, ReleaseComplete: &h225.ReleaseCompleteUUIE{
				ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV4), CallIdentifier: &h225.CallIdentifier{Guid: tm.id[:]}}}}}
		if err := sendQ931(conn, q931.ReleaseComplete, crv, false, rc); err != nil {
			return timing{}, err
		}
		// The far end closes (Portico after forwarding the release).
		for {
			if _, err := fr.Next(); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
					return tm, nil
				}
				return timing{}, fmt.Errorf("after ReleaseComplete: %w", err)
			}
		}
	}
}

// callResult is one measured step of call placing.
type callResult struct {
	rate               float64
	placed, ok, failed int64
	wall               time.Duration
	p50, p99           time.Duration // end to end
	// Kernel-stamped, less the callee's own time: the quantiles over the
	// stamped calls matched with the callee's record (stamped of ok), and
	// the callee's own time.
	net50, net99, own50, own99 time.Duration
	stamped                    int
	daemonCPU, genCPU, calCPU  time.Duration
	genGC, calGC               uint64 // the generator's and the callee's collections
	errs                       string // failures by kind
	load                       string
}

func (r callResult) passed() bool { return r.failed == 0 && r.ok == r.placed && r.placed > 0 }

func (r callResult) String() string {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(r.ok, 1)) }
	return fmt.Sprintf("offered %.0f/s: %d placed, %d connected and released, %d failed (%s) in %.1fs = %.0f calls/s; end to end (Setup→Connect read) p50 %.2f ms p99 %.2f ms; kernel-stamped less the callee's own time p50 %.2f ms p99 %.2f ms (%d calls; callee's own p50 %.2f ms p99 %.2f ms); Portico CPU %.2fs (%.0f µs/call), generator CPU %.2fs (%.0f µs/call, %d GCs), callee CPU %.2fs (%.0f µs/call, %d GCs); load %s",
		r.rate, r.placed, r.ok, r.failed, r.errs, r.wall.Seconds(), float64(r.ok)/r.wall.Seconds(), ms(r.p50), ms(r.p99),
		ms(r.net50), ms(r.net99), r.stamped, ms(r.own50), ms(r.own99),
		r.daemonCPU.Seconds(), per(r.daemonCPU), r.genCPU.Seconds(), per(r.genCPU), r.genGC,
		r.calCPU.Seconds(), per(r.calCPU), r.calGC, r.load)
}

// quantiles sorts d and returns its median and 99th percentile.
func quantiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

// run offers calls at rate per second for d (rate*d calls, each in its
// own goroutine; more than maxInFlight at once fail) and waits for them.
func (g *callGen) run(t *testing.T, pid int, rate float64, d time.Duration) callResult {
	r := callResult{rate: rate, load: loadavg()}
	var mu sync.Mutex
	var tms []timing
	var wg sync.WaitGroup
	var failed atomic.Int64
	kinds := map[string]int{} // failures by kind, under mu
	fail := func(kind string) {
		failed.Add(1)
		mu.Lock()
		kinds[kind]++
		mu.Unlock()
	}
	_, cgc0 := g.cal.dump(t) // and forget the calls of earlier steps
	d0, g0, gc0, c0 := time.Duration(0), testpeer.CPUTime(), gcCycles(), cpu(t, g.cal.cmd.Process.Pid)
	if pid != 0 {
		d0 = cpu(t, pid)
	}
	total := int64(rate * d.Seconds())
	start := time.Now()
	for r.placed < total && time.Since(start) < d+callTimeout {
		due := min(total, int64(time.Since(start).Seconds()*rate))
		for ; r.placed < due; r.placed++ {
			if g.inFlight.Add(1) > maxInFlight {
				g.inFlight.Add(-1)
				fail("generator: too many calls in flight")
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer g.inFlight.Add(-1)
				tm, err := g.place()
				if err != nil {
					fail(errKind(err))
					return
				}
				mu.Lock()
				tms = append(tms, tm)
				mu.Unlock()
			}()
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	r.wall = time.Since(start)
	if pid != 0 {
		r.daemonCPU = cpu(t, pid) - d0
	}
	r.genCPU = testpeer.CPUTime() - g0
	r.genGC = gcCycles() - gc0
	r.calCPU = cpu(t, g.cal.cmd.Process.Pid) - c0
	own, cgc := g.cal.dump(t)
	r.calGC = cgc - cgc0
	r.failed, r.ok = failed.Load(), int64(len(tms))
	if len(kinds) > 0 {
		var ks []string
		for k, n := range kinds {
			ks = append(ks, fmt.Sprintf("%d %s", n, k))
		}
		sort.Strings(ks)
		r.errs = strings.Join(ks, ", ")
	}
	lat := make([]time.Duration, 0, len(tms))
	var net, owns []time.Duration
	for _, tm := range tms {
		lat = append(lat, tm.lat)
		if o, ok := own[tm.id]; ok && tm.wire != 0 {
			net = append(net, tm.wire-o)
			owns = append(owns, o)
		}
	}
	r.p50, r.p99 = quantiles(lat)
	r.net50, r.net99 = quantiles(net)
	r.own50, r.own99 = quantiles(owns)
	r.stamped = len(net)
	return r
}

// gcCycles is the number of collections this process has completed.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// settle waits (at most a minute) until Portico uses under 5 % of a core:
// after an overloaded step it is still writing the calls' history, and the
// next step would measure that too. It returns how long it waited.
func settle(t *testing.T, pid int) time.Duration {
	start := time.Now()
	for i := 0; i < 60; i++ {
		c0 := cpu(t, pid)
		time.Sleep(time.Second)
		if cpu(t, pid)-c0 < 50*time.Millisecond {
			break
		}
	}
	return time.Since(start)
}

// errKind is an error without the addresses and ports in it, for counting.
func errKind(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s[:i], "->") {
		s = s[i+2:]
	}
	return s
}

// startCallPortico runs portico serve with the h323 and media sections:
// external address ext, internal in, guests allowed to the VMR range
// 1000-1099, calls from outside routed to the callee (gatekeeper_signal).
// It returns the daemon, its call-signalling address and its management
// address. With PORTICO_BENCH_PROFILE=dir, the daemon profiles itself into
// dir/<label> on SIGUSR1 and SIGUSR2 (cmd/portico/profile.go).
func startCallPortico(t *testing.T, bin, label string, ext, in netip.Addr, gk, callee netip.AddrPort) (*exec.Cmd, netip.AddrPort, netip.AddrPort) {
	dir := t.TempDir()
	// The call-signalling port is below the ephemeral range: Portico's
	// connections to the callee leave ephemeral ports of its inside
	// address in TIME_WAIT, which an ephemeral listening port could hit.
	sig, mgmt := 11720, testpeer.FreePort(t)
	// 5,000 relay ports per side (2,500 calls' streams at once): Portico
	// binds them on its own loopback addresses, which nothing else uses.
	const media = 20000
	cfg := fmt.Sprintf(`version: 1
node: {name: bench, drain_timeout: 1s}
interfaces:
  external: {address: %s}
  internal: {address: %s, networks: [10.0.0.0/8]}
store: {backend: sqlite}
management: {listen: "127.0.0.1:%d"}
log: {level: warn, file: log/portico.log, max_size_mb: 10, max_files: 2}
media:
  enabled: true
  external: {port_min: %d, port_max: %d}
  internal: {port_min: %d, port_max: %d}
sip:
  guest: {enabled: true, vmr_ranges: ["1000-1099"]}
h323:
  enabled: true
  ras_port: %d
  signal_port: %d
  gatekeeper: %s
  gatekeeper_signal: %s
  max_calls: 5000
`, ext, in, mgmt, media, media+4999, media+5000, media+9999, testpeer.FreePort(t), sig, gk, callee)
	// PORTICO_BENCH_DAEMON_ENV adds variables to the daemon's environment
	// alone (GOGC=400 GODEBUG=gctrace=1), not the generator's.
	env := strings.Fields(os.Getenv("PORTICO_BENCH_DAEMON_ENV"))
	if d := os.Getenv("PORTICO_BENCH_PROFILE"); d != "" {
		env = append(env, "PORTICO_PROFILE_DIR="+filepath.Join(d, label))
	}
	cmd, done := serve(t, bin, dir, cfg, env...)
	target := netip.AddrPortFrom(ext, uint16(sig))
	mgmtAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(mgmt))
	// Ready when the call-signalling listener accepts.
	for i := 0; i < 300; i++ {
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			t.Fatalf("portico exited early:\n%s", b)
		default:
		}
		if c, err := net.DialTimeout("tcp", target.String(), 200*time.Millisecond); err == nil {
			c.Close()
			return cmd, target, mgmtAddr
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("portico's call-signalling port did not open within 60s")
	return nil, netip.AddrPort{}, netip.AddrPort{}
}

// TestH323CallSetupBenchmark measures call setups through portico serve
// (guest calls from outside, fastStart G.711, a relay stream allocated
// per call, history recorded): the highest offered rate with every call
// connected and released, then the Setup → Connect latency at half that
// rate against the same calls straight to the callee, so the difference
// is what Portico adds. Three repeats (PORTICO_BENCH_REPEATS), each on a fresh daemon on its own
// addresses (TIME_WAIT of the last one's inside connections stays out of
// the way).
func TestH323CallSetupBenchmark(t *testing.T) {
	if os.Getenv("PORTICO_BENCH") == "" {
		t.Skip("set PORTICO_BENCH=1 to run the H.323 benchmark (minutes)")
	}
	bin := buildPortico(t)
	// The generator allocates for every call (goroutines, connections,
	// encoding and decoding); at the default GOGC it collected 22 times in
	// 5 s at 420 calls/s (and more often the higher the rate), on the same
	// two cores as Portico. It stands for other machines: it collects only
	// past 1 GiB of heap (a few steps' calls), so that its collections do
	// not delay the calls it times (the callee process likewise).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 30))
	var rows, stamped, splits []string
	reps := repeats
	if n, err := strconv.Atoi(os.Getenv("PORTICO_BENCH_REPEATS")); err == nil && n > 0 {
		reps = n
	}
	for rep := 1; rep <= reps; rep++ {
		ext, in := netip.AddrFrom4([4]byte{127, 0, byte(rep), 2}), netip.AddrFrom4([4]byte{127, 0, byte(rep), 3})
		cal := startCallee(t, netip.AddrFrom4([4]byte{127, 0, byte(rep), 5}))
		cmd, target, mgmt := startCallPortico(t, bin, fmt.Sprintf("run%d", rep), ext, in, gatekeeper(t), cal.addr())
		pid := cmd.Process.Pid
		g := newCallGen(target, cal)
		// Warm up (first connections, relay sockets, the store).
		g.run(t, pid, 100, time.Second)
		// Ceiling: double the offered rate until a call fails, then
		// bisect twice between the last pass and the failure.
		var best, fail callResult
		for rate := 250.0; rate <= 8000; rate *= 2 {
			r := g.run(t, pid, rate, callStep)
			t.Logf("run %d ceiling: %v (then settled in %v)", rep, r, settle(t, pid))
			if !r.passed() {
				fail = r
				break
			}
			best = r
		}
		if best.placed == 0 {
			t.Fatalf("run %d: no rate passed: %v", rep, fail)
		}
		lo, hi := best.rate, fail.rate
		for i := 0; i < 2 && hi > 0; i++ {
			mid := (lo + hi) / 2
			r := g.run(t, pid, mid, callStep)
			t.Logf("run %d ceiling: %v (then settled in %v)", rep, r, settle(t, pid))
			if r.passed() {
				best, lo = r, mid
			} else {
				fail, hi = r, mid
			}
		}
		maxRate := float64(best.ok) / best.wall.Seconds()
		half := maxRate / 2
		profiling := os.Getenv("PORTICO_BENCH_PROFILE") != ""
		if profiling {
			cmd.Process.Signal(syscall.SIGUSR1)
		}
		st0 := scrapeStages(t, mgmt)
		through := g.run(t, pid, half, halfStep)
		split := scrapeStages(t, mgmt).since(st0)
		if profiling {
			cmd.Process.Signal(syscall.SIGUSR2)
		}
		t.Logf("run %d at half the ceiling through Portico: %v", rep, through)
		t.Logf("run %d setup steps in Portico at half the ceiling: %v", rep, split)
		direct := newCallGen(cal.addr(), cal).run(t, 0, half, halfStep)
		t.Logf("run %d at half the ceiling straight to the callee: %v", rep, direct)
		// The generator and callee alone at the rate Portico failed.
		var gen callResult
		if fail.rate > 0 {
			gen = newCallGen(cal.addr(), cal).run(t, 0, fail.rate, callStep)
			t.Logf("run %d generator alone at the failing rate: %v", rep, gen)
		}
		rows = append(rows, fmt.Sprintf("| %d | %s | %.0f/s offered, %.0f/s done (Portico %.0f µs CPU/call, generator %.2f s CPU in %.1f s) | %.0f/s: %d of %d failed (%s) | %.0f/s: %d/%d, p50 %.2f / p99 %.2f ms, Portico %.0f µs CPU/call (%s) | %d/%d, p50 %.2f / p99 %.2f ms | %.2f ms | %.0f/s: %d/%d, %d failed, p99 %.2f ms |",
			rep, best.load, best.rate, maxRate, float64(best.daemonCPU.Microseconds())/float64(max(best.ok, 1)), best.genCPU.Seconds(), best.wall.Seconds(),
			fail.rate, fail.failed, fail.placed, fail.errs,
			half, through.ok, through.placed, ms(through.p50), ms(through.p99), float64(through.daemonCPU.Microseconds())/float64(max(through.ok, 1)), through.load,
			direct.ok, direct.placed, ms(direct.p50), ms(direct.p99), ms(through.p99-direct.p99),
			gen.rate, gen.ok, gen.placed, gen.failed, ms(gen.p99)))
		stamped = append(stamped, fmt.Sprintf("| %d | %.0f/s | %.2f / %.2f ms | %.2f / %.2f ms | %.2f ms | %.2f / %.2f ms (%d of %d calls) | %.2f / %.2f ms (%d of %d) | %.2f / %.2f ms | %.2f ms | %.0f / %.0f µs |",
			rep, half, ms(through.p50), ms(through.p99), ms(direct.p50), ms(direct.p99), ms(through.p99-direct.p99),
			ms(through.net50), ms(through.net99), through.stamped, through.ok, ms(direct.net50), ms(direct.net99), direct.stamped, direct.ok,
			ms(through.own50), ms(through.own99), ms(through.net99-direct.net99),
			float64(through.genCPU.Microseconds())/float64(max(through.ok, 1)), float64(through.calCPU.Microseconds())/float64(max(through.ok, 1))))
		splits = append(splits, fmt.Sprintf("run %d: %v", rep, split))
		if through.failed > 0 {
			t.Errorf("run %d: %d calls failed at half the ceiling (%s)", rep, through.failed, through.errs)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		time.Sleep(2 * time.Second)
	}
	t.Logf("\n| run | load (1/5/15 min) | ceiling: highest passing step | first failing step | half the ceiling through Portico (load) | same rate straight to the callee | added p99 | generator alone at the failing rate |\n|---|---|---|---|---|---|---|---|\n%s",
		strings.Join(rows, "\n"))
	t.Logf("\nat half the ceiling, both latencies (through Portico, straight to the callee; p50 / p99):\n| run | rate | end to end through Portico | end to end straight | added p99, end to end | kernel-stamped less the callee's own time, through Portico | same, straight | callee's own time through Portico | added p99, kernel-stamped less the callee | generator / callee CPU per call |\n|---|---|---|---|---|---|---|---|---|---|\n%s",
		strings.Join(stamped, "\n"))
	t.Logf("\nsetup steps in Portico at half the ceiling (p50 / p99 ms, from portico_h323_setup_stage_seconds):\n%s", strings.Join(splits, "\n"))
}

func sendQ931(w net.Conn, typ byte, crv uint32, fromDest bool, ui *h225.H323UserInformation) error {
	b, err := frameQ931(typ, crv, fromDest, ui)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// frameQ931 encodes a Q.931 message with ui in its TPKT frame.
func frameQ931(typ byte, crv uint32, fromDest bool, ui *h225.H323UserInformation) ([]byte, error) {
	uu, err := ui.Marshal()
	if err != nil {
		return nil, err
	}
	m := &q931.Message{CallRefLen: 2, CallRef: crv, FromDestination: fromDest, Type: typ}
	if typ == q931.Setup {
		m.Set(q931.IEBearerCapability, q931.BearerVideo)
	}
	if typ == q931.ReleaseComplete {
		m.SetCause(q931.Cause{Value: 16})
	}
	m.SetUserUser(uu)
	b, err := m.Append(nil)
	if err != nil {
		return nil, err
	}
	return h245proxy.AppendFrame(nil, b), nil
}

func readQ931(fr *h245proxy.FrameReader) (*q931.Message, *h225.H323UserInformation, error) {
	p, err := fr.Next()
	if err != nil {
		return nil, nil, err
	}
	m, err := q931.Parse(p)
	if err != nil {
		return nil, nil, err
	}
	ui := new(h225.H323UserInformation)
	if uu, err := m.UserUser(); err == nil {
		if err := ui.Unmarshal(uu); err != nil {
			return nil, nil, err
		}
	}
	return m, ui, nil
}

func endpointType() h225.EndpointType {
	v := ras.Vendor()
	return h225.EndpointType{Vendor: &v, Terminal: &h225.TerminalInfo{}}
}

// setupUI is a guest's Setup to VMR 1000 with the fastStart proposals.
func setupUI(id []byte, fast [][]byte) *h225.H323UserInformation {
	return &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{H323MessageBody: h225.H323UUPDUH323MessageBody{
		Choice: h225.H323UUPDUH323MessageBody_Setup, Setup: &h225.SetupUUIE{
			ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV4),
			SourceAddress:      []h225.AliasAddress{ras.H323ID("bench-guest")}, HasSourceAddress: true,
			SourceInfo:         endpointType(),
			DestinationAddress: []h225.AliasAddress{ras.E164("1000")}, HasDestinationAddress: true,
			ConferenceID:   h225.ConferenceIdentifier(id),
			ConferenceGoal: h225.SetupUUIEConferenceGoal{Choice: h225.SetupUUIEConferenceGoal_Create},
			CallType:       h225.CallType{Choice: h225.CallType_PointToPoint},
			CallIdentifier: &h225.CallIdentifier{Guid: h225.GloballyUniqueID(id)},
			FastStart:      fast, HasFastStart: true,
			HasMediaWaitForConnect: true, HasCanOverlapSend: true, HasMultipleCalls: true, HasMaintainConnection: true,
		}}, H245Tunnelling: true, HasH245Tunnelling: true}}
}

func connectUI(id []byte, fast [][]byte) *h225.H323UserInformation {
	return &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{H323MessageBody: h225.H323UUPDUH323MessageBody{
		Choice: h225.H323UUPDUH323MessageBody_Connect, Connect: &h225.ConnectUUIE{
			ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV4), DestinationInfo: endpointType(),
			CallIdentifier: &h225.CallIdentifier{Guid: h225.GloballyUniqueID(id)}, ConferenceID: h225.ConferenceIdentifier(id),
			FastStart: fast, HasFastStart: true,
		}}, H245Tunnelling: true, HasH245Tunnelling: true}}
}

func g711() h245.DataType {
	return h245.DataType{Choice: h245.DataType_AudioData,
		AudioData: &h245.AudioCapability{Choice: h245.AudioCapability_G711Ulaw64k, G711Ulaw64k: 20}}
}

func transport245(ap netip.AddrPort) *h245.TransportAddress {
	ip := ap.Addr().As4()
	return &h245.TransportAddress{Choice: h245.TransportAddress_UnicastAddress,
		UnicastAddress: &h245.UnicastAddress{Choice: h245.UnicastAddress_IPAddress,
			IPAddress: &h245.UnicastAddressIPAddress{Network: ip[:], TsapIdentifier: int64(ap.Port())}}}
}

// olcTx is a fastStart element of session 1 for a channel its sender
// transmits on; olcRx one it receives on. A zero address is left out.
func olcTx(lcn int64, rtp, rtcp netip.AddrPort) *h245.OpenLogicalChannel {
	return &h245.OpenLogicalChannel{ForwardLogicalChannelNumber: h245.LogicalChannelNumber(lcn),
		ForwardLogicalChannelParameters: h245.OpenLogicalChannelForwardLogicalChannelParameters{DataType: g711(),
			MultiplexParameters: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters{
				Choice:                        h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
				H2250LogicalChannelParameters: h2250(rtp, rtcp)}}}
}

func olcRx(lcn int64, rtp, rtcp netip.AddrPort) *h245.OpenLogicalChannel {
	o := olcTx(lcn, netip.AddrPort{}, netip.AddrPort{})
	o.ForwardLogicalChannelParameters.DataType = h245.DataType{Choice: h245.DataType_NullData}
	o.ReverseLogicalChannelParameters = &h245.OpenLogicalChannelReverseLogicalChannelParameters{DataType: g711(),
		MultiplexParameters: &h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters{
			Choice:                        h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
			H2250LogicalChannelParameters: h2250(rtp, rtcp)}}
	return o
}

func h2250(rtp, rtcp netip.AddrPort) *h245.H2250LogicalChannelParameters {
	p := &h245.H2250LogicalChannelParameters{SessionID: 1}
	if rtp.IsValid() {
		p.MediaChannel = transport245(rtp)
	}
	if rtcp.IsValid() {
		p.MediaControlChannel = transport245(rtcp)
	}
	return p
}

// encOLCs encodes fastStart elements; they are the benchmark's own,
// fixed, so a failure is a bug in it.
func encOLCs(olcs ...*h245.OpenLogicalChannel) [][]byte {
	var out [][]byte
	for _, o := range olcs {
		b, err := o.Marshal()
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// TestMain runs the callee process instead of the tests when the
// benchmark starts this binary again with PORTICO_BENCH_CALLEE=<ip>.
func TestMain(m *testing.M) {
	if ip := os.Getenv("PORTICO_BENCH_CALLEE"); ip != "" {
		os.Exit(runCallee(ip))
	}
	os.Exit(m.Run())
}
