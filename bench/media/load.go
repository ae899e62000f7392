package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portico-edge/portico/internal/batchio"
	"github.com/portico-edge/portico/internal/media/ng/bencode"
)

// step is one measurement at one offered rate.
type step struct {
	Offered   float64 // packets/s the generator sent
	Forwarded float64 // packets/s the sink received
	Loss      float64 // fraction
	P50, P99  float64 // ms, generator to sink through the relay
	CPUPerM   float64 // relay CPU seconds per million forwarded packets
	// SoftPerM and AllPerM are the whole machine's softirq and busy CPU
	// seconds (/proc/stat) per million forwarded packets: the kernel's
	// forwarding work wherever it is charged, generator and other load
	// included.
	SoftPerM, AllPerM float64
	// UserPerM and SysPerM split the machine's busy time further
	// (/proc/stat user+nice and system).
	UserPerM, SysPerM float64
	// BPFPerM is the run time of the relay's BPF programs (their
	// run_time_ns, counted with kernel.bpf_stats_enabled=1) and BPFRuns
	// their runs, both per forwarded packet: BPFPerM in CPU-s per Mpkt.
	BPFPerM, BPFRuns float64
	// TaskPerM is the CPU of the tasks that move the packets: the relay,
	// this process (generator and sink) and the ksoftirqd threads, per
	// Mpkt; KsoftPerM is the ksoftirqd threads' part. With tick-based
	// accounting (no CONFIG_IRQ_TIME_ACCOUNTING) softirq work is charged
	// to the task it interrupted, so this counts the kernel's forwarding
	// done in these tasks and leaves out other work on the machine.
	TaskPerM, KsoftPerM float64
	// GenPerM is the generator's (this process's) CPU per million
	// packets: on loopback the kernel's forwarding is largely charged to
	// the sender.
	GenPerM float64
	Load    string // /proc/loadavg when the step ended
	Pass    bool
}

type result struct {
	System      string
	MemPerCall  float64 // KiB, -1: not measured
	MapPerCall  float64 // KiB of BPF map memory (memlock) per call
	CheckLoss   float64 // fraction at checkCalls × 50 pps each way, -1: skipped
	CheckRate   float64
	Audio, Big  []step // rate searches (audio size, video size)
	BestAudio   step
	BestBig     step
	StartupNote string
	Load        string    // 1-minute load average before the system's run
	Fixed       step      // -fixed: a longer step at the nominal rate
	Runs        []float64 // best audio packets/s of every repetition, sorted
	RunsCPU     []float64 // CPU s/Mpkt at the nominal rate, same order
}

// generator owns the two endpoint sockets: gA plays every caller, gB every
// callee. Each sends with sendmmsg to many relay ports and receives with
// recvmmsg.
type generator struct {
	conns [2]*batchio.Conn
	addrs [2]netip.AddrPort
	dests [2][]netip.AddrPort // per side: relay port each call's flow goes to
	start time.Time
	// maxP99 is the highest p99 latency (ms) of a passing step; 0: any.
	maxP99 float64

	recv    atomic.Uint64
	hist    atomic.Pointer[histogram]
	stopped atomic.Bool
	wg      sync.WaitGroup
}

// histogram of one-way latency in 10 µs buckets up to 500 ms.
type histogram struct{ b [50001]atomic.Uint32 }

func (h *histogram) add(ns int64) {
	i := ns / 10000
	if i < 0 {
		i = 0
	}
	if i >= int64(len(h.b)) {
		i = int64(len(h.b) - 1)
	}
	h.b[i].Add(1)
}

func (h *histogram) quantile(q float64) float64 {
	var total uint64
	for i := range h.b {
		total += uint64(h.b[i].Load())
	}
	if total == 0 {
		return math.NaN()
	}
	want := uint64(math.Ceil(q * float64(total)))
	var acc uint64
	for i := range h.b {
		acc += uint64(h.b[i].Load())
		if acc >= want {
			return float64(i+1) * 0.01
		}
	}
	return float64(len(h.b)) * 0.01
}

