//go:build linux

package media

import (
	"net"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
)

// idleOn returns how many parked sockets the relay's interface holds.
func idleOn(r *Relay, name string) int { return r.ifaces[name].pool.idleSockets() }

// TestReusedPairCarriesNothingOver relays two calls, one after the other,
// through interfaces of one port pair each, so the second call gets the
// first one's sockets back: nothing of the first call reaches the second.
// A late packet of the first call's peer is dropped as a stranger, a
// packet sent to the pair while it was parked is not delivered, and the
// second call's latching, counters and (with the eBPF fast path) kernel
// entries start empty.
func TestReusedPairCarriesNothingOver(t *testing.T) {
	for _, tc := range []struct {
		name string
		fast FastPath
	}{
		{"user space", FastPathOff},
		{"fast path", FastPathOn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(freePair(t, 28000), freePair(t, 29000), 2) // one pair on each side
			cfg.FastPath = tc.fast
			r, _ := startRelay(t, cfg, Deps{})
			// The first call's peers on addresses of their own: latching
			// takes any port of a signalled address.
			a, b, c, d := udpOn(t, "127.0.0.5"), udpOn(t, "127.0.0.6"), udp(t), udp(t)
			call := func(x, y *net.UDPConn) (SessionID, StreamInfo) {
				t.Helper()
				id, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{
					{Kind: KindAudio, Remote: [2]netip.AddrPort{addr(x), addr(y)}},
				}})
				if err != nil {
					t.Fatal(err)
				}
				return id, infos[0]
			}
			release := func(id SessionID) {
				t.Helper()
				if _, err := r.Release(id); err != nil {
					t.Fatal(err)
				}
				// RTP and RTCP on each side, parked once their worker let go.
				waitFor(t, func() bool { return idleOn(r, "external") == 2 && idleOn(r, "internal") == 2 })
				if got := testutil.ToFloat64(r.m.idleSockets); got != 4 {
					t.Fatalf("idle_sockets gauge %v, want 4", got)
				}
			}

			// First call: a and b, latched both ways, enough packets for
			// the fast path to take the stream over.
			id1, in1 := call(a, b)
			latchBoth(t, a, b, in1, 60)
			for i := 0; i < 20; i++ {
				relayed(t, a, b, in1.Local[0], in1.Local[1], rtpPacket(1, uint16(i+2), 60))
				relayed(t, b, a, in1.Local[1], in1.Local[0], rtpPacket(2, uint16(i+2), 60))
			}
			if tc.fast == FastPathOn {
				requireFast(t, r)
				if l := legStats(t, r, id1, 0); l.InKernel == 0 {
					t.Fatalf("first call: nothing forwarded in the kernel: %+v", l)
				}
			}
			release(id1)

			// While the pair is parked, the first call's peers keep sending.
			a.WriteToUDPAddrPort(rtpPacket(1, 30, 60), in1.Local[0])
			b.WriteToUDPAddrPort(rtpPacket(2, 30, 60), in1.Local[1])

			// Second call, c and d, on the same pair: its sockets are the
			// parked ones.
			reused := testutil.ToFloat64(r.m.socketsReused)
			id2, in2 := call(c, d)
			if in2.Local != in1.Local {
				t.Fatalf("second call on %v, first on %v: the only pair was not reused", in2.Local, in1.Local)
			}
			if got := testutil.ToFloat64(r.m.socketsReused) - reused; got != 4 {
				t.Fatalf("%v sockets reused, want 4", got)
			}
			if n := idleOn(r, "external") + idleOn(r, "internal"); n != 0 {
				t.Fatalf("%d sockets still parked", n)
			}
			for leg := 0; leg < 2; leg++ {
				if l := legStats(t, r, id2, leg); l != (LegStats{Peer: [2]netip.AddrPort{addr(c), addr(d)}[leg]}) {
					t.Fatalf("second call leg %d starts with %+v", leg, l)
				}
			}

			// Late packets of the first call, continuing its streams: strangers.
			strangers := testutil.ToFloat64(r.m.strangers)
			a.WriteToUDPAddrPort(rtpPacket(1, 31, 60), in2.Local[0])
			b.WriteToUDPAddrPort(rtpPacket(2, 31, 60), in2.Local[1])
			waitFor(t, func() bool { return testutil.ToFloat64(r.m.strangers)-strangers == 2 })
			// The second call's own packets are the first its peers get.
			relayed(t, c, d, in2.Local[0], in2.Local[1], rtpPacket(5, 1, 60))
			relayed(t, d, c, in2.Local[1], in2.Local[0], rtpPacket(6, 1, 60))
			for leg, peer := range []*net.UDPConn{c, d} {
				l := legStats(t, r, id2, leg)
				if l.Dropped != 1 || l.Packets != 1 || l.Peer != addr(peer) || !l.Latched {
					t.Fatalf("second call leg %d: %+v", leg, l)
				}
			}
			for _, x := range []*net.UDPConn{a, b} {
				if n := pending(x); n != 0 {
					t.Fatalf("a peer of the first call received %d datagrams after it ended", n)
				}
			}
			if got := testutil.ToFloat64(r.m.sessions); got != 1 {
				t.Fatalf("sessions gauge %v", got)
			}

			// Third call: the first call's peers again, on the same pair.
			// What they sent to it while it was parked is not relayed.
			release(id2)
			id3, in3 := call(a, b)
			relayed(t, a, b, in3.Local[0], in3.Local[1], rtpPacket(7, 1, 60))
			relayed(t, b, a, in3.Local[1], in3.Local[0], rtpPacket(8, 1, 60))
			if l := legStats(t, r, id3, 0); l.Packets != 1 || l.Dropped != 0 {
				t.Fatalf("third call leg 0: %+v", l)
			}
		})
	}
}

