package tunnel

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Several inside nodes (an inside HA pair) may be connected to one server
// at once. Each connection is kept. Each client announces the services it
// delivers and its priority for each; the server routes every service it
// offers on its own: in mode "one" through the client of the highest
// priority for that service (the earliest connected among equals), in
// mode "all" over every client that delivers it, a new flow hashed onto
// one and staying there while that client stays connected. When a
// client's connection ends, its services move to the next client at once;
// when a client of higher priority for a service connects, the service
// moves to it. Until a client announced its services (right after it
// connects) it serves a service only while no client that did delivers
// it: a client connecting does not take services from another for the
// moment before it says which it delivers, and a lone client serves at
// once. A client that
// reconnects replaces its own older connection (same certificate). The
// active client (Stats.Peer) is the one of the highest priority overall;
// the connection figures of Stats are its.

// peerConn is one connected client.
type peerConn struct {
	conn     *quic.Conn
	fp       string
	priority int
	// services are the services the client announced it delivers and
	// its priority for each; nil before it announced them.
	services map[string]int
	since    time.Time
	// lanes are the client's datagram connections beside conn.
	lanes atomic.Pointer[[]*quic.Conn]
	gone  atomic.Bool // the connection ended or was replaced
}

// rank is p's priority for service, false when p announced that it does
// not deliver it; provisional while p announced nothing.
func (p *peerConn) rank(service string) (n int, ok, provisional bool) {
	if p.services == nil {
		return p.priority, true, true
	}
	n, ok = p.services[service]
	return n, ok, false
}

// connFor is the connection that carries datagrams of lane i to p: one of
// its datagram connections, taken in turn as the server's lanes take the
// active client's, or its tunnel connection.
func (p *peerConn) connFor(i int) *quic.Conn {
	if i > 0 {
		if ls := p.lanes.Load(); ls != nil && len(*ls) > 0 {
			return (*ls)[(i-1)%len(*ls)]
		}
	}
	return p.conn
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
			p.gone.Store(true)
			delete(cs.peers, c)
		}
	}
	cs.peers[conn] = &peerConn{conn: conn, fp: fp, priority: DefaultPriority, since: time.Now()}
	return old
}

// remove forgets conn; it reports whether conn was still recorded.
func (cs *clientSet) remove(conn *quic.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	p, ok := cs.peers[conn]
	if ok {
		p.gone.Store(true)
	}
	delete(cs.peers, conn)
	return ok
}

// update applies f to conn's client; it reports whether conn is recorded.
// Elections read the fields f changes under cs.mu.
func (cs *clientSet) update(conn *quic.Conn, f func(p *peerConn)) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	p, ok := cs.peers[conn]
	if ok {
		f(p)
	}
	return ok
}

// rankedLocked lists the clients that deliver service, preferred first,
// with cs.mu held: those that announced it, or when none did, those that
// announced nothing yet.
func (cs *clientSet) rankedLocked(service string) []*peerConn {
	type ranked struct {
		p *peerConn
		n int
	}
	var rs, provisional []ranked
	for _, p := range cs.peers {
		switch n, ok, prov := p.rank(service); {
		case ok && prov:
			provisional = append(provisional, ranked{p, n})
		case ok:
			rs = append(rs, ranked{p, n})
		}
	}
	if len(rs) == 0 {
		rs = provisional
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return a.p.since.Compare(b.p.since)
	})
	out := make([]*peerConn, len(rs))
	for i, r := range rs {
		out[i] = r.p
	}
	return out
}

// best is the client of the highest priority overall, nil when none is
// connected.
func (cs *clientSet) best() *quic.Conn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var bp *peerConn
	for _, p := range cs.peers {
		if bp == nil || p.priority > bp.priority || p.priority == bp.priority && p.since.Before(bp.since) {
			bp = p
		}
	}
	if bp == nil {
		return nil
	}
	return bp.conn
}

// list describes the connected clients, active first, then by the time
// they connected.
func (cs *clientSet) list(active *quic.Conn) []ClientStats {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	ps := make([]*peerConn, 0, len(cs.peers))
	for _, p := range cs.peers {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *peerConn) int {
		if (a.conn == active) != (b.conn == active) {
			if a.conn == active {
				return -1
			}
			return 1
		}
		return a.since.Compare(b.since)
	})
	out := make([]ClientStats, 0, len(ps))
	for _, p := range ps {
		out = append(out, ClientStats{Addr: p.conn.RemoteAddr().String(), Fingerprint: p.fp, Priority: p.priority, Services: maps.Clone(p.services), Since: p.since.UTC()})
	}
	return out
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
	for _, p := range cs.peers {
		p.gone.Store(true)
	}
	cs.peers = nil
	cs.mu.Unlock()
	for _, c := range conns {
		_ = c.CloseWithError(code, msg)
	}
}

