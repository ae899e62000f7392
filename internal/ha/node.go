package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/portico-edge/portico/internal/config/field"
)

// NodeConfig is the ha section as one node of a cluster runs it.
type NodeConfig struct {
	Section Section
	// Name is this node's name.
	Name string
	// Priorities are every node's default priority (its part's
	// nodes[].priority), by name; a group's priorities override them. A
	// document without nodes gives only this node's.
	Priorities map[string]int
}

// NodeDeps are what a Node reports to.
type NodeDeps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Transition is one change of a group's state on this node, as
// subscribers see it.
type Transition struct {
	VRID int
	From State
	To   State
	Time time.Time
	// VIPs are the group's addresses: taken on a move to Master, given up
	// on a move from it.
	VIPs []netip.Addr
	// Other is set when this node, master of the group for longer than
	// splitAfter intervals, heard another master and kept the group (a
	// split brain, reported once per episode: see splitQuiet). From and To
	// are then Master: such a report is not a state change.
	Other netip.Addr
}

// splitQuiet is how long a group hears no other master before another
// master heard again is reported as a new split brain: a split brain sends
// an advertisement every interval, which would otherwise each be an event.
const splitQuiet = 10 * time.Second

// splitAfter is how many advertisement intervals a node must have been
// master before another master it hears is a split brain. A backup that
// preempts, or takes over while the master's last advertisements are on
// their way, makes two masters for an interval or so: that is the
// protocol at work, not a split.
const splitAfter = 4

// PeerStatus is the last advertisement accepted from one peer of a group.
type PeerStatus struct {
	Address   netip.Addr `json:"address"`
	LastHeard time.Time  `json:"last_heard"`
	Priority  int        `json:"priority"`
}

// GroupStats is what the speaker knows of one group.
type GroupStats struct {
	State          State
	Transitions    int64
	LastTransition time.Time
	Peers          []PeerStatus
}

// GroupStatus is one VIP group as GET /api/v1/cluster shows it.
type GroupStatus struct {
	VRID     int  `json:"vrid"`
	Priority int  `json:"priority"`
	Preempt  bool `json:"preempt"`
	// Owner is set when this node has the group's highest configured
	// priority: the group is normally this node's.
	Owner bool `json:"owner"`
	// State is master, backup or initialize.
	State string   `json:"state"`
	VIPs  []string `json:"vips"`
	// VIPsHeld are the group's addresses configured on the interface now.
	VIPsHeld       []string     `json:"vips_held"`
	Transitions    int64        `json:"transitions"`
	LastTransition *time.Time   `json:"last_transition,omitempty"`
	Peers          []PeerStatus `json:"peers"`
	// Self is this node's address the group advertises from.
	Self string `json:"self,omitempty"`
}

// Status is this node's part of the cluster.
type Status struct {
	Node      string        `json:"node"`
	Interface string        `json:"interface"`
	Running   bool          `json:"running"`
	Error     string        `json:"error,omitempty"`
	Dropped   int64         `json:"advertisements_dropped"`
	Groups    []GroupStatus `json:"groups"`
}

// Node runs the VRRP speaker of one cluster node from the ha section: it
// finds its own address on the interface (the one listed in a group's
// peers), speaks for the groups, and tells subscribers of every
// transition. It is the seam other services (state replication, events,
// metrics) hang on.
type Node struct {
	cfg     NodeConfig
	log     *slog.Logger
	routers []RouterConfig // Self unset until Run finds it
	owned   map[uint8]bool

	mu          sync.Mutex // guards subs, lastSplit and masterSince
	subs        []func(Transition)
	lastSplit   map[uint8]time.Time
	masterSince map[uint8]time.Time

	speaker atomic.Pointer[Speaker]
	runErr  atomic.Pointer[string]
	state   *prometheus.GaugeVec
	moves   *prometheus.CounterVec
	splits  *prometheus.CounterVec
}

