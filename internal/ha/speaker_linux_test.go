package ha

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
	"github.com/vishvananda/netns"
)

// lab is a VRRP segment in network namespaces the test creates: a bridge
// namespace, two speaker namespaces and an observer, each joined to the
// bridge by a veth pair. Cleanup deletes them.
type lab struct {
	t    testing.TB
	seg  *testpeer.Segment
	down map[string]bool // nodes whose link is down
	logs map[string]*logBuf
}

// logBuf collects a speaker's log.
type logBuf = testpeer.Buffer

func ipCmd(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newLab(t testing.TB) *lab {
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	testpeer.LockNetwork(t)
	if os.Geteuid() != 0 {
		t.Fatal("the VRRP namespace tests need root (CAP_NET_ADMIN, CAP_NET_RAW)")
	}
	seg := testpeer.NewSegment(t, "vr", map[string]string{"a": "192.0.2.1/24", "b": "192.0.2.2/24", "c": "192.0.2.3/24"})
	l := &lab{t: t, seg: seg, down: map[string]bool{}, logs: map[string]*logBuf{}}
	return l
}

func (l *lab) ns(n string) string { return l.seg.NS(n) }

// revive brings a dead node's link back up.
func (l *lab) revive(n string) {
	ipCmd(l.t, "-n", l.ns(n), "link", "set", "eth0", "up")
	l.down[n] = false
}

func (l *lab) log(n string) *logBuf {
	if l.logs[n] == nil {
		l.logs[n] = &logBuf{}
	}
	return l.logs[n]
}

// speak runs a speaker in node n's namespace until the returned stop is
// called; crash leaves without priority 0, as a killed process does.
func (l *lab) speak(n string, prio uint8, preempt bool) (stop func(crash bool)) {
	l.t.Helper()
	self := map[string]netip.Addr{"a": netip.MustParseAddr("192.0.2.1"), "b": netip.MustParseAddr("192.0.2.2")}[n]
	s, err := NewSpeaker(SpeakerConfig{Interface: "eth0", Routers: []RouterConfig{{VRID: 51, Priority: prio, Interval: 100 * time.Millisecond,
		Preempt: preempt, Self: self, Peers: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}, Addrs: []netip.Addr{vip}}}},
		slog.New(slog.NewTextHandler(l.log(n), nil)))
	if err != nil {
		l.t.Fatal(err)
	}
	h, err := netns.GetFromName(l.ns(n))
	if err != nil {
		l.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var crashed atomic.Bool
	done := make(chan error, 1)
	go func() {
		// The thread stays in the namespace and ends with the goroutine.
		runtime.LockOSThread()
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- err
			return
		}
		done <- s.run(ctx, func() bool { return !crashed.Load() })
	}()
	stopped := false
	stop = func(crash bool) {
		if stopped {
			return
		}
		stopped = true
		if crash {
			// A dead machine: its link goes down and it leaves without a
			// word, its VIP still configured.
			l.down[n] = true
			ipCmd(l.t, "-n", l.ns(n), "link", "set", "eth0", "down")
			crashed.Store(true)
		}
		cancel()
		if err := <-done; err != nil {
			l.t.Errorf("speaker %s: %v", n, err)
		}
	}
	l.t.Cleanup(func() { stop(false) })
	return stop
}

// holds reports whether node n has the VIP on its interface (and the
// interface is up).
func (l *lab) holds(n string) bool {
	return !l.down[n] && strings.Contains(ipCmd(l.t, "-n", l.ns(n), "-4", "addr", "show", "dev", "eth0"), vip.String()+"/32")
}

