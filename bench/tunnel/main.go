// Command tunnel benchmarks the tunnel's UDP path: a tunnel server and a
// tunnel client run as two child processes on loopback (so each end's CPU
// time can be read from /proc/PID/stat), the server offering a UDP service
// on a range of -calls ports that the client delivers to the same number
// of echo sockets in this process.
//
// Run from the repository root:
//
//	go run ./bench/tunnel -calls 500 -step 5s
//
// Each call is one UDP flow that sends -rate packets/s of -size bytes into
// its own port of the server's range; the echo answers every packet, so
// audio flows both ways through the tunnel. The same generator sending
// straight to the echo sockets gives the direct path: its loss and latency
// are the baseline the tunnel's added latency is measured against, and its
// highest passing rate is the generator's own ceiling. A rate search with
// 1,200-byte packets gives the throughput; new flows set up one packet
// each way give the call setup rate (a call's first media packet crossing
// in both directions; SIP signalling is not part of it).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

type options struct {
	calls    int
	rate     float64
	size     int
	bigSize  int
	step     time.Duration
	setups   int
	maxRate  float64
	bigStart float64
	profile  string
	queue    int
	conns    int
}

func main() {
	role := flag.String("role", "", "internal: child role (server or client)")
	server := flag.String("server", "", "internal: tunnel server address for -role client")
	token := flag.String("token", "", "internal: enrollment token for -role client")
	ports := flag.String("ports", "", "internal: port range host:first-last")
	var o options
	flag.IntVar(&o.calls, "calls", 500, "concurrent calls (UDP flows through the tunnel)")
	flag.Float64Var(&o.rate, "rate", 50, "packets/s of each call in each direction")
	flag.IntVar(&o.size, "size", 172, "audio packet size in bytes (UDP payload)")
	flag.IntVar(&o.bigSize, "big", 1200, "packet size of the throughput search (0: skip)")
	flag.DurationVar(&o.step, "step", 5*time.Second, "duration of each measurement step")
	flag.IntVar(&o.setups, "setups", 2000, "new flows set up for the call setup rate (0: skip)")
	flag.Float64Var(&o.bigStart, "bigstart", 1000, "first packet rate (each way) of the throughput search")
	flag.Float64Var(&o.maxRate, "max", 200000, "highest packet rate (each way) tried by the searches")
	flag.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the tunnel server child to this file, and of the client child to this file with .client appended")
	flag.IntVar(&o.queue, "queue", 0, "the ends' datagram_queue (0: the default)")
	flag.IntVar(&o.conns, "conns", 0, "the ends' datagram_connections (0: the default)")
	flag.IntVar(&endsNice, "ends-nice", 0, "run the two tunnel ends at this nice increment over the generator's (e.g. 10 with the program under nice -n -10: the generator and echo, which stand for other machines, get a CPU first)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	if *role != "" {
		if err := runEnd(*role, *server, *token, *ports, o.profile, o.queue, o.conns); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

// endsNice is the nice increment of the children over this process (-ends-nice).
var endsNice int

// child starts this program with args and returns the process and a
// reader of its standard output.
func child(args ...string) (*exec.Cmd, *bufio.Scanner, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(self, args...)
	if endsNice != 0 {
		cmd = exec.Command("nice", append([]string{"-n", strconv.Itoa(endsNice), self}, args...)...)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return cmd, bufio.NewScanner(out), nil
}

func stopChild(c *exec.Cmd) {
	if c == nil || c.Process == nil {
		return
	}
	c.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Process.Kill()
		<-done
	}
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func rangeOf(base, n int) string { return fmt.Sprintf("127.0.0.1:%d-%d", base, base+n-1) }