// NewNode validates cfg (field errors name the ha section's fields) and
// registers the node's metrics; it does no I/O.
func NewNode(cfg NodeConfig, d NodeDeps) (*Node, error) {
	s := cfg.Section
	names := make([]string, 0, len(cfg.Priorities))
	for n := range cfg.Priorities {
		names = append(names, n)
	}
	if err := s.Validate(names); err != nil {
		return nil, err
	}
	if !s.Enabled {
		return nil, field.Errors{{Path: "ha.enabled", Reason: "the speaker runs only when ha is enabled"}}
	}
	n := &Node{cfg: cfg, log: d.Logger, owned: map[uint8]bool{}, lastSplit: map[uint8]time.Time{}, masterSince: map[uint8]time.Time{}}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	self := cfg.Priorities[cfg.Name]
	if self == 0 {
		self = 100
	}
	var es field.Errors
	for i, g := range s.Groups {
		p := field.Join("ha.groups", i)
		peers, _ := netip.ParseAddr(g.Peers[0])
		rc, err := g.RouterConfig(cfg.Name, peers.Unmap(), self)
		if err != nil {
			es.Add(p, "%v", err)
			continue
		}
		n.routers = append(n.routers, rc)
		// The group is this node's when no other node has a higher
		// priority in it.
		owned := true
		for other, prio := range cfg.Priorities {
			if gp, ok := g.Priorities[other]; ok {
				prio = gp
			}
			if other != cfg.Name && prio >= int(rc.Priority) {
				owned = false
			}
		}
		n.owned[rc.VRID] = owned
	}
	if err := es.Err(); err != nil {
		return nil, err
	}
	n.state = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portico_ha_state", Help: "VRRP state of each VIP group on this node: 0 initialize, 1 backup, 2 master."}, []string{"group"})
	n.moves = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_ha_transitions_total", Help: "VRRP state changes of each VIP group on this node."}, []string{"group"})
	n.splits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_ha_split_brain_total", Help: "Advertisements of another master heard by this node while it kept each VIP group as master (a split brain; the lower priority yields)."}, []string{"group"})
	for _, rc := range n.routers {
		id := strconv.Itoa(int(rc.VRID))
		n.state.WithLabelValues(id).Set(0)
		n.moves.WithLabelValues(id).Add(0)
		n.splits.WithLabelValues(id).Add(0)
	}
	if d.Registerer != nil {
		dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portico_ha_advertisements_dropped_total", Help: "VRRP advertisements dropped: malformed, from a peer not configured, with a TTL other than 255."}, func() float64 {
			if sp := n.speaker.Load(); sp != nil {
				return float64(sp.Dropped())
			}
			return 0
		})
		for _, c := range []prometheus.Collector{n.state, n.moves, n.splits, dropped} {
			if err := d.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ha metrics: %w", err)
			}
		}
	}
	return n, nil
}

// Subscribe calls fn on every transition of every group and at the start
// of each split brain (Transition.Other set), from the speaker's
// goroutine: fn must not block. Subscribers added after Run started see
// the transitions from then on.
func (n *Node) Subscribe(fn func(Transition)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.subs = append(n.subs, fn)
}

// Owned reports whether this node has group vrid's highest priority.
func (n *Node) Owned(vrid int) bool { return n.owned[uint8(vrid)] }

// Run finds this node's address on the interface, then speaks VRRP until
// ctx ends; then each group it is master of is given up (priority 0) and
// its VIPs removed.
func (n *Node) Run(ctx context.Context) error {
	err := n.run(ctx)
	if err != nil {
		msg := err.Error()
		n.runErr.Store(&msg)
	}
	return err
}

func (n *Node) run(ctx context.Context) error {
	routers, err := n.withSelf()
	if err != nil {
		return err
	}
	sp, err := NewSpeaker(SpeakerConfig{Interface: n.cfg.Section.Interface, Routers: routers, Transition: n.transition, SplitBrain: n.splitBrain}, n.log)
	if err != nil {
		return err
	}
	n.speaker.Store(sp)
	defer n.speaker.Store(nil)
	return sp.Run(ctx)
}

// withSelf sets each group's own address: the interface's address that
// the group lists among its peers.
func (n *Node) withSelf() ([]RouterConfig, error) {
	ifname := n.cfg.Section.Interface
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("ha.interface %s: %w", ifname, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("ha.interface %s: %w", ifname, err)
	}
	var own []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			own = append(own, ip.Unmap())
		}
	}
	out := slices.Clone(n.routers)
	for i := range out {
		rc := &out[i]
		j := slices.IndexFunc(rc.Peers, func(p netip.Addr) bool { return slices.Contains(own, p) && !slices.Contains(rc.Addrs, p) })
		if j < 0 {
			return nil, fmt.Errorf("ha.groups[%d].peers: none of %v is an address of %s (%v); list this node's address there", i, rc.Peers, ifname, own)
		}
		rc.Self = rc.Peers[j]
	}
	return out, nil
}

func (n *Node) transition(vrid uint8, a Actions) {
	id := strconv.Itoa(int(vrid))
	n.state.WithLabelValues(id).Set(float64(a.To))
	n.moves.WithLabelValues(id).Inc()
	now := time.Now()
	n.mu.Lock()
	if a.To == Master {
		n.masterSince[vrid] = now
	} else {
		delete(n.masterSince, vrid)
	}
	n.mu.Unlock()
	n.notify(Transition{VRID: int(vrid), From: a.From, To: a.To, Time: now})
}

