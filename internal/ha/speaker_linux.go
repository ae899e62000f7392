package ha

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// SpeakerConfig is what a Speaker runs: the virtual routers of one
// interface, IPv4 and IPv6 groups (VRIDs unique across both).
type SpeakerConfig struct {
	// Interface carries the VIPs and the advertisements.
	Interface string
	// Routers are the groups; each one's Self is this node's address on
	// Interface.
	Routers []RouterConfig
	// Transition, when set, is called on every state change (events,
	// metrics).
	Transition func(vrid uint8, a Actions)
	// SplitBrain, when set, is called for every advertisement of another
	// master heard while master (a.Other sent it; a.To is this node's
	// state after it).
	SplitBrain func(vrid uint8, a Actions)
}

// Speaker speaks VRRPv3 for its groups on one interface: it sends and
// receives advertisements (IP protocol 112 to 224.0.0.18, or to ff02::12
// from the interface's link-local address, TTL or hop limit 255), adds a
// group's VIPs to the interface with netlink when it becomes master (IPv6
// ones without duplicate address detection) and announces them with
// gratuitous ARP or an unsolicited Neighbor Advertisement, and removes
// them when it stops being master.
type Speaker struct {
	cfg     SpeakerConfig
	log     *slog.Logger
	routers map[uint8]*Router
	dropped atomic.Int64
	// yield carries hand-back requests to the goroutine that owns the
	// routers; each is answered with the VRIDs yielded.
	yield chan yieldReq

	mu     sync.Mutex // guards groups
	groups map[uint8]*groupStats
}

// groupStats is what Status reports of a group besides its router's
// configuration; the speaker's goroutine writes it under mu.
type groupStats struct {
	state       State
	transitions int64
	last        time.Time
	peers       map[netip.Addr]PeerStatus
}

type yieldReq struct {
	vrids map[uint8]bool
	done  chan []uint8
}

// Dropped counts the advertisements dropped: malformed, refused by a
// router (TTL, peer), or beyond the receive queue.
func (s *Speaker) Dropped() int64 { return s.dropped.Load() }

// NewSpeaker validates cfg; it does no I/O.
func NewSpeaker(cfg SpeakerConfig, log *slog.Logger) (*Speaker, error) {
	s := &Speaker{cfg: cfg, log: log, routers: map[uint8]*Router{}, yield: make(chan yieldReq), groups: map[uint8]*groupStats{}}
	if cfg.Interface == "" {
		return nil, fmt.Errorf("vrrp: no interface")
	}
	for _, rc := range cfg.Routers {
		r, err := NewRouter(rc)
		if err != nil {
			return nil, err
		}
		if s.routers[rc.VRID] != nil {
			return nil, fmt.Errorf("vrrp vrid %d: twice", rc.VRID)
		}
		s.routers[rc.VRID] = r
		s.groups[rc.VRID] = &groupStats{peers: map[netip.Addr]PeerStatus{}}
	}
	return s, nil
}

// Groups reports each group's state, transitions and the peers heard, by
// VRID.
func (s *Speaker) Groups() map[uint8]GroupStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint8]GroupStats, len(s.groups))
	for id, g := range s.groups {
		gs := GroupStats{State: g.state, Transitions: g.transitions, LastTransition: g.last}
		for _, p := range g.peers {
			gs.Peers = append(gs.Peers, p)
		}
		slices.SortFunc(gs.Peers, func(a, b PeerStatus) int { return a.Address.Compare(b.Address) })
		out[id] = gs
	}
	return out
}

