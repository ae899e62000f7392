// Command media benchmarks Portico's media relay against rtpengine's
// userspace daemon and a bare recvmmsg/sendmmsg forwarding loop under the
// same load, and writes the "Media relay" section of docs/performance.md
// and docs/media-bench.png.
//
// Run from the repository root (needs rtpengine-daemon for the reference):
//
//	go run ./bench/media -calls 500 -write
//
// For each system it starts the relay as a child process (so its CPU time
// can be read from /proc/PID/stat), allocates calls through the rtpengine ng
// protocol (Portico's internal/media/ng listener or rtpengine itself),
// measures memory per call with -memcalls calls allocated, checks
// -checkcalls calls at 50 packets/s each way, then searches the highest
// packet rate with loss under 0.1% and p99 latency at most 5 ms, with
// 172-byte and 1,200-byte packets.
//
// The Portico relay runs in user space ("portico", media.fast_path off) or
// with the eBPF fast path ("portico-fast", on). Forwarding in the kernel
// happens in softirq context, mostly charged to whichever task sends, so
// every step also reads /proc/stat: the machine's softirq time and its
// whole busy time per million packets (generator and other work
// included). "generator" sends straight into the sink and gives the
// generator's own ceiling.
//
// With -netns (as root) the same harness runs between three network
// namespaces joined by veth pairs instead of on loopback, with the systems
// portico, portico-fast, kernel (the generator's packets routed by the
// middle namespace's IP forwarding) and direct (over a veth joining the
// generator's two namespaces, nothing between), and reads the relay's BPF
// run time and the CPU of the tasks that move the packets as well
// (netns.go; docs/performance.md has the figures):
//
//	go run ./bench/media -netns -systems direct,kernel,portico-fast,portico -calls 500 -memcalls 500 -checkcalls 0 -fixed 10s -p99 0
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"
)

type options struct {
	calls, memCalls, checkCalls int
	size, videoSize             int
	step, fixed                 time.Duration
	maxRate, maxP99, rate       float64
	bpfStats                    bool
	systems                     []string
	write                       bool
	workers                     int
	cpuprofile                  string
	repeat                      int
	doc, png                    string
}

func main() {
	role := flag.String("role", "", "internal: child role (portico or bare)")
	ngPort := flag.Int("ng", 0, "internal: ng port for -role portico")
	bareN := flag.Int("n", 0, "internal: socket pairs for -role bare")
	toA := flag.String("to-a", "", "internal: bare loop destination of B→A packets")
	toB := flag.String("to-b", "", "internal: bare loop destination of A→B packets")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the Portico relay child to this file")
	workers := flag.Int("workers", 0, "Portico relay workers (0: the relay's default)")
	fastPath := flag.String("fastpath", "off", "internal: media.fast_path of the Portico relay child")
	netns := flag.Bool("netns", false, "run between network namespaces joined by veth pairs instead of on loopback (as root; systems portico, portico-fast and kernel: see netns.go)")
	var o options
	flag.DurationVar(&o.fixed, "fixed", 0, "also measure one step of this duration at the nominal rate (calls × 2 × 50 packets/s) before the searches (0: none)")
	flag.BoolVar(&o.bpfStats, "bpfstats", true, "with -netns: set kernel.bpf_stats_enabled=1 for the run to read the relay's BPF run time")
	flag.IntVar(&o.repeat, "repeat", 3, "repetitions; each system's median run (by packets/s) is reported")
	flag.IntVar(&o.calls, "calls", 500, "concurrent calls (relay streams, each carrying both directions) for the rate search")
	flag.IntVar(&o.memCalls, "memcalls", 2000, "calls allocated at once to measure memory per call")
	flag.IntVar(&o.checkCalls, "checkcalls", 1000, "calls run at 50 packets/s each way for the loss check (0: skip)")
	flag.IntVar(&o.size, "size", 172, "audio packet size in bytes (UDP payload)")
	flag.IntVar(&o.videoSize, "video", 1200, "video packet size for the throughput search (0: skip)")
	flag.DurationVar(&o.step, "step", 3*time.Second, "duration of each measurement step")
	flag.Float64Var(&o.maxRate, "max", 400000, "highest packet rate tried (packets/s)")
	flag.Float64Var(&o.maxP99, "p99", 5, "highest p99 latency (ms) of a passing step besides loss < 0.1% (0: loss alone)")
	flag.Float64Var(&o.rate, "rate", 0, "measure the 172 B audio at this one rate (packets/s) instead of searching, so that every system's CPU per packet is taken at the same rate (0: search)")
	sys := flag.String("systems", "portico,rtpengine,bare", "systems to measure: portico (user space), portico-fast (eBPF fast path on), rtpengine, bare, generator (the generator straight into its sink: its own ceiling), kernel and direct (-netns: the generator through the middle namespace's IP forwarding, or over a veth with nothing between)")
	flag.BoolVar(&o.write, "write", false, "write docs/performance.md (Media relay section) and docs/media-bench.png")
	flag.StringVar(&o.doc, "doc", "docs/performance.md", "performance document to update with -write")
	flag.StringVar(&o.png, "png", "docs/media-bench.png", "plot written with -write")
	flag.Parse()
	log.SetFlags(log.Ltime)

	switch *role {
	case "portico":
		if err := runPortico(*ngPort, *workers, *cpuprofile, *fastPath, *netns); err != nil {
			log.Fatal(err)
		}
		return
	case "bare":
		if err := runBare(*bareN, *toA, *toB); err != nil {
			log.Fatal(err)
		}
		return
	}
	o.systems = strings.Split(*sys, ",")
	o.workers = *workers
	o.cpuprofile = *cpuprofile
	if *netns {
		os.Exit(runVeth(o))
	}
	results, err := run(o)
	if err != nil {
		log.Fatal(err)
	}
	table := markdown(o, results)
	fmt.Println(table)
	if o.write {
		if err := writePlot(o.png, results); err != nil {
			log.Fatal(err)
		}
		if err := writeSection(o.doc, table); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s and %s", o.doc, o.png)
	}
	os.Exit(0)
}