// routes are the clients serving each service the server carries to
// clients, preferred first: one in mode one, all that deliver it in mode
// all. Built at each election and read lock-free on the data path.
type routes struct {
	by  map[string][]*peerConn
	all map[string]bool // services in mode all
	rr  atomic.Uint32   // mode all: the next TCP flow's pick
}

// buildRoutes computes the routes of the server's services.
func (s *Server) buildRoutes() *routes {
	rt := &routes{by: map[string][]*peerConn{}, all: map[string]bool{}}
	s.clients.mu.Lock()
	defer s.clients.mu.Unlock()
	for _, svc := range s.cfg.Services {
		if svc.Target != "" {
			continue // delivered here; its replies go back where it came from
		}
		list := s.clients.rankedLocked(svc.Name)
		if svc.Mode == ModeAll {
			rt.all[svc.Name] = true
		} else if len(list) > 1 {
			list = list[:1]
		}
		rt.by[svc.Name] = list
	}
	return rt
}

// pickFlow is the server's end.pick: the connection that carries a flow
// datagram of h's service, lane i, to the client serving it. In mode all
// the flow keeps the client in *via (via nil: a TCP flow, spread in turn).
func (s *Server) pickFlow(h Header, via **peerConn, i int) *quic.Conn {
	rt := s.routes.Load()
	if rt == nil {
		return nil
	}
	list := rt.by[h.Service]
	if len(list) == 0 {
		return nil
	}
	p := list[0]
	if rt.all[h.Service] && len(list) > 1 {
		switch {
		case via == nil:
			p = list[int(rt.rr.Add(1))%len(list)]
		case *via != nil && !(*via).gone.Load() && slices.Contains(list, *via):
			p = *via
		default:
			p = list[int(uint64(h.Flow*0x9e3779b1)*uint64(len(list))>>32)]
		}
	}
	if via != nil {
		*via = p
	}
	return p.connFor(i)
}

// servedBy lists, per service, the addresses of the clients serving it.
func (rt *routes) servedBy(service string) []string {
	if rt == nil {
		return nil
	}
	var out []string
	for _, p := range rt.by[service] {
		out = append(out, p.conn.RemoteAddr().String())
	}
	return out
}

// elect makes the best connected client the active one, routes each
// service anew, and logs and reports the changes.
func (s *Server) elect() {
	s.emu.Lock()
	defer s.emu.Unlock()
	next := s.clients.best()
	prev := s.conn.Swap(next)
	s.assignLanesLocked()
	old, rt := s.routes.Load(), s.buildRoutes()
	s.routes.Store(rt)
	for _, svc := range s.cfg.Services {
		if svc.Target != "" {
			continue
		}
		was, now := old.servedBy(svc.Name), rt.servedBy(svc.Name)
		if slices.Equal(was, now) {
			continue
		}
		s.svc[svc.Name].moves.Add(1)
		sev, msg := "info", fmt.Sprintf("tunnel service %s served by %s", svc.Name, strings.Join(now, ", "))
		if len(now) == 0 {
			sev, msg = "warning", "tunnel service "+svc.Name+" served by no client"
		}
		if len(was) > 0 {
			msg += " (was " + strings.Join(was, ", ") + ")"
		}
		s.log.Info(msg, "service", svc.Name)
		if s.deps.OnEvent != nil {
			s.deps.OnEvent(sev, msg)
		}
	}
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
	if !s.clients.update(conn, func(p *peerConn) { p.priority = n }) {
		return ErrNoPeer
	}
	s.elect()
	return nil
}

// setServices applies a client's announcement of the services it
// delivers ("name=priority ...", as ParseControl checked it).
func (s *Server) setServices(conn *quic.Conn, arg string) error {
	m := map[string]int{}
	for _, f := range strings.Fields(arg) {
		name, n, _ := strings.Cut(f, "=")
		m[name], _ = strconv.Atoi(n)
	}
	if !s.clients.update(conn, func(p *peerConn) { p.services = m }) {
		return ErrNoPeer
	}
	s.elect()
	return nil
}

// announcement is the client's "services" control request: each service
// it delivers (every one it does not offer itself) with its priority for
// it.
func (c *Client) announcement() string {
	var b strings.Builder
	b.WriteString(controlServices)
	for _, svc := range c.cfg.Services {
		if svc.Listen != "" {
			continue
		}
		fmt.Fprintf(&b, " %s=%d", svc.Name, cmp.Or(svc.Priority, c.cfg.Priority))
	}
	return b.String()
}

// shutdownClients closes every client connection as Serve stops.
func (s *Server) shutdownClients() {
	s.clients.closeAll(codeShutdown, "shutdown")
	if s.conn.Swap(nil) != nil {
		s.changed("down")
	}
	s.routes.Store(nil)
}
