package h323

import (
	"crypto/rand"
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
// closes on ReleaseComplete.
type callee struct {
	ln     net.Listener
	answer [][]byte // fastStart choice, the same for every call
}

func newCallee(t *testing.T, ip netip.Addr) *callee {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	rtp, rtcp := netip.AddrPortFrom(ip, 6000), netip.AddrPortFrom(ip, 6001)
	c := &callee{ln: ln, answer: encOLCs(t, olcTx(1, rtp, rtcp), olcRx(2, netip.AddrPort{}, rtcp))}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(conn)
		}
	}()
	return c
}

func (c *callee) addr() netip.AddrPort { return netip.MustParseAddrPort(c.ln.Addr().String()) }

func (c *callee) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(callTimeout))
	fr := h245proxy.NewFrameReader(conn, 0)
	m, ui, err := readQ931(fr)
	if err != nil || m.Type != q931.Setup || ui.H323UuPdu.H323MessageBody.Setup == nil {
		return
	}
	s := ui.H323UuPdu.H323MessageBody.Setup
	if s.CallIdentifier == nil {
		return
	}
	if err := sendQ931(conn, q931.Connect, m.CallRef, true, connectUI(s.CallIdentifier.Guid, c.answer)); err != nil {
		return
	}
	for {
		if m, _, err := readQ931(fr); err != nil || m.Type == q931.ReleaseComplete {
			return
		}
	}
}

// callGen places calls: Setup with two fastStart proposals (G.711 both
// ways), wait for Connect, ReleaseComplete, wait for the far end to
// close. Latency is Setup written → Connect read.
type callGen struct {
	target   netip.AddrPort
	proposal [][]byte
	next     atomic.Uint64
	inFlight atomic.Int64
}

func newCallGen(t *testing.T, target netip.AddrPort) *callGen {
	rtp, rtcp := netip.MustParseAddrPort("127.10.0.1:5000"), netip.MustParseAddrPort("127.10.0.1:5001")
	return &callGen{target: target, proposal: encOLCs(t, olcTx(1, netip.AddrPort{}, rtcp), olcRx(2, rtp, rtcp))}
}

// source returns the loopback address of the nth call (127.10.x.y).
func source(n uint64) net.IP {
	k := n % callSources
	return net.IPv4(127, 10, byte(k/250), byte(k%250+1))
}

// place runs one call and returns its Setup → Connect latency.
func (g *callGen) place() (time.Duration, error) {
	n := g.next.Add(1)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: source(n)}, Timeout: callTimeout}
	conn, err := d.Dial("tcp", g.target.String())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(callTimeout))
	var id [16]byte
	rand.Read(id[:])
	crv := uint32(n%32767 + 1)
	t0 := time.Now()
	if err := sendQ931(conn, q931.Setup, crv, false, setupUI(id[:], g.proposal)); err != nil {
		return 0, err
	}
	fr := h245proxy.NewFrameReader(conn, 0)
	for {
		m, ui, err := readQ931(fr)
		if err != nil {
			return 0, fmt.Errorf("before Connect: %w", err)
		}
		if m.Type == q931.ReleaseComplete {
			c, _ := m.Cause()
			return 0, fmt.Errorf("released before Connect, cause %d", c.Value)
		}
		if m.Type != q931.Connect {
			continue
		}
		lat := time.Since(t0)
		if c := ui.H323UuPdu.H323MessageBody.Connect; c == nil || len(c.FastStart) != 2 {
			return 0, errors.New("Connect without the fastStart answer")
		}
		rc := &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{H323MessageBody: h225.H323UUPDUH323MessageBody{
			Choice: h225.H323UUPDUH323MessageBody_ReleaseComplete, ReleaseComplete: &h225.ReleaseCompleteUUIE{
				ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV4), CallIdentifier: &h225.CallIdentifier{Guid: id[:]}}}}}
		if err := sendQ931(conn, q931.ReleaseComplete, crv, false, rc); err != nil {
			return 0, err
		}
		// The far end closes (Portico after forwarding the release).
		for {
			if _, err := fr.Next(); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
					return lat, nil
				}
				return 0, fmt.Errorf("after ReleaseComplete: %w", err)
			}
		}
	}
}

// callResult is one measured step of call placing.
type callResult struct {
	rate               float64
	placed, ok, failed int64
	wall               time.Duration
	p50, p99           time.Duration
	daemonCPU, genCPU  time.Duration
	genGC              uint64 // the generator process's collections
	errs               string // failures by kind
	load               string
}

func (r callResult) passed() bool { return r.failed == 0 && r.ok == r.placed && r.placed > 0 }

func (r callResult) String() string {
	return fmt.Sprintf("offered %.0f/s: %d placed, %d connected and released, %d failed (%s) in %.1fs = %.0f calls/s; Setup→Connect p50 %.2f ms p99 %.2f ms; Portico CPU %.2fs (%.0f µs/call), generator+callee CPU %.2fs (%.0f µs/call, %d GCs); load %s",
		r.rate, r.placed, r.ok, r.failed, r.errs, r.wall.Seconds(), float64(r.ok)/r.wall.Seconds(), ms(r.p50), ms(r.p99),
		r.daemonCPU.Seconds(), float64(r.daemonCPU.Microseconds())/float64(max(r.ok, 1)), r.genCPU.Seconds(),
		float64(r.genCPU.Microseconds())/float64(max(r.ok, 1)), r.genGC, r.load)
}