func newGenerator() (*generator, error) {
	g := &generator{start: time.Now()}
	for i := range g.conns {
		c, at, err := listenSide(i)
		if err != nil {
			return nil, err
		}
		forceBuffers(c, 64<<20)
		bc, err := batchio.NewConn(c)
		if err != nil {
			return nil, err
		}
		g.conns[i] = bc
		g.addrs[i] = at
	}
	g.hist.Store(new(histogram))
	for side := range g.conns {
		g.wg.Add(1)
		go g.receive(side)
	}
	return g, nil
}

func (g *generator) close() {
	g.stopped.Store(true)
	for _, c := range g.conns {
		c.Close()
	}
	g.wg.Wait()
}

func (g *generator) receive(side int) {
	defer g.wg.Done()
	b := batchio.NewBatch(64)
	for {
		n, err := g.conns[side].ReadBatch(b, 0)
		if err != nil {
			return
		}
		now := int64(time.Since(g.start))
		h := g.hist.Load()
		for i := 0; i < n; i++ {
			d := b.Msgs[i].Data()
			if len(d) < 20 {
				continue
			}
			h.add(now - int64(binary.BigEndian.Uint64(d[12:20])))
		}
		g.recv.Add(uint64(n))
	}
}

// send offers rate packets/s (both sides together) of size bytes over the
// first calls flows for d; it returns how many were sent. Past its own
// ceiling the generator sends what it can until d is over.
func (g *generator) send(calls int, rate float64, size int, d time.Duration) uint64 {
	var sent atomic.Uint64
	var wg sync.WaitGroup
	for side := 0; side < 2; side++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := batchio.NewBatch(64)
			for i := range b.Msgs {
				m := &b.Msgs[i]
				m.N = size
				m.Buf[0], m.Buf[1] = 0x80, 8
				clear(m.Buf[12:size])
			}
			perSide := rate / 2
			begin := time.Now()
			var n uint64
			flow := rand.IntN(calls)
			for {
				el := time.Since(begin)
				if el >= d {
					break
				}
				due := uint64(perSide*el.Seconds()) - n
				for due > 0 && time.Since(begin) < d {
					k := min(int(due), b.Len())
					ts := uint64(time.Since(g.start))
					for i := 0; i < k; i++ {
						m := &b.Msgs[i]
						flow++
						if flow >= calls {
							flow = 0
						}
						m.Addr = g.dests[side][flow]
						binary.BigEndian.PutUint16(m.Buf[2:], uint16(n+uint64(i)))
						binary.BigEndian.PutUint32(m.Buf[8:], uint32(flow))
						binary.BigEndian.PutUint64(m.Buf[12:], ts)
					}
					w, _ := g.conns[side].WriteBatch(b, k)
					n += uint64(k)
					due -= uint64(k)
					_ = w
				}
				time.Sleep(200 * time.Microsecond)
			}
			sent.Add(n)
		}()
	}
	wg.Wait()
	return sent.Load()
}

