package sipedge

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/handoff"
)

// Stream listener defaults (StreamLimits).
const (
	DefaultStreamMaxConns          = 20000
	DefaultStreamMaxConnsPerSource = 200
	DefaultStreamHandshakeTimeout  = 10 * time.Second
)

// StreamLimits bound the connections of each tcp, tls, ws and wss listener
// (the "sip.tcp" section), so that connections which never send a request,
// or sit idle, cannot take the edge's descriptors. A connection over a cap
// is closed at once (counted in portico_listener_connections_refused_total).
type StreamLimits struct {
	// MaxConns caps the connections open at once per listener. Default
	// 20000 (the default registration limit); negative: no cap.
	MaxConns int
	// MaxConnsPerSource caps them per client IPv4 address or IPv6 /64, per
	// listener. Default 200 (a branch office behind one NAT address);
	// negative: no cap.
	MaxConnsPerSource int
	// HandshakeTimeout is how long a new connection may take to deliver
	// its first SIP request, TLS and WebSocket handshakes included, before
	// it is closed. Default 10s; negative: none.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that carried nothing either way
	// (CRLF keepalives count) for this long and serves no registration or
	// call. Default 0: twice NATBindingExpiry, so an endpoint that
	// refreshes its registration in time is never idle; negative: never.
	IdleTimeout time.Duration
}

func (l StreamLimits) withDefaults(add func(path, format string, a ...any)) StreamLimits {
	if l.MaxConns == 0 {
		l.MaxConns = DefaultStreamMaxConns
	}
	if l.MaxConnsPerSource == 0 {
		l.MaxConnsPerSource = DefaultStreamMaxConnsPerSource
	}
	if l.HandshakeTimeout == 0 {
		l.HandshakeTimeout = DefaultStreamHandshakeTimeout
	}
	if l.MaxConns > 0 && l.MaxConnsPerSource > l.MaxConns {
		add("tcp.max_conns_per_source", "%d is above tcp.max_conns (%d)", l.MaxConnsPerSource, l.MaxConns)
	}
	return l
}

// listenerState is one served listener, for ListenerStatus.
type listenerState struct {
	iface, transport, addr string
	lim                    *connlimit.Listener    // stream listeners
	dead                   atomic.Pointer[string] // why serving ended while the edge runs
}

// ListenerStatus is the state of one configured listener.
type ListenerStatus struct {
	Interface string `json:"interface"`
	Transport string `json:"transport"`
	Address   string `json:"address"`
	// Err is empty while the listener serves; else why it does not: its
	// serving ended, or accepting is failing (being retried).
	Err string `json:"error,omitempty"`
}

// ListenerStatus reports every listener Serve was given, for readiness.
func (s *Server) ListenerStatus() []ListenerStatus {
	s.sockMu.Lock()
	ls := slices.Clone(s.listeners)
	s.sockMu.Unlock()
	out := make([]ListenerStatus, 0, len(ls))
	for _, l := range ls {
		out = append(out, ListenerStatus{Interface: l.iface, Transport: l.transport, Address: l.addr, Err: connlimit.Status(l.dead.Load(), l.lim)})
	}
	return out
}

// streamLimits is the guard of one stream listener. Outside listeners get
// the configured caps and timeouts; inside ones (the call server's
// connections) only the accept retry and half the descriptor share, so the
// inside still connects while the outside is refused.
func (s *Server) streamLimits(sd *side, transport string) connlimit.Config {
	c := connlimit.Config{Name: "sip-" + sd.name + "-" + transport, Descriptors: s.deps.Descriptors}
	if sd.name == Internal {
		if r := s.deps.Descriptors; r != nil {
			c.KeepFree = max(r.Keep()/2, 1)
		}
		return c
	}
	st := s.cfg.Streams
	c.MaxConns, c.MaxConnsPerSource, c.HandshakeTimeout, c.IdleTimeout = st.MaxConns, st.MaxConnsPerSource, st.HandshakeTimeout, st.IdleTimeout
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 2 * s.cfg.NATBindingExpiry
	}
	c.Busy = func(a net.Addr) bool { return s.flowInUse(transport, a) }
	return c
}

// flowInUse reports whether a registration or a call rides on the
// connection from a over transport: such a connection is kept however
// quiet it is.
func (s *Server) flowInUse(transport string, a net.Addr) bool {
	f := Flow{Transport: transport, Source: addrPort(a)}
	s.regs.mu.Lock()
	for _, b := range s.regs.b {
		if b.flow == f {
			s.regs.mu.Unlock()
			return true
		}
	}
	s.regs.mu.Unlock()
	for _, c := range s.calls.all() {
		if ap, err := netip.ParseAddrPort(c.source); err == nil && netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) == f.Source {
			return true
		}
	}
	return false
}

// established tells the stream listener req arrived on that its
// connection is past the handshake.
func (sd *side) established(req *sip.Request) {
	t := strings.ToLower(req.Transport())
	if t == "udp" || t == "" {
		return
	}
	sd.mu.Lock()
	lim := sd.streams[t]
	sd.mu.Unlock()
	if lim != nil {
		lim.Established(req.Source())
	}
}

// upgradeGate returns the listener sipgo serves a ws or wss listener from.
// sipgo upgrades a WebSocket connection inside its accept loop, one at a
// time, so one client that connects and stays silent would hold up every
// other. The gate accepts from l and, for each connection on its own,
// does the TLS handshake (tlsCfg not nil) and reads the upgrade request,
// then pushes the connection, replaying that request, to sipgo: a WSS
// connection reaches sipgo with its TLS terminated, as a handed-off one.
// A connection that never completes is closed by l's handshake timeout.
// When l fails, the gate closes, so sipgo's serving ends and is reported.
func (s *Server) upgradeGate(l net.Listener, tlsCfg *tls.Config) net.Listener {
	gate := handoff.New(l.Addr())
	s.sockMu.Lock()
	s.socks = append(s.socks, gate)
	s.sockMu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer gate.Close()
		defer cancel()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.passUpgrade(ctx, c, tlsCfg, gate)
			}()
		}
	}()
	return gate
}

func (s *Server) passUpgrade(ctx context.Context, c net.Conn, tlsCfg *tls.Config, gate *handoff.Listener) {
	if tlsCfg != nil {
		tc := tls.Server(c, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			s.log.Debug("wss handshake failed", "from", c.RemoteAddr(), "err", err)
			c.Close()
			return
		}
		c = tc
	}
	pre, err := readUpgrade(c)
	if err != nil {
		s.log.Debug("websocket upgrade not read", "from", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	if err := gate.Push(ctx, &handoffConn{Conn: c, pre: pre, closed: make(chan struct{})}); err != nil {
		c.Close()
	}
}
