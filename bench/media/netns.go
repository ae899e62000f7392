package main

import (
	"fmt"
	"log"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// With -netns the benchmark runs between three network namespaces joined
// by veth pairs instead of on loopback, so that a forwarded datagram
// crosses each interface once, as between real interfaces:
//
//	outside (A 10.198.1.2) vo ⇄ po (10.198.1.1) portico (10.198.2.1) pi ⇄ vi (B 10.198.2.2) inside
//
// The generator's A socket is made in outside and its B socket (the sink
// of A→B) in inside; the relay child runs in portico (ip netns exec), with
// its "external" interface toward A and "internal" toward B. The system
// "kernel" sends A straight to B through portico's IP forwarding: the same
// packets over the same veths, routed by the kernel instead of relayed, so
// a system's cost beyond it is what relaying adds. The system "direct"
// sends A to B over a third veth pair that joins outside and inside
// (10.198.3.1 ⇄ 10.198.3.2) with nothing between them: a system's cost
// beyond it is the whole of forwarding. The generator's sockets are bound
// to the wildcard address so that they take both paths. The generator's veths
// compute full UDP checksums (tx offload off), as a datagram that came off
// a wire carries them.
//
// For the run kernel.bpf_stats_enabled is 1 (unless -bpfstats=false, to
// see what counting costs), so every step also reads the run time and run
// count of the relay's BPF programs. The namespaces are
// removed and the setting restored at the end, on SIGINT, SIGTERM and
// SIGHUP, and at the next start after a run that was killed.
var (
	vethA      = netip.MustParseAddr("10.198.1.2")
	vethRelayA = netip.MustParseAddr("10.198.1.1")
	vethRelayB = netip.MustParseAddr("10.198.2.1")
	vethB      = netip.MustParseAddr("10.198.2.2")
	directA    = netip.MustParseAddr("10.198.3.1")
	directB    = netip.MustParseAddr("10.198.3.2")
)

// directAddrs are the generator's sockets' addresses on the direct veth.
func directAddrs(at [2]netip.AddrPort) [2]netip.AddrPort {
	return [2]netip.AddrPort{netip.AddrPortFrom(directA, at[0].Port()), netip.AddrPortFrom(directB, at[1].Port())}
}

const bpfStatsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

// vethNet is the -netns topology.
type vethNet struct {
	ns       [3]string // outside, portico, inside
	statsWas []byte    // kernel.bpf_stats_enabled before the run
	once     sync.Once
}

// veth is the topology of a -netns run, nil on loopback.
var veth *vethNet

// vethNamespaces are the names of the namespaces, fixed so that the next
// run removes what a killed one left.
var vethNamespaces = [3]string{"portico-bench-outside", "portico-bench-relay", "portico-bench-inside"}

func ipCmd(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newVethNet builds the topology in namespaces of these names (outside,
// relay, inside), removing any left by an earlier run first, and turns BPF
// statistics on if stats. On error the caller still calls remove.
func newVethNet(names [3]string, stats bool) (*vethNet, error) {
	v := &vethNet{ns: names}
	for _, name := range v.ns {
		exec.Command("ip", "netns", "del", name).Run() // left by a killed run
	}
	if stats {
		old, err := os.ReadFile(bpfStatsSysctl)
		if err != nil {
			return v, err
		}
		v.statsWas = old
		if err := os.WriteFile(bpfStatsSysctl, []byte("1\n"), 0o644); err != nil {
			return v, fmt.Errorf("enable BPF statistics: %w", err)
		}
	}
	out, relay, in := v.ns[0], v.ns[1], v.ns[2]
	cmds := [][]string{}
	for _, name := range v.ns {
		cmds = append(cmds, []string{"netns", "add", name}, []string{"-n", name, "link", "set", "lo", "up"})
	}
	for _, l := range []struct {
		peer, here, there string
		hereIP, thereIP   netip.Addr
		route             bool // the peer's default route goes through here
	}{{out, "po", "vo", vethRelayA, vethA, true}, {in, "pi", "vi", vethRelayB, vethB, true}, {out, "vdi", "vd", directB, directA, false}} {
		home := relay
		if !l.route {
			home = in
		}
		cmds = append(cmds,
			[]string{"-n", home, "link", "add", l.here, "type", "veth", "peer", "name", l.there, "netns", l.peer},
			[]string{"-n", home, "addr", "add", l.hereIP.String() + "/24", "dev", l.here},
			[]string{"-n", l.peer, "addr", "add", l.thereIP.String() + "/24", "dev", l.there},
			[]string{"-n", home, "link", "set", l.here, "up"},
			[]string{"-n", l.peer, "link", "set", l.there, "up"},
			[]string{"netns", "exec", l.peer, "ethtool", "-K", l.there, "tx", "off"},
		)
		if l.route {
			cmds = append(cmds, []string{"-n", l.peer, "route", "add", "default", "via", l.hereIP.String()})
		} else {
			cmds = append(cmds, []string{"netns", "exec", home, "ethtool", "-K", l.here, "tx", "off"})
		}
	}
	cmds = append(cmds, []string{"netns", "exec", relay, "sysctl", "-qw", "net.ipv4.ip_forward=1"})
	for _, c := range cmds {
		if err := ipCmd(c...); err != nil {
			return v, err
		}
	}
	return v, nil
}

// remove deletes the namespaces (their veths go with them) and restores
// kernel.bpf_stats_enabled. Safe to call more than once and concurrently.
func (v *vethNet) remove() {
	v.once.Do(func() {
		for _, name := range v.ns {
			if err := ipCmd("netns", "del", name); err != nil && !strings.Contains(err.Error(), "No such file") {
				log.Print(err)
			}
		}
		if v.statsWas != nil {
			if err := os.WriteFile(bpfStatsSysctl, v.statsWas, 0o644); err != nil {
				log.Printf("restore %s: %v", bpfStatsSysctl, err)
			}
		}
	})
}

// command runs c in the relay's namespace. ip execs it, so the process
// keeps the PID the benchmark reads CPU time and BPF statistics from, and
// its parent-death signal.
func (v *vethNet) command(c *exec.Cmd) *exec.Cmd {
	n := exec.Command("ip", append([]string{"netns", "exec", v.ns[1]}, c.Args...)...)
	n.SysProcAttr = c.SysProcAttr
	return n
}

// inNetns runs f on a thread that joined the named namespace; sockets f
// makes belong to it. The thread returns to its own namespace afterwards
// and lives on: a thread that ended would be a parent-death signal to a
// child it had started.
func inNetns(name string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		err = f()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // else the thread ends with the goroutine
		}
		done <- err
	}()
	return <-done
}

// inRelayNet runs f in the relay's namespace (-netns) or right here.
func inRelayNet(f func() error) error {
	if veth == nil {
		return f()
	}
	return inNetns(veth.ns[1], f)
}

// listenSide opens the generator's socket of side 0 (A) or 1 (B) and
// returns it with the address it is reached at through the relay.
func listenSide(side int) (*net.UDPConn, netip.AddrPort, error) {
	if veth == nil {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, netip.AddrPort{}, err
		}
		return c, c.LocalAddr().(*net.UDPAddr).AddrPort(), nil
	}
	ns, ip := veth.ns[0], vethA
	if side == 1 {
		ns, ip = veth.ns[2], vethB
	}
	var c *net.UDPConn
	err := inNetns(ns, func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{})
		return err
	})
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return c, netip.AddrPortFrom(ip, uint16(c.LocalAddr().(*net.UDPAddr).Port)), nil
}