// measure runs one step and reads the relay's CPU time around it.
func (g *generator) measure(pid, calls int, rate float64, size int, d time.Duration) step {
	h := new(histogram)
	g.hist.Store(h)
	g.recv.Store(0)
	cpu0 := cpuSeconds(pid)
	m0 := machineCPU()
	gen0 := cpuSeconds(os.Getpid())
	bpf0 := bpfRun(pid)
	ks0 := ksoftirqdSeconds()
	begin := time.Now()
	sent := g.send(calls, rate, size, d)
	d = time.Since(begin)              // the rates are per second of sending
	time.Sleep(300 * time.Millisecond) // drain
	cpu1 := cpuSeconds(pid)
	m1 := machineCPU()
	gen1 := cpuSeconds(os.Getpid())
	bpf1 := bpfRun(pid)
	ks1 := ksoftirqdSeconds()
	got := g.recv.Load()
	s := step{Offered: float64(sent) / d.Seconds(), Forwarded: float64(got) / d.Seconds()}
	if sent > 0 {
		s.Loss = math.Max(0, 1-float64(got)/float64(sent))
	}
	s.P50, s.P99 = h.quantile(0.5), h.quantile(0.99)
	if got > 0 {
		s.CPUPerM = (cpu1 - cpu0) / (float64(got) / 1e6)
		mpkt := float64(got) / 1e6
		s.SoftPerM = (m1.softirq - m0.softirq) / mpkt
		s.AllPerM = (m1.busy - m0.busy) / mpkt
		s.UserPerM = (m1.user - m0.user) / mpkt
		s.SysPerM = (m1.system - m0.system) / mpkt
		s.GenPerM = (gen1 - gen0) / mpkt
		s.BPFPerM = (bpf1.ns - bpf0.ns) / 1e9 / mpkt
		s.BPFRuns = (bpf1.runs - bpf0.runs) / float64(got)
		s.KsoftPerM = (ks1 - ks0) / mpkt
		s.TaskPerM = s.GenPerM + s.KsoftPerM
		if pid != os.Getpid() {
			s.TaskPerM += s.CPUPerM
		}
	}
	s.Load = loadAvg()
	s.Pass = got > 0 && s.Loss < 0.001 && (g.maxP99 <= 0 || s.P99 <= g.maxP99)
	return s
}

// search finds the highest rate that passes: ×1.5 steps from start, then
// two bisections between the last pass and the first failure.
func (g *generator) search(name string, pid, calls, size int, start, max float64, d time.Duration) (best step, steps []step) {
	try := func(rate float64) step {
		s := g.measure(pid, calls, rate, size, d)
		if !s.Pass {
			// A stall caused by other work on the shared machine fails a
			// step on its own: a rate fails only when a second trial fails too.
			log.Printf("%-9s %4dB offered %8.0f pps: failed (loss %.4f%%, p99 %.2f ms), second trial", name, size, s.Offered, 100*s.Loss, s.P99)
			s = g.measure(pid, calls, rate, size, d)
		}
		log.Printf("%-9s %4dB offered %8.0f pps: forwarded %8.0f, loss %.4f%%, p50 %.2f ms, p99 %.2f ms, cpu %.2f s/Mpkt pass=%v",
			name, size, s.Offered, s.Forwarded, 100*s.Loss, s.P50, s.P99, s.CPUPerM, s.Pass)
		steps = append(steps, s)
		if s.Pass && s.Forwarded > best.Forwarded {
			best = s
		}
		return s
	}
	// Bracket the limit with ×1.5 steps up (or ÷1.5 steps down), then bisect.
	lo, hi := 0.0, 0.0
	if try(start).Pass {
		lo = start
		for rate := start * 1.5; rate <= max; rate *= 1.5 {
			if !try(rate).Pass {
				hi = rate
				break
			}
			lo = rate
		}
		if hi == 0 {
			return best, steps
		}
	} else {
		hi = start
		for rate := start / 1.5; rate >= 1000; rate /= 1.5 {
			if try(rate).Pass {
				lo = rate
				break
			}
			hi = rate
		}
		if lo == 0 {
			return best, steps
		}
	}
	for i := 0; i < 2; i++ {
		mid := (lo + hi) / 2
		if try(mid).Pass {
			lo = mid
		} else {
			hi = mid
		}
	}
	return best, steps
}

// forceBuffers sets SO_RCVBUF/SO_SNDBUF past net.core.rmem_max when
// privileged, so the sink does not drop what a stalled moment queues.
func forceBuffers(c *net.UDPConn, n int) {
	batchio.SetBuffers(c, n, n)
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n)
	})
}

// loadAvg returns the 1-minute load average (other work on the machine).
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// cpuTimes are seconds of all CPUs from /proc/stat.
type cpuTimes struct {
	user, system, softirq float64 // user includes nice
	busy                  float64 // everything but idle and iowait
}

