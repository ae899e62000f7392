// Command turn-bench measures Portico's TURN service (internal/turn) and
// coturn's turnserver side by side on this machine, under the same load:
//
//   - allocations per second: the bench's own client (pion/turn's with
//     -pion-client) making allocations from many concurrent sockets, each
//     a full RFC 8656 Allocate exchange (401 challenge, authenticated
//     Allocate) followed by a Refresh(0);
//   - highest lossless relayed rate: turnutils_uclient -m 240 -n 5000 -l 172
//     -z Z, echoed by the bench's echo peer (or turnutils_peer with -peer
//     turnutils), with the send interval Z (ms) searched
//     by bisection for the shortest one that loses no message; at each step
//     the server's CPU seconds (from /proc), the machine's softirq seconds
//     and the generator's own CPU (uclient and peer) are recorded, so that
//     CPU per relayed message and whether the generator was the limit can
//     be read off.
//
// Each round runs both servers, one after the other (the order alternates
// between rounds), Portico as this binary re-executed with -serve, each as
// a child process so that its CPU seconds are its own. Traffic stays on
// 127.0.0.1 and every run is bounded in count and time.
//
//	go run ./bench/turn -rounds 2
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"

	"github.com/portico-edge/portico/internal/batchio"
	"github.com/portico-edge/portico/internal/turn"
)

const (
	realm    = "portico.bench"
	user     = "bench"
	password = "bench-password"
)

func main() {
	var (
		serve     = flag.Bool("serve", false, "internal: run the Portico TURN server (child mode)")
		port      = flag.Int("port", 0, "internal: server port (child mode)")
		portMin   = flag.Int("relay-min", 61000, "first relay port")
		portMax   = flag.Int("relay-max", 64999, "last relay port")
		sockets   = flag.Int("sockets", 1, "Portico UDP sockets per listener (SO_REUSEPORT)")
		clients   = flag.Int("m", 240, "uclient clients (-m)")
		messages  = flag.Int("n", 5000, "messages per uclient client (-n)")
		length    = flag.Int("l", 172, "message length, bytes (-l)")
		zMin      = flag.Int("zmin", 1, "shortest send interval searched, ms")
		zMax      = flag.Int("zmax", 8, "longest send interval searched, ms")
		zFixed    = flag.Int("z", 0, "run this one interval (ms) instead of searching")
		allocs    = flag.Int("allocs", 2000, "allocations for the allocations/s test")
		workers   = flag.Int("workers", 32, "concurrent allocating clients")
		only      = flag.String("only", "", "run against one server only: portico or coturn")
		noRTCP    = flag.Bool("c", true, "pass -c to uclient (no RTCP allocations)")
		uclientTO = flag.Duration("step-timeout", 180*time.Second, "bound on one uclient run")
		cpuProf   = flag.String("cpuprofile", "", "write Portico's CPU profile here")
		rounds    = flag.Int("rounds", 2, "rounds; each runs both servers, the order alternating")
		allocOnly = flag.Bool("allocs-only", false, "measure allocations/s only, no relayed-rate search")
		pionAlloc = flag.Bool("pion-client", false, "make the allocations with pion/turn's client instead of the bench's own")
		echo      = flag.Bool("echo", false, "internal: run the bench's echo peer (child mode)")
		peerKind  = flag.String("peer", "echo", "echo peer: echo (the bench's own: recvmmsg/sendmmsg, 4 MiB buffers, -peer-sockets sockets) or turnutils (turnutils_peer)")
		peerSocks = flag.Int("peer-sockets", 2, "sockets (SO_REUSEPORT, one goroutine each) of the bench's echo peer")
	)
	flag.Parse()
	if *echo {
		if err := runEcho(*port, *peerSocks); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *peerKind != "echo" && *peerKind != "turnutils" {
		fmt.Fprintln(os.Stderr, "-peer: echo or turnutils")
		os.Exit(2)
	}
	if *serve {
		if *cpuProf != "" {
			f, err := os.Create(*cpuProf)
			if err == nil && pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
		if err := runPortico(*port, *portMin, *portMax, *sockets); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *zMin < 1 || *zMax < *zMin || *zMax > 100 || *clients < 1 || *clients > 2000 {
		fmt.Fprintln(os.Stderr, "bad -zmin/-zmax/-m")
		os.Exit(2)
	}
	b := &bench{portMin: *portMin, portMax: *portMax, sockets: *sockets, clients: *clients, messages: *messages,
		length: *length, zMin: *zMin, zMax: *zMax, zFixed: *zFixed, allocs: *allocs, workers: *workers,
		noRTCP: *noRTCP, stepTimeout: *uclientTO, cpuProf: *cpuProf, allocOnly: *allocOnly, pionClient: *pionAlloc,
		peer: *peerKind, peerSockets: *peerSocks}
	fmt.Printf("uptime: %s\n", uptime())
	var results []result
	for round := 1; round <= *rounds && round <= 10; round++ {
		order := []string{"coturn", "portico"}
		if round%2 == 0 {
			order = []string{"portico", "coturn"}
		}
		for _, server := range order {
			if *only != "" && *only != server {
				continue
			}
			fmt.Printf("round %d, %s, uptime: %s\n", round, server, uptime())
			r, err := b.run(server)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", server, err)
				os.Exit(1)
			}
			r.round = round
			results = append(results, r)
		}
	}
	fmt.Println()
	fmt.Printf("turnutils_uclient -m %d -n %d -l %d, -z searched in [%d, %d] ms; uptime now: %s\n", *clients, *messages, *length, *zMin, *zMax, uptime())
	fmt.Println("| round | server | allocations/s | shortest lossless -z (msg/s each way) | RTT there (ms) | loss one step shorter | server CPU µs per relayed msg | softirq µs per relayed msg (machine) | generator CPU (cores) | socket drops one step shorter | load average |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.round, r.server, r.allocsPerSec,
			r.best(), r.rtt(), r.nextLoss(), r.cpuPerMsg(), r.softirqPerMsg(), r.genCores(), r.nextDrops(), r.load)
	}
}

// dieWithParent makes a child process end with the bench, even when the
// bench is killed.
func dieWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

// uptime is the load average as uptime(1) prints it.
func uptime() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return "load average: " + strings.Join(f[:3], ", ")
}

