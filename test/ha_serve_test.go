package test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/portico-edge/portico/internal/testpeer"
)

// The serve pair's segment: nodes a and b, an outside host o; VIP .100
// is node a's group (51), VIP .101 node b's (52).
const (
	haAddrA   = "192.0.2.1"
	haAddrB   = "192.0.2.2"
	haAddrOut = "192.0.2.3"
	haVIPA    = "192.0.2.100"
	haVIPB    = "192.0.2.101"
)

// haLab is a bridge segment in network namespaces the test creates (a
// bridge namespace and one namespace per host, each joined to the bridge
// by a veth pair); cleanup deletes them.
type haLab struct {
	t   testing.TB
	seg *testpeer.Segment
}

func newHALab(t testing.TB, hosts map[string]string) *haLab {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	testpeer.LockNetwork(t)
	if os.Geteuid() != 0 {
		t.Fatal("the HA pair tests need root (CAP_NET_ADMIN, CAP_NET_RAW)")
	}
	with := map[string]string{}
	for h, addr := range hosts {
		with[h] = addr + "/24"
	}
	l := &haLab{t: t, seg: testpeer.NewSegment(t, "hs", with)}
	for h := range hosts {
		// A backup binds the VIPs it does not hold yet (docs/ha.md).
		if out, err := exec.Command("ip", "netns", "exec", l.ns(h), "sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1").CombinedOutput(); err != nil {
			t.Fatalf("sysctl in %s: %v\n%s", l.ns(h), err, out)
		}
	}
	return l
}

func (l *haLab) ns(h string) string { return l.seg.NS(h) }

func (l *haLab) ip(args ...string) string {
	l.t.Helper()
	return l.seg.IP(args...)
}

// holds reports whether host h has vip on its interface.
func (l *haLab) holds(h, vip string) bool {
	return strings.Contains(l.ip("-n", l.ns(h), "-4", "addr", "show", "dev", "eth0"), " "+vip+"/32")
}

