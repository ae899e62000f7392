package ha

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// State is a virtual router's state (RFC 9568 section 6.4).
type State int

// The three states.
const (
	Initialize State = iota
	Backup
	Master
)

func (s State) String() string {
	switch s {
	case Backup:
		return "backup"
	case Master:
		return "master"
	}
	return "initialize"
}

// RouterConfig is one virtual router (one VIP group) on one node.
type RouterConfig struct {
	// VRID is the virtual router's ID on the segment, 1..255; every
	// speaker of the group uses the same one.
	VRID uint8
	// Priority is this node's priority, 1..254 (255: the node owns the
	// addresses and is master whenever it runs).
	Priority uint8
	// Interval is how often the master advertises, 10 ms steps from
	// 100 ms to 40.95 s.
	Interval time.Duration
	// Preempt lets a higher-priority backup take the group from a
	// lower-priority master; off, a master keeps the group until it
	// stops.
	Preempt bool
	// Self is this node's primary address on the segment (the
	// advertisements' source; the higher address wins a priority tie):
	// for an IPv6 group the interface's link-local address.
	Self netip.Addr
	// Peers are the addresses advertisements are accepted from; others
	// are dropped (VRRPv3 has no authentication). IPv6 peers are
	// link-local.
	Peers []netip.Addr
	// Addrs are the virtual addresses, of Self's family.
	Addrs []netip.Addr
}

// IPv6 reports whether the group is an IPv6 one (Self is IPv6).
func (c RouterConfig) IPv6() bool { return is6(c.Self) }

// MinInterval is the shortest advertisement interval accepted.
const MinInterval = 100 * time.Millisecond

// Validate checks the configuration.
func (c *RouterConfig) Validate() error {
	switch {
	case c.VRID == 0:
		return fmt.Errorf("vrid 0 is not a virtual router")
	case c.Priority == 0:
		return fmt.Errorf("priority 0 is reserved for a master giving up")
	case c.Interval < MinInterval || c.Interval > MaxInterval*10*time.Millisecond || c.Interval%(10*time.Millisecond) != 0:
		return fmt.Errorf("interval %s is not 100ms..40.95s in 10ms steps", c.Interval)
	case !c.Self.IsValid():
		return fmt.Errorf("no own address")
	case len(c.Peers) == 0:
		return fmt.Errorf("no peers")
	case len(c.Addrs) == 0 || len(c.Addrs) > 255:
		return fmt.Errorf("%d addresses (1..255)", len(c.Addrs))
	case c.IPv6() && !c.Self.IsLinkLocalUnicast():
		return fmt.Errorf("own address %s is not link-local (IPv6 advertisements are sent from the link-local address)", c.Self)
	}
	for _, a := range slices.Concat(c.Peers, c.Addrs) {
		if is6(a) != c.IPv6() {
			return fmt.Errorf("address %s is not of the family of %s", a, c.Self)
		}
	}
	for _, p := range c.Peers {
		if c.IPv6() && !p.IsLinkLocalUnicast() {
			return fmt.Errorf("peer %s is not link-local", p)
		}
	}
	return nil
}

// Actions is what the caller does after an event, in this order: give
// the addresses up, send an advertisement (with Priority), take the
// addresses and announce them (gratuitous ARP, unsolicited neighbour
// advertisement).
type Actions struct {
	Release bool
	Send    bool
	// Priority is the priority to send: the node's, or PriorityStop.
	Priority uint8
	Take     bool
	// From and To are set on a transition.
	From, To State
	// SplitBrain is set when a master heard another master: the lower
	// one yields (section 6.4.3), the other takes (announces) the
	// addresses again, and the caller logs it.
	SplitBrain bool
	// Other is the sender that made the transition or split brain.
	Other netip.Addr
}

// Transition reports whether the state changed.
func (a Actions) Transition() bool { return a.From != a.To }

// Router is one virtual router's state machine (RFC 9568 section 6). It
// is driven by its caller, which serialises the calls (one goroutine) and
// owns the socket, the clock and the addresses: Start, then Receive for
// each advertisement and Tick at Next, then Shutdown.
type Router struct {
	cfg   RouterConfig
	state State
	// masterInterval is Master_Adver_Interval: the master's interval as
	// its advertisements say.
	masterInterval time.Duration
	adverAt        time.Time // Adver_Timer (master)
	downAt         time.Time // Master_Down_Timer (backup)
}

// NewRouter validates cfg.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vrrp vrid %d: %w", cfg.VRID, err)
	}
	return &Router{cfg: cfg, masterInterval: cfg.Interval}, nil
}

// State is the current state.
func (r *Router) State() State { return r.state }

// Config is the router's configuration.
func (r *Router) Config() RouterConfig { return r.cfg }

// Advert is the advertisement the router sends with priority p.
func (r *Router) Advert(p uint8) Advert {
	return Advert{VRID: r.cfg.VRID, Priority: p, Interval: uint16(r.cfg.Interval / (10 * time.Millisecond)), Addrs: r.cfg.Addrs}
}