// runPortico is the child process: Portico's TURN service on 127.0.0.1.
func runPortico(port, portMin, portMax, sockets int) error {
	users := turn.NewMemoryUsers()
	users.Set(realm, user, password)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s, err := turn.New(turn.Config{
		Listen:    turn.Listen{UDP: []string{addr}, TCP: []string{addr}, Sockets: sockets},
		Realm:     realm,
		Relay:     turn.Relay{Address: "127.0.0.1", PortMin: portMin, PortMax: portMax},
		Quota:     turn.Quota{PerUser: -1, Total: -1},
		RateLimit: turn.RateLimit{PerSecond: -1},
		Peers:     turn.PeerPolicy{Allow: []string{"127.0.0.0/8"}},
	}, turn.Deps{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), Users: users})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return s.Run(ctx)
}

type bench struct {
	portMin, portMax, sockets int
	clients, messages, length int
	zMin, zMax, zFixed        int
	allocs, workers           int
	noRTCP                    bool
	stepTimeout               time.Duration
	cpuProf                   string
	allocOnly                 bool
	pionClient                bool
	peer                      string
	peerSockets               int
}

type result struct {
	round        int
	server       string
	allocsPerSec float64
	allocCPU     time.Duration // server CPU during the allocations/s test
	load         string
	steps        map[int]step // by -z
	lossless     int          // shortest lossless -z, 0: none
}

// step is one uclient run at one send interval.
type step struct {
	z         int
	rate      int // offered msg/s each way
	st        uclientStats
	serverCPU time.Duration
	softirq   time.Duration // whole machine
	genCPU    time.Duration // uclient and peer
	drops     drops         // datagrams dropped by full socket buffers
	ok        bool
	relayed   int // messages the server relayed (both ways)
}

