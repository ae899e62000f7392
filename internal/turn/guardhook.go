package turn

import (
	"net"
	"net/netip"

	"github.com/portico-edge/portico/internal/guard"
)

// Guard is what the TURN service tells of, and asks about, clients (a
// *guard.Guard): refused credentials count against the client, a
// blocked client's datagrams and connections are dropped unread, and an
// Allocate over the rate limit is answered or dropped as the guard's
// rate_limits.action says.
type Guard interface {
	Blocked(src netip.Addr) bool
	Observe(src netip.Addr, k guard.Kind) bool
	RateLimitDrop() bool
}

// ACL admits clients by network (a *policy.LiveACL).
type ACL interface {
	Allow(src netip.Addr) bool
}

// refused reports whether a client's traffic is dropped: denied by the
// ACL or blocked by the guard.
func (s *Server) refused(src netip.Addr) bool {
	return (s.acl != nil && !s.acl.Allow(src)) || (s.guard != nil && s.guard.Blocked(src))
}

// refusedConn is refused for a stream connection's remote address.
func (s *Server) refusedConn(c net.Conn) bool {
	if s.acl == nil && s.guard == nil {
		return false
	}
	ap, ok := addrPort(c.RemoteAddr())
	return ok && s.refused(ap.Addr())
}

// authFailed tells the guard of refused credentials from src.
func (s *Server) authFailed(src net.Addr) {
	if s.guard == nil {
		return
	}
	if ap, ok := addrPort(src); ok {
		s.guard.Observe(ap.Addr(), guard.TURNAuthFailure)
	}
}

// rateLimitDrop reports whether an Allocate over the rate limit goes
// unanswered (guard.rate_limits.action: drop).
func (s *Server) rateLimitDrop() bool { return s.guard != nil && s.guard.RateLimitDrop() }

// maxMuted bounds the clients whose next Allocate error is to be dropped;
// an entry lives only from the quota check to the response that follows it
// on the same goroutine, so the bound is never reached in practice.
const maxMuted = 4096

// mute makes the next Allocate error response to client go unsent: the
// engine answers a refused quota check with 486 itself.
func (s *Server) mute(client net.Addr) {
	s.mutedMu.Lock()
	defer s.mutedMu.Unlock()
	if len(s.muted) >= maxMuted {
		clear(s.muted)
	}
	s.muted[client.Network()+"|"+client.String()] = struct{}{}
}

// muffled reports whether b, about to be sent to client, is an Allocate
// error response that mute asked to drop, and forgets the request.
func (s *Server) muffled(b []byte, client net.Addr) bool {
	if len(b) < stunHeaderLen || b[0] != 0x01 || b[1] != 0x13 || client == nil {
		return false
	}
	s.mutedMu.Lock()
	defer s.mutedMu.Unlock()
	if len(s.muted) == 0 {
		return false
	}
	k := client.Network() + "|" + client.String()
	_, ok := s.muted[k]
	delete(s.muted, k)
	return ok
}
