package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

// The IPv6 segment: each host has a link-local address the test chooses
// (the advertisements' source) and a global one on 2001:db8::/64; group 61
// has the VIP 2001:db8::100.
const (
	ha6LinkA = "fe80::a"
	ha6LinkB = "fe80::b"
	ha6VIP   = "2001:db8::100"
)

// newHALab6 is newHALab with IPv6 on the segment: duplicate address
// detection off (no waits), fixed link-local addresses (no others are
// generated), addresses kept while a link is down, IPv6 VIPs bindable by a
// backup, and no multicast snooping on the bridge (every host hears
// ff02::12 and the solicited-node groups).
func newHALab6(t testing.TB) *haLab {
	t.Helper()
	l := newHALab(t, map[string]string{"a": haAddrA, "b": haAddrB, "o": haAddrOut})
	l.ip("-n", l.ns("br"), "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
	for h := range ha6Hosts {
		if out, err := exec.Command("ip", "netns", "exec", l.ns(h), "sysctl", "-qw",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.eth0.accept_dad=0",
			"net.ipv6.conf.eth0.addr_gen_mode=1", "net.ipv6.conf.eth0.keep_addr_on_down=1", "net.ipv6.ip_nonlocal_bind=1").CombinedOutput(); err != nil {
			t.Fatalf("sysctl in %s: %v\n%s", l.ns(h), err, out)
		}
		l.ip("-n", l.ns(h), "-6", "addr", "flush", "dev", "eth0", "scope", "link")
		l.ip("-n", l.ns(h), "addr", "add", "fe80::"+ha6Hosts[h]+"/64", "dev", "eth0", "nodad")
		l.ip("-n", l.ns(h), "addr", "add", "2001:db8::"+ha6Hosts[h]+"/64", "dev", "eth0", "nodad")
	}
	return l
}

// ha6Hosts gives each host of the IPv6 segment the last group of its
// addresses (fe80::a, 2001:db8::a...).
var ha6Hosts = map[string]string{"a": "a", "b": "b", "o": "3"}

// linkUp6 brings host h's link back up with its link-local address (the
// kernel flushes link-local addresses when a link goes down).
func (l *haLab) linkUp6(h string) {
	l.ip("-n", l.ns(h), "link", "set", "eth0", "up")
	l.ip("-n", l.ns(h), "addr", "replace", "fe80::"+ha6Hosts[h]+"/64", "dev", "eth0", "nodad")
}

// holds6 reports whether host h has the IPv6 VIP on its interface.
func (l *haLab) holds6(h string) bool {
	return strings.Contains(l.ip("-n", l.ns(h), "-6", "addr", "show", "dev", "eth0"), " "+ha6VIP+"/128")
}

// waitHolds6 waits until the VIP is on exactly the hosts want says.
func (l *haLab) waitHolds6(what string, want map[string]bool) {
	l.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		bad := ""
		for h, w := range want {
			if l.holds6(h) != w {
				bad += fmt.Sprintf(" on %s: %v;", h, !w)
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: VIP %s not where it belongs:%s", what, ha6VIP, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mac is host h's Ethernet address.
func (l *haLab) mac(h string) string {
	f := strings.Fields(l.ip("-n", l.ns(h), "link", "show", "eth0"))
	if i := slices.Index(f, "link/ether"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	l.t.Fatalf("no Ethernet address on %s's eth0", h)
	return ""
}

// neighbour is the observer's neighbour entry for the VIP ("" when none).
func (l *haLab) neighbour() string {
	return strings.TrimSpace(l.ip("-n", l.ns("o"), "-6", "neigh", "show", ha6VIP))
}

// ping6 pings the VIP once from the observer.
func (l *haLab) ping6() {
	l.t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", l.ns("o"), "ping", "-6", "-c", "1", "-W", "2", ha6VIP).CombinedOutput(); err != nil {
		l.t.Fatalf("the observer cannot ping %s: %v\n%s", ha6VIP, err, out)
	}
}

// waitNeighbour waits until the observer's entry for the VIP names host
// h's Ethernet address.
func (l *haLab) waitNeighbour(what, h string) {
	l.t.Helper()
	mac := l.mac(h)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(l.neighbour(), mac) {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: the observer's neighbour entry for %s is %q, not %s's %s", what, ha6VIP, l.neighbour(), h, mac)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sniff captures IPv6 on host h's eth0 with tshark; stop ends the capture
// and returns the pcap file. tshark reports a capture started before it
// reads the interface, and packets still in its buffers when it is
// stopped are lost: so sniff sends probes (UDP from h to ff02::1) until
// tshark shows one, when it starts and again before it stops.
func (l *haLab) sniff(h string) (stop func() string) {
	l.t.Helper()
	bin := testpeer.Require(l.t, "tshark")[0]
	file := filepath.Join(l.t.TempDir(), "segment.pcap")
	cmd := exec.Command("ip", "netns", "exec", l.ns(h), bin, "-i", "eth0", "-l", "-P", "-w", file, "-f", "ip6",
		"-T", "fields", "-e", "udp.dstport")
	errs := &testpeer.Buffer{}
	cmd.Stderr = errs
	out, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	done := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]bool{} // destination ports shown
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			seen[strings.TrimSpace(sc.Text())] = true
			mu.Unlock()
		}
		cmd.Wait()
		close(done)
	}()
	port := 40000
	probe := func() {
		l.t.Helper()
		port++
		to := &net.UDPAddr{IP: net.ParseIP("ff02::1"), Port: port, Zone: "eth0"}
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := l.inNS(h, func() error {
				c, err := net.DialUDP("udp6", nil, to)
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = c.Write([]byte("capture probe"))
				return err
			})
			if err != nil {
				l.t.Fatalf("capture probe: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			ok := seen[strconv.Itoa(port)]
			mu.Unlock()
			if ok {
				return
			}
			select {
			case <-done:
				l.t.Fatalf("tshark ended: %s", errs)
			default:
			}
			if time.Now().After(deadline) {
				l.t.Fatalf("tshark on %s never showed a probe: %s", h, errs)
			}
		}
	}
	stopped := false
	kill := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	l.t.Cleanup(kill)
	probe()
	return func() string {
		l.t.Helper()
		probe()
		kill()
		return file
	}
}

// fields reads the pcap file with tshark: the fields of each packet the
// display filter admits.
func fields(t *testing.T, file, filter string, names ...string) [][]string {
	t.Helper()
	args := []string{"-r", file, "-Y", filter, "-T", "fields", "-E", "separator=|"}
	for _, n := range names {
		args = append(args, "-e", n)
	}
	cmd := exec.Command("tshark", args...)
	var errs strings.Builder
	cmd.Stderr = &errs
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, errs.String())
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "|"))
		}
	}
	return rows
}