func (r result) best() string {
	if r.lossless == 0 {
		return "none"
	}
	s := r.steps[r.lossless]
	return fmt.Sprintf("%d (%d)", s.z, s.rate)
}

func (r result) rtt() string {
	if r.lossless == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r.steps[r.lossless].st.rtt)
}

// next is the step one interval shorter than the shortest lossless one
// (the longest run when none was lossless).
func (r result) next() (step, bool) {
	z := r.lossless - 1
	if r.lossless == 0 {
		z = 0
		for k := range r.steps {
			z = max(z, k)
		}
	}
	s, ok := r.steps[z]
	return s, ok
}

func (r result) nextLoss() string {
	s, ok := r.next()
	if !ok {
		return "not run"
	}
	return fmt.Sprintf("%.3f %% at -z %d (%d)", s.st.lossPct, s.z, s.rate)
}

func (r result) nextDrops() string {
	if s, ok := r.next(); ok {
		return s.drops.String()
	}
	return "-"
}

func perMsg(d time.Duration, n int) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(d.Microseconds())/float64(n))
}

// cpuPerMsg is the server's CPU per relayed message at the shortest
// lossless interval (or the longest one run when none was lossless).
func (r result) ref() step {
	if r.lossless != 0 {
		return r.steps[r.lossless]
	}
	var s step
	for _, v := range r.steps {
		if v.z > s.z {
			s = v
		}
	}
	return s
}

func (r result) cpuPerMsg() string     { s := r.ref(); return perMsg(s.serverCPU, s.relayed) }
func (r result) softirqPerMsg() string { s := r.ref(); return perMsg(s.softirq, s.relayed) }
func (r result) genCores() string {
	s := r.ref()
	if s.st.wall <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", s.genCPU.Seconds()/s.st.wall.Seconds())
}

func freePort() (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		u.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port")
}

// startServer starts server on a free port and waits until it answers.
func (b *bench) startServer(server string) (*exec.Cmd, int, error) {
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	cmd, err := b.startServerOn(server, port)
	return cmd, port, err
}

func (b *bench) startServerOn(server string, port int) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	switch server {
	case "portico":
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(self, "-serve", "-port", strconv.Itoa(port), "-relay-min", strconv.Itoa(b.portMin),
			"-relay-max", strconv.Itoa(b.portMax), "-sockets", strconv.Itoa(b.sockets), "-cpuprofile", b.cpuProf)
	case "coturn":
		cmd = exec.Command("turnserver", "-n", "--listening-ip", "127.0.0.1", "--listening-port", strconv.Itoa(port),
			"--relay-ip", "127.0.0.1", "--min-port", strconv.Itoa(b.portMin), "--max-port", strconv.Itoa(b.portMax),
			"--lt-cred-mech", "--user", user+":"+password, "--realm", realm, "--allow-loopback-peers",
			"--no-tls", "--no-dtls", "--no-cli", "--no-stdout-log", "--log-file", "/dev/null", "--no-rfc5780",
			"--pidfile", os.DevNull)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Wait until it answers a binding request.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if bindingOK(port) {
			return cmd, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, fmt.Errorf("%s did not answer on port %d", server, port)
}

func bindingOK(port int) bool {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return false
	}
	defer conn.Close()
	c, err := pturn.NewClient(&pturn.ClientConfig{STUNServerAddr: "127.0.0.1:" + strconv.Itoa(port), Conn: conn, RTO: 200 * time.Millisecond})
	if err != nil {
		return false
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		return false
	}
	_, err = c.SendBindingRequest()
	return err == nil
}

