package turn

import (
	"fmt"
	"net"
	"net/netip"
)

// ownAddrs are the transport addresses through which a relayed packet would
// reach the node itself: every listener of every Portico service (SIP,
// TURN, management, access proxy, ...) and the TURN relay port range. A
// client must never reach them through a relay (RFC 8656 §21.3): it would
// talk to the management port or SIP from the node's own address, loop
// TURN into TURN, or bridge two allocations. The media relay's port
// ranges are not in the set: browser guests' media goes there.
//
// The check is by (address, port), not by address, so that the node's
// external address stays a valid peer for its media relay. It is applied
// whatever peers.allow says, loopback included. An ownAddrs is immutable.
type ownAddrs struct {
	pairs    map[netip.AddrPort]bool // listeners on a specific address
	anyPorts map[uint16]bool         // ports of listeners on every address
	local    map[netip.Addr]bool     // the node's addresses (besides loopback)
	relayIPs []netip.Addr            // where the relay range is denied; empty: every local address
	relayAny bool                    // relay sockets bind every address
	relayOK  bool                    // peers.relay_to_relay: the relay range is not denied
	relayMin uint16
	relayMax uint16
}

// newOwnAddrs builds the set from the validated configuration, the node's
// interface addresses (ifaces) and the addresses of the sockets the service
// serves (served: caller-supplied ones are not in the configuration).
func newOwnAddrs(v *validated, ifaces []netip.Addr, served []netip.AddrPort) (*ownAddrs, []FieldError) {
	o := &ownAddrs{
		pairs:    map[netip.AddrPort]bool{},
		anyPorts: map[uint16]bool{},
		local:    map[netip.Addr]bool{},
		relayMin: uint16(v.Relay.PortMin),
		relayMax: uint16(v.Relay.PortMax),
		relayOK:  v.Peers.RelayToRelay,
	}
	var errs []FieldError
	addLocal := func(a netip.Addr) {
		if a.IsValid() && !a.IsUnspecified() {
			o.local[a.Unmap().WithZone("")] = true
		}
	}
	for _, a := range ifaces {
		addLocal(a)
	}
	for i, s := range v.Own.Addresses {
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, FieldError{Path: fmt.Sprintf("own.addresses[%d]", i), Reason: fmt.Sprintf("%q is not an IP address", s)})
			continue
		}
		addLocal(a)
	}
	addLocal(v.relayIP)
	addLocal(v.bindIP)
	switch {
	case v.bindIP.IsValid() && v.bindIP.IsUnspecified():
		o.relayAny = true
	default:
		for _, a := range []netip.Addr{v.relayIP, v.bindIP} {
			if a.IsValid() {
				o.relayIPs = append(o.relayIPs, a.Unmap())
			}
		}
	}
	addListener := func(ap netip.AddrPort) {
		a := ap.Addr().Unmap().WithZone("")
		if a.IsUnspecified() {
			o.anyPorts[ap.Port()] = true
			return
		}
		addLocal(a)
		o.pairs[netip.AddrPortFrom(a, ap.Port())] = true
		// Behind 1:1 NAT the external (relay) address reaches what listens
		// on the bind address.
		if v.bindIP.IsValid() && a == v.bindIP.Unmap() && v.relayIP.IsValid() {
			o.pairs[netip.AddrPortFrom(v.relayIP.Unmap(), ap.Port())] = true
		}
	}
	for i, s := range v.Own.Listeners {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			errs = append(errs, FieldError{Path: fmt.Sprintf("own.listeners[%d]", i), Reason: fmt.Sprintf("%q is not an IP:port address", s)})
			continue
		}
		addListener(ap)
	}
	for _, ap := range served {
		addListener(ap)
	}
	for _, list := range [][]string{v.Listen.UDP, v.Listen.TCP, v.Listen.TLS, v.Listen.DTLS} {
		for _, s := range list {
			if ap, err := netip.ParseAddrPort(s); err == nil {
				addListener(ap)
			}
		}
	}
	return o, errs
}

// isLocal reports whether a packet sent to a stays on the node.
func (o *ownAddrs) isLocal(a netip.Addr) bool {
	return a.IsLoopback() || a.IsUnspecified() || o.local[a]
}

// has reports whether ap is one of the node's own transport addresses. It
// does not allocate: it runs for every relayed datagram.
func (o *ownAddrs) has(ap netip.AddrPort) bool {
	a, p := ap.Addr().Unmap().WithZone(""), ap.Port()
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if o.pairs[netip.AddrPortFrom(a, p)] {
		return true
	}
	if !o.isLocal(a) {
		return false
	}
	if o.anyPorts[p] {
		return true
	}
	if o.relayOK || p < o.relayMin || p > o.relayMax {
		return false
	}
	if o.relayAny {
		return true
	}
	for _, r := range o.relayIPs {
		if r == a {
			return true
		}
	}
	return false
}

// hasAddr adapts has to net.Addr.
func (o *ownAddrs) hasAddr(a net.Addr) bool {
	ap, ok := addrPort(a)
	return ok && o.has(ap)
}

// interfaceAddrs lists the node's interface addresses; an error leaves
// the list to the configured ones.
func interfaceAddrs() []netip.Addr {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if pn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(pn.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