// isTrue reads a boolean tshark field (1 or True, by version).
func isTrue(s string) bool { return s == "1" || s == "True" }

// checkIPv6Capture checks what the observer captured over a takeover by
// host to: every VRRP advertisement is version 3, well formed, with a good
// checksum, sent to ff02::12 with hop limit 255 from a link-local peer
// and naming the VIP, some came from to's link-local address; and to sent
// an unsolicited Neighbor Advertisement for the VIP to ff02::1 with the
// Override flag, hop limit 255 and its Ethernet address.
func checkIPv6Capture(t *testing.T, l *haLab, file, to, toLink string) {
	t.Helper()
	if bad := fields(t, file, "_ws.malformed || _ws.expert.severity >= error", "frame.number", "_ws.col.Info"); len(bad) != 0 {
		t.Errorf("malformed or erroneous frames: %q", bad)
	}
	adverts := fields(t, file, "vrrp", "vrrp.version", "ipv6.src", "ipv6.dst", "ipv6.hlim", "vrrp.checksum.status", "vrrp.virt_rtr_id", "vrrp.ipv6_addr")
	fromTo := 0
	for _, a := range adverts {
		if len(a) != 7 || a[0] != "3" || a[2] != "ff02::12" || a[3] != "255" || a[4] != "1" || a[5] != "61" || a[6] != ha6VIP || (a[1] != ha6LinkA && a[1] != ha6LinkB) {
			t.Errorf("advertisement %q, want version 3 from a link-local peer to ff02::12, hop limit 255, checksum good, vrid 61, VIP %s", a, ha6VIP)
		}
		if len(a) > 1 && a[1] == toLink {
			fromTo++
		}
	}
	if fromTo == 0 {
		t.Errorf("no advertisement from %s (%s) among %d", to, toLink, len(adverts))
	}
	mac := l.mac(to)
	na := fields(t, file, "icmpv6.type == 136 && ipv6.dst == ff02::1 && icmpv6.nd.na.target_address == "+ha6VIP,
		"eth.src", "icmpv6.nd.na.flag.o", "icmpv6.nd.na.flag.s", "icmpv6.nd.na.flag.r", "ipv6.hlim", "icmpv6.opt.linkaddr", "icmpv6.checksum.status")
	found := false
	for _, a := range na {
		if len(a) == 7 && a[0] == mac && isTrue(a[1]) && !isTrue(a[2]) && !isTrue(a[3]) && a[4] == "255" && a[5] == mac && a[6] == "1" {
			found = true
		}
	}
	if !found {
		t.Errorf("no unsolicited neighbour advertisement for %s from %s (%s) with the override flag: %q", ha6VIP, to, mac, na)
	}
	if t.Failed() {
		t.Logf("capture:\n%s", fields(t, file, "frame", "frame.time", "eth.src", "_ws.col.Info"))
	}
}