// runVeth is main with -netns: it builds the namespaces, runs every system
// o.repeat times, removes the namespaces and prints every run. It returns
// the exit code.
func runVeth(o options) int {
	for _, s := range o.systems {
		if s != "portico" && s != "portico-fast" && s != "kernel" && s != "direct" {
			log.Printf("-netns measures portico, portico-fast, kernel and direct, not %q", s)
			return 2
		}
	}
	v, err := newVethNet(vethNamespaces, o.bpfStats)
	defer v.remove()
	if err != nil {
		log.Print(err)
		return 1
	}
	veth = v
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		log.Printf("%v: removing the namespaces", s)
		v.remove()
		os.Exit(1)
	}()
	runs := runAll(o)
	fmt.Println(vethMarkdown(o, runs))
	return 0
}

// vethMarkdown tabulates every run of a -netns benchmark.
func vethMarkdown(o options, runs map[string][]result) string {
	var b strings.Builder
	nominal := float64(o.calls) * 2 * 50
	fmt.Fprintf(&b, "Measured %s UTC on %d × %s, between network namespaces joined by veth pairs (-netns); %d streams both ways, %d B packets.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04"), runtime.NumCPU(), cpuModel(), o.calls, o.size)
	fmt.Fprintf(&b, "At %.0f packets/s for %v (CPU-s per million forwarded packets; relay, generator (this process, sink included) and ksoftirqd from /proc/PID/stat, tasks = their sum; machine, user, system and softirq = all CPUs from /proc/stat, other work included; BPF = the relay's programs' run time, ns per forwarded packet, and their runs per forwarded packet):\n\n", nominal, o.fixed)
	b.WriteString("| repetition | system | load | forwarded pps (loss %) | relay | generator | ksoftirqd | tasks | machine | user | system | softirq | BPF ns/pkt (runs/pkt) | best " + fmt.Sprint(o.size) + " B pps (p99 ms) | best " + fmt.Sprint(o.videoSize) + " B Mbit/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for rep := 0; rep < o.repeat; rep++ {
		for _, name := range o.systems {
			if rep >= len(runs[name]) {
				continue
			}
			r := runs[name][rep]
			if r.StartupNote != "" {
				fmt.Fprintf(&b, "| %d | %s | %s | failed: %s | | | | | | | | | | | |\n", rep+1, name, r.Load, r.StartupNote)
				continue
			}
			f := r.Fixed
			bpf := "–"
			if f.BPFRuns > 0 {
				bpf = fmt.Sprintf("%.0f (%.2f)", f.BPFPerM*1000, f.BPFRuns)
			}
			relay := fmt.Sprintf("%.2f", f.CPUPerM)
			if name == "kernel" || name == "direct" {
				relay = "–"
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %.0f (%.3f) | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s (%.2f) | %.0f |\n",
				rep+1, name, f.Load, f.Forwarded, 100*f.Loss, relay, f.GenPerM, f.KsoftPerM, f.TaskPerM, f.AllPerM, f.UserPerM, f.SysPerM, f.SoftPerM, bpf,
				f0(r.BestAudio.Forwarded), r.BestAudio.P99, r.BestBig.Forwarded*float64(o.videoSize)*8/1e6)
		}
	}
	rule := "loss < 0.1 %"
	if o.maxP99 > 0 {
		rule += fmt.Sprintf(" and p99 ≤ %g ms", o.maxP99)
	}
	fmt.Fprintf(&b, "\nBest rates: the highest forwarded rate of a step with %s, searched in ×1.5 steps from %.0f packets/s up to %.0f, then two bisections (a step the generator cannot offer in full passes at the rate it did offer).\n", rule, nominal, o.maxRate)
	// Each repetition ran every system back to back: the differences to
	// a baseline are taken within a repetition.
	for _, base := range []struct{ name, what string }{{"kernel", "the kernel's own forwarding"}, {"direct", "the direct veth (no forwarding)"}} {
		if len(runs[base.name]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\nBeyond %s (same repetition), CPU-s per Mpkt, range over repetitions:\n\n", base.what)
		for _, name := range o.systems {
			if name == base.name {
				continue
			}
			var tasks, busy, soft []float64
			for rep := range runs[name] {
				if rep < len(runs[base.name]) {
					k, s := runs[base.name][rep].Fixed, runs[name][rep].Fixed
					if k.Forwarded > 0 && s.Forwarded > 0 {
						tasks = append(tasks, s.TaskPerM-k.TaskPerM)
						busy = append(busy, s.AllPerM-k.AllPerM)
						soft = append(soft, s.SoftPerM-k.SoftPerM)
					}
				}
			}
			fmt.Fprintf(&b, "- %s: tasks %s, machine %s, softirq %s\n", name, span(tasks), span(busy), span(soft))
		}
	}
	return b.String()
}

// span is "min – max" of v.
func span(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return fmt.Sprintf("%.2f – %.2f", lo, hi)
}