func (b *bench) run(server string) (result, error) {
	r := result{server: server, steps: map[int]step{}, load: uptime()}
	cmd, port, err := b.startServer(server)
	if err != nil {
		return r, err
	}
	fmt.Printf("== %s on 127.0.0.1:%d\n", server, port)
	cpu0, self0 := procCPU(cmd.Process.Pid), procCPU(os.Getpid())
	r.allocsPerSec, err = b.allocationRate(port)
	r.allocCPU = procCPU(cmd.Process.Pid) - cpu0
	clientCPU := procCPU(os.Getpid()) - self0
	stopProcess(cmd)
	if err != nil {
		return r, fmt.Errorf("allocations: %w", err)
	}
	fmt.Printf("allocations/s: %.0f (%d allocations, %d workers); server CPU %s µs per allocation, client CPU %s µs per allocation; %s\n",
		r.allocsPerSec, b.allocs, b.workers, perMsg(r.allocCPU, b.allocs), perMsg(clientCPU, b.allocs), uptime())
	if b.allocOnly {
		return r, nil
	}

	try := func(z int) (bool, error) {
		if s, ok := r.steps[z]; ok {
			return s.ok, nil
		}
		s, err := b.step(server, z)
		if err != nil {
			return false, err
		}
		r.steps[z] = s
		fmt.Printf("-z %2d  offered %6d msg/s each way  sent %8d recv %8d lost %6d (%.3f%%)  rtt %.2f ms  wall %.1fs  socket drops %s  server %.2f µs/msg  softirq %.2f µs/msg  generator %.2f cores  %s\n",
			z, s.rate, s.st.sent, s.st.recv, s.st.lost, s.st.lossPct, s.st.rtt, s.st.wall.Seconds(), s.drops,
			float64(s.serverCPU.Microseconds())/float64(max(1, s.relayed)), float64(s.softirq.Microseconds())/float64(max(1, s.relayed)),
			s.genCPU.Seconds()/s.st.wall.Seconds(), uptime())
		return s.ok, nil
	}
	if b.zFixed > 0 {
		if ok, err := try(b.zFixed); err != nil {
			return r, err
		} else if ok {
			r.lossless = b.zFixed
		}
	} else {
		// Bisection for the shortest lossless interval in [zMin, zMax],
		// assuming a longer interval never loses more.
		lo, hi := b.zMin, b.zMax
		for lo < hi {
			mid := (lo + hi) / 2
			ok, err := try(mid)
			if err != nil {
				return r, err
			}
			if ok {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		ok, err := try(hi)
		if err != nil {
			return r, err
		}
		if ok {
			r.lossless = hi
		}
	}
	return r, nil
}

// stopProcess ends a server or peer: SIGTERM, then SIGKILL after 10 s.
func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// step runs uclient once at interval z and measures the server's and the
// generator's CPU and the machine's softirq time meanwhile.
func (b *bench) step(server string, z int) (step, error) {
	s := step{z: z, rate: b.clients * 1000 / z}
	// A fresh server and peer for every step: uclient's ports come back
	// in the next step while the last step's allocations still live.
	cmd, port, err := b.startServer(server)
	if err != nil {
		return s, err
	}
	defer stopProcess(cmd)
	peerPort, err := freePort()
	if err != nil {
		return s, err
	}
	peer := exec.Command("turnutils_peer", "-L", "127.0.0.1", "-p", strconv.Itoa(peerPort))
	if b.peer == "echo" {
		self, err := os.Executable()
		if err != nil {
			return s, err
		}
		peer = exec.Command(self, "-echo", "-port", strconv.Itoa(peerPort), "-peer-sockets", strconv.Itoa(b.peerSockets))
		peer.Stderr = os.Stderr
	}
	peer.SysProcAttr = dieWithParent()
	if err := peer.Start(); err != nil {
		return s, err
	}
	defer func() { _ = peer.Process.Kill(); _ = peer.Wait() }()
	time.Sleep(300 * time.Millisecond)

	serverPid, peerPid := cmd.Process.Pid, peer.Process.Pid
	srv0, peer0, irq0 := procCPU(serverPid), procCPU(peerPid), softirq()
	w := watchDrops(port, peerPort, b.portMin, b.portMax)
	st, ucpu, err := b.uclient(port, peerPort, z)
	s.drops = w.stop()
	s.serverCPU = procCPU(serverPid) - srv0
	s.genCPU = ucpu + procCPU(peerPid) - peer0
	s.softirq = softirq() - irq0
	if err != nil {
		// uclient gave up (allocations refused or timed out under load):
		// a failed step, everything lost.
		fmt.Printf("-z %2d  %v\n", z, err)
		st.lost, st.lossPct = max(st.sent, 1), 100
	}
	s.st = st
	s.relayed = st.sent + st.recv
	s.ok = st.lost == 0 && st.sent > 0
	return s, nil
}

// drops counts datagrams the kernel dropped at full receive buffers during
// a step, by socket: the server's listener, its relay sockets, the peer
// (turnutils_peer) and the clients (uclient, every other socket). Drops at
// the peer or the clients are the generator's own limit.
type drops struct{ listener, relay, peer, clients int }

func (d drops) String() string {
	return fmt.Sprintf("listener %d relay %d peer %d clients %d", d.listener, d.relay, d.peer, d.clients)
}

type dropWatch struct {
	stopCh chan struct{}
	done   chan drops
}

// watchDrops samples /proc/net/udp every 200 ms until stop, so that the
// drops of sockets closed before the step ends (uclient's) are counted.
func watchDrops(port, peerPort, relayMin, relayMax int) *dropWatch {
	w := &dropWatch{stopCh: make(chan struct{}), done: make(chan drops, 1)}
	type sock struct{ port, first, last int }
	socks := map[string]*sock{}
	sample := func(initial bool) {
		b, err := os.ReadFile("/proc/net/udp")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 13 {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			p, _ := strconv.ParseInt(hexPort, 16, 32)
			n, _ := strconv.Atoi(f[12])
			if sk, ok := socks[f[9]]; ok {
				sk.last = n
				continue
			}
			first := 0
			if initial {
				first = n
			}
			socks[f[9]] = &sock{port: int(p), first: first, last: n}
		}
	}
	sample(true)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				sample(false)
			case <-w.stopCh:
				sample(false)
				var d drops
				for _, sk := range socks {
					n := sk.last - sk.first
					switch {
					case sk.port == port:
						d.listener += n
					case sk.port == peerPort:
						d.peer += n
					case sk.port >= relayMin && sk.port <= relayMax:
						d.relay += n
					default:
						d.clients += n
					}
				}
				w.done <- d
				return
			}
		}
	}()
	return w
}

