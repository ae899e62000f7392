package h323proxy

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// pktinfo reads, on an outside RAS socket bound to the wildcard address
// of a multi-homed host, the local address each datagram arrived on
// (IP_PKTINFO, IPV6_PKTINFO), and sends from a chosen local address.
// Answers, and an H.460.18 endpoint's SCIs, then leave from the address
// the endpoint sent to: the only one its NAT lets back in.
type pktinfo struct {
	v4 *ipv4.PacketConn
	v6 *ipv6.PacketConn
}

// newPktinfo returns nil when c is not bound to the wildcard address or
// the control messages are unavailable: the kernel then picks sources.
func newPktinfo(c net.PacketConn) *pktinfo {
	a := addrOf(c.LocalAddr()).Addr()
	if !a.IsUnspecified() {
		return nil
	}
	if a.Is4() {
		p := ipv4.NewPacketConn(c)
		if p.SetControlMessage(ipv4.FlagDst, true) != nil {
			return nil
		}
		return &pktinfo{v4: p}
	}
	p := ipv6.NewPacketConn(c)
	if p.SetControlMessage(ipv6.FlagDst, true) != nil {
		return nil
	}
	return &pktinfo{v6: p}
}

// read reads a datagram and returns the local address it came to
// (invalid when not told).
func (p *pktinfo) read(b []byte) (int, netip.Addr, net.Addr, error) {
	var dst net.IP
	var n int
	var src net.Addr
	var err error
	if p.v4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, src, err = p.v4.ReadFrom(b)
		if cm != nil {
			dst = cm.Dst
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, src, err = p.v6.ReadFrom(b)
		if cm != nil {
			dst = cm.Dst
		}
	}
	a, _ := netip.AddrFromSlice(dst)
	return n, a.Unmap(), src, err
}

// write sends b to dst from the local address from.
func (p *pktinfo) write(b []byte, from netip.Addr, dst net.Addr) {
	if p.v4 != nil {
		_, _ = p.v4.WriteTo(b, &ipv4.ControlMessage{Src: from.AsSlice()}, dst)
		return
	}
	_, _ = p.v6.WriteTo(b, &ipv6.ControlMessage{Src: from.AsSlice()}, dst)
}

// maxLocals bounds the remembered local addresses of outside sources.
const maxLocals = 2 * DefaultMaxRegistrations

// noteLocal remembers that src sent to Portico's local address local, so
// that what Portico sends src leaves from there. Callers hold s.mu.
func (s *Server) noteLocal(src netip.AddrPort, local netip.Addr) {
	if !local.IsValid() || local.IsUnspecified() {
		return
	}
	if len(s.locals) >= max(maxLocals, 2*s.cfg.MaxRegistrations) {
		// Endpoints that are still there tell it again with their next
		// datagram.
		clear(s.locals)
	}
	s.locals[src] = local
}
