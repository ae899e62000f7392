package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/portico-edge/portico/internal/sipedge"
)

// NodePart is one cluster node's own part of the shared document: every
// node of a cluster runs the one stored document with its own part laid
// over it (ForNode). An empty field keeps the shared value.
type NodePart struct {
	// Name is the node's name (node.name on that node: --node-name or the
	// node's own file). Required, unique, without ':' or '#'.
	Name string `yaml:"name" json:"name"`
	// Interfaces are this node's addresses; each address, public address
	// or network list given replaces the shared one on this node.
	Interfaces Interfaces `yaml:"interfaces,omitempty" json:"interfaces,omitempty"`
	// ManagementListen replaces management.listen on this node.
	ManagementListen string `yaml:"management_listen,omitempty" json:"management_listen,omitempty"`
	// Priority is the node's VRRP priority in the VIP groups it does not
	// own by group setting, 1..254. Default 0: 100.
	Priority int `yaml:"priority,omitempty" json:"priority,omitempty"`
}

// DefaultPriority is a node's VRRP priority when its part names none.
const DefaultPriority = 100

// EffectivePriority is the part's priority with the default applied.
func (p NodePart) EffectivePriority() int {
	if p.Priority == 0 {
		return DefaultPriority
	}
	return p.Priority
}

// Part returns the part of the node called name.
func (c *Config) Part(name string) (NodePart, bool) {
	i := slices.IndexFunc(c.Nodes, func(p NodePart) bool { return p.Name == name })
	if i < 0 {
		return NodePart{}, false
	}
	return c.Nodes[i], true
}

// ForNode returns the configuration the node called name runs: the shared
// document with that node's part laid over it and node.name set to name
// (empty name: the document's node.name). A document without nodes is
// every node's whole configuration. A document with nodes refuses a name
// it does not list. The result is validated again, since a part's
// addresses take part in the checks that span sections.
func (c *Config) ForNode(name string) (*Config, error) {
	if name == "" {
		name = c.Node.Name
	}
	out := *c
	out.Node.Name = name
	if len(c.Nodes) == 0 {
		return &out, nil
	}
	p, ok := c.Part(name)
	if !ok {
		return nil, Errors{{Path: "nodes", Reason: fmt.Sprintf("this node, %q, is not one of the nodes (%s); start it with --node-name NAME", name, strings.Join(c.nodeNames(), ", "))}}
	}
	overlay(&out.Interfaces.External, p.Interfaces.External)
	overlay(&out.Interfaces.Internal, p.Interfaces.Internal)
	overlay(&out.Interfaces.Management, p.Interfaces.Management)
	if p.ManagementListen != "" {
		out.Management.Listen = p.ManagementListen
	}
	out.SIP.Listeners = nodeListeners(c.SIP.Listeners, c.Interfaces, out.Interfaces)
	if err := out.Validate(); err != nil {
		es, _ := AsErrors(err)
		for i := range es {
			es[i].Reason = fmt.Sprintf("on node %q: %s", name, es[i].Reason)
		}
		return nil, es
	}
	return &out, nil
}

func overlay(dst *Interface, p Interface) {
	if p.Address != "" {
		dst.Address = p.Address
	}
	if p.PublicAddress != "" {
		dst.PublicAddress = p.PublicAddress
	}
	if p.Networks != nil {
		dst.Networks = p.Networks
	}
}

// nodeNames are the names of the node parts.
func (c *Config) nodeNames() []string {
	out := make([]string, len(c.Nodes))
	for i, p := range c.Nodes {
		out[i] = p.Name
	}
	return out
}

// nodes checks the node parts.
func (v *validator) nodes(c *Config) {
	seen := map[string]bool{}
	for i, p := range c.Nodes {
		path := fmt.Sprintf("nodes[%d]", i)
		switch {
		case strings.TrimSpace(p.Name) == "":
			v.add(path+".name", "must not be empty")
		case strings.ContainsAny(p.Name, ":#"):
			v.add(path+".name", "%q must not hold ':' or '#'", p.Name)
		case seen[p.Name]:
			v.add(path+".name", "%q is named twice", p.Name)
		}
		seen[p.Name] = true
		for _, side := range []struct {
			name string
			i    Interface
		}{{"external", p.Interfaces.External}, {"internal", p.Interfaces.Internal}, {"management", p.Interfaces.Management}} {
			ip := path + ".interfaces." + side.name
			if side.i.Address != "" {
				v.iface(ip, side.i, side.name == "external")
			} else if side.i.PublicAddress != "" || side.i.Networks != nil {
				v.iface(ip, Interface{Address: "0.0.0.0", PublicAddress: side.i.PublicAddress, Networks: side.i.Networks}, side.name == "external")
			}
		}
		if p.ManagementListen != "" {
			v.hostPort(path+".management_listen", p.ManagementListen)
		}
		if p.Priority < 0 || p.Priority > 254 {
			v.add(path+".priority", "%d is outside 1..254", p.Priority)
		}
	}
}

// nodeListeners moves the SIP listeners on a shared interface address to
// the node's own address of that interface, so that each node of a
// scale-out cluster listens (and names itself in Via and Path) on its own
// addresses. Listeners on other addresses (a pair's VIPs) stay.
func nodeListeners(ls []sipedge.Listener, shared, own Interfaces) []sipedge.Listener {
	out := ls
	for i, l := range ls {
		from, to := shared.Internal.Address, own.Internal.Address
		if l.Interface == sipedge.External {
			from, to = shared.External.Address, own.External.Address
		}
		ap, err := netip.ParseAddrPort(l.Address)
		if err != nil || from == to || ap.Addr().String() != from {
			continue
		}
		a, err := netip.ParseAddr(to)
		if err != nil {
			continue
		}
		if &out[0] == &ls[0] {
			out = slices.Clone(ls)
		}
		out[i].Address = netip.AddrPortFrom(a, ap.Port()).String()
	}
	return out
}