func (w *dropWatch) stop() drops {
	close(w.stopCh)
	return <-w.done
}

// clockTick is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU is a process's user and system time (all its threads).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * clockTick
}

// softirq is the machine's total softirq time (all CPUs).
func softirq() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	v, _ := strconv.ParseInt(f[7], 10, 64)
	return time.Duration(v) * clockTick
}

// allocationRate makes b.allocs allocations from b.workers concurrent
// sockets and releases each at once.
func (b *bench) allocationRate(port int) (float64, error) {
	server := "127.0.0.1:" + strconv.Itoa(port)
	var (
		next   atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
		first  error
		mu     sync.Mutex
	)
	start := time.Now()
	for w := 0; w < b.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.allocs) {
				alloc := allocateOnce
				if !b.pionClient {
					alloc = allocateLean
				}
				if err := alloc(server); err != nil {
					failed.Add(1)
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	f := failed.Load()
	if f > int64(b.allocs)/10 {
		return 0, fmt.Errorf("%d of %d allocations failed, first: %v", f, b.allocs, first)
	}
	if f > 0 {
		fmt.Printf("%d of %d allocations failed (not counted), first: %v\n", f, b.allocs, first)
	}
	return float64(int64(b.allocs)-f) / el.Seconds(), nil
}

func allocateOnce(server string) error {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer conn.Close()
	c, err := pturn.NewClient(&pturn.ClientConfig{
		STUNServerAddr: server, TURNServerAddr: server,
		Username: user, Password: password, Realm: realm, Conn: conn,
		LoggerFactory: quietLogs{},
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		return err
	}
	relay, err := c.Allocate()
	if err != nil {
		return err
	}
	return relay.Close() // Refresh with LIFETIME 0
}

type uclientStats struct {
	sent, recv, lost int
	lossPct, rtt     float64
	wall             time.Duration
}

var (
	lostRe  = regexp.MustCompile(`Total lost packets (\d+) \(([\d.]+)%\)`)
	statsRe = regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)
	rttRe   = regexp.MustCompile(`Average round trip delay ([\d.]+) ms`)
)

func (b *bench) uclient(port, peerPort, z int) (uclientStats, time.Duration, error) {
	args := []string{"-u", user, "-w", password, "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort),
		"-m", strconv.Itoa(b.clients), "-n", strconv.Itoa(b.messages), "-l", strconv.Itoa(b.length), "-z", strconv.Itoa(z),
		"-p", strconv.Itoa(port)}
	if b.noRTCP {
		args = append(args, "-c")
	}
	args = append(args, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), b.stepTimeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "turnutils_uclient", args...)
	cmd.SysProcAttr = dieWithParent()
	out, err := cmd.CombinedOutput()
	st := uclientStats{wall: time.Since(start), lost: -1}
	var cpu time.Duration
	if ps := cmd.ProcessState; ps != nil {
		cpu = ps.UserTime() + ps.SystemTime()
	}
	s := string(out)
	if m := lostRe.FindStringSubmatch(s); m != nil {
		st.lost, _ = strconv.Atoi(m[1])
		st.lossPct, _ = strconv.ParseFloat(m[2], 64)
	}
	if ms := statsRe.FindAllStringSubmatch(s, -1); len(ms) > 0 {
		m := ms[len(ms)-1]
		st.sent, _ = strconv.Atoi(m[1])
		st.recv, _ = strconv.Atoi(m[2])
	}
	if m := rttRe.FindStringSubmatch(s); m != nil {
		st.rtt, _ = strconv.ParseFloat(m[1], 64)
	}
	if st.lost < 0 {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		return st, cpu, fmt.Errorf("uclient %v: %v, no totals:\n%s", args, err, strings.Join(lines, "\n"))
	}
	return st, cpu, nil
}