// ipv6Pair is the serve pair's document (servePair: each node's address,
// management listener and API on IPv4) with one IPv6 group instead of the
// IPv4 ones and no services: vrid 61, VIP 2001:db8::100, 100 ms,
// preemption, prioA and prioB the nodes' priorities in it.
func ipv6Pair(prioA, prioB int) string {
	nodes, _, ok := strings.Cut(servePair(true), "media:\n")
	if !ok {
		panic("servePair has no media section")
	}
	return nodes + fmt.Sprintf(`ha:
  enabled: true
  interface: eth0
  groups:
    - vrid: 61
      addresses: [%s]
      peers: [%s, %s]
      priorities: {a: %d, b: %d}
      interval: 100ms
      preempt: true
`, ha6VIP, ha6LinkA, ha6LinkB, prioA, prioB)
}

// TestServePairFailoverIPv6: two `portico serve` nodes run an IPv6 VIP
// group, and beside it on the same interface an IPv4 one (group 51, VIP
// .100), both node a's. They elect node a (the higher priority), which
// holds both VIPs and
// answers the observer's ping. Killed with -9, node a's group moves to
// node b: b holds the VIP, its unsolicited Neighbor Advertisement turns
// the observer's neighbour entry to b's Ethernet address before any ping,
// and the ping is answered. tshark on the observer sees the advertisements
// as well-formed VRRP version 3 and the advertisement with the Override
// flag. Node a returns: its stale VIP is removed at start and it takes the
// group back (preemption). The IPv4 VIP moves with the IPv6 one. SIGTERM
// releases the VIPs.
func TestServePairFailoverIPv6(t *testing.T) {
	l := newHALab6(t)
	cfg := ipv6Pair(150, 100) + fmt.Sprintf(`    - vrid: 51
      addresses: [%s]
      peers: [%s, %s]
      priorities: {a: 150, b: 100}
      interval: 100ms
      preempt: true
`, haVIPA, haAddrA, haAddrB)
	v4 := func(onA, onB bool) map[string]map[string]bool {
		return map[string]map[string]bool{haVIPA: {"a": onA, "b": onB}}
	}
	dirA := t.TempDir()
	a := l.serve("a", "a", dirA, cfg)
	b := l.serve("b", "b", t.TempDir(), cfg)
	l.waitHolds6("both nodes up", map[string]bool{"a": true, "b": false})
	l.waitHolds("both nodes up", v4(true, false))
	if g := a.waitState(61, "master"); !g.Owner || len(g.VIPsHeld) != 1 || g.VIPsHeld[0] != ha6VIP {
		t.Errorf("node a, group 61: %+v", g)
	}
	if g := b.waitState(61, "backup"); len(g.Peers) != 1 || g.Peers[0].Address != ha6LinkA {
		t.Errorf("node b, group 61 (node a's master heard from its link-local address): %+v", g)
	}
	l.ping6()
	l.waitNeighbour("node a master", "a")

	stop := l.sniff("o")
	a.kill()
	l.waitHolds6("node a killed", map[string]bool{"b": true})
	b.waitState(61, "master")
	b.waitState(51, "master")
	l.waitHolds("node a killed", map[string]map[string]bool{haVIPA: {"b": true}})
	l.waitNeighbour("node b took over", "b")
	l.ping6()
	l.waitNeighbour("after the ping", "b")
	checkIPv6Capture(t, l, stop(), "b", ha6LinkB)

	a = l.serve("a", "a", dirA, cfg)
	l.waitHolds6("node a back", map[string]bool{"a": true, "b": false})
	l.waitHolds("node a back", v4(true, false))
	a.waitState(61, "master")
	b.waitState(61, "backup")
	b.stop()
	a.stop()
	l.waitHolds6("both stopped", map[string]bool{"a": false, "b": false})
	l.waitHolds("both stopped", v4(false, false))
	if t.Failed() {
		t.Logf("node a:\n%s\nnode b:\n%s", a.out, b.out)
	}
}

