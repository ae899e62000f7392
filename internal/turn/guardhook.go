package turn

import (
	"net"
	"net/netip"

	"github.com/portico-edge/portico/internal/guard"
)

// Guard is what the TURN service tells of, and asks about, clients (a
// *guard.Guard): refused credentials count against the client, and a
// blocked client's datagrams and connections are dropped unread.
type Guard interface {
	Blocked(src netip.Addr) bool
	Observe(src netip.Addr, k guard.Kind) bool
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
