package turn

import (
	"crypto/tls"
	"net"
	"slices"
	"sync/atomic"

	"github.com/portico-edge/portico/internal/connlimit"
)

// streamListener is a listener and the client transport it serves. TCP and
// TLS listeners accept through a connlimit.Listener (lim): accept errors
// such as EMFILE are retried with backoff, connections are capped per
// source and must send their first STUN message within the handshake
// timeout, and the node's descriptor reserve is kept. DTLS listeners (lim
// nil) accept from pion/dtls, whose errors are failed handshakes.
type streamListener struct {
	net.Listener
	kind string // tcp, tls, dtls
	lim  *connlimit.Listener
	dead atomic.Pointer[string] // why accepting ended while serving
}

// ListenerStatus is the state of one stream listener, for readiness.
type ListenerStatus struct {
	Transport string `json:"transport"`
	Address   string `json:"address"`
	// Err is empty while the listener serves; else why it does not: its
	// accepting ended, or accepts are failing (being retried).
	Err string `json:"error,omitempty"`
}

// ListenerStatus reports the stream listeners being served. UDP sockets
// have no accept to fail and are not listed.
func (s *Server) ListenerStatus() []ListenerStatus {
	s.mu.Lock()
	ls := slices.Clone(s.streamLs)
	s.mu.Unlock()
	out := make([]ListenerStatus, 0, len(ls))
	for _, l := range ls {
		st := ListenerStatus{Transport: l.kind, Address: l.Addr().String()}
		if d := l.dead.Load(); d != nil {
			st.Err = "not serving: " + *d
		} else if l.lim != nil {
			if err := l.lim.Err(); err != nil {
				st.Err = "accept failing: " + err.Error()
			}
		}
		out = append(out, st)
	}
	return out
}

// limit wraps a TCP listener (under TLS, if any) in the stream limits.
func (s *Server) limit(l net.Listener, kind string) *connlimit.Listener {
	ln := s.cfg.Listen
	return connlimit.Wrap(l, connlimit.Config{
		Name:              "turn-" + kind + "-" + l.Addr().String(),
		MaxConnsPerSource: ln.MaxConnsPerSource,
		HandshakeTimeout:  ln.HandshakeTimeout,
		Descriptors:       s.fds,
	}, connlimit.Deps{Logger: s.log, Registerer: s.promReg})
}

// tlsConnOf returns the TLS connection c is or wraps, or nil.
func tlsConnOf(c net.Conn) *tls.Conn {
	if lc, ok := c.(*connlimit.Conn); ok {
		c = lc.NetConn()
	}
	tc, _ := c.(*tls.Conn)
	return tc
}
