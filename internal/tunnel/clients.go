package tunnel

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// Several inside nodes (an inside HA pair) may be connected to one server
// at once. Each connection is kept; the server carries the flows it offers
// through one of them, the active client: the one with the highest
// priority, the earliest connected among equals. When the active client's
// connection ends, the next one takes over at once; when a client of
// higher priority connects, it takes over. A client that reconnects
// replaces its own older connection (same certificate).

// peerConn is one connected client.
type peerConn struct {
	fp       string
	priority int
	since    time.Time
}

// clientSet is the server's connected clients.
type clientSet struct {
	mu    sync.Mutex // guards peers
	peers map[*quic.Conn]*peerConn
}

// add records conn and returns the older connections of the same client,
// which the caller closes.
func (cs *clientSet) add(conn *quic.Conn, fp string) []*quic.Conn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.peers == nil {
		cs.peers = map[*quic.Conn]*peerConn{}
	}
	var old []*quic.Conn
	for c, p := range cs.peers {
		if p.fp == fp {
			old = append(old, c)
			delete(cs.peers, c)
		}
	}
	cs.peers[conn] = &peerConn{fp: fp, priority: DefaultPriority, since: time.Now()}
	return old
}

// remove forgets conn; it reports whether conn was still recorded.
func (cs *clientSet) remove(conn *quic.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	_, ok := cs.peers[conn]
	delete(cs.peers, conn)
	return ok
}

// setPriority records the priority conn's client announced.
func (cs *clientSet) setPriority(conn *quic.Conn, n int) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	p, ok := cs.peers[conn]
	if ok {
		p.priority = n
	}
	return ok
}

// best is the client to carry the flows, nil when none is connected.
func (cs *clientSet) best() *quic.Conn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var bc *quic.Conn
	var bp *peerConn
	for c, p := range cs.peers {
		if bp == nil || p.priority > bp.priority || p.priority == bp.priority && p.since.Before(bp.since) {
			bc, bp = c, p
		}
	}
	return bc
}

// len is the number of connected clients.
func (cs *clientSet) len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.peers)
}

// conns lists the connected clients' connections.
func (cs *clientSet) conns() []*quic.Conn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]*quic.Conn, 0, len(cs.peers))
	for c := range cs.peers {
		out = append(out, c)
	}
	return out
}

// closeAll closes every client connection.
func (cs *clientSet) closeAll(code quic.ApplicationErrorCode, msg string) {
	conns := cs.conns()
	cs.mu.Lock()
	cs.peers = nil
	cs.mu.Unlock()
	for _, c := range conns {
		_ = c.CloseWithError(code, msg)
	}
}

// elect makes the best connected client the active one, logging and
// reporting the changes.
func (s *Server) elect() {
	s.emu.Lock()
	defer s.emu.Unlock()
	next := s.clients.best()
	prev := s.conn.Swap(next)
	s.assignLanesLocked()
	switch {
	case prev == next:
	case next == nil:
		s.changed("down")
	case prev == nil:
		s.changed("up")
		s.log.Info("tunnel active client", "addr", next.RemoteAddr().String(), "fingerprint", peerFingerprint(next))
	default:
		s.log.Warn("tunnel active client changed", "addr", next.RemoteAddr().String(), "fingerprint", peerFingerprint(next), "was", prev.RemoteAddr().String())
	}
}

// setPriority applies a client's priority announcement.
func (s *Server) setPriority(conn *quic.Conn, arg string) error {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return fmt.Errorf("%w: priority %q", ErrHeader, arg)
	}
	if !s.clients.setPriority(conn, n) {
		return ErrNoPeer
	}
	s.elect()
	return nil
}

// shutdownClients closes every client connection as Serve stops.
func (s *Server) shutdownClients() {
	s.clients.closeAll(codeShutdown, "shutdown")
	if s.conn.Swap(nil) != nil {
		s.changed("down")
	}
}