// skew is Skew_Time; down, Master_Down_Interval.
func (r *Router) skew() time.Duration {
	return time.Duration(256-int(r.cfg.Priority)) * r.masterInterval / 256
}

func (r *Router) down() time.Duration { return 3*r.masterInterval + r.skew() }

// Next is when Tick is due.
func (r *Router) Next() time.Time {
	switch r.state {
	case Master:
		return r.adverAt
	case Backup:
		return r.downAt
	}
	return time.Time{}
}

// Start leaves Initialize: the address owner becomes master at once,
// every other node backup.
func (r *Router) Start(now time.Time) Actions {
	if r.state != Initialize {
		return Actions{From: r.state, To: r.state}
	}
	if r.cfg.Priority == PriorityOwner {
		return r.becomeMaster(now, netip.Addr{})
	}
	r.masterInterval = r.cfg.Interval
	r.downAt = now.Add(r.down())
	r.state = Backup
	return Actions{From: Initialize, To: Backup}
}

func (r *Router) becomeMaster(now time.Time, other netip.Addr) Actions {
	from := r.state
	r.state = Master
	r.adverAt = now.Add(r.cfg.Interval)
	return Actions{Send: true, Priority: r.cfg.Priority, Take: true, From: from, To: Master, Other: other}
}

// Tick runs the timers that are due at now.
func (r *Router) Tick(now time.Time) Actions {
	a := Actions{From: r.state, To: r.state}
	switch r.state {
	case Backup:
		if !now.Before(r.downAt) {
			return r.becomeMaster(now, netip.Addr{})
		}
	case Master:
		if !now.Before(r.adverAt) {
			r.adverAt = now.Add(r.cfg.Interval)
			a.Send, a.Priority = true, r.cfg.Priority
		}
	}
	return a
}

// Receive handles an advertisement from src received with the IP TTL (or
// hop limit) ttl. A dropped one returns an error wrapping ErrDropped
// saying why; the caller counts it.
func (r *Router) Receive(now time.Time, src netip.Addr, ttl int, adv Advert) (Actions, error) {
	a := Actions{From: r.state, To: r.state}
	switch {
	case ttl != TTL:
		return a, fmt.Errorf("%w: ttl %d from %s", ErrDropped, ttl, src)
	case adv.VRID != r.cfg.VRID:
		return a, fmt.Errorf("%w: vrid %d from %s", ErrDropped, adv.VRID, src)
	case !slices.Contains(r.cfg.Peers, src.Unmap()):
		return a, fmt.Errorf("%w: %s is not a configured peer", ErrDropped, src)
	}
	interval := time.Duration(adv.Interval) * 10 * time.Millisecond
	switch r.state {
	case Backup:
		if adv.Priority == PriorityStop {
			r.downAt = now.Add(r.skew())
			return a, nil
		}
		if !r.cfg.Preempt || adv.Priority >= r.cfg.Priority {
			r.masterInterval = interval
			r.downAt = now.Add(r.down())
		}
	case Master:
		if adv.Priority == PriorityStop {
			r.adverAt = now.Add(r.cfg.Interval)
			a.Send, a.Priority = true, r.cfg.Priority
			return a, nil
		}
		a.SplitBrain, a.Other = true, src
		if adv.Priority > r.cfg.Priority || (adv.Priority == r.cfg.Priority && src.Unmap().Compare(r.cfg.Self.Unmap()) > 0) {
			r.masterInterval = interval
			r.downAt = now.Add(r.down())
			r.state = Backup
			// One last advertisement tells the winner that this node held
			// the addresses, so it announces them again (below); backups
			// take it as any lower master's.
			a.Release, a.Send, a.Priority, a.To = true, true, r.cfg.Priority, Backup
		} else {
			// The other master announced the addresses too: announce
			// them again so neighbours learn this node's address back.
			a.Take = true
		}
	}
	return a, nil
}

// Shutdown gives the group up: a master sends priority 0 so a backup
// takes over at once, then releases the addresses.
func (r *Router) Shutdown() Actions {
	a := Actions{From: r.state, To: Initialize}
	if r.state == Master {
		a.Send, a.Priority, a.Release = true, PriorityStop, true
	}
	r.state = Initialize
	return a
}

// Yield hands a group this node is master of back to a peer (an
// administrator's hand-back with preemption off): it sends priority 0, so
// a backup takes over after its skew, releases the addresses and goes
// back to Backup. If no peer takes the group over, this node becomes
// master again after Master_Down_Interval. A router that is not master
// does nothing.
func (r *Router) Yield(now time.Time) Actions {
	a := Actions{From: r.state, To: r.state}
	if r.state != Master {
		return a
	}
	r.state = Backup
	r.masterInterval = r.cfg.Interval
	r.downAt = now.Add(r.down())
	a.Send, a.Priority, a.Release, a.To = true, PriorityStop, true, Backup
	return a
}