// quietLogs silences pion's client logging.
type quietLogs struct{}

func (quietLogs) NewLogger(string) logging.LeveledLogger { return pionLogger{} }

type pionLogger struct{}

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (pionLogger) Debug(string)          {}
func (pionLogger) Debugf(string, ...any) {}
func (pionLogger) Info(string)           {}
func (pionLogger) Infof(string, ...any)  {}
func (pionLogger) Warn(string)           {}
func (pionLogger) Warnf(string, ...any)  {}
func (pionLogger) Error(string)          {}
func (pionLogger) Errorf(string, ...any) {}

// leanKey is the long-term credential of the bench's user.
var leanKey = stun.NewLongTermIntegrity(user, realm, password)

var leanSource atomic.Uint32

// allocateLean makes one allocation with the bench's own client, which
// costs a few microseconds of CPU per allocation where pion/turn's client
// costs a goroutine, timers and a transaction table per client, so that
// the server's ceiling shows rather than the client's: from a new socket,
// Allocate → 401 (NONCE, REALM) → authenticated Allocate → Refresh with
// LIFETIME 0, each request retransmitted after 500 ms, three tries.
func allocateLean(server string) error {
	raddr, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		return err
	}
	// Each allocation from its own loopback address in 127.1.0.0/16: a
	// source port coming back soon after from the same address finds
	// coturn still holding the last allocation's state (437).
	n := leanSource.Add(1)
	laddr := &net.UDPAddr{IP: net.IPv4(127, 1, byte(n>>8), byte(n))}
	conn, err := net.DialUDP("udp4", laddr, raddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	res := new(stun.Message)
	resp, err := leanExchange(conn, res, stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport, stun.Fingerprint)
	if err != nil {
		return err
	}
	var nonce stun.Nonce
	if resp.Type.Class != stun.ClassErrorResponse || nonce.GetFrom(resp) != nil {
		var code stun.ErrorCodeAttribute
		_ = code.GetFrom(resp)
		return fmt.Errorf("allocate: no 401 with a nonce, got %s %v", resp.Type, code)
	}
	// nonce points into res, which the next answer overwrites.
	nonce = append(stun.Nonce(nil), nonce...)
	auth := []stun.Setter{stun.NewUsername(user), stun.NewRealm(realm), nonce, leanKey, stun.Fingerprint}
	resp, err = leanExchange(conn, res, append([]stun.Setter{stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport}, auth...)...)
	if err != nil {
		return err
	}
	if resp.Type.Class != stun.ClassSuccessResponse {
		var code stun.ErrorCodeAttribute
		_ = code.GetFrom(resp)
		return fmt.Errorf("authenticated allocate: %s %v", resp.Type, code)
	}
	lifetime0 := stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}
	refresh := func() (*stun.Message, error) {
		return leanExchange(conn, res, append([]stun.Setter{stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest), lifetime0}, auth...)...)
	}
	resp, err = refresh()
	if err != nil {
		return err
	}
	// A server whose nonce went stale meanwhile answers 438 Stale Nonce
	// with a new nonce; RFC 8489 §9.2.5 has the client retry with it.
	var code stun.ErrorCodeAttribute
	if resp.Type.Class == stun.ClassErrorResponse && code.GetFrom(resp) == nil && code.Code == stun.CodeStaleNonce && nonce.GetFrom(resp) == nil {
		auth[2] = append(stun.Nonce(nil), nonce...)
		if resp, err = refresh(); err != nil {
			return err
		}
	}
	if resp.Type.Class != stun.ClassSuccessResponse {
		var code stun.ErrorCodeAttribute
		_ = code.GetFrom(resp)
		return fmt.Errorf("refresh: %s %v", resp.Type, code)
	}
	return nil
}