// Yield hands the groups named in vrids that this node is master of back
// to a peer (Router.Yield) and returns the VRIDs it yielded. It fails when
// the speaker does not run or ctx ends first.
func (s *Speaker) Yield(ctx context.Context, vrids map[uint8]bool) ([]uint8, error) {
	req := yieldReq{vrids: vrids, done: make(chan []uint8, 1)}
	select {
	case s.yield <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case ids := <-req.done:
		return ids, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type received struct {
	src netip.Addr
	ttl int
	b   []byte
}

// Run speaks until ctx ends; then each master sends priority 0 and
// removes its VIPs.
func (s *Speaker) Run(ctx context.Context) error { return s.run(ctx, func() bool { return true }) }

// run is Run; clean false at the end leaves as a crash does (VIPs kept,
// nothing sent), for tests.
func (s *Speaker) run(ctx context.Context, clean func() bool) error {
	ifi, err := net.InterfaceByName(s.cfg.Interface)
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	link, err := netlink.LinkByName(s.cfg.Interface)
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	in := make(chan received, 64)
	// A reader that fails says so here; there are at most two.
	failed := make(chan error, 2)
	// wires holds the socket of each family a group uses (key: IPv6).
	wires := map[bool]*wire{}
	for _, r := range s.routers {
		v6 := r.Config().IPv6()
		if wires[v6] != nil {
			continue
		}
		listen := listen4
		if v6 {
			listen = listen6
		}
		w, err := listen(ifi)
		if err != nil {
			return err
		}
		defer w.close()
		wires[v6] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed <- s.read(w, ifi.Index, in)
		}()
	}
	do := func(r *Router, a Actions) {
		rc := r.Config()
		if a.Transition() {
			// The state is recorded before the VIPs move, so that a
			// status showing a VIP held never shows the old state.
			s.mu.Lock()
			g := s.groups[rc.VRID]
			g.state, g.last = a.To, time.Now()
			g.transitions++
			s.mu.Unlock()
		}
		if a.Release {
			for _, v := range rc.Addrs {
				if err := netlink.AddrDel(link, addrOf(v)); err != nil {
					s.log.Warn("vrrp: remove VIP", "vrid", rc.VRID, "vip", v, "err", err)
				}
			}
		}
		if a.Send {
			w := wires[rc.IPv6()]
			adv := r.Advert(a.Priority)
			b, err := adv.Append(nil, rc.Self, w.group)
			if err == nil {
				err = w.send(b, rc.Self)
			}
			if err != nil {
				s.log.Warn("vrrp: send advertisement", "vrid", rc.VRID, "err", err)
			}
		}
		if a.Take {
			for _, v := range rc.Addrs {
				if err := netlink.AddrReplace(link, addrOf(v)); err != nil {
					s.log.Error("vrrp: add VIP", "vrid", rc.VRID, "vip", v, "err", err)
				}
				if rc.IPv6() {
					continue
				}
				if err := gratuitousARP(ifi, v); err != nil {
					s.log.Warn("vrrp: gratuitous ARP", "vrid", rc.VRID, "vip", v, "err", err)
				}
			}
			if rc.IPv6() {
				if err := unsolicitedNA(ifi, rc.Self, rc.Addrs); err != nil {
					s.log.Warn("vrrp: unsolicited neighbour advertisement", "vrid", rc.VRID, "err", err)
				}
			}
		}
		if a.SplitBrain {
			s.log.Warn("vrrp: another master on the segment", "vrid", rc.VRID, "other", a.Other, "state", a.To)
			if s.cfg.SplitBrain != nil {
				s.cfg.SplitBrain(rc.VRID, a)
			}
		}
		if a.Transition() {
			s.log.Info("vrrp: transition", "vrid", rc.VRID, "from", a.From, "to", a.To)
			if s.cfg.Transition != nil {
				s.cfg.Transition(rc.VRID, a)
			}
		}
	}
	now := time.Now()
	for _, r := range s.routers {
		// A backup must not hold the VIPs: a node that crashed as master
		// left them on the interface.
		if r.Config().Priority != PriorityOwner {
			for _, v := range r.Config().Addrs {
				netlink.AddrDel(link, addrOf(v))
			}
		}
		do(r, r.Start(now))
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		next := time.Time{}
		for _, r := range s.routers {
			if n := r.Next(); next.IsZero() || n.Before(next) {
				next = n
			}
		}
		t.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			if clean() {
				for _, r := range s.routers {
					do(r, r.Shutdown())
				}
			}
			return nil
		case err := <-failed:
			return fmt.Errorf("vrrp: receive: %w", err)
		case m := <-in:
			dst := GroupV4
			if is6(m.src) {
				dst = GroupV6
			}
			adv, err := Parse(m.b, m.src, dst)
			if err != nil {
				s.dropped.Add(1)
				continue
			}
			r := s.routers[adv.VRID]
			if r == nil {
				continue // another group on the segment
			}
			now := time.Now()
			a, err := r.Receive(now, m.src, m.ttl, adv)
			if err != nil {
				s.dropped.Add(1)
				continue
			}
			s.mu.Lock()
			s.groups[adv.VRID].peers[m.src] = PeerStatus{Address: m.src, LastHeard: now.UTC(), Priority: int(adv.Priority)}
			s.mu.Unlock()
			do(r, a)
		case req := <-s.yield:
			var ids []uint8
			now := time.Now()
			for id, r := range s.routers {
				if req.vrids[id] && r.State() == Master {
					do(r, r.Yield(now))
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
			req.done <- ids
		case <-t.C:
			now := time.Now()
			for _, r := range s.routers {
				if !r.Next().After(now) {
					do(r, r.Tick(now))
				}
			}
		}
	}
}

// addrOf is the VIP a as the interface holds it: a host route's prefix
// length, and for IPv6 no duplicate address detection, so that the
// address is usable at once (the election made it this node's).
func addrOf(a netip.Addr) *netlink.Addr {
	bits := a.BitLen()
	na := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, bits)}}
	if is6(a) {
		na.Flags = syscall.IFA_F_NODAD
	}
	return na
}