// splitBrain counts an advertisement of another master that this node,
// master for splitAfter intervals or longer, heard and kept the group
// against, and tells subscribers when it starts a split brain: the group
// heard no other master for splitQuiet before. The node that yields
// reports its transition instead.
func (n *Node) splitBrain(vrid uint8, a Actions) {
	if a.Transition() {
		return
	}
	var interval time.Duration
	for _, rc := range n.routers {
		if rc.VRID == vrid {
			interval = rc.Interval
		}
	}
	now := time.Now()
	n.mu.Lock()
	since, ok := n.masterSince[vrid]
	if !ok || now.Sub(since) < splitAfter*interval {
		n.mu.Unlock()
		return
	}
	last := n.lastSplit[vrid]
	n.lastSplit[vrid] = now
	n.mu.Unlock()
	n.splits.WithLabelValues(strconv.Itoa(int(vrid))).Inc()
	if !last.IsZero() && now.Sub(last) < splitQuiet {
		return
	}
	n.notify(Transition{VRID: int(vrid), From: Master, To: Master, Time: now, Other: a.Other})
}

// notify gives t, with the group's VIPs, to every subscriber.
func (n *Node) notify(t Transition) {
	for _, rc := range n.routers {
		if rc.VRID == uint8(t.VRID) {
			t.VIPs = rc.Addrs
		}
	}
	n.mu.Lock()
	subs := slices.Clone(n.subs)
	n.mu.Unlock()
	for _, fn := range subs {
		fn(t)
	}
}

// ErrNotRunning is returned by Handback when the speaker does not run.
var ErrNotRunning = errors.New("ha: the VRRP speaker is not running")

// Handback yields every group this node is master of but does not own
// (RFC 9568 priority 0, VIPs released) so that the owner, back after a
// failover without preemption, takes it. It returns the VRIDs yielded.
func (n *Node) Handback(ctx context.Context) ([]int, error) {
	sp := n.speaker.Load()
	if sp == nil {
		return nil, ErrNotRunning
	}
	// A speaker that is stopping takes no request: do not wait for ever.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	want := map[uint8]bool{}
	for id, owned := range n.owned {
		if !owned {
			want[id] = true
		}
	}
	ids, err := sp.Yield(ctx, want)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out, nil
}

// Status reports the node's groups: state, VIPs held on the interface,
// transitions, peers heard.
func (n *Node) Status() Status {
	st := Status{Node: n.cfg.Name, Interface: n.cfg.Section.Interface, Groups: []GroupStatus{}}
	if e := n.runErr.Load(); e != nil {
		st.Error = *e
	}
	sp := n.speaker.Load()
	var stats map[uint8]GroupStats
	var selfs map[uint8]netip.Addr
	if sp != nil {
		st.Running = true
		st.Dropped = sp.Dropped()
		stats = sp.Groups()
		selfs = map[uint8]netip.Addr{}
		for id, r := range sp.routers {
			selfs[id] = r.Config().Self
		}
	}
	held := map[netip.Addr]bool{}
	if ifi, err := net.InterfaceByName(n.cfg.Section.Interface); err == nil {
		if as, err := ifi.Addrs(); err == nil {
			for _, a := range as {
				if ipn, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
						held[ip.Unmap()] = true
					}
				}
			}
		}
	}
	for _, rc := range n.routers {
		gs := GroupStatus{VRID: int(rc.VRID), Priority: int(rc.Priority), Preempt: rc.Preempt, Owner: n.owned[rc.VRID],
			State: Initialize.String(), VIPs: []string{}, VIPsHeld: []string{}, Peers: []PeerStatus{}}
		for _, v := range rc.Addrs {
			gs.VIPs = append(gs.VIPs, v.String())
			if held[v] {
				gs.VIPsHeld = append(gs.VIPsHeld, v.String())
			}
		}
		if s, ok := stats[rc.VRID]; ok {
			gs.State, gs.Transitions = s.State.String(), s.Transitions
			if !s.LastTransition.IsZero() {
				lt := s.LastTransition.UTC()
				gs.LastTransition = &lt
			}
			if s.Peers != nil {
				gs.Peers = s.Peers
			}
		}
		if a, ok := selfs[rc.VRID]; ok {
			gs.Self = a.String()
		}
		st.Groups = append(st.Groups, gs)
	}
	return st
}
