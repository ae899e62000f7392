//go:build linux

package media

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portico-edge/portico/internal/testpeer"
)

// fastNet is the test's topology: three network namespaces, outside ⇄
// portico ⇄ inside, joined by veth pairs. Portico has 10.199.1.1 toward
// the outside (10.199.1.2, and a stranger on 10.199.1.3) and 10.199.2.1
// toward the inside (10.199.2.2). The senders' veths compute full UDP
// checksums (no offload) so that a receiver or tshark can judge the
// relay's rewriting.
type fastNet struct {
	ns map[string]string // role -> namespace name
	fd map[string]int
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newFastNet(t *testing.T) *fastNet {
	t.Helper()
	testpeer.Require(t, "ip", "ethtool")
	testpeer.LockNetwork(t)
	n := &fastNet{ns: map[string]string{}, fd: map[string]int{}}
	for _, role := range []string{"outside", "portico", "inside"} {
		name := fmt.Sprintf("portico-fp-%s-%d", role, os.Getpid())
		run(t, "ip", "netns", "add", name)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		run(t, "ip", "-n", name, "link", "set", "lo", "up")
		fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		n.ns[role], n.fd[role] = name, fd
	}
	p := n.ns["portico"]
	for _, l := range []struct{ peer, here, there, hereIP, thereIP string }{
		{"outside", "po", "vo", "10.199.1.1/24", "10.199.1.2/24"},
		{"inside", "pi", "vi", "10.199.2.1/24", "10.199.2.2/24"},
	} {
		o := n.ns[l.peer]
		run(t, "ip", "-n", p, "link", "add", l.here, "type", "veth", "peer", "name", l.there, "netns", o)
		run(t, "ip", "-n", p, "addr", "add", l.hereIP, "dev", l.here)
		run(t, "ip", "-n", o, "addr", "add", l.thereIP, "dev", l.there)
		run(t, "ip", "-n", p, "link", "set", l.here, "up")
		run(t, "ip", "-n", o, "link", "set", l.there, "up")
		run(t, "ip", "netns", "exec", o, "ethtool", "-K", l.there, "tx", "off")
	}
	run(t, "ip", "-n", n.ns["outside"], "addr", "add", "10.199.1.3/24", "dev", "vo")
	return n
}

// in runs f on a thread inside the role's namespace: sockets, BPF links
// and interface look-ups f makes belong to it. The thread is never reused.
func (n *fastNet) in(t *testing.T, role string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(n.fd[role], unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		done <- f()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func (n *fastNet) udp(t *testing.T, role, ip string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	n.in(t, role, func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// nsCapture is tshark on one interface of a namespace, a line per UDP
// datagram: source, destination, IP and UDP checksum status.
type nsCapture struct {
	cmd   *exec.Cmd
	lines chan string
}

func (n *fastNet) capture(t *testing.T, role, ifname string) *nsCapture {
	t.Helper()
	bin := testpeer.Require(t, "tshark")[0]
	c := &nsCapture{lines: make(chan string, 4096)}
	c.cmd = exec.Command("ip", "netns", "exec", n.ns[role], bin, "-i", ifname, "-l", "-n", "-f", "udp",
		"-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=,", "-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport",
		"-e", "ip.checksum.status", "-e", "udp.checksum.status")
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = io.Discard
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	return c
}

// sync sends probes from probe to to until tshark shows one, and returns
// the lines captured before it.
func (c *nsCapture) sync(t *testing.T, probe *net.UDPConn, to netip.AddrPort) []string {
	t.Helper()
	want := fmt.Sprintf(",%s,%d,", to.Addr(), to.Port())
	var got []string
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		probe.WriteToUDPAddrPort([]byte("probe"), to)
		for {
			select {
			case l, ok := <-c.lines:
				if !ok {
					t.Fatal("tshark ended")
				}
				if strings.Contains(l, want) {
					return got
				}
				got = append(got, l)
				continue
			case <-deadline:
				t.Fatalf("tshark never captured a probe (%d lines)", len(got))
			case <-tick.C:
			}
			break
		}
	}
}

// relay starts a relay in portico's namespace with one audio stream
// between remote[0] (external) and remote[1] (internal), and returns it
// with the session, the stream and the loaded fast path. The engine, its
// sockets and the tcx links are made in portico's namespace by the first
// Allocate.
func (n *fastNet) relay(t *testing.T, cfg Config, remote [2]netip.AddrPort) (*Relay, SessionID, StreamInfo, *fastPath) {
	t.Helper()
	r, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var id SessionID
	var in StreamInfo
	n.in(t, "portico", func() error {
		var infos []StreamInfo
		var err error
		id, infos, err = r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{
			{Kind: KindAudio, RTCPMux: true, Remote: remote},
		}})
		if len(infos) > 0 {
			in = infos[0]
		}
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r, id, in, requireFast(t, r)
}

// flowKeys lists the entries in the kernel map.
func flowKeys(t testing.TB, f *fastPath) []fastKey {
	t.Helper()
	var out []fastKey
	var k fastKey
	var v fastValue
	it := f.objs.Flows.Iterate()
	for it.Next(&k, &v) {
		out = append(out, k)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func keyOf(local, peer netip.AddrPort) fastKey {
	return fastKeyOf(&fastEntry{local: local, peer: peer})
}

// TestFastPathNamespaces relays a call between two namespaces through a
// third with the fast path on: the kernel forwards with the right
// addresses and checksums (tshark on the inside), strangers are still
// dropped in user space, a NAT rebinding moves the entry, the stream's
// counters match what was sent, and releasing the session leaves no entry.
func TestFastPathNamespaces(t *testing.T) {
	n := newFastNet(t)
	cfg := Config{FastPath: FastPathOn, Interfaces: map[string]InterfaceConfig{
		"external": {Addr: netip.MustParseAddr("10.199.1.1"), PortMin: 40000, PortMax: 40019},
		"internal": {Addr: netip.MustParseAddr("10.199.2.1"), PortMin: 50000, PortMax: 50019},
	}}
	a := n.udp(t, "outside", "10.199.1.2")
	b := n.udp(t, "inside", "10.199.2.2")
	stranger := n.udp(t, "outside", "10.199.1.3")
	r, id, in, f := n.relay(t, cfg, [2]netip.AddrPort{addr(a), addr(b)})

	// First packets each way: user space latches both legs and installs.
	latchBoth(t, a, b, in, 172)
	if keys := flowKeys(t, f); len(keys) != 2 {
		t.Fatalf("%d entries after latching, want 2", len(keys))
	}

	capt := n.capture(t, "inside", "vi")
	// Probes go to ports with no socket: only the capture sees them. Each
	// sync has its own port so that a late probe is not taken for the next.
	probeTo := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("10.199.2.1"), port) }
	capt.sync(t, b, probeTo(9))
	const count = 200
	for i := 0; i < count; i++ {
		relayed(t, a, b, in.Local[0], in.Local[1], rtpPacket(1, uint16(i+2), 172))
		relayed(t, b, a, in.Local[1], in.Local[0], rtpPacket(2, uint16(i+2), 172))
	}
	lines := capt.sync(t, b, probeTo(7))
	relayed := fmt.Sprintf("%s,%d,%s,%d,", in.Local[1].Addr(), in.Local[1].Port(), addr(b).Addr(), addr(b).Port())
	toRelay := fmt.Sprintf("%s,%d,%s,%d,", addr(b).Addr(), addr(b).Port(), in.Local[1].Addr(), in.Local[1].Port())
	var nRelayed, nToRelay int
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, relayed):
			nRelayed++
			if !strings.HasSuffix(l, ",1,1") { // 1: checksum good
				t.Errorf("relayed datagram with a bad checksum: %s", l)
			}
		case strings.HasPrefix(l, toRelay):
			nToRelay++
		case strings.Contains(l, ",10.199.2.1,9,"): // a late first probe
		default:
			t.Errorf("unexpected datagram on the inside: %s", l)
		}
	}
	if nRelayed != count || nToRelay != count {
		t.Errorf("tshark on the inside: %d relayed to %v (want %d), %d sent to the relay (want %d)", nRelayed, addr(b), count, nToRelay, count)
	}
	for leg := 0; leg < 2; leg++ {
		l := legStats(t, r, id, leg)
		if l.Packets != count+1 || l.Forwarded != count+1 || l.Bytes != (count+1)*172 || l.InKernel != count {
			t.Errorf("leg %d: packets %d forwarded %d bytes %d in kernel %d, want %d, %d, %d, %d", leg, l.Packets, l.Forwarded, l.Bytes, l.InKernel, count+1, count+1, (count+1)*172, count)
		}
	}

	// A stranger (another IP) is dropped in user space, never forwarded.
	stranger.WriteToUDPAddrPort(rtpPacket(1, 300, 172), in.Local[0])
	waitFor(t, func() bool { return legStats(t, r, id, 0).Dropped == 1 })
	last := rtpPacket(1, 400, 172)
	a.WriteToUDPAddrPort(last, in.Local[0])
	expectNext(t, b, last)
	nothingQueued(t, b)
	nothingQueued(t, stranger)

	// A NAT rebinding: the outside party's stream continues from a new
	// port; user space re-latches and the entry moves with it.
	a2 := n.udp(t, "outside", "10.199.1.2")
	moved := rtpPacket(1, 401, 172)
	a2.WriteToUDPAddrPort(moved, in.Local[0])
	expectNext(t, b, moved)
	back := rtpPacket(2, 500, 172)
	b.WriteToUDPAddrPort(back, in.Local[1])
	expectNext(t, a2, back)
	nothingQueued(t, a)
	keys := flowKeys(t, f)
	want := map[fastKey]bool{keyOf(in.Local[0], addr(a2)): true, keyOf(in.Local[1], addr(b)): true}
	if len(keys) != 2 || !want[keys[0]] || !want[keys[1]] {
		t.Errorf("entries after re-latching: %v, want %v", keys, want)
	}
	for i := 0; i < 10; i++ {
		p := rtpPacket(1, uint16(402+i), 172)
		a2.WriteToUDPAddrPort(p, in.Local[0])
		expectNext(t, b, p)
	}
	if l := legStats(t, r, id, 0); l.Packets != count+13 || l.InKernel != count+11 {
		t.Errorf("leg 0 after re-latching: packets %d in kernel %d, want %d and %d", l.Packets, l.InKernel, count+13, count+11)
	}

	st, err := r.Release(id)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Streams[0].Legs[0].Packets; got != count+13 {
		t.Errorf("final leg 0 packets %d, want %d", got, count+13)
	}
	if keys := flowKeys(t, f); len(keys) != 0 {
		t.Errorf("%d entries after release, want none", len(keys))
	}
}

// TestFastPathVethToLoopback relays a call between a leg on a veth and a
// leg on loopback, as a DMZ node does whose internal leg reaches inside
// endpoints through the tunnel's sockets on 127.0.0.0/8: the kernel
// forwards both ways, including datagrams that arrived on the veth and
// leave through lo (which carry the veth's Ethernet addresses until the
// program rewrites them), and the internal leg moves to the tunnel's new
// socket when it reconnects after a cut.
func TestFastPathVethToLoopback(t *testing.T) {
	n := newFastNet(t)
	cfg := Config{FastPath: FastPathOn, Latching: LatchNAT, RelatchQuiet: 300 * time.Millisecond, Interfaces: map[string]InterfaceConfig{
		"external": {Addr: netip.MustParseAddr("10.199.1.1"), PortMin: 40000, PortMax: 40019},
		"internal": {Addr: netip.MustParseAddr("127.0.0.3"), PortMin: 50000, PortMax: 50019, LatchFrom: netip.MustParseAddr("127.0.0.4")},
	}}
	a := n.udp(t, "outside", "10.199.1.2")
	tunnel := n.udp(t, "portico", "127.0.0.4")
	r, id, in, f := n.relay(t, cfg, [2]netip.AddrPort{addr(a), netip.MustParseAddrPort("10.1.2.3:4000")})

	relayed(t, tunnel, a, in.Local[1], in.Local[0], rtpPacket(1, 1, 172))
	relayed(t, a, tunnel, in.Local[0], in.Local[1], rtpPacket(2, 1, 172))
	if keys := flowKeys(t, f); len(keys) != 2 {
		t.Fatalf("%d entries after latching, want 2", len(keys))
	}
	const count = 50
	for i := 0; i < count; i++ {
		relayed(t, tunnel, a, in.Local[1], in.Local[0], rtpPacket(1, uint16(i+2), 172))
		relayed(t, a, tunnel, in.Local[0], in.Local[1], rtpPacket(2, uint16(i+2), 172))
	}
	for leg := 0; leg < 2; leg++ {
		if l := legStats(t, r, id, leg); l.Packets != count+1 || l.InKernel != count {
			t.Errorf("leg %d: packets %d in kernel %d, want %d and %d", leg, l.Packets, l.InKernel, count+1, count)
		}
	}

	// The tunnel is cut for longer than RelatchQuiet and delivers from a
	// new socket when it is back; the inside stream has moved on.
	time.Sleep(2 * cfg.RelatchQuiet)
	moved := n.udp(t, "portico", "127.0.0.4")
	relayed(t, moved, a, in.Local[1], in.Local[0], rtpPacket(1, 200, 172))
	for i := 0; i < 10; i++ {
		relayed(t, a, moved, in.Local[0], in.Local[1], rtpPacket(2, uint16(100+i), 172))
		relayed(t, moved, a, in.Local[1], in.Local[0], rtpPacket(1, uint16(201+i), 172))
	}
	nothingQueued(t, tunnel)
	if l := legStats(t, r, id, 1); l.Peer != addr(moved) || l.InKernel < count+9 {
		t.Errorf("internal leg: peer %v in kernel %d, want %v and at least %d", l.Peer, l.InKernel, addr(moved), count+9)
	}
}