// machineCPU reads the CPU times of all CPUs from /proc/stat.
func machineCPU() cpuTimes {
	var t cpuTimes
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		return t
	}
	const hz = 100 // USER_HZ
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		n /= hz
		switch i {
		case 0, 1:
			t.user += n
		case 2:
			t.system += n
		case 6:
			t.softirq += n
		}
		if i != 3 && i != 4 && i < 8 { // not idle or iowait; up to steal (guest time is already in user)
			t.busy += n
		}
	}
	return t
}

// bpfMapKiB sums the memlock of the BPF maps pid holds (the fast path's
// kernel memory, which RSS does not show).
func bpfMapKiB(pid int) float64 {
	return bpfFDSum(pid, "map", "memlock:")[0] / 1024
}

// bpfRuns is the run time and run count of the BPF programs pid holds.
type bpfRuns struct{ ns, runs float64 }

// bpfRun reads run_time_ns and run_cnt of pid's BPF programs (zero unless
// kernel.bpf_stats_enabled is 1).
func bpfRun(pid int) bpfRuns {
	v := bpfFDSum(pid, "prog", "run_time_ns:", "run_cnt:")
	return bpfRuns{ns: v[0], runs: v[1]}
}

// bpfFDSum sums fields over the BPF objects of a kind ("map" or "prog")
// whose file descriptors pid holds, read from /proc/PID/fdinfo, each
// object once however many descriptors refer to it. (A link's fdinfo
// names its program's prog_id too, but has no prog_type.)
func bpfFDSum(pid int, kind string, fields ...string) []float64 {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, _ := os.ReadDir(dir)
	sums := make([]float64, len(fields))
	seen := map[string]bool{}
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		id, typed := "", false
		for _, l := range lines {
			if v, ok := strings.CutPrefix(l, kind+"_id:"); ok {
				id = strings.TrimSpace(v)
			}
			typed = typed || strings.HasPrefix(l, kind+"_type:")
		}
		if !typed {
			continue
		}
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		for _, l := range lines {
			for i, f := range fields {
				if v, ok := strings.CutPrefix(l, f); ok {
					n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
					sums[i] += n
				}
			}
		}
	}
	return sums
}

// cpuSeconds reads utime+stime of pid from /proc/PID/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// ksoftirqdSeconds sums the CPU time of the ksoftirqd threads.
func ksoftirqdSeconds() float64 {
	ents, _ := os.ReadDir("/proc")
	var total float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.HasPrefix(string(comm), "ksoftirqd/") {
			total += cpuSeconds(pid)
		}
	}
	return total
}

// rssKiB reads VmRSS of pid.
func rssKiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return math.NaN()
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return v
		}
	}
	return math.NaN()
}

// ngClient speaks the ng protocol to a relay.
type ngClient struct {
	c   *net.UDPConn
	seq int
}