// wire is the VRRP socket of one address family on the interface.
type wire struct {
	// group is where advertisements go (GroupV4, GroupV6).
	group netip.Addr
	// send sends an advertisement from src to group.
	send func(b []byte, src netip.Addr) error
	// recv reads an advertisement: its length, source, TTL (hop limit)
	// and the index of the interface it arrived on (0 when unknown).
	recv  func(b []byte) (n int, src net.Addr, ttl, ifindex int, err error)
	close func() error
}

// multicastConn is what ipv4.PacketConn and ipv6.PacketConn share.
type multicastConn interface {
	JoinGroup(ifi *net.Interface, group net.Addr) error
	SetMulticastInterface(ifi *net.Interface) error
	SetMulticastLoopback(on bool) error
}

// listen opens the raw VRRP socket of one family (network "ip4:112" or
// "ip6:112" on laddr) and joins group on ifi. family wraps the socket in
// its family's conn, sets that family's options and makes the wire's send
// and recv, which send to to.
func listen(ifi *net.Interface, network, laddr string, group netip.Addr, family func(c net.PacketConn, to *net.IPAddr) (multicastConn, *wire, error)) (*wire, error) {
	c, err := net.ListenPacket(network, laddr)
	if err != nil {
		return nil, fmt.Errorf("vrrp: listen: %w", err)
	}
	to := &net.IPAddr{IP: group.AsSlice()}
	if is6(group) {
		to.Zone = ifi.Name
	}
	p, w, err := family(c, to)
	if err == nil {
		err = p.JoinGroup(ifi, to)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("vrrp: %s on %s: %w", group, ifi.Name, err)
	}
	p.SetMulticastInterface(ifi)
	p.SetMulticastLoopback(false)
	w.group, w.close = group, c.Close
	return w, nil
}

// listen4 opens the IPv4 socket: IP protocol 112, 224.0.0.18 joined on
// ifi, TTL 255.
func listen4(ifi *net.Interface) (*wire, error) {
	return listen(ifi, "ip4:112", "0.0.0.0", GroupV4, func(c net.PacketConn, to *net.IPAddr) (multicastConn, *wire, error) {
		p := ipv4.NewPacketConn(c)
		p.SetMulticastTTL(TTL)
		return p, &wire{
			send: func(b []byte, src netip.Addr) error {
				_, err := p.WriteTo(b, &ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: ifi.Index}, to)
				return err
			},
			recv: func(b []byte) (int, net.Addr, int, int, error) {
				n, cm, src, err := p.ReadFrom(b)
				if cm == nil {
					return n, src, 0, 0, err
				}
				return n, src, cm.TTL, cm.IfIndex, err
			}}, p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagInterface, true)
	})
}

