package hasync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/testpeer"
)

// netLab is a bridge segment in its own namespace with one namespace per
// host: the outside party, the inside party and the two Portico nodes.
type netLab struct {
	tb   testing.TB
	name string
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

func newNetLab(t *testing.T, hosts map[string]string) *netLab {
	if testing.Short() {
		t.Skip("needs root and network namespaces")
	}
	testpeer.LockNetwork(t)
	if os.Geteuid() != 0 {
		t.Fatal("the failover test needs root (network namespaces)")
	}
	var r [3]byte
	rand.Read(r[:])
	l := &netLab{tb: t, name: "hs" + hex.EncodeToString(r[:])}
	br := l.ns("br")
	ip(t, "netns", "add", br)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", br).Run() })
	ip(t, "-n", br, "link", "add", "br0", "type", "bridge")
	ip(t, "-n", br, "link", "set", "br0", "up")
	for h, addr := range hosts {
		ns := l.ns(h)
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ip(t, "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p"+h, "netns", br)
		ip(t, "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		ip(t, "-n", ns, "link", "set", "eth0", "up")
		ip(t, "-n", ns, "link", "set", "lo", "up")
		ip(t, "-n", br, "link", "set", "p"+h, "master", "br0", "up")
	}
	return l
}

func (l *netLab) ns(h string) string { return l.name + h }

// nsThread runs functions on one OS thread inside a namespace: sockets
// are created in the namespace of the thread that creates them and stay
// there whatever thread uses them later.
type nsThread struct{ fns chan func() }

func (l *netLab) thread(h string) *nsThread {
	hd, err := netns.GetFromName(l.ns(h))
	if err != nil {
		l.tb.Fatal(err)
	}
	n := &nsThread{fns: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		// The thread stays in the namespace and ends with the goroutine.
		runtime.LockOSThread()
		defer hd.Close()
		if err := netns.Set(hd); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for fn := range n.fns {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		l.tb.Fatal(err)
	}
	l.tb.Cleanup(func() { close(n.fns) })
	return n
}

func (n *nsThread) do(fn func()) {
	done := make(chan struct{})
	n.fns <- func() { fn(); close(done) }
	<-done
}

// nsSink applies the peer's records on a thread in the standby node's
// namespace. Only the test needs it: a daemon runs in one namespace.
type nsSink struct {
	th   *nsThread
	sink Sink
}

func (s nsSink) Apply(k string, b []byte) (err error) {
	s.th.do(func() { err = s.sink.Apply(k, b) })
	return err
}

func (s nsSink) Remove(k string) (err error) {
	s.th.do(func() { err = s.sink.Remove(k) })
	return err
}

// TestFailoverKeepsMedia: node A relays an RTP stream from the outside
// party through its VIPs to the inside party and replicates the session
// to node B, which binds the same VIP ports with IP_FREEBIND without
// having the VIPs. A dies (its relay closes, its link drops), the VIPs
// move to B, and B forwards the same stream on without any signalling.
// The hand-over of the addresses is done with ip addr, and the outside
// and inside parties' ARP entries are flushed where the VRRP speaker would send a
// gratuitous ARP. RTP flows both ways. Then A returns with nothing: B
// sends it the session it adopted, the VIPs move back and A forwards the
// stream on (the hand-back). The sync links themselves run on loopback.
func TestFailoverKeepsMedia(t *testing.T) {
	const (
		addrA, addrB = "10.77.0.1", "10.77.0.2"
		addrO, addrI = "10.77.0.10", "10.77.0.20"
		vipExt       = "10.77.0.100"
		vipInt       = "10.77.0.101"
	)
	l := newNetLab(t, map[string]string{"a": addrA, "b": addrB, "o": addrO, "i": addrI})
	ip(t, "-n", l.ns("a"), "addr", "add", vipExt+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("a"), "addr", "add", vipInt+"/24", "dev", "eth0")
	thA, thB, thO, thI := l.thread("a"), l.thread("b"), l.thread("o"), l.thread("i")

	cfg := media.Config{
		Interfaces: map[string]media.InterfaceConfig{
			"external": {Addr: netip.MustParseAddr(vipExt), PortMin: 30000, PortMax: 30999},
			"internal": {Addr: netip.MustParseAddr(vipInt), PortMin: 31000, PortMax: 31999},
		},
		FastPath:          media.FastPathOff,
		InactivityTimeout: -1,
		SocketBuffer:      -1,
	}
	var nodeA, nodeB *Node
	relayA, err := media.New(cfg, media.Deps{OnChange: func(id media.SessionID) { nodeA.Changed(KindMedia, MediaKey(id)) }})
	if err != nil {
		t.Fatal(err)
	}
	relayB, err := media.New(cfg, media.Deps{OnChange: func(id media.SessionID) { nodeB.Changed(KindMedia, MediaKey(id)) }})
	if err != nil {
		t.Fatal(err)
	}
	ctxA, stopRelayA := context.WithCancel(context.Background())
	ctxB, stopRelayB := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { relayA.Run(ctxA) })
	wg.Go(func() { relayB.Run(ctxB) })
	t.Cleanup(func() { stopRelayA(); stopRelayB(); wg.Wait() })

	ln, err := net.Listen("tcp", "127.0.0.1:0") // B's
	if err != nil {
		t.Fatal(err)
	}
	lnA, err := net.Listen("tcp", "127.0.0.1:0") // A's when it returns
	if err != nil {
		t.Fatal(err)
	}
	hb := Config{}.withDefaults().Heartbeat
	hb.UnmarshalText([]byte("100ms"))
	nodeA, err = New(Config{Peer: ln.Addr().String(), Secret: testSecret, Heartbeat: hb}, Deps{Name: "edge-a"})
	if err != nil {
		t.Fatal(err)
	}
	nodeB, err = New(Config{Listen: ln.Addr().String(), Peer: lnA.Addr().String(), Secret: testSecret, Heartbeat: hb}, Deps{Name: "edge-b"})
	if err != nil {
		t.Fatal(err)
	}
	nodeA.Register(KindMedia, Media{Relay: relayA}, nil)
	nodeB.Register(KindMedia, Media{Relay: relayB}, nsSink{th: thB, sink: Media{Relay: relayB}})
	ctxSA, stopSyncA := context.WithCancel(context.Background())
	ctxSB, stopSyncB := context.WithCancel(context.Background())
	var swg sync.WaitGroup
	swg.Go(func() { nodeA.Serve(ctxSA, nil) })
	swg.Go(func() { nodeB.Serve(ctxSB, ln) })
	t.Cleanup(func() { stopSyncA(); stopSyncB(); swg.Wait() })

	// The parties' sockets.
	var out, in *net.UDPConn
	thO.do(func() { out, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addrO), Port: 40000}) })
	if err != nil {
		t.Fatal(err)
	}
	thI.do(func() { in, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addrI), Port: 42000}) })
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	defer in.Close()

	// A allocates the session as call setup would.
	var infos []media.StreamInfo
	thA.do(func() {
		_, infos, err = relayA.Allocate(media.SessionConfig{Label: "call-1", Interfaces: [2]string{"external", "internal"},
			Streams: []media.StreamConfig{{Kind: media.KindAudio, Remote: [2]netip.AddrPort{
				netip.MustParseAddrPort(addrO + ":40000"), netip.MustParseAddrPort(addrI + ":42000")}}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	// RTP both ways, a packet every 5 ms each: outside to inside through
	// the external VIP, inside to outside through the internal one.
	up := startRTP(out, in, infos[0].Local[0], 0x5eed)
	down := startRTP(in, out, infos[0].Local[1], 0x5eee)
	defer up.stop()
	defer down.stop()
	got := func() int { return min(up.count(), down.count()) }

	eventually(t, "media through A", func() bool { return got() >= 50 })
	latched := func() bool {
		ss := relayB.Standby()
		return len(ss) == 1 && ss[0].Streams[0].Legs[0].Latched && ss[0].Streams[0].Legs[1].Latched &&
			ss[0].Streams[0].Legs[0].Peer == netip.MustParseAddrPort(addrO+":40000") &&
			ss[0].Streams[0].Legs[1].Peer == netip.MustParseAddrPort(addrI+":42000")
	}
	eventually(t, "B holds the session latched", latched)
	if n := relayA.Sessions(); len(n) != 1 {
		t.Fatalf("A has %d sessions", len(n))
	}

	// A dies: its relay and link go, then its VIPs move to B.
	stopSyncA()
	relayA.Close()
	died := time.Now()
	lastUp, lastDown := up.sent(), down.sent()
	ip(t, "-n", l.ns("a"), "addr", "del", vipExt+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("a"), "addr", "del", vipInt+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("b"), "addr", "add", vipExt+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("b"), "addr", "add", vipInt+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("o"), "neigh", "flush", "dev", "eth0")
	ip(t, "-n", l.ns("i"), "neigh", "flush", "dev", "eth0")
	moved := time.Now()

	before := got()
	eventually(t, "media through B", func() bool { return got() >= before+100 })
	// B adopts the copy that carries media as its own session.
	eventually(t, "B adopts the session", func() bool { return len(relayB.Sessions()) == 1 })
	ss := relayB.Sessions()
	if len(relayB.Standby()) != 0 || ss[0].Label != "call-1" || ss[0].Streams[0].Legs[0].Forwarded == 0 || ss[0].Streams[0].Legs[1].Forwarded == 0 {
		t.Fatalf("B did not forward the stream both ways: %+v", ss)
	}
	logGaps(t, "failover", up, down, lastUp, lastDown, moved.Sub(died))

	// Hand-back: A returns with nothing, B sends it the session it now
	// relays as its own, A holds it as a standby copy, and the VIPs move
	// back to A, which forwards both ways on.
	relayA2, err := media.New(cfg, media.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctxA2, stopRelayA2 := context.WithCancel(context.Background())
	wg.Go(func() { relayA2.Run(ctxA2) })
	t.Cleanup(stopRelayA2)
	nodeA2, err := New(Config{Listen: lnA.Addr().String(), Secret: testSecret, Heartbeat: hb}, Deps{Name: "edge-a"})
	if err != nil {
		t.Fatal(err)
	}
	nodeA2.Register(KindMedia, nil, nsSink{th: thA, sink: Media{Relay: relayA2}})
	ctxSA2, stopSyncA2 := context.WithCancel(context.Background())
	swg.Go(func() { nodeA2.Serve(ctxSA2, lnA) })
	t.Cleanup(stopSyncA2)
	eventually(t, "A holds B's session latched", func() bool {
		ss := relayA2.Standby()
		return len(ss) == 1 && ss[0].Label == "call-1" && ss[0].Streams[0].Legs[0].Latched && ss[0].Streams[0].Legs[1].Latched
	})
	lastUp, lastDown = up.sent(), down.sent()
	handed := time.Now()
	ip(t, "-n", l.ns("b"), "addr", "del", vipExt+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("b"), "addr", "del", vipInt+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("a"), "addr", "add", vipExt+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("a"), "addr", "add", vipInt+"/24", "dev", "eth0")
	ip(t, "-n", l.ns("o"), "neigh", "flush", "dev", "eth0")
	ip(t, "-n", l.ns("i"), "neigh", "flush", "dev", "eth0")
	moved = time.Now()
	before = got()
	eventually(t, "media through A again", func() bool { return got() >= before+100 })
	eventually(t, "A adopts the session", func() bool { return len(relayA2.Sessions()) == 1 })
	up.stop()
	down.stop()
	logGaps(t, "hand-back", up, down, lastUp, lastDown, moved.Sub(handed))
}

// logGaps reports each direction's longest silence from the packets sent
// up to lastUp and lastDown on, and the packets lost since the start.
func logGaps(t *testing.T, what string, up, down *rtpFlow, lastUp, lastDown uint16, move time.Duration) {
	for _, d := range []struct {
		name string
		f    *rtpFlow
		last uint16
	}{{"outside to inside", up, lastUp}, {"inside to outside", down, lastDown}} {
		gap, lost := d.f.gap(d.last)
		t.Logf("%s: media gap at %s %v (moving the VIPs took %v), packets lost since the start %d",
			d.name, what, gap.Round(time.Millisecond), move.Round(time.Millisecond), lost)
	}
}

// rtpFlow sends RTP from one party to a relay address every 5 ms and
// records when each sequence number reaches the other party.
type rtpFlow struct {
	mu      sync.Mutex
	arrived map[uint16]time.Time
	seq     atomic.Uint32
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

func startRTP(from, to *net.UDPConn, relay netip.AddrPort, ssrc uint32) *rtpFlow {
	f := &rtpFlow{arrived: map[uint16]time.Time{}, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, err := to.Read(buf)
			if err != nil {
				return
			}
			if n >= 12 && binary.BigEndian.Uint32(buf[8:]) == ssrc {
				f.mu.Lock()
				f.arrived[binary.BigEndian.Uint16(buf[2:])] = time.Now()
				f.mu.Unlock()
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	target := net.UDPAddrFromAddrPort(relay)
	go func() {
		defer close(f.done)
		pkt := make([]byte, 172)
		pkt[0] = 0x80
		binary.BigEndian.PutUint32(pkt[8:], ssrc)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for range 4000 { // at most 20 s
			binary.BigEndian.PutUint16(pkt[2:], uint16(f.seq.Add(1)))
			from.WriteTo(pkt, target)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return f
}

func (f *rtpFlow) stop() { f.once.Do(func() { f.cancel(); <-f.done }) }

func (f *rtpFlow) sent() uint16 { return uint16(f.seq.Load()) }

func (f *rtpFlow) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.arrived)
}

// gap is the longest time without a packet arriving, from the last one
// sent up to seq last that arrived on; and the packets that never arrived.
func (f *rtpFlow) gap(last uint16) (time.Duration, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var before time.Time
	var later []time.Time
	for s, at := range f.arrived {
		if s <= last {
			if at.After(before) {
				before = at
			}
		} else {
			later = append(later, at)
		}
	}
	slices.SortFunc(later, time.Time.Compare)
	var gap time.Duration
	for _, at := range later {
		gap = max(gap, at.Sub(before))
		before = at
	}
	return gap, int(f.seq.Load()) - len(f.arrived)
}
