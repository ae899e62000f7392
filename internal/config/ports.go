package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// socket is one address and port range a service binds, for the conflict check.
type socket struct {
	path      string // the field that names it
	transport string // udp or tcp
	addr      netip.Addr
	min, max  int
}

func (s socket) String() string {
	if s.min == s.max {
		return fmt.Sprintf("%s port %d on %s", s.transport, s.min, s.addr)
	}
	return fmt.Sprintf("%s ports %d-%d on %s", s.transport, s.min, s.max, s.addr)
}

// overlaps: same transport, addresses that can collide, ports that meet.
// An unspecified IPv4 address collides with every IPv4 address and with
// "::" (dual-stack); "::" collides with every address.
func (s socket) overlaps(o socket) bool {
	if s.transport != o.transport || s.max < o.min || o.max < s.min {
		return false
	}
	a, b := s.addr.Unmap(), o.addr.Unmap()
	switch {
	case a == b:
		return true
	case a == netip.IPv6Unspecified() || b == netip.IPv6Unspecified():
		return true
	case a == netip.IPv4Unspecified():
		return b.Is4()
	case b == netip.IPv4Unspecified():
		return a.Is4()
	}
	return false
}

// sockets lists what the enabled services of c bind. Entries that do not
// parse are left out: their own checks report them.
func (c *Config) sockets() []socket {
	var out []socket
	add := func(path, transport, hostPort string) {
		host, port, err := net.SplitHostPort(hostPort)
		if err != nil {
			return
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return
		}
		a := netip.IPv6Unspecified()
		if host != "" {
			if a, err = netip.ParseAddr(host); err != nil {
				return
			}
		}
		out = append(out, socket{path: path, transport: transport, addr: a, min: n, max: n})
	}
	addRange := func(path, transport, addr string, r PortRange) {
		a, err := netip.ParseAddr(addr)
		if err != nil || r.Min < 1 || r.Min > r.Max {
			return
		}
		out = append(out, socket{path: path, transport: transport, addr: a, min: r.Min, max: r.Max})
	}
	add("management.listen", "tcp", c.Management.Listen)
	if c.Media.Enabled {
		addRange("media.external", "udp", c.Interfaces.External.Address, c.Media.External)
		addRange("media.internal", "udp", c.Interfaces.Internal.Address, c.Media.Internal)
		if c.Media.NGListen != "" {
			add("media.ng_listen", "udp", c.Media.NGListen)
		}
		if m := c.Media.MultiplexPort; m != 0 {
			addRange("media.multiplex_port", "udp", c.Interfaces.External.Address, PortRange{Min: m, Max: m + 1})
		}
	}
	if t := &c.TURN; t.Enabled {
		for i, a := range t.UDP {
			add(fmt.Sprintf("turn.udp[%d]", i), "udp", a)
		}
		for i, a := range t.TCP {
			add(fmt.Sprintf("turn.tcp[%d]", i), "tcp", a)
		}
		for i, a := range t.TLS {
			add(fmt.Sprintf("turn.tls[%d]", i), "tcp", a)
		}
		// Relayed addresses are bound on the external address, UDP and
		// (RFC 6062) TCP.
		addRange("turn.relay", "udp", c.Interfaces.External.Address, t.Relay)
		addRange("turn.relay", "tcp", c.Interfaces.External.Address, t.Relay)
	}
	if c.SIP.Enabled {
		for i, l := range c.SIP.Listeners {
			tr := "tcp"
			if l.Transport == "udp" {
				tr = "udp"
			}
			add(fmt.Sprintf("sip.listeners[%d].address", i), tr, l.Address)
		}
	}
	if c.H323.Enabled {
		udp, tcp := c.H323.Sockets(c.H323Interfaces())
		for _, a := range udp {
			out = append(out, socket{path: "h323.ras_port", transport: "udp", addr: a.Addr(), min: int(a.Port()), max: int(a.Port())})
		}
		for _, a := range tcp {
			out = append(out, socket{path: "h323.signal_port", transport: "tcp", addr: a.Addr(), min: int(a.Port()), max: int(a.Port())})
		}
		if hc, err := c.H323.Config(c.H323Interfaces()); err == nil {
			for _, r := range []struct {
				path     string
				a        netip.Addr
				min, max uint16
			}{{"h323.h245_ports.external", hc.ExternalRAS.Addr(), hc.H245External.Min, hc.H245External.Max},
				{"h323.h245_ports.internal", hc.InternalSignal.Addr(), hc.H245Internal.Min, hc.H245Internal.Max}} {
				if r.a.IsValid() && r.min >= 1 && r.min <= r.max {
					out = append(out, socket{path: r.path, transport: "tcp", addr: r.a, min: int(r.min), max: int(r.max)})
				}
			}
		}
	}
	if ap := &c.AccessProxy; ap.Enabled {
		add("access_proxy.listen", "tcp", ap.Listen)
		for i, a := range ap.ExtraListen {
			add(fmt.Sprintf("access_proxy.extra_listen[%d]", i), "tcp", a)
		}
		for i, m := range ap.TCP {
			add(fmt.Sprintf("access_proxy.tcp[%d].listen", i), "tcp", m.Listen)
		}
	}
	if c.SNMP.Enabled {
		for i, a := range c.SNMP.ListenAddrs(c.Interfaces.Management.Address) {
			add(fmt.Sprintf("snmp.listen[%d]", i), "udp", a)
		}
	}
	if tn := &c.Tunnel; tn.Enabled && tn.Role == "server" {
		add("tunnel.listen", "udp", tn.Listen)
		for i, s := range tn.Services {
			if s.Listen != "" {
				add(fmt.Sprintf("tunnel.services[%d].listen", i), s.Proto, s.Listen)
			}
		}
	}
	// A client offers its reverse services locally too.
	if tn := &c.Tunnel; tn.Enabled && tn.Role == "client" {
		for i, s := range tn.Services {
			if s.Listen != "" {
				add(fmt.Sprintf("tunnel.services[%d].listen", i), s.Proto, s.Listen)
			}
		}
	}
	return out
}

// ports reports every socket that collides with one listed before it; the
// error sits on the later field and names the earlier one.
func (v *validator) ports(c *Config) {
	socks := c.sockets()
	for i, s := range socks {
		for _, o := range socks[:i] {
			if s.path != o.path && s.overlaps(o) {
				v.add(s.path, "%s is also used by %s (%s)", s, o.path, o)
				break
			}
		}
	}
}