// checkKeepalivedHeard checks that keepalived took Portico's
// advertisements (it logs those of a lower priority it discards or
// answers) and complained of none.
func checkKeepalivedHeard(t *testing.T, k *testpeer.Keepalived) {
	t.Helper()
	out := k.Output()
	if !strings.Contains(out, "advert from "+ha6LinkA) {
		t.Errorf("keepalived logged no advertisement from node a (%s)", ha6LinkA)
	}
	for _, bad := range []string{"invalid", "checksum", "mismatch", "malformed"} {
		if strings.Contains(strings.ToLower(out), bad) {
			t.Errorf("keepalived complained (%q)", bad)
		}
	}
}

// TestServeWithKeepalivedPeerIPv6: keepalived 2.2 (native_ipv6, VRRP
// version 3) and a `portico serve` node share the IPv6 group 61. Whichever
// has the higher priority is master; when its machine dies the other
// takes the VIP over and announces it; when it returns it takes the group
// back. Both ways: keepalived master first, then Portico.
func TestServeWithKeepalivedPeerIPv6(t *testing.T) {
	t.Run("keepalived master", func(t *testing.T) {
		l := newHALab6(t)
		k := testpeer.StartKeepalived6(t, l.ns("b"), 61, 200, ha6VIP)
		a := l.serve("a", "a", t.TempDir(), ipv6Pair(100, 150))
		l.waitHolds6("keepalived master", map[string]bool{"a": false, "b": true})
		if g := a.waitState(61, "backup"); len(g.Peers) != 1 || g.Peers[0].Address != ha6LinkB {
			t.Errorf("node a, group 61 under keepalived: %+v", g)
		}
		l.ping6()
		l.waitNeighbour("keepalived master", "b")
		// keepalived's machine dies (link cut): node a takes the VIP and
		// announces it.
		stop := l.sniff("o")
		l.ip("-n", l.ns("b"), "link", "set", "eth0", "down")
		k.Kill()
		l.waitHolds6("keepalived gone", map[string]bool{"a": true})
		a.waitState(61, "master")
		l.waitNeighbour("node a took over", "a")
		l.ping6()
		checkIPv6Capture(t, l, stop(), "a", ha6LinkA)
		// keepalived returns and takes its group back.
		l.linkUp6("b")
		k = testpeer.StartKeepalived6(t, l.ns("b"), 61, 200, ha6VIP)
		l.waitHolds6("keepalived back", map[string]bool{"a": false, "b": true})
		a.waitState(61, "backup")
		l.waitNeighbour("keepalived back", "b")
		l.ping6()
		checkKeepalivedHeard(t, k)
		if t.Failed() {
			t.Logf("keepalived:\n%s\nportico:\n%s", k.Output(), a.out)
		}
	})
	t.Run("portico master", func(t *testing.T) {
		l := newHALab6(t)
		dirA := t.TempDir()
		a := l.serve("a", "a", dirA, ipv6Pair(150, 100))
		k := testpeer.StartKeepalived6(t, l.ns("b"), 61, 100, ha6VIP)
		l.waitHolds6("portico master", map[string]bool{"a": true, "b": false})
		a.waitState(61, "master")
		// keepalived is backup: many of its Master_Down_Intervals pass
		// and the VIP stays on node a.
		time.Sleep(time.Second)
		l.waitHolds6("portico still master", map[string]bool{"a": true, "b": false})
		l.ping6()
		l.waitNeighbour("portico master", "a")
		// Node a's machine dies: keepalived takes the VIP.
		l.ip("-n", l.ns("a"), "link", "set", "eth0", "down")
		a.kill()
		l.waitHolds6("node a gone", map[string]bool{"b": true})
		l.waitNeighbour("keepalived took over", "b")
		l.ping6()
		// Node a returns: its stale VIP is removed at start, and it takes
		// the group back from keepalived's lower priority.
		l.linkUp6("a")
		a = l.serve("a", "a", dirA, ipv6Pair(150, 100))
		l.waitHolds6("node a back", map[string]bool{"a": true, "b": false})
		a.waitState(61, "master")
		l.waitNeighbour("node a back", "a")
		l.ping6()
		checkKeepalivedHeard(t, k)
		if t.Failed() {
			t.Logf("keepalived:\n%s\nportico:\n%s", k.Output(), a.out)
		}
	})
}