// run offers calls at rate per second for d (rate*d calls, each in its
// own goroutine; more than maxInFlight at once fail) and waits for them.
func (g *callGen) run(t *testing.T, pid int, rate float64, d time.Duration) callResult {
	r := callResult{rate: rate, load: loadavg()}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	var failed atomic.Int64
	kinds := map[string]int{} // failures by kind, under mu
	fail := func(kind string) {
		failed.Add(1)
		mu.Lock()
		kinds[kind]++
		mu.Unlock()
	}
	d0, g0, gc0 := time.Duration(0), testpeer.CPUTime(), gcCycles()
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
				l, err := g.place()
				if err != nil {
					fail(errKind(err))
					return
				}
				mu.Lock()
				lat = append(lat, l)
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
	r.failed, r.ok = failed.Load(), int64(len(lat))
	if len(kinds) > 0 {
		var ks []string
		for k, n := range kinds {
			ks = append(ks, fmt.Sprintf("%d %s", n, k))
		}
		sort.Strings(ks)
		r.errs = strings.Join(ks, ", ")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
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
	// The generator and the callee allocate for every call (goroutines,
	// connections, encoding and decoding); at the default GOGC their
	// process collected 22 times in 5 s at 420 calls/s (and more often the
	// higher the rate), on the same two cores as Portico. They collect less often, so that their
	// collections interfere less with the calls they time.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	var rows, splits []string
	reps := repeats
	if n, err := strconv.Atoi(os.Getenv("PORTICO_BENCH_REPEATS")); err == nil && n > 0 {
		reps = n
	}
	for rep := 1; rep <= reps; rep++ {
		ext, in := netip.AddrFrom4([4]byte{127, 0, byte(rep), 2}), netip.AddrFrom4([4]byte{127, 0, byte(rep), 3})
		cal := newCallee(t, netip.AddrFrom4([4]byte{127, 0, byte(rep), 5}))
		cmd, target, mgmt := startCallPortico(t, bin, fmt.Sprintf("run%d", rep), ext, in, gatekeeper(t), cal.addr())
		pid := cmd.Process.Pid
		g := newCallGen(t, target)
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
		direct := newCallGen(t, cal.addr()).run(t, 0, half, halfStep)
		t.Logf("run %d at half the ceiling straight to the callee: %v", rep, direct)
		// The generator and callee alone at the rate Portico failed.
		var gen callResult
		if fail.rate > 0 {
			gen = newCallGen(t, cal.addr()).run(t, 0, fail.rate, callStep)
			t.Logf("run %d generator alone at the failing rate: %v", rep, gen)
		}
		rows = append(rows, fmt.Sprintf("| %d | %s | %.0f/s offered, %.0f/s done (Portico %.0f µs CPU/call, generator %.2f s CPU in %.1f s) | %.0f/s: %d of %d failed (%s) | %.0f/s: %d/%d, p50 %.2f / p99 %.2f ms, Portico %.0f µs CPU/call (%s) | %d/%d, p50 %.2f / p99 %.2f ms | %.2f ms | %.0f/s: %d/%d, %d failed, p99 %.2f ms |",
			rep, best.load, best.rate, maxRate, float64(best.daemonCPU.Microseconds())/float64(max(best.ok, 1)), best.genCPU.Seconds(), best.wall.Seconds(),
			fail.rate, fail.failed, fail.placed, fail.errs,
			half, through.ok, through.placed, ms(through.p50), ms(through.p99), float64(through.daemonCPU.Microseconds())/float64(max(through.ok, 1)), through.load,
			direct.ok, direct.placed, ms(direct.p50), ms(direct.p99), ms(through.p99-direct.p99),
			gen.rate, gen.ok, gen.placed, gen.failed, ms(gen.p99)))
		splits = append(splits, fmt.Sprintf("run %d: %v", rep, split))
		if through.failed > 0 {
			t.Errorf("run %d: %d calls failed at half the ceiling (%s)", rep, through.failed, through.errs)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		time.Sleep(2 * time.Second)
	}
	t.Logf("\n| run | load (1/5/15 min) | ceiling: highest passing step | first failing step | half the ceiling through Portico (load) | same rate straight to the callee | added p99 | generator alone at the failing rate |\n|---|---|---|---|---|---|---|---|\n%s",
		strings.Join(rows, "\n"))
	t.Logf("\nsetup steps in Portico at half the ceiling (p50 / p99 ms, from portico_h323_setup_stage_seconds):\n%s", strings.Join(splits, "\n"))
}

func sendQ931(w net.Conn, typ byte, crv uint32, fromDest bool, ui *h225.H323UserInformation) error {
	uu, err := ui.Marshal()
	if err != nil {
		return err
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
		return err
	}
	_, err = w.Write(h245proxy.AppendFrame(nil, b))
	return err
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

func encOLCs(t *testing.T, olcs ...*h245.OpenLogicalChannel) [][]byte {
	var out [][]byte
	for _, o := range olcs {
		b, err := o.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
