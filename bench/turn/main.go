// Command turn-bench measures Portico's TURN service (internal/turn) and
// coturn's turnserver side by side on this machine, under the same load:
//
//   - allocations per second: a Go client (pion/turn) making allocations
//     from many concurrent sockets, each a full RFC 8656 Allocate exchange
//     (401 challenge, authenticated Allocate) followed by a Refresh(0);
//   - relayed message rate: turnutils_uclient -m CLIENTS -n N -l 172 -z 4,
//     echoed by turnutils_peer, stepping CLIENTS up until a step loses
//     messages; the highest lossless rate, round-trip time and server CPU
//     seconds are reported per server.
//
// Both servers run as child processes (Portico as this binary with -serve)
// so that CPU seconds are the server's own. Traffic stays on 127.0.0.1 and
// every run is bounded in count and time.
//
//	go run ./bench/turn -steps 120,240,300,360,420 -n 1500
package main

import (
	"context"
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
	pturn "github.com/pion/turn/v5"

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
		steps     = flag.String("steps", "120,240,300,360,420", "uclient client counts to step through (each sends 250 msg/s at -z 4)")
		messages  = flag.Int("n", 1500, "messages per uclient client per step")
		interval  = flag.Int("z", 4, "uclient per-session interval, ms")
		allocs    = flag.Int("allocs", 2000, "allocations for the allocations/s test")
		workers   = flag.Int("workers", 32, "concurrent allocating clients")
		only      = flag.String("only", "", "run against one server only: portico or coturn")
		noRTCP    = flag.Bool("c", true, "pass -c to uclient (no RTCP allocations)")
		uclientTO = flag.Duration("step-timeout", 120*time.Second, "bound on one uclient run")
		cpuProf   = flag.String("cpuprofile", "", "write Portico's CPU profile here")
		rounds    = flag.Int("rounds", 1, "rounds; each runs coturn then Portico, the table shows every round")
	)
	flag.Parse()
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
	var counts []int
	for _, s := range strings.Split(*steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 2000 {
			fmt.Fprintf(os.Stderr, "bad step %q\n", s)
			os.Exit(2)
		}
		counts = append(counts, n)
	}
	b := &bench{portMin: *portMin, portMax: *portMax, sockets: *sockets, counts: counts, messages: *messages,
		interval: *interval, allocs: *allocs, workers: *workers, noRTCP: *noRTCP, stepTimeout: *uclientTO, cpuProf: *cpuProf}
	var results []result
	for round := 1; round <= *rounds && round <= 10; round++ {
		for _, server := range []string{"coturn", "portico"} {
			if *only != "" && *only != server {
				continue
			}
			fmt.Printf("round %d, load average %s\n", round, loadAvg())
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
	fmt.Printf("steps %v clients x 1000/%d msg/s, %d messages of 172 bytes each; load average now %s\n", counts, *interval, *messages, loadAvg())
	fmt.Println("| round | server | allocations/s | highest lossless rate (msg/s each way) | RTT at that rate (ms) | loss at next step | server CPU s (whole run) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %d | %s | %.0f | %d (%d clients) | %.2f | %s | %.1f |\n", r.round, r.server, r.allocsPerSec, r.losslessRate, r.losslessClients, r.rtt, r.nextLoss, r.cpu.Seconds())
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
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
	counts                    []int
	messages, interval        int
	allocs, workers           int
	noRTCP                    bool
	stepTimeout               time.Duration
	cpuProf                   string
}

type result struct {
	round           int
	server          string
	allocsPerSec    float64
	losslessRate    int
	losslessClients int
	rtt             float64
	nextLoss        string
	cpu             time.Duration
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

func (b *bench) startServer(server string, port int) (*exec.Cmd, error) {
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
	r := result{server: server}
	port, err := freePort()
	if err != nil {
		return r, err
	}
	cmd, err := b.startServer(server, port)
	if err != nil {
		return r, err
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	fmt.Printf("== %s on 127.0.0.1:%d\n", server, port)

	r.allocsPerSec, err = b.allocationRate(port)
	if err != nil {
		return r, fmt.Errorf("allocations: %w", err)
	}
	fmt.Printf("allocations/s: %.0f (%d allocations, %d workers)\n", r.allocsPerSec, b.allocs, b.workers)

	peerPort, err := freePort()
	if err != nil {
		return r, err
	}
	peer := exec.Command("turnutils_peer", "-L", "127.0.0.1", "-p", strconv.Itoa(peerPort))
	if err := peer.Start(); err != nil {
		return r, err
	}
	defer func() { _ = peer.Process.Kill(); _ = peer.Wait() }()
	time.Sleep(300 * time.Millisecond)

	for _, clients := range b.counts {
		st, err := b.uclient(port, peerPort, clients)
		if err != nil {
			return r, err
		}
		rate := clients * 1000 / b.interval
		fmt.Printf("clients %4d  offered %6d msg/s each way  sent %8d recv %8d lost %6d (%.3f%%)  rtt %.2f ms  wall %.1fs\n",
			clients, rate, st.sent, st.recv, st.lost, st.lossPct, st.rtt, st.wall.Seconds())
		if st.lost == 0 && st.sent > 0 {
			r.losslessRate, r.losslessClients, r.rtt = rate, clients, st.rtt
			continue
		}
		r.nextLoss = fmt.Sprintf("%.3f %% at %d", st.lossPct, rate)
		break
	}
	if r.nextLoss == "" {
		r.nextLoss = "none (highest step)"
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	if ps := cmd.ProcessState; ps != nil {
		r.cpu = ps.UserTime() + ps.SystemTime()
	}
	return r, nil
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
				if err := allocateOnce(server); err != nil {
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

func (b *bench) uclient(port, peerPort, clients int) (uclientStats, error) {
	args := []string{"-u", user, "-w", password, "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort),
		"-m", strconv.Itoa(clients), "-n", strconv.Itoa(b.messages), "-l", "172", "-z", strconv.Itoa(b.interval),
		"-p", strconv.Itoa(port)}
	if b.noRTCP {
		args = append(args, "-c")
	}
	args = append(args, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), b.stepTimeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "turnutils_uclient", args...)
	out, err := cmd.CombinedOutput()
	st := uclientStats{wall: time.Since(start), lost: -1}
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
		return st, fmt.Errorf("uclient %v: %v, no totals:\n%s", args, err, strings.Join(lines, "\n"))
	}
	return st, nil
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
