package ha

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/hasync"
)

// Section is the ha section of the configuration document: the VIP
// groups the nodes of a cluster elect an owner for by VRRPv3. Each node's
// own address and default priority come from its part of the document
// (nodes[].interfaces, nodes[].priority).
type Section struct {
	// Enabled runs the VRRP speaker. Default false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Interface is the network interface the VIPs live on and the
	// advertisements are sent on (for instance eth0). Required when
	// enabled.
	Interface string `yaml:"interface,omitempty" json:"interface,omitempty"`
	// Groups are the VIP groups, one virtual router each.
	Groups []Group `yaml:"groups,omitempty" json:"groups,omitempty"`
	// Sync is the link that replicates live state to the peer (package hasync).
	Sync hasync.Config `yaml:"sync,omitempty" json:"sync,omitempty"`
}

// Group is one VIP group: a virtual router with its addresses.
type Group struct {
	// VRID is the virtual router ID on the segment, 1..255, unique per
	// interface; a keepalived peer uses the same virtual_router_id.
	VRID int `yaml:"vrid" json:"vrid"`
	// Addresses are the virtual IPs, all IPv4 or all IPv6, unicast.
	// Required.
	Addresses []string `yaml:"addresses" json:"addresses"`
	// Priorities gives a node (by name) its priority in this group,
	// 1..255; a node not named has its part's priority (default 100).
	// In an active/active pair each node is first in one group.
	Priorities map[string]int `yaml:"priorities,omitempty" json:"priorities,omitempty"`
	// Interval is how often the master advertises, 100ms..40.95s in 10 ms
	// steps. Default 1s.
	Interval field.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Preempt lets a returning node with a higher priority take the group
	// back. Default false: the group stays where it is until its master
	// stops.
	Preempt bool `yaml:"preempt,omitempty" json:"preempt,omitempty"`
	// Peers are the addresses advertisements are accepted from (the other
	// nodes' addresses on the segment, or a keepalived peer's), of the
	// family of Addresses; this node's own address on the interface is one
	// of them. An IPv6 group's peers are link-local addresses (fe80::/10,
	// written without a zone): IPv6 advertisements are sent from the
	// interface's link-local address. Required.
	Peers []string `yaml:"peers" json:"peers"`
}

// DefaultInterval is a group's advertisement interval when none is given.
const DefaultInterval = time.Second

// IntervalOrDefault is the group's interval with the default applied.
func (g Group) IntervalOrDefault() time.Duration {
	if g.Interval == 0 {
		return DefaultInterval
	}
	return g.Interval.D()
}

// Validate checks the section; nodes are the names of the document's
// nodes, which Priorities may name.
func (s *Section) Validate(nodes []string) error {
	var es field.Errors
	if s.Enabled && s.Interface == "" {
		es.Add("ha.interface", "required when ha is enabled")
	}
	if s.Enabled && len(s.Groups) == 0 {
		es.Add("ha.groups", "at least one VIP group is required when ha is enabled")
	}
	known := map[string]bool{}
	for _, n := range nodes {
		known[n] = true
	}
	vrids := map[int]bool{}
	for i, g := range s.Groups {
		p := field.Join("ha.groups", i)
		if g.VRID < 1 || g.VRID > 255 {
			es.Add(p+".vrid", "%d is outside 1..255", g.VRID)
		} else if vrids[g.VRID] {
			es.Add(p+".vrid", "%d is used by another group", g.VRID)
		}
		vrids[g.VRID] = true
		if len(g.Addresses) == 0 || len(g.Addresses) > 255 {
			es.Add(p+".addresses", "%d addresses; a group has 1..255", len(g.Addresses))
		}
		fam := checkAddrs(&es, p+".addresses", g.Addresses, 0, false)
		if len(g.Peers) == 0 {
			es.Add(p+".peers", "required: advertisements are accepted only from these addresses")
		}
		checkAddrs(&es, p+".peers", g.Peers, fam, true)
		if d := g.Interval.D(); g.Interval != 0 && (d < MinInterval || d > MaxInterval*10*time.Millisecond || d%(10*time.Millisecond) != 0) {
			es.Add(p+".interval", "%s is not 100ms..40.95s in 10ms steps", d)
		}
		for name, prio := range g.Priorities {
			switch {
			case !known[name]:
				es.Add(p+".priorities."+name, "%q is not one of the nodes", name)
			case prio < 1 || prio > 255:
				es.Add(p+".priorities."+name, "%d is outside 1..255", prio)
			}
		}
	}
	return es.Err()
}

// checkAddrs checks a list of unicast addresses of one family (fam 4 or
// 6; 0: the first address's) and returns the family. IPv6 peers must be
// link-local.
func checkAddrs(es *field.Errors, path string, list []string, fam int, peers bool) int {
	for i, s := range list {
		at := field.Join(path, i)
		a, err := netip.ParseAddr(s)
		if err != nil {
			es.Add(at, "%q is not an IP address", s)
			continue
		}
		if a.Zone() != "" {
			es.Add(at, "%s: write it without the zone %%%s (the zone is ha.interface)", s, a.Zone())
			continue
		}
		a = a.Unmap()
		f := 4
		if a.Is6() {
			f = 6
		}
		switch {
		case fam != 0 && f != fam:
			es.Add(at, "%s is not IPv%d like the group's addresses", s, fam)
			continue
		case !a.IsGlobalUnicast() && !a.IsLinkLocalUnicast():
			es.Add(at, "%s is not a unicast address", s)
		case peers && f == 6 && !a.IsLinkLocalUnicast():
			es.Add(at, "%s is not a link-local address (fe80::/10): IPv6 advertisements are sent from the interface's link-local address (RFC 9568 section 5.1.2.1)", s)
		}
		if fam == 0 {
			fam = f
		}
	}
	return fam
}

// RouterConfig is group g's virtual router on the node called node, whose
// address on the segment is self and whose default priority is prio.
func (g Group) RouterConfig(node string, self netip.Addr, prio int) (RouterConfig, error) {
	if p, ok := g.Priorities[node]; ok {
		prio = p
	}
	c := RouterConfig{VRID: uint8(g.VRID), Priority: uint8(prio), Interval: g.IntervalOrDefault(), Preempt: g.Preempt, Self: self}
	for _, s := range g.Addresses {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return c, fmt.Errorf("vrid %d: %w", g.VRID, err)
		}
		c.Addrs = append(c.Addrs, a)
	}
	for _, s := range g.Peers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return c, fmt.Errorf("vrid %d: %w", g.VRID, err)
		}
		c.Peers = append(c.Peers, a.Unmap())
	}
	return c, c.Validate()
}