// waitHolder waits until exactly node n of a and b holds the VIP, then
// checks that the observer reaches it by ping (ARP on the way).
func (l *lab) waitHolder(n string) {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, b := l.holds("a"), l.holds("b")
		if (n == "a" && a && !b) || (n == "b" && b && !a) {
			break
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("VIP on a: %v, on b: %v; want it on %s only", a, b, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := exec.Command("ip", "netns", "exec", l.ns("c"), "ping", "-c", "1", "-W", "2", vip.String()).CombinedOutput()
	if err != nil {
		l.t.Fatalf("observer cannot ping the VIP on %s: %v\n%s", n, err, out)
	}
	mac := strings.Fields(ipCmd(l.t, "-n", l.ns(n), "link", "show", "eth0"))
	neigh := ipCmd(l.t, "-n", l.ns("c"), "neigh", "show", vip.String())
	for i, f := range mac {
		if f == "link/ether" && i+1 < len(mac) && !strings.Contains(neigh, mac[i+1]) {
			l.t.Fatalf("observer's neighbour entry for the VIP %q is not node %s's %s", neigh, n, mac[i+1])
		}
	}
}

// TestSpeakersFailOver: two speakers elect the higher priority; when the
// master dies the backup takes the VIP (configured there, answering ping
// and ARP); when the master returns it takes the VIP back with preemption
// and leaves it without.
func TestSpeakersFailOver(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		t.Run(map[bool]string{true: "preempt", false: "no preempt"}[preempt], func(t *testing.T) {
			l := newLab(t)
			stopA := l.speak("a", 150, preempt)
			l.speak("b", 100, preempt)
			l.waitHolder("a")
			stopA(true)
			l.waitHolder("b")
			// The node returns, its stale VIP still on the interface: the
			// speaker removes it at start.
			l.revive("a")
			l.speak("a", 150, preempt)
			if preempt {
				l.waitHolder("a")
			} else {
				time.Sleep(time.Second) // several advertisement intervals
				l.waitHolder("b")
			}
		})
	}
}

// keepalived runs keepalived as the VRRP speaker of node n (same VRID,
// VRRPv3, 100 ms interval) until the returned kill is called, which cuts
// the node's link and kills it (a dead machine).
func (l *lab) keepalived(n string, prio int) (kill func()) {
	l.t.Helper()
	k := testpeer.StartKeepalived(l.t, l.ns(n), 51, prio, vip.String())
	killed := false
	kill = func() {
		if killed {
			return
		}
		killed = true
		l.down[n] = true
		exec.Command("ip", "-n", l.ns(n), "link", "set", "eth0", "down").Run()
		k.Kill()
		if l.t.Failed() {
			l.t.Logf("keepalived on %s:\n%s", n, k.Output())
		}
	}
	l.t.Cleanup(kill)
	return kill
}

// TestKeepalivedPeer: keepalived and a Portico speaker share VRID 51;
// they elect the higher priority and fail over both ways.
func TestKeepalivedPeer(t *testing.T) {
	t.Run("portico master", func(t *testing.T) {
		l := newLab(t)
		stopA := l.speak("a", 150, true)
		l.keepalived("b", 100)
		time.Sleep(time.Second) // keepalived's Master_Down_Interval, several times over
		l.waitHolder("a")
		stopA(true)
		l.waitHolder("b")
		l.revive("a")
		l.speak("a", 150, true)
		l.waitHolder("a") // keepalived yields to the higher priority
	})
	t.Run("keepalived master", func(t *testing.T) {
		l := newLab(t)
		l.speak("a", 100, true)
		kill := l.keepalived("b", 200)
		l.waitHolder("b")
		kill()
		l.waitHolder("a")
	})
}

// TestSplitBrain: the link between the nodes is cut (the bridge port of
// node a down): both become master; when it returns the lower priority
// yields and the split brain is logged.
func TestSplitBrain(t *testing.T) {
	l := newLab(t)
	l.speak("a", 150, false)
	l.speak("b", 100, false)
	l.waitHolder("a")
	ipCmd(t, "-n", l.ns("br"), "link", "set", "pa", "down")
	deadline := time.Now().Add(10 * time.Second)
	for !l.holds("b") {
		if time.Now().After(deadline) {
			t.Fatal("link cut: node b did not take the VIP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !l.holds("a") {
		t.Fatal("link cut: node a gave the VIP up with no one to hand it to")
	}
	ipCmd(t, "-n", l.ns("br"), "link", "set", "pa", "up")
	l.waitHolder("a")
	if !strings.Contains(l.log("a").String()+l.log("b").String(), "another master on the segment") {
		t.Errorf("split brain not logged:\n%s\n%s", l.log("a"), l.log("b"))
	}
}

// BenchmarkFailover measures how long the VIP takes to move when the
// master dies (its link cut, its speaker gone without a word), with a
// 100 ms advertisement interval: from the cut to the VIP configured on the
// backup. Each iteration is one kill, after which the master returns and
// takes the VIP back (preemption); it reports the median and the worst.
// Run it with -benchtime=20x.
func BenchmarkFailover(b *testing.B) {
	l := newLab(b)
	stopA := l.speak("a", 150, true)
	l.speak("b", 100, true)
	var times []time.Duration
	for b.Loop() {
		b.StopTimer()
		for !l.holds("a") || l.holds("b") {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // b settled as backup
		start := time.Now()
		stopA(true)
		for !l.holds("b") {
			time.Sleep(time.Millisecond)
		}
		times = append(times, time.Since(start))
		l.revive("a")
		stopA = l.speak("a", 150, true)
		b.StartTimer()
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "worst-ms")
}