func dialNG(port int) (*ngClient, error) {
	var c *net.UDPConn
	err := inRelayNet(func() (err error) {
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ngClient{c: c}, nil
}

func (n *ngClient) req(m map[string]any) (map[string]any, error) {
	n.seq++
	cookie := fmt.Sprintf("b%d", n.seq)
	body, err := bencode.Append([]byte(cookie+" "), m)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for try := 0; try < 5; try++ {
		n.c.Write(body)
		n.c.SetReadDeadline(time.Now().Add(time.Second))
		k, err := n.c.Read(buf)
		if err != nil {
			continue
		}
		rest, ok := strings.CutPrefix(string(buf[:k]), cookie+" ")
		if !ok {
			continue
		}
		v, err := bencode.Parse([]byte(rest))
		if err != nil {
			return nil, err
		}
		d, _ := v.(map[string]any)
		if d["result"] == "error" {
			return d, fmt.Errorf("ng %v: %v", m["command"], d["error-reason"])
		}
		return d, nil
	}
	return nil, errors.New("ng: no answer")
}

var (
	reMPort = regexp.MustCompile(`(?m)^m=audio (\d+) `)
	reConn  = regexp.MustCompile(`(?m)^c=IN IP4 ([0-9.]+)`)
)

func sdp(at netip.AddrPort, id int) string {
	return fmt.Sprintf("v=0\r\no=- %d 1 IN IP4 %s\r\ns=bench\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n", id, at.Addr(), at.Addr(), at.Port())
}

// relayAddr reads the relay's address and port from an answer's SDP.
func relayAddr(answer map[string]any) (netip.AddrPort, error) {
	body := fmt.Sprint(answer["sdp"])
	m := reMPort.FindStringSubmatch(body)
	if m == nil {
		return netip.AddrPort{}, fmt.Errorf("answer lacks m=audio: %v", answer)
	}
	port, _ := strconv.Atoi(m[1])
	ip := netip.MustParseAddr("127.0.0.1")
	if c := reConn.FindStringSubmatch(body); c != nil {
		if a, err := netip.ParseAddr(c[1]); err == nil {
			ip = a
		}
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// allocate sets up call i and returns the relay ports of side A and side B.
func (n *ngClient) allocate(i int, a, b netip.AddrPort) (pa, pb netip.AddrPort, err error) {
	callID := fmt.Sprintf("bench-%d", i)
	r, err := n.req(map[string]any{"command": "offer", "call-id": callID, "from-tag": "a" + callID, "sdp": sdp(a, i)})
	if err != nil {
		return pa, pb, err
	}
	if pb, err = relayAddr(r); err != nil {
		return pa, pb, err
	}
	r, err = n.req(map[string]any{"command": "answer", "call-id": callID, "from-tag": "a" + callID, "to-tag": "b" + callID, "sdp": sdp(b, i)})
	if err != nil {
		return pa, pb, err
	}
	pa, err = relayAddr(r)
	return pa, pb, err
}

func (n *ngClient) remove(i int) error {
	callID := fmt.Sprintf("bench-%d", i)
	_, err := n.req(map[string]any{"command": "delete", "call-id": callID, "from-tag": "a" + callID})
	return err
}

func freeUDPPort() int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// runSystem measures one system end to end.
func runSystem(o options, name string) (result, error) {
	res := result{System: name, MemPerCall: -1, CheckLoss: -1, Load: loadAvg()}
	g, err := newGenerator()
	if err != nil {
		return res, err
	}
	g.maxP99 = o.maxP99
	defer g.close()
	self, _ := os.Executable()
	ngPort := freeUDPPort()
	var cmd *exec.Cmd
	maxCalls := max(o.calls, o.checkCalls)
	switch name {
	case "portico", "portico-fast":
		fp := "off"
		if name == "portico-fast" {
			fp = "on"
		}
		cmd = exec.Command(self, "-role", "portico", "-ng", strconv.Itoa(ngPort), "-workers", strconv.Itoa(o.workers), "-cpuprofile", o.cpuprofile, "-fastpath", fp, "-netns="+strconv.FormatBool(veth != nil))
	case "generator", "kernel", "direct":
		// No relay: the generator's sockets send to each other.
		cmd = exec.Command("sleep", "infinity")
	case "rtpengine":
		path, err := exec.LookPath("rtpengine")
		if err != nil {
			return res, fmt.Errorf("rtpengine-daemon not installed: %w", err)
		}
		cmd = exec.Command(path, "--table=-1", "--interface=127.0.0.1", fmt.Sprintf("--listen-ng=127.0.0.1:%d", ngPort),
			"--foreground", "--log-stderr", "--log-level=3", "--port-min=30000", "--port-max=39999")
	case "bare":
		cmd = exec.Command(self, "-role", "bare", "-n", strconv.Itoa(maxCalls), "-to-a", g.addrs[0].String(), "-to-b", g.addrs[1].String())
	default:
		return res, fmt.Errorf("unknown system %q", name)
	}
	if veth != nil {
		if name == "rtpengine" || name == "bare" {
			return res, fmt.Errorf("%s: not available with -netns", name)
		}
		cmd = veth.command(cmd)
	}
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	pid := cmd.Process.Pid
	dests := [2][]netip.AddrPort{}
	var client *ngClient
	allocated := 0
	if name == "generator" || name == "kernel" || name == "direct" {
		to := g.addrs
		if name == "direct" {
			to = directAddrs(to)
		}
		for i := 0; i < maxCalls; i++ {
			dests[0] = append(dests[0], to[1])
			dests[1] = append(dests[1], to[0])
		}
		allocated = maxCalls
		pid = os.Getpid()
	} else if name == "bare" {
		sc := bufio.NewScanner(stdout)
		var ports []int
		for sc.Scan() && sc.Text() != "ready" {
			p, _ := strconv.Atoi(sc.Text())
			ports = append(ports, p)
		}
		go func() {
			for sc.Scan() {
			}
		}()
		lo := netip.MustParseAddr("127.0.0.1")
		for i := 0; i+1 < len(ports); i += 2 {
			dests[0] = append(dests[0], netip.AddrPortFrom(lo, uint16(ports[i])))
			dests[1] = append(dests[1], netip.AddrPortFrom(lo, uint16(ports[i+1])))
		}
		allocated = len(dests[0])
	} else {
		go func() { bufio.NewScanner(stdout).Scan() }()
		if client, err = dialNG(ngPort); err != nil {
			return res, err
		}
		ready := false
		for i := 0; i < 100 && !ready; i++ {
			if _, err := client.req(map[string]any{"command": "ping"}); err == nil {
				ready = true
			} else {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if !ready {
			return res, fmt.Errorf("%s: ng listener did not answer", name)
		}
		time.Sleep(200 * time.Millisecond)
		rss0 := rssKiB(pid)
		memCalls := max(o.memCalls, maxCalls)
		for i := 0; i < memCalls; i++ {
			pa, pb, err := client.allocate(i, g.addrs[0], g.addrs[1])
			if err != nil {
				return res, fmt.Errorf("%s: call %d: %w", name, i, err)
			}
			dests[0] = append(dests[0], pa)
			dests[1] = append(dests[1], pb)
		}
		allocated = memCalls
		time.Sleep(200 * time.Millisecond)
		res.MemPerCall = (rssKiB(pid) - rss0) / float64(memCalls)
		res.MapPerCall = bpfMapKiB(pid) / float64(memCalls)
		log.Printf("%-9s %d calls allocated: %.1f KiB RSS per call, %.2f KiB of BPF maps per call", name, memCalls, res.MemPerCall, res.MapPerCall)
		// Keep only the calls of the rate search: the overload of the
		// check below comes last, because rtpengine keeps discarding on
		// sockets whose receive queue overflowed.
		for i := memCalls - 1; i >= o.calls; i-- {
			client.remove(i)
		}
		allocated = o.calls
		dests[0], dests[1] = dests[0][:o.calls], dests[1][:o.calls]
	}
	g.dests = dests
	// Latch every flow and warm up.
	g.measure(pid, o.calls, float64(o.calls)*2*50, o.size, time.Second)
	if o.fixed > 0 {
		res.Fixed = g.measure(pid, o.calls, float64(o.calls)*2*50, o.size, o.fixed)
		s := res.Fixed
		log.Printf("%-9s %4dB fixed %8.0f pps: forwarded %8.0f, loss %.4f%%; s/Mpkt: relay %.2f, generator %.2f, machine %.2f (user %.2f, system %.2f, softirq %.2f), BPF %.3f (%.2f runs/pkt); load %s",
			name, o.size, s.Offered, s.Forwarded, 100*s.Loss, s.CPUPerM, s.GenPerM, s.AllPerM, s.UserPerM, s.SysPerM, s.SoftPerM, s.BPFPerM, s.BPFRuns, s.Load)
	}
	start := float64(o.calls) * 2 * 50
	if o.rate > 0 {
		// The ng round trip during the step shows how promptly the relay's
		// control plane is served while its packet workers are busy.
		pings := make(chan []float64)
		stopPing := make(chan struct{})
		go func() {
			var rtt []float64
			for client != nil {
				select {
				case <-stopPing:
					pings <- rtt
					return
				case <-time.After(20 * time.Millisecond):
				}
				t0 := time.Now()
				if _, err := client.req(map[string]any{"command": "ping"}); err == nil {
					rtt = append(rtt, float64(time.Since(t0).Microseconds())/1000)
				}
			}
			pings <- rtt
		}()
		s := g.measure(pid, o.calls, o.rate, o.size, o.step)
		close(stopPing)
		rtt := <-pings
		sort.Float64s(rtt)
		var ngMed, ngMax float64
		if len(rtt) > 0 {
			ngMed, ngMax = rtt[len(rtt)/2], rtt[len(rtt)-1]
		}
		log.Printf("%-9s %4dB offered %8.0f pps: forwarded %8.0f, loss %.4f%%, p50 %.2f ms, p99 %.2f ms, cpu %.2f s/Mpkt pass=%v, ng ping median %.2f ms max %.2f ms (%d), load %s",
			name, o.size, s.Offered, s.Forwarded, 100*s.Loss, s.P50, s.P99, s.CPUPerM, s.Pass, ngMed, ngMax, len(rtt), s.Load)
		res.BestAudio, res.Audio = s, []step{s}
	} else {
		res.BestAudio, res.Audio = g.search(name, pid, o.calls, o.size, start, o.maxRate, o.step)
	}
	if o.videoSize > 0 {
		res.BestBig, res.Big = g.search(name, pid, o.calls, o.videoSize, start, o.maxRate, o.step)
	}
	if o.checkCalls > 0 {
		for i := allocated; i < o.checkCalls && client != nil; i++ {
			pa, pb, err := client.allocate(i, g.addrs[0], g.addrs[1])
			if err != nil {
				return res, fmt.Errorf("%s: call %d: %w", name, i, err)
			}
			g.dests[0] = append(g.dests[0], pa)
			g.dests[1] = append(g.dests[1], pb)
		}
		if len(g.dests[0]) >= o.checkCalls {
			g.measure(pid, o.checkCalls, float64(o.checkCalls)*2*50, o.size, time.Second) // latch the new calls
			s := g.measure(pid, o.checkCalls, float64(o.checkCalls)*2*50, o.size, 2*o.step)
			res.CheckLoss, res.CheckRate = s.Loss, s.Forwarded
			log.Printf("%-9s %d calls × 50 pps each way: forwarded %.0f pps, loss %.4f%%, p99 %.2f ms", name, o.checkCalls, s.Forwarded, 100*s.Loss, s.P99)
		}
	}
	return res, nil
}

func run(o options) ([]result, error) {
	runs := runAll(o)
	var out []result
	for _, s := range o.systems {
		rs := runs[s]
		sort.Slice(rs, func(i, j int) bool { return rs[i].BestAudio.Forwarded < rs[j].BestAudio.Forwarded })
		med := rs[len(rs)/2] // the median run by packets/s is reported in full
		for _, r := range rs {
			med.Runs = append(med.Runs, r.BestAudio.Forwarded)
			med.RunsCPU = append(med.RunsCPU, r.nominalCPU())
		}
		out = append(out, med)
	}
	return out, nil
}

// runAll runs every system o.repeat times and returns each system's runs
// in the order they ran.
func runAll(o options) map[string][]result {
	// Each repetition runs every system once, rotating their order so that
	// changing load on the shared machine does not always hit the same one.
	runs := map[string][]result{}
	for rep := 0; rep < o.repeat; rep++ {
		for k := range o.systems {
			s := o.systems[(k+rep)%len(o.systems)]
			log.Printf("repetition %d/%d: %s", rep+1, o.repeat, s)
			r, err := runSystem(o, s)
			if err != nil {
				log.Printf("%s: %v", s, err)
				r.StartupNote = err.Error()
			}
			runs[s] = append(runs[s], r)
		}
	}
	return runs
}