// listen6 opens the IPv6 socket: next header 112, ff02::12 joined on ifi,
// hop limit 255 (RFC 9568 section 5.1.2).
func listen6(ifi *net.Interface) (*wire, error) {
	return listen(ifi, "ip6:112", "::", GroupV6, func(c net.PacketConn, to *net.IPAddr) (multicastConn, *wire, error) {
		p := ipv6.NewPacketConn(c)
		p.SetMulticastHopLimit(TTL)
		return p, &wire{
			send: func(b []byte, src netip.Addr) error {
				_, err := p.WriteTo(b, &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: ifi.Index, HopLimit: TTL}, to)
				return err
			},
			recv: func(b []byte) (int, net.Addr, int, int, error) {
				n, cm, src, err := p.ReadFrom(b)
				if cm == nil {
					return n, src, 0, 0, err
				}
				return n, src, cm.HopLimit, cm.IfIndex, err
			}}, p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true)
	})
}

// read queues the advertisements w receives on interface ifindex until
// w is closed, and returns why it stopped.
func (s *Speaker) read(w *wire, ifindex int, in chan<- received) error {
	buf := make([]byte, 1500)
	for {
		n, from, ttl, idx, err := w.recv(buf)
		if err != nil {
			return err
		}
		ip, ok := from.(*net.IPAddr)
		if idx != ifindex || !ok {
			continue
		}
		src, _ := netip.AddrFromSlice(ip.IP)
		select {
		case in <- received{src: src.Unmap(), ttl: ttl, b: append([]byte(nil), buf[:n]...)}:
		default:
			s.dropped.Add(1)
		}
	}
}

// unsolicitedNA sends an unsolicited Neighbor Advertisement for each of
// vips from src (the interface's link-local address) to all nodes on ifi,
// with hop limit 255, so that neighbours learn the VIPs' new hardware
// address.
func unsolicitedNA(ifi *net.Interface, src netip.Addr, vips []netip.Addr) error {
	c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return err
	}
	defer c.Close()
	p := ipv6.NewPacketConn(c)
	// The socket only sends: it queues nothing it would never read.
	var f ipv6.ICMPFilter
	f.SetAll(true)
	if err := p.SetICMPFilter(&f); err != nil {
		return err
	}
	to := &net.IPAddr{IP: AllNodes.AsSlice(), Zone: ifi.Name}
	cm := &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: ifi.Index, HopLimit: TTL}
	var b []byte
	for _, v := range vips {
		b, err = AppendUnsolicitedNA(b[:0], v, ifi.HardwareAddr, src, AllNodes)
		if err != nil {
			return err
		}
		if _, err := p.WriteTo(b, cm, to); err != nil {
			return fmt.Errorf("%s: %w", v, err)
		}
	}
	return nil
}

// gratuitousARP broadcasts an ARP request for ip from ip on ifi, so that
// neighbours learn the VIP's new hardware address.
func gratuitousARP(ifi *net.Interface, ip netip.Addr) error {
	if !ip.Is4() || len(ifi.HardwareAddr) != 6 {
		return nil
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons(syscall.ETH_P_ARP)))
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	b := make([]byte, 0, 28)
	b = binary.BigEndian.AppendUint16(b, 1)      // Ethernet
	b = binary.BigEndian.AppendUint16(b, 0x0800) // IPv4
	b = append(b, 6, 4)
	b = binary.BigEndian.AppendUint16(b, 1) // request
	b = append(b, ifi.HardwareAddr...)
	b = append(b, ip.AsSlice()...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, ip.AsSlice()...)
	to := &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	return syscall.Sendto(fd, b, 0, to)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
