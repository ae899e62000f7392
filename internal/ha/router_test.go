package ha

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// segment is an in-memory VRRP segment: the routers' advertisements go to
// every other router whose link is up, through Append and Parse. It
// stands in for the network only; the namespace tests use real sockets.
type segment struct {
	t     *testing.T
	now   time.Time
	nodes []*member
}

type member struct {
	r       *Router
	up      bool // the process runs
	linked  bool // its link to the segment is up
	holds   bool // it has the addresses
	splits  int  // split brains it reported
	changes int
}

var vip = netip.MustParseAddr("192.0.2.100")

func newSegment(t *testing.T, prios []uint8, preempt bool) *segment {
	return newSegmentOf(t, prios, preempt, func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)}) }, vip)
}

// newSegment6 is an IPv6 segment: the routers speak from fe80::1,
// fe80::2... for the VIP 2001:db8::100.
func newSegment6(t *testing.T, prios []uint8, preempt bool) *segment {
	return newSegmentOf(t, prios, preempt, func(i int) netip.Addr {
		return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 15: byte(1 + i)})
	}, netip.MustParseAddr("2001:db8::100"))
}

func newSegmentOf(t *testing.T, prios []uint8, preempt bool, addr func(i int) netip.Addr, vip netip.Addr) *segment {
	s := &segment{t: t, now: time.Unix(1000, 0)}
	addrs := make([]netip.Addr, len(prios))
	for i := range prios {
		addrs[i] = addr(i)
	}
	for i, p := range prios {
		r, err := NewRouter(RouterConfig{VRID: 51, Priority: p, Interval: 100 * time.Millisecond, Preempt: preempt,
			Self: addrs[i], Peers: addrs, Addrs: []netip.Addr{vip}})
		if err != nil {
			t.Fatal(err)
		}
		s.nodes = append(s.nodes, &member{r: r, linked: true})
	}
	return s
}

func (s *segment) start(i int) {
	m := s.nodes[i]
	m.up = true
	s.do(i, m.r.Start(s.now))
}

func (s *segment) do(i int, a Actions) {
	m := s.nodes[i]
	if a.Transition() {
		m.changes++
	}
	if a.SplitBrain {
		m.splits++
	}
	if a.Release {
		m.holds = false
	}
	if a.Send && m.linked {
		src := m.r.Config().Self
		group := GroupV4
		if m.r.Config().IPv6() {
			group = GroupV6
		}
		adv := m.r.Advert(a.Priority)
		b, err := adv.Append(nil, src, group)
		if err != nil {
			s.t.Fatal(err)
		}
		for j, o := range s.nodes {
			if j == i || !o.up || !o.linked {
				continue
			}
			got, err := Parse(b, src, group)
			if err != nil {
				s.t.Fatal(err)
			}
			ra, err := o.r.Receive(s.now, src, TTL, got)
			if err != nil {
				s.t.Fatal(err)
			}
			s.do(j, ra)
		}
	}
	if a.Take {
		m.holds = true
	}
}

// run advances the clock by d in 10 ms steps.
func (s *segment) run(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); s.now = s.now.Add(10 * time.Millisecond) {
		for i, m := range s.nodes {
			if m.up && !m.r.Next().After(s.now) {
				s.do(i, m.r.Tick(s.now))
			}
		}
	}
}

// holders are the members that have the addresses.
func (s *segment) holders() []int {
	var out []int
	for i, m := range s.nodes {
		if m.up && m.holds {
			out = append(out, i)
		}
	}
	return out
}

func (s *segment) wantHolder(i int) {
	s.t.Helper()
	h := s.holders()
	if len(h) != 1 || h[0] != i {
		s.t.Fatalf("holders %v, want [%d]", h, i)
	}
	for j, m := range s.nodes {
		want := Backup
		if j == i {
			want = Master
		}
		if m.up && m.r.State() != want {
			s.t.Fatalf("node %d is %s, want %s", j, m.r.State(), want)
		}
	}
}

func TestElection(t *testing.T) {
	s := newSegment(t, []uint8{100, 150}, true)
	s.start(0)
	s.start(1)
	s.run(2 * time.Second)
	s.wantHolder(1)
}

// TestElectionIPv6: IPv6 routers, speaking from their link-local
// addresses to ff02::12, elect the higher priority; the other takes over
// when the master dies.
func TestElectionIPv6(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prios  []uint8
		master int
	}{{"first", []uint8{150, 100}, 0}, {"second", []uint8{100, 150}, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSegment6(t, tc.prios, false)
			s.start(0)
			s.start(1)
			s.run(2 * time.Second)
			s.wantHolder(tc.master)
			s.nodes[tc.master].up, s.nodes[tc.master].holds = false, false
			s.run(time.Second)
			s.wantHolder(1 - tc.master)
		})
	}
}

func TestFailover(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		name := map[bool]string{true: "preempt", false: "no preempt"}[preempt]
		t.Run(name, func(t *testing.T) {
			s := newSegment(t, []uint8{150, 100}, preempt)
			s.start(0)
			s.run(time.Second)
			s.start(1)
			s.run(time.Second)
			s.wantHolder(0)
			// The master dies without a word: the backup takes over once
			// Master_Down_Interval (3 x 100 ms + skew) has passed.
			s.nodes[0].up, s.nodes[0].holds = false, false
			s.nodes[0].r = mustRouter(t, s.nodes[0].r.Config())
			s.run(time.Second)
			s.wantHolder(1)
			// It returns: with preemption it takes the group back, without
			// it stays backup.
			s.start(0)
			s.run(time.Second)
			if preempt {
				s.wantHolder(0)
			} else {
				s.wantHolder(1)
			}
		})
	}
}