// BenchmarkServeFailoverIPv6 measures the IPv6 group's failover in the
// serve pair: node a (master, 100 ms advertisements) is killed with -9,
// and the time is taken from the kill to the VIP configured on node b
// (vip-ms) and to the observer's neighbour entry for the VIP naming node
// b's Ethernet address, which only node b's unsolicited Neighbour
// Advertisement changes (na-ms). After each kill node a returns and takes
// the VIP back. Run it with -benchtime=10x.
func BenchmarkServeFailoverIPv6(b *testing.B) {
	l := newHALab6(b)
	cfg := ipv6Pair(150, 100)
	dirA := b.TempDir()
	a := l.serve("a", "a", dirA, cfg)
	l.serve("b", "b", b.TempDir(), cfg)
	macB := l.mac("b")
	var vip, na []time.Duration
	for b.Loop() {
		b.StopTimer()
		l.waitHolds6("pair up", map[string]bool{"a": true, "b": false})
		a.waitState(61, "master")
		l.ping6()
		l.waitNeighbour("pair up", "a")
		time.Sleep(500 * time.Millisecond) // node b settled as backup
		start := time.Now()
		a.kill()
		for !l.holds6("b") {
			time.Sleep(time.Millisecond)
		}
		vip = append(vip, time.Since(start))
		for !strings.Contains(l.neighbour(), macB) {
			if time.Since(start) > 10*time.Second {
				b.Fatal("the observer's neighbour entry did not turn to node b within 10s of the kill")
			}
			time.Sleep(time.Millisecond)
		}
		na = append(na, time.Since(start))
		a = l.serve("a", "a", dirA, cfg)
		b.StartTimer()
	}
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"vip", vip}, {"na", na}} {
		slices.Sort(m.d)
		b.ReportMetric(float64(m.d[len(m.d)/2].Microseconds())/1000, m.name+"-median-ms")
		b.ReportMetric(float64(m.d[len(m.d)-1].Microseconds())/1000, m.name+"-worst-ms")
	}
}