// leanExchange sends a request built from setters and returns the answer
// with its transaction ID, decoded into res.
func leanExchange(conn *net.UDPConn, res *stun.Message, setters ...stun.Setter) (*stun.Message, error) {
	req, err := stun.Build(setters...)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 1500)
	for try := 0; try < 3; try++ {
		if _, err := conn.Write(req.Raw); err != nil {
			return nil, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break // timeout: retransmit
			}
			res.Reset()
			res.Raw = append(res.Raw[:0], buf[:n]...)
			if res.Decode() == nil && res.TransactionID == req.TransactionID {
				return res, nil
			}
		}
	}
	return nil, fmt.Errorf("%s: no answer after 3 tries", req.Type)
}

// echoBuffer is the receive and send buffer of the bench's echo peer
// (SO_RCVBUF is capped by net.core.rmem_max, 4 MiB here).
const echoBuffer = 4 << 20

// runEcho is the echo peer (child mode): sockets UDP sockets sharing
// 127.0.0.1:port (SO_REUSEPORT, the kernel spreading the relay addresses
// over them), each read with recvmmsg by its own goroutine and echoed to
// the sender with sendmmsg, 4 MiB buffers, so that the peer is not what
// drops first (turnutils_peer has one socket, the default buffer and one
// thread).
func runEcho(port, sockets int) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0x0F /* SO_REUSEPORT */, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	errs := make(chan error, sockets)
	for i := 0; i < max(1, sockets); i++ {
		pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return err
		}
		u := pc.(*net.UDPConn)
		_ = batchio.SetBuffers(u, echoBuffer, echoBuffer)
		c, err := batchio.NewConn(u)
		if err != nil {
			return err
		}
		go func() {
			b := batchio.NewBatch(64)
			for {
				n, err := c.ReadBatch(b, 0)
				if err != nil {
					errs <- err
					return
				}
				// Each slot's Addr is the sender: the echo goes back there.
				// A failed send drops the rest of the batch, as UDP would.
				if _, err := c.WriteBatch(b, n); errors.Is(err, net.ErrClosed) {
					errs <- err
					return
				}
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		return err
	}
}