// freePair returns the first even port from 'from' on that it and the
// next are free on 127.0.0.1 (other programs on the machine bind ports
// too, and a pool of one pair would fail on them).
func freePair(t testing.TB, from int) int {
	t.Helper()
	for p := from; p < from+1000; p += 2 {
		s, err := openUDP(netip.AddrPortFrom(lo, uint16(p)), 0)
		if err != nil {
			continue
		}
		s2, err := openUDP(netip.AddrPortFrom(lo, uint16(p+1)), 0)
		closeSock(s)
		if err == nil {
			closeSock(s2)
			return p
		}
	}
	t.Fatalf("no free port pair in %d-%d", from, from+999)
	return 0
}

// pending returns how many datagrams wait on c without blocking.
func pending(c *net.UDPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	n := 0
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			if _, err := unix.Read(int(fd), b[:]); err != nil {
				return true
			}
			n++
		}
	})
	return n
}

// TestParkDrains parks a socket holding queued datagrams: they are
// dropped, a datagram sent to it while parked is refused (it is not
// queued), and once unparked it receives from anyone again on the same
// address.
func TestParkDrains(t *testing.T) {
	local := netip.AddrPortFrom(lo, uint16(freePair(t, 30000)))
	s, err := openUDP(local, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSock(s)
	peer := udp(t)
	for i := 0; i < 3; i++ {
		peer.WriteToUDPAddrPort([]byte("queued before park"), local)
	}
	p, ok := park(s, local)
	if !ok || p.fd != s.fd || p.registered() {
		t.Fatalf("park: %v %+v", ok, p)
	}
	peer.WriteToUDPAddrPort([]byte("sent while parked"), local)
	if err := unpark(p); err != nil {
		t.Fatal(err)
	}
	peer.WriteToUDPAddrPort([]byte("after"), local)
	buf := make([]byte, 64)
	var got []string
	for {
		pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(pfd, 1000); n == 0 {
			break
		}
		n, from, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			break
		}
		if sa, ok := from.(*unix.SockaddrInet4); !ok || sa.Port != int(addr(peer).Port()) {
			t.Fatalf("datagram from %v", from)
		}
		got = append(got, string(buf[:n]))
		if got[len(got)-1] == "after" {
			break
		}
	}
	if len(got) != 1 || got[0] != "after" {
		t.Fatalf("received %q after unpark, want only %q", got, "after")
	}
}