// waitHolds waits until each VIP is held by exactly the hosts that
// want says, among the hosts listed in want's values' keys.
func (l *haLab) waitHolds(what string, want map[string]map[string]bool) {
	l.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		bad := ""
		for vip, hosts := range want {
			for h, w := range hosts {
				if l.holds(h, vip) != w {
					bad += fmt.Sprintf(" %s on %s: %v;", vip, h, !w)
				}
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: VIPs not where they belong:%s", what, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inNS runs f on a thread in host h's namespace; sockets f opens stay in
// that namespace. The thread goes back to its own namespace afterwards; one
// that cannot stays locked and is discarded. (A discarded thread that is
// the process's main one is parked, not ended, and /proc/self/net would
// then show h's namespace to the rest of the tests.)
func (l *haLab) inNS(h string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer origin.Close()
		ns, err := netns.GetFromName(l.ns(h))
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		err = f()
		if netns.Set(origin) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// client is an API client whose connections start in host h's namespace.
func (l *haLab) client(h, base string) *apiClient {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = l.inNS(h, func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}
	return &apiClient{t: l.t, base: base, c: &http.Client{Timeout: 30 * time.Second, Jar: jar, Transport: tr}}
}

// options sends one SIP OPTIONS over UDP from host h to addr and returns
// the status line of the answer ("" when none came within a second).
func (l *haLab) options(h, addr string) string { return l.optionsWithin(h, addr, time.Second) }

// optionsWithin is options waiting wait for the answer.
func (l *haLab) optionsWithin(h, addr string, wait time.Duration) string {
	var line string
	err := l.inNS(h, func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		id := time.Now().UnixNano()
		local := c.LocalAddr().String()
		fmt.Fprintf(c, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d;rport\r\nMax-Forwards: 70\r\n"+
			"From: <sip:probe@portico.test>;tag=%d\r\nTo: <sip:%s>\r\nCall-ID: %d@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
			addr, local, id, id, addr, id)
		c.SetReadDeadline(time.Now().Add(wait))
		b := make([]byte, 4096)
		n, err := c.Read(b)
		if err != nil {
			return nil
		}
		line, _, _ = strings.Cut(string(b[:n]), "\r\n")
		return nil
	})
	if err != nil {
		l.t.Fatalf("OPTIONS from %s: %v", h, err)
	}
	return line
}

// waitOptions waits until an OPTIONS to addr from the outside is answered
// with 200.
func (l *haLab) waitOptions(addr string) {
	l.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		line := l.options("o", addr)
		if strings.HasPrefix(line, "SIP/2.0 200") {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("OPTIONS to %s from the outside: %q, want 200", addr, line)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// haNode is a `portico serve` in its host's namespace.
type haNode struct {
	l    *haLab
	host string
	name string
	dir  string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
	api  *apiClient
}

// servePair is the pair's one document: each node's part gives it its
// address and management listener; both listen for SIP on both VIPs. The
// media relay runs in user space only (fast_path: off): these tests carry
// signalling, and the race-enabled build reports a race between a metrics
// scrape of the eBPF maps and their close at shutdown.
func servePair(preempt bool) string {
	return fmt.Sprintf(`version: 1
node: {name: a, drain_timeout: 2s}
nodes:
  - name: a
    interfaces: {external: {address: %[1]s}, internal: {address: %[1]s}}
    management_listen: %[1]s:9443
  - name: b
    interfaces: {external: {address: %[2]s}, internal: {address: %[2]s}}
    management_listen: %[2]s:9443
interfaces:
  external: {address: %[1]s}
  internal: {address: %[1]s, networks: [10.0.0.0/8]}
management: {listen: %[1]s:9443}
log: {level: info}
media:
  enabled: true
  fast_path: off
  external: {port_min: 40000, port_max: 40099}
  internal: {port_min: 40100, port_max: 40199}
sip:
  enabled: true
  domain: portico.test
  listeners:
    - {interface: external, transport: udp, address: "%[3]s:5060"}
    - {interface: external, transport: udp, address: "%[4]s:5060"}
    - {interface: internal, transport: udp, address: "%[3]s:5070"}
    - {interface: internal, transport: udp, address: "%[4]s:5070"}
  call_servers:
    - {address: "10.9.9.9:5060", transport: udp}
ha:
  enabled: true
  interface: eth0
  groups:
    - vrid: 51
      addresses: [%[3]s]
      peers: [%[1]s, %[2]s]
      priorities: {a: 150, b: 100}
      interval: 100ms
      preempt: %[5]v
    - vrid: 52
      addresses: [%[4]s]
      peers: [%[1]s, %[2]s]
      priorities: {a: 100, b: 150}
      interval: 100ms
      preempt: %[5]v
`, haAddrA, haAddrB, haVIPA, haVIPB, preempt)
}

// serve starts node name in host h's namespace from cfg, with its data in
// dir (kept across restarts), and waits until its API answers.
func (l *haLab) serve(h, name, dir, cfg string) *haNode {
	l.t.Helper()
	n := &haNode{l: l, host: h, name: name, dir: dir, out: &syncBuffer{}, done: make(chan error, 1)}
	file := filepath.Join(dir, "portico.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		l.t.Fatal(err)
	}
	n.cmd = exec.Command("ip", "netns", "exec", l.ns(h), portico(l.t), "serve", "--config", file, "--data", filepath.Join(dir, "data"), "--node-name", name)
	n.cmd.Env = append(os.Environ(), "PORTICO_ADMIN_PASSWORD="+adminPassword)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { n.done <- n.cmd.Wait() }()
	l.t.Cleanup(func() { n.kill() })
	addr := map[string]string{"a": haAddrA, "b": haAddrB}[h]
	n.api = l.client("o", "https://"+addr+":9443")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if r, err := n.api.c.Get(n.api.base + "/healthz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-n.done:
			l.t.Fatalf("node %s exited early: %v\n%s", name, err, n.out)
		default:
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("node %s did not answer /healthz within 60s\n%s", name, n.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.api.csrf = true
	n.api.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	return n
}

// kill ends the node as kill -9 does: no priority-0 advertisement, its
// VIPs left on the interface.
func (n *haNode) kill() {
	if n.cmd.ProcessState != nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.done <- <-n.done
}

// stop sends SIGTERM and waits for a clean exit.
func (n *haNode) stop() {
	n.l.t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.done:
		n.done <- err
		if err != nil {
			n.l.t.Errorf("node %s: %v\n%s", n.name, err, n.out)
		}
	case <-time.After(30 * time.Second):
		n.l.t.Fatalf("node %s did not stop within 30s of SIGTERM\n%s", n.name, n.out)
	}
}

type clusterGroup struct {
	VRID        int      `json:"vrid"`
	State       string   `json:"state"`
	Owner       bool     `json:"owner"`
	VIPsHeld    []string `json:"vips_held"`
	Transitions int64    `json:"transitions"`
	Peers       []struct {
		Address string `json:"address"`
	} `json:"peers"`
}

// groups is the node's GET /api/v1/cluster, by VRID.
func (n *haNode) groups() map[int]clusterGroup {
	n.l.t.Helper()
	var c struct {
		HA      bool           `json:"ha"`
		Running bool           `json:"running"`
		Groups  []clusterGroup `json:"groups"`
	}
	n.api.must(200, "GET", "/api/v1/cluster", nil).json(n.l.t, &c)
	if !c.HA || !c.Running {
		n.l.t.Fatalf("node %s: cluster ha %v, speaker running %v", n.name, c.HA, c.Running)
	}
	out := map[int]clusterGroup{}
	for _, g := range c.Groups {
		out[g.VRID] = g
	}
	return out
}

// waitState waits until the node's group vrid is in state (the API reads
// the state and the interface's addresses at different instants) and
// returns the group.
func (n *haNode) waitState(vrid int, state string) clusterGroup {
	n.l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := n.groups()[vrid]
		if g.State == state {
			return g
		}
		if time.Now().After(deadline) {
			n.l.t.Fatalf("node %s, group %d: %+v, want %s", n.name, vrid, g, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// held is where each VIP must be (true) and must not be (false).
func held(aHoldsA, bHoldsA, aHoldsB, bHoldsB bool) map[string]map[string]bool {
	return map[string]map[string]bool{
		haVIPA: {"a": aHoldsA, "b": bHoldsA},
		haVIPB: {"a": aHoldsB, "b": bHoldsB},
	}
}

// TestServePairFailover: two `portico serve` nodes in namespaces on one
// bridge run an active/active pair (each owns one VIP). Killed with -9,
// node a's VIP moves to node b, which answers SIP OPTIONS from the outside
// on it. Node a returns: with preemption it takes its VIP back; without,
// `handback` on node b gives it back. The cluster API, readiness, the CLI,
// metrics and events show the moves; SIGTERM releases the VIPs.
func TestServePairFailover(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		t.Run(map[bool]string{true: "preempt", false: "no preempt"}[preempt], func(t *testing.T) {
			l := newHALab(t, map[string]string{"a": haAddrA, "b": haAddrB, "o": haAddrOut})
			raw, err := os.ReadFile("../internal/api/openapi.json")
			if err != nil {
				t.Fatal(err)
			}
			oc := newOpenAPIChecker(t, raw)
			rec := func(method, path string, code int, body []byte) {
				if strings.HasPrefix(path, "/api/v1/cluster") {
					oc.check(t, method, path, code, body)
				}
			}
			cfg := servePair(preempt)
			dirA, dirB := t.TempDir(), t.TempDir()
			a := l.serve("a", "a", dirA, cfg)
			b := l.serve("b", "b", dirB, cfg)
			a.api.record, b.api.record = rec, rec
			if !preempt {
				// Node a started first and took both groups; without
				// preemption node b gets its own only by a hand-back.
				l.waitHolds("node b up, no preemption", held(true, false, true, false))
				var hb struct{ Yielded []int }
				a.api.must(200, "POST", "/api/v1/cluster/handback", map[string]string{}).json(t, &hb)
				if !slices.Equal(hb.Yielded, []int{52}) {
					t.Errorf("node a yielded %v, want [52]", hb.Yielded)
				}
			}
			l.waitHolds("both nodes up", held(true, false, false, true))
			l.waitOptions(haVIPA + ":5060")
			l.waitOptions(haVIPB + ":5060")
			ga := a.groups()
			if g := ga[51]; g.State != "master" || !g.Owner || len(g.VIPsHeld) != 1 || g.VIPsHeld[0] != haVIPA {
				t.Errorf("node a, group 51: %+v", g)
			}
			if g := ga[52]; g.State != "backup" || g.Owner || len(g.VIPsHeld) != 0 || len(g.Peers) != 1 || g.Peers[0].Address != haAddrB {
				t.Errorf("node a, group 52 (node b's master heard): %+v", g)
			}
			var ready struct {
				Checks []struct {
					Name string
					OK   bool
				}
			}
			a.api.must(200, "GET", "/readyz", nil).json(t, &ready)
			if !slices.ContainsFunc(ready.Checks, func(c struct {
				Name string
				OK   bool
			}) bool {
				return c.Name == "ha" && c.OK
			}) {
				t.Errorf("readyz on node a has no ha check that is ok: %+v", ready)
			}
			// portico ha status, from the outside, with an API token.
			var tok struct{ Secret string }
			a.api.must(201, "POST", "/api/v1/tokens", map[string]string{"name": "ha-cli"}).json(t, &tok)
			cli, err := exec.Command("ip", "netns", "exec", l.ns("o"), portico(t), "ha", "status", "--url", "https://"+haAddrA+":9443", "--insecure", "--token", tok.Secret).CombinedOutput()
			if err != nil || !strings.Contains(string(cli), "51") || !regexpLine(string(cli), `^51\s+master\s+150\s+true\s+192\.0\.2\.100\s+192\.0\.2\.100\s`) {
				t.Errorf("portico ha status: %v\n%s", err, cli)
			}

			// kill -9 node a: node b takes VIP .100 and answers on it.
			a.kill()
			l.waitHolds("node a killed", map[string]map[string]bool{haVIPA: {"b": true}, haVIPB: {"b": true}})
			l.waitOptions(haVIPA + ":5060")
			if g := b.waitState(51, "master"); g.Transitions != 2 {
				t.Errorf("node b, group 51 after the kill: %+v", g)
			}

			// Node a returns; its stale VIP is removed at start.
			a = l.serve("a", "a", dirA, cfg)
			a.api.record = rec
			if preempt {
				l.waitHolds("node a back, preemption", held(true, false, false, true))
			} else {
				time.Sleep(time.Second) // ten advertisement intervals: nothing moves
				l.waitHolds("node a back, no preemption", held(false, true, false, true))
				a.waitState(51, "backup")
				// Node a's own hand-back yields nothing: it is master of no
				// group it does not own.
				var hb struct{ Yielded []int }
				a.api.must(200, "POST", "/api/v1/cluster/handback", map[string]string{}).json(t, &hb)
				if len(hb.Yielded) != 0 {
					t.Errorf("node a yielded %v", hb.Yielded)
				}
				out, err := exec.Command("ip", "netns", "exec", l.ns("o"), portico(t), "ha", "handback", "--url", "https://"+haAddrB+":9443", "--insecure", "--token", bToken(t, b)).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "[51]") {
					t.Errorf("portico ha handback on node b: %v\n%s", err, out)
				}
				l.waitHolds("hand-back", held(true, false, false, true))
			}
			l.waitOptions(haVIPA + ":5060")
			a.waitState(51, "master")
			metrics := string(b.api.must(200, "GET", "/metrics", nil).body)
			if !strings.Contains(metrics, `portico_ha_transitions_total{group="51"} 3`) || !strings.Contains(metrics, `portico_ha_state{group="51"} 1`) {
				t.Errorf("node b's metrics for group 51:\n%s", grepLines(metrics, "portico_ha_"))
			}
			var events []struct{ Component, Message string }
			b.api.must(200, "GET", "/api/v1/events", nil).json(t, &events)
			var moves []string
			for _, e := range events {
				if e.Component == "ha" && strings.HasPrefix(e.Message, "VIP group 51: ") {
					moves = append(moves, e.Message)
				}
			}
			if len(moves) != 3 || !strings.HasPrefix(moves[0], "VIP group 51: master -> backup") || !strings.HasPrefix(moves[1], "VIP group 51: backup -> master") {
				t.Errorf("node b's events for group 51 (newest first): %q", moves)
			}

			// SIGTERM: node b gives group 52 to node a at once and removes
			// its VIP; node a then stops and removes both.
			b.stop()
			l.waitHolds("node b stopped", map[string]map[string]bool{haVIPA: {"a": true, "b": false}, haVIPB: {"a": true, "b": false}})
			a.stop()
			l.waitHolds("node a stopped", held(false, false, false, false))
		})
	}
}

// bToken makes an API token on node n.
func bToken(t *testing.T, n *haNode) string {
	var tok struct{ Secret string }
	n.api.must(201, "POST", "/api/v1/tokens", map[string]string{"name": "ha-cli-" + strconv.FormatInt(time.Now().UnixNano(), 36)}).json(t, &tok)
	return tok.Secret
}

// TestServeWithKeepalivedPeer: keepalived 2.2 is the VRRP peer of a
// `portico serve` node in group 51: keepalived, of higher priority, is
// master; killed, the Portico node takes the VIP and answers SIP on it.
func TestServeWithKeepalivedPeer(t *testing.T) {
	l := newHALab(t, map[string]string{"a": haAddrA, "b": haAddrB, "o": haAddrOut})
	cfg := strings.Replace(servePair(true), "priorities: {a: 150, b: 100}", "priorities: {a: 100, b: 150}", 1)
	k := testpeer.StartKeepalived(t, l.ns("b"), 51, 200, haVIPA)
	a := l.serve("a", "a", t.TempDir(), cfg)
	// Group 52 has no other speaker: node a is its master.
	l.waitHolds("keepalived master of 51", held(false, true, true, false))
	time.Sleep(time.Second) // many advertisement intervals: the election holds
	l.waitHolds("keepalived still master of 51", held(false, true, true, false))
	if g := a.waitState(51, "backup"); len(g.Peers) != 1 || g.Peers[0].Address != haAddrB {
		t.Errorf("node a, group 51 under keepalived: %+v", g)
	}
	// keepalived dies with its machine (link cut).
	l.ip("-n", l.ns("b"), "link", "set", "eth0", "down")
	k.Kill()
	l.waitHolds("keepalived gone", map[string]map[string]bool{haVIPA: {"a": true}, haVIPB: {"a": true}})
	l.waitOptions(haVIPA + ":5060")
	if t.Failed() {
		t.Logf("keepalived:\n%s\nportico:\n%s", k.Output(), a.out)
	}
}

// regexpLine reports whether a line of s matches pattern.
func regexpLine(s, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, line := range strings.Split(s, "\n") {
		if re.MatchString(line) {
			return true
		}
	}
	return false
}

// BenchmarkServeFailover measures the serve pair's failover: node a (the
// master of group 51, 100 ms advertisements) is killed with -9, and the
// time is taken from the kill to node a's VIP configured on node b
// (vip-ms) and to the first SIP OPTIONS answered on that VIP from the
// outside (sip-ms). After each kill node a returns and takes its VIP back
// (preemption). It reports the median and the worst; run it with
// -benchtime=20x.
func BenchmarkServeFailover(b *testing.B) {
	l := newHALab(b, map[string]string{"a": haAddrA, "b": haAddrB, "o": haAddrOut})
	cfg := servePair(true)
	dirA := b.TempDir()
	a := l.serve("a", "a", dirA, cfg)
	l.serve("b", "b", b.TempDir(), cfg)
	var vip, sip []time.Duration
	for b.Loop() {
		b.StopTimer()
		l.waitHolds("pair up", held(true, false, false, true))
		l.waitOptions(haVIPA + ":5060")
		time.Sleep(500 * time.Millisecond) // node b settled as backup of 51
		start := time.Now()
		a.kill()
		for !l.holds("b", haVIPA) {
			time.Sleep(time.Millisecond)
		}
		vip = append(vip, time.Since(start))
		for !strings.HasPrefix(l.optionsWithin("o", haVIPA+":5060", 20*time.Millisecond), "SIP/2.0 200") {
			if time.Since(start) > 10*time.Second {
				b.Fatal("node b did not answer on node a's VIP within 10s of the kill")
			}
		}
		sip = append(sip, time.Since(start))
		a = l.serve("a", "a", dirA, cfg)
		b.StartTimer()
	}
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"vip", vip}, {"sip", sip}} {
		slices.Sort(m.d)
		b.ReportMetric(float64(m.d[len(m.d)/2].Microseconds())/1000, m.name+"-median-ms")
		b.ReportMetric(float64(m.d[len(m.d)-1].Microseconds())/1000, m.name+"-worst-ms")
	}
}

// TestServeRefusesVIPBindWithoutNonlocalBind: with the sysctl
// net.ipv4.ip_nonlocal_bind at 0 a node whose SIP listeners bind the VIPs
// would fail as backup; it refuses to start and names the sysctl.
func TestServeRefusesVIPBindWithoutNonlocalBind(t *testing.T) {
	l := newHALab(t, map[string]string{"a": haAddrA})
	if out, err := exec.Command("ip", "netns", "exec", l.ns("a"), "sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=0").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v\n%s", err, out)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "portico.yaml")
	os.WriteFile(file, []byte(servePair(true)), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.ns("a"), portico(t), "serve", "--config", file, "--data", filepath.Join(dir, "data"), "--node-name", "a")
	cmd.Env = append(os.Environ(), "PORTICO_ADMIN_PASSWORD="+adminPassword)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "net.ipv4.ip_nonlocal_bind=1") || !strings.Contains(string(out), haVIPA+" (group 51)") {
		t.Errorf("serve with ip_nonlocal_bind 0: %v\n%s", err, out)
	}
}