func TestShutdownHandsOver(t *testing.T) {
	s := newSegment(t, []uint8{150, 100}, true)
	s.start(0)
	s.start(1)
	s.run(time.Second)
	s.wantHolder(0)
	s.do(0, s.nodes[0].r.Shutdown())
	s.nodes[0].up = false
	// Priority 0 makes the backup wait only Skew_Time (< 100 ms).
	s.run(100 * time.Millisecond)
	s.wantHolder(1)
}

// TestSplitBrainResolves: with the link cut both nodes are master; when it
// returns the lower priority yields, or on equal priorities the lower
// address.
func TestSplitBrainResolves(t *testing.T) {
	tests := []struct {
		name   string
		prios  []uint8
		winner int
	}{
		{"priority", []uint8{150, 100}, 0},
		{"address", []uint8{100, 100}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSegment(t, tc.prios, false)
			s.start(0)
			s.run(time.Second)
			s.start(1)
			s.run(time.Second)
			s.wantHolder(0)
			s.nodes[0].linked = false // the link between the nodes is cut
			s.run(time.Second)
			if h := s.holders(); len(h) != 2 {
				t.Fatalf("link cut: holders %v, want both", h)
			}
			s.nodes[0].linked = true
			s.run(time.Second)
			s.wantHolder(tc.winner)
			if s.nodes[0].splits+s.nodes[1].splits == 0 {
				t.Error("the split brain was not reported")
			}
		})
	}
}

func TestReceiveDrops(t *testing.T) {
	peer := netip.MustParseAddr("192.0.2.2")
	r := mustRouter(t, RouterConfig{VRID: 51, Priority: 100, Interval: time.Second, Self: netip.MustParseAddr("192.0.2.1"),
		Peers: []netip.Addr{peer}, Addrs: []netip.Addr{vip}})
	r.Start(time.Unix(0, 0))
	good := Advert{VRID: 51, Priority: 200, Interval: 100, Addrs: []netip.Addr{vip}}
	other := good
	other.VRID = 52
	tests := []struct {
		name string
		src  netip.Addr
		ttl  int
		a    Advert
	}{
		{"ttl", peer, 254, good},
		{"not a peer", netip.MustParseAddr("192.0.2.9"), TTL, good},
		{"other vrid", peer, TTL, other},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.Receive(time.Unix(0, 0), tc.src, tc.ttl, tc.a); !errors.Is(err, ErrDropped) {
				t.Errorf("got %v, want dropped", err)
			}
		})
	}
	if _, err := r.Receive(time.Unix(0, 0), peer, TTL, good); err != nil {
		t.Errorf("good advertisement: %v", err)
	}
}

func TestRouterConfigRefused(t *testing.T) {
	ok := RouterConfig{VRID: 1, Priority: 100, Interval: time.Second, Self: vip, Peers: []netip.Addr{vip}, Addrs: []netip.Addr{vip}}
	tests := []struct {
		name string
		mod  func(c *RouterConfig)
	}{
		{"vrid", func(c *RouterConfig) { c.VRID = 0 }},
		{"priority", func(c *RouterConfig) { c.Priority = 0 }},
		{"interval short", func(c *RouterConfig) { c.Interval = 90 * time.Millisecond }},
		{"interval step", func(c *RouterConfig) { c.Interval = 105 * time.Millisecond }},
		{"interval long", func(c *RouterConfig) { c.Interval = 41 * time.Second }},
		{"self", func(c *RouterConfig) { c.Self = netip.Addr{} }},
		{"peers", func(c *RouterConfig) { c.Peers = nil }},
		{"addrs", func(c *RouterConfig) { c.Addrs = nil }},
		{"addrs of two families", func(c *RouterConfig) { c.Addrs = append(c.Addrs, netip.MustParseAddr("2001:db8::100")) }},
		{"ipv6 self not link-local", func(c *RouterConfig) {
			c.Self, c.Peers, c.Addrs = netip.MustParseAddr("2001:db8::1"), []netip.Addr{netip.MustParseAddr("fe80::2")}, []netip.Addr{netip.MustParseAddr("2001:db8::100")}
		}},
		{"ipv6 peer not link-local", func(c *RouterConfig) {
			c.Self, c.Peers, c.Addrs = netip.MustParseAddr("fe80::1"), []netip.Addr{netip.MustParseAddr("2001:db8::2")}, []netip.Addr{netip.MustParseAddr("2001:db8::100")}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			if _, err := NewRouter(c); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := NewRouter(ok); err != nil {
		t.Error(err)
	}
}

func mustRouter(t *testing.T, c RouterConfig) *Router {
	t.Helper()
	r, err := NewRouter(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestYieldHandsBack: without preemption the backup that took a group
// over keeps it when the owner returns; Yield hands it back (priority 0)
// and the owner's advertisements keep the yielder backup. With no peer to
// take it, the yielder becomes master again.
func TestYieldHandsBack(t *testing.T) {
	s := newSegment(t, []uint8{150, 100}, false)
	s.start(1)
	s.run(time.Second)
	s.start(0)
	s.run(time.Second)
	s.wantHolder(1)
	if a := s.nodes[0].r.Yield(s.now); a.Send || a.Transition() {
		t.Fatalf("a backup yielded: %+v", a)
	}
	s.do(1, s.nodes[1].r.Yield(s.now))
	s.run(100 * time.Millisecond)
	s.wantHolder(0)
	s.run(2 * time.Second)
	s.wantHolder(0)

	alone := newSegment(t, []uint8{150, 100}, false)
	alone.start(1)
	alone.run(time.Second)
	alone.do(1, alone.nodes[1].r.Yield(alone.now))
	if h := alone.holders(); len(h) != 0 {
		t.Fatalf("holders right after the yield: %v", h)
	}
	alone.run(time.Second)
	alone.wantHolder(1)
}