// TestPoolKeepsIdleSockets: a pair given back with sockets hands them to
// the next take or reserve of that pair and to no other; a closed pool
// keeps none.
func TestPoolKeepsIdleSockets(t *testing.T) {
	base := freePair(t, 30000)
	if freePair(t, base+2) != base+2 {
		t.Fatal("no two free pairs in a row")
	}
	p := newPortPool(base, base+3) // two pairs
	var got [2]idlePair
	port, _ := p.take(func(int, idlePair) error { return nil })
	other, _ := p.take(func(int, idlePair) error { return nil })
	s, err := openUDP(netip.AddrPortFrom(lo, uint16(port)), 0)
	if err != nil {
		t.Fatal(err)
	}
	s, _ = park(s, netip.AddrPortFrom(lo, uint16(port)))
	p.putIdle(port, idlePair{sock: [2]idleSock{{s: s, open: true}}})
	p.put(other)
	if p.idleSockets() != 1 || p.available() != 2 {
		t.Fatalf("idle %d, available %d", p.idleSockets(), p.available())
	}
	for i := 0; i < 2; i++ {
		_, err := p.take(func(q int, idle idlePair) error {
			got[(q-base)/2] = idle
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got[(port-base)/2].n() != 1 || got[(other-base)/2].n() != 0 || got[(port-base)/2].sock[0].s.fd != s.fd {
		t.Fatalf("takes got %+v (sockets given back on %d)", got, port)
	}
	if p.idleSockets() != 0 {
		t.Fatal("a socket handed out is still counted")
	}
	// Reserve (a standby copy of a peer's session) gets them too.
	p.putIdle(port, got[(port-base)/2])
	idle, ok := p.reserve(port)
	if !ok || idle.n() != 1 {
		t.Fatalf("reserve: %v, %d sockets", ok, idle.n())
	}
	p.putIdle(port, idle)
	p.close()
	if p.idleSockets() != 0 {
		t.Fatal("a closed pool keeps sockets")
	}
	// Closed: the port is free for anyone to bind again.
	if s, err := openUDP(netip.AddrPortFrom(lo, uint16(port)), 0); err != nil {
		t.Fatalf("port %d still bound after the pool closed: %v", port, err)
	} else {
		closeSock(s)
	}
}

// BenchmarkAllocateRelease allocates and releases a session of one audio
// stream with RTP and RTCP on port+1 (four sockets) per operation, on a
// running relay whose pools start empty of sockets; sockets_opened/op is
// how many of them were created rather than reused.
func BenchmarkAllocateRelease(b *testing.B) {
	r, _ := startRelay(b, testConfig(20000, 22000, 2000), Deps{})
	remote := [2]netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9"), netip.MustParseAddrPort("127.0.0.1:11")}
	sc := SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{Kind: KindAudio, Remote: remote}}}
	reused := testutil.ToFloat64(r.m.socketsReused)
	b.ReportAllocs()
	for b.Loop() {
		id, _, err := r.Allocate(sc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Release(id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(4-(testutil.ToFloat64(r.m.socketsReused)-reused)/float64(b.N), "sockets_opened/op")
}

// TestPoolPrefersParkedPairs: once minIdle pairs are parked, takes pick
// among them (fewer sockets to create, fewer kept open); below that, among
// all free pairs, so a pair just released is never certain to come next.
// The parked "sockets" here are placeholders (fd -1): the pool only
// carries them.
func TestPoolPrefersParkedPairs(t *testing.T) {
	p := newPortPool(20000, 20799) // 400 pairs: minIdle 100
	if p.minIdle != 100 {
		t.Fatalf("minIdle %d", p.minIdle)
	}
	placeholder := idlePair{sock: [2]idleSock{{s: sysSock{fd: -1}, open: true}}}
	var taken []int
	for range 400 {
		port, _ := p.take(func(int, idlePair) error { return nil })
		taken = append(taken, port)
	}
	parked := map[int]bool{}
	for _, port := range taken[:200] {
		p.putIdle(port, placeholder)
		parked[port] = true
	}
	for _, port := range taken[200:] {
		p.put(port)
	}
	for range 101 { // 200 parked down to 100: each take finds minIdle or more
		port, _ := p.take(func(_ int, idle idlePair) error {
			if idle.n() != 1 {
				t.Errorf("took %d with %d parked sockets", idle.n(), idle.n())
			}
			return nil
		})
		if !parked[port] {
			t.Fatalf("took %d, not a parked pair, with %d parked", port, p.idleSockets()+1)
		}
	}
	// 99 parked: below minIdle, takes draw from all the free pairs (about
	// a quarter of them parked). A take's pair goes back without sockets.
	if n := p.idleSockets(); n != 99 {
		t.Fatalf("%d parked", n)
	}
	fromParked := 0
	for range 50 {
		port, _ := p.take(func(_ int, idle idlePair) error {
			if idle.n() > 0 {
				fromParked++
			}
			return nil
		})
		p.put(port)
	}
	if fromParked > 40 {
		t.Fatalf("%d of 50 takes below minIdle chose a parked pair (about a quarter expected)", fromParked)
	}
}

// TestStandbyCopyTakesParkedPair imports an HA peer's session onto the
// port pair a released call left parked: the copy uses those sockets, and
// once the copy is forgotten its sockets are closed, not parked (they may
// be bound on the peer's address), so the port is free to bind again.
func TestStandbyCopyTakesParkedPair(t *testing.T) {
	r, _ := startRelay(t, testConfig(freePair(t, 28000), freePair(t, 29000), 2), Deps{})
	id, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{Kind: KindAudio}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Release(id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return idleOn(r, "external") == 2 && idleOn(r, "internal") == 2 })
	reused := testutil.ToFloat64(r.m.socketsReused)
	st := SessionState{ID: 99, Interfaces: [2]string{"external", "internal"}, Streams: []StreamState{{
		Config: StreamConfig{Kind: KindAudio}, Local: infos[0].Local,
	}}}
	if err := r.Import(st); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(r.m.socketsReused) - reused; got != 4 {
		t.Fatalf("the copy reused %v sockets, want 4", got)
	}
	r.Forget(99)
	// Both pairs back in their pools once their workers let go.
	waitFor(t, func() bool {
		ext, _ := r.Available("external")
		in, _ := r.Available("internal")
		return ext == 1 && in == 1
	})
	if n := idleOn(r, "external") + idleOn(r, "internal"); n != 0 {
		t.Fatalf("%d sockets of the copy parked", n)
	}
	for _, a := range []netip.AddrPort{infos[0].Local[0], infos[0].LocalRTCP[0], infos[0].Local[1], infos[0].LocalRTCP[1]} {
		s, err := openUDP(a, 0)
		if err != nil {
			t.Fatalf("%v still bound after the copy ended: %v", a, err)
		}
		closeSock(s)
	}
}
