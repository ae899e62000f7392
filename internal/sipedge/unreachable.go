package sipedge

import (
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// ICMP errors for requests to the call servers. A call server whose port
// is closed (the process died, the host is up) answers a UDP INVITE with
// ICMP port unreachable; without a look at it, the INVITE waits for the
// failover timer. The internal UDP listeners get IP_RECVERR (Linux): the
// kernel then queues each ICMP error on the socket with the destination of
// the datagram that caused it, and signals it by failing the next read or
// write once. The wrapper from watchUnreachable reads that queue, retries
// the failed read or write, and reports each destination to
// Server.unreachable, which marks a call server with that address down and
// wakes the INVITE waiting for it, which fails over at once (RFC 3263
// section 4.3: a transport error moves on to the next server). Elsewhere,
// and for call servers named by host name, the failover timer applies.

// unreachables are the INVITEs waiting, by destination, for an ICMP error.
type unreachables struct {
	mu      sync.Mutex
	waiters map[netip.AddrPort]map[chan struct{}]struct{}
}

// watch returns a channel that receives when an ICMP error names req's
// destination, and the function that stops the watch. A request that is
// not UDP to an IP address is never woken.
func (u *unreachables) watch(req *sip.Request) (<-chan struct{}, func()) {
	if !strings.EqualFold(req.Transport(), "udp") {
		return nil, func() {}
	}
	ap, err := netip.ParseAddrPort(req.Destination())
	if err != nil {
		return nil, func() {}
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	ch := make(chan struct{}, 1)
	u.mu.Lock()
	if u.waiters == nil {
		u.waiters = map[netip.AddrPort]map[chan struct{}]struct{}{}
	}
	if u.waiters[ap] == nil {
		u.waiters[ap] = map[chan struct{}]struct{}{}
	}
	u.waiters[ap][ch] = struct{}{}
	u.mu.Unlock()
	return ch, func() {
		u.mu.Lock()
		delete(u.waiters[ap], ch)
		if len(u.waiters[ap]) == 0 {
			delete(u.waiters, ap)
		}
		u.mu.Unlock()
	}
}

func (u *unreachables) notify(ap netip.AddrPort) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for ch := range u.waiters[ap] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// unreachable takes an ICMP error for a datagram sent to ap.
func (s *Server) unreachable(ap netip.AddrPort) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	s.log.Debug("destination unreachable", "dest", ap)
	s.lc().cs.mark(ap.String(), false)
	s.unreached.notify(ap)
}

// watchUnreachable returns pc reporting ICMP errors to s.unreachable, or
// pc itself where that is not possible.
func (s *Server) watchUnreachable(pc net.PacketConn) net.PacketConn {
	if c := newICMPConn(pc, s.unreachable); c != nil {
		return c
	}
	return pc
}
