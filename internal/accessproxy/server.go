// Package accessproxy is Portico's access proxy: one TLS port (443) shared
// by every TLS-shaped service, sorted per connection by its first bytes
// (TLS ClientHello with SNI, RFC 6066 §3, and ALPN, RFC 7301; plain HTTP;
// STUN/TURN over TCP, RFC 8489 §5 / RFC 7443) and then, after TLS
// termination where the route says so, by HTTP Host and path. Routes reverse-
// proxy HTTP(S) and WebSocket to inside servers (RFC 9110, RFC 6455), pass
// TLS through untouched, proxy LDAP with StartTLS or LDAPS on either side
// (RFC 4511 §4.14, RFC 4513) with an optional read-only policy, relay XMPP
// (RFC 6120 STARTTLS, XEP-0368 direct TLS) and hand connections to other
// Portico services (SIP over WSS, TURN). Plain TCP port mappings, PROXY
// protocol v1/v2 from load balancers and to inside servers, per-route ACLs
// by client network, and live reload complete it.
package accessproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-edge/portico/internal/accessproxy/proxyproto"
	"github.com/portico-edge/portico/internal/accessproxy/sniff"
	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/handoff"
	"github.com/prometheus/client_golang/prometheus"
)

// ConnHandler takes over a connection the demultiplexer hands off (SIP over
// WSS, TURN over TLS or TCP). c.RemoteAddr() is the real client address
// (after PROXY protocol). The handler owns c and must close it.
type ConnHandler interface {
	HandleConn(ctx context.Context, c net.Conn)
}

// ProtocolSpeaker is implemented by a ConnHandler that speaks only some ALPN
// protocols (RFC 7301) over the TLS the access proxy terminates for it: the
// handshake then negotiates the first of them the client offers (or none if
// the client offers no ALPN), instead of the client's first choice, and
// fails with no_application_protocol when the client offers only others. A
// WSS handler says http/1.1, so a browser offering h2 first still gets the
// HTTP/1.1 upgrade.
type ProtocolSpeaker interface {
	ALPNProtocols() []string
}

// ConnHandlerFunc adapts a function to ConnHandler.
type ConnHandlerFunc func(ctx context.Context, c net.Conn)

// HandleConn calls f.
func (f ConnHandlerFunc) HandleConn(ctx context.Context, c net.Conn) { f(ctx, c) }

// CertSource selects the certificate for a handshake: by name when name is
// not empty, else by SNI. *certs.Store implements it.
type CertSource interface {
	Select(hello *tls.ClientHelloInfo, name string) (*tls.Certificate, error)
}

// Deps are the access proxy's collaborators.
type Deps struct {
	// Logger; nil discards. A component=accessproxy attribute is added.
	Logger *slog.Logger
	// Registerer for metrics; nil registers none.
	Registerer prometheus.Registerer
	// Certs serves certificates for TLS Portico terminates (required).
	Certs CertSource
	// Handlers by name for handoff routes and STUN ("turn", "sip-wss").
	Handlers map[string]ConnHandler
	// Descriptors keeps file descriptors free for management: listeners
	// refuse connections while fewer than half its share are free (SIP
	// stream listeners stop at the whole share, so the access proxy still
	// answers when they refuse). Nil: not checked.
	Descriptors *connlimit.Reserve
}

// Server is a running access proxy.
type Server struct {
	log      *slog.Logger
	reg      prometheus.Registerer
	fds      *connlimit.Reserve
	certs    CertSource
	handlers map[string]ConnHandler
	state    atomic.Pointer[state]
	m        *metrics

	tlsBase *tls.Config // holds the session ticket keys, see tlsServer

	httpSrv *http.Server
	httpL   *handoff.Listener // feeds connections sorted as HTTP to the shared http.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closed    bool
	closeOnce sync.Once
	httpOnce  sync.Once

	// Connections on the shared port(s), counted against the live
	// max_conns and max_conns_per_client (read from state per connection,
	// so a Reload changes them at once).
	open      atomic.Int64
	clientsMu sync.Mutex
	clients   map[netip.Addr]int
}

// New validates cfg and returns a server. It does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Certs == nil {
		return nil, fmt.Errorf("%w: deps.Certs is nil", ErrInvalidConfig)
	}
	cfg.setDefaults()
	if err := cfg.validate(deps.Handlers); err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		log: log.With("component", "accessproxy"), reg: deps.Registerer, fds: deps.Descriptors, certs: deps.Certs, handlers: deps.Handlers,
		ctx: ctx, cancel: cancel, listeners: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{},
		m: newMetrics(deps.Registerer), tlsBase: &tls.Config{GetConfigForClient: configForConn},
	}
	s.clients = map[netip.Addr]int{}
	st, err := compile(cfg, s)
	if err != nil {
		cancel()
		return nil, err
	}
	s.state.Store(st)
	s.httpL = handoff.New(nil)
	s.httpSrv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.Timeouts.HTTPReadHeader,
		IdleTimeout:       cfg.Timeouts.HTTPIdle,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				c = tc.NetConn()
			}
			if pc, ok := c.(*peekConn); ok {
				return context.WithValue(ctx, connInfoKey{}, &pc.info)
			}
			return ctx
		},
	}
	return s, nil
}

// startHTTP starts the shared HTTP server when the first listener is
// served, not in New, which must start nothing (the app builds and
// discards a server to validate each configuration change).
func (s *Server) startHTTP() {
	s.httpOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.httpSrv.Serve(s.httpL)
		}()
	})
}

// Config returns the current (defaulted) configuration.
func (s *Server) Config() Config { return s.state.Load().cfg }

// Reload validates cfg and swaps it in: new connections and new HTTP
// requests use the new routes, established connections keep going. The
// listen addresses (Listen, ExtraListen, the TCP mappings' Listen) stay
// as they were bound: everything else in cfg is applied, and those that
// differ are returned as config paths (access_proxy.listen, ...) for the
// caller's pending-restart list. A cfg that does not validate (with the
// running listen addresses in place of its own) changes nothing.
func (s *Server) Reload(cfg Config) (restart []string, err error) {
	cfg.setDefaults()
	old := s.state.Load()
	restart, cfg = keepListeners(old.cfg, cfg)
	if err := cfg.validate(s.handlers); err != nil {
		return nil, err
	}
	st, err := compile(cfg, s)
	if err != nil {
		return nil, err
	}
	// Keep the TCP mappings' semaphores so limits hold across reloads.
	for i := range st.tcp {
		if old.tcp[i].MaxConns == st.tcp[i].MaxConns {
			st.tcp[i].sem = old.tcp[i].sem
		}
	}
	s.state.Store(st)
	// Let in-flight requests on old transports finish first (a timer, not a
	// sleeping goroutine per reload).
	time.AfterFunc(cfg.Timeouts.HTTPResponseHeader, old.retire)
	s.log.Info("config reloaded", "routes", len(cfg.Routes), "restart_needed", restart)
	return restart, nil
}

// keepListeners returns next with run's listen addresses, and the paths of
// those that differed. A different number of TCP mappings keeps the
// running mappings whole.
func keepListeners(run, next Config) ([]string, Config) {
	var restart []string
	if next.Listen != run.Listen {
		restart = append(restart, "access_proxy.listen")
	}
	if !slices.Equal(next.ExtraListen, run.ExtraListen) {
		restart = append(restart, "access_proxy.extra_listen")
	}
	next.Listen, next.ExtraListen = run.Listen, run.ExtraListen
	if len(next.TCP) != len(run.TCP) {
		return append(restart, "access_proxy.tcp"), withTCP(next, run.TCP)
	}
	tcp := slices.Clone(next.TCP)
	for i := range tcp {
		if tcp[i].Listen != run.TCP[i].Listen {
			restart = append(restart, fmt.Sprintf("access_proxy.tcp[%d].listen", i))
			tcp[i].Listen = run.TCP[i].Listen
		}
	}
	return restart, withTCP(next, tcp)
}

func withTCP(c Config, tcp []TCPMapping) Config {
	c.TCP = tcp
	return c
}

// Run binds every configured address, serves until ctx ends, then closes.
func (s *Server) Run(ctx context.Context) error {
	cfg := s.state.Load().cfg
	var ls []net.Listener
	fail := func(err error) error {
		for _, l := range ls {
			l.Close()
		}
		return err
	}
	lc := net.ListenConfig{}
	for _, a := range append([]string{cfg.Listen}, cfg.ExtraListen...) {
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			return fail(fmt.Errorf("accessproxy: listen %s: %w", a, err))
		}
		ls = append(ls, l)
	}
	var tls []net.Listener
	for _, m := range cfg.TCP {
		l, err := lc.Listen(ctx, "tcp", m.Listen)
		if err != nil {
			return fail(fmt.Errorf("accessproxy: listen %s: %w", m.Listen, err))
		}
		ls = append(ls, l)
		tls = append(tls, l)
	}
	errc := make(chan error, len(ls))
	all := append([]string{cfg.Listen}, cfg.ExtraListen...)
	for i, a := range all {
		go func(l net.Listener, name string) { errc <- s.serve(ctx, l, name) }(ls[i], a)
	}
	for i, l := range tls {
		go func(l net.Listener, i int) { errc <- s.ServeTCP(ctx, i, l) }(l, i)
	}
	s.log.Info("access proxy listening", "listen", cfg.Listen, "extra", cfg.ExtraListen, "tcp_mappings", len(cfg.TCP))
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	s.Close()
	if errors.Is(first, ErrClosed) || errors.Is(first, net.ErrClosed) {
		first = nil
	}
	return first
}

// Serve runs the one-port demultiplexer on l (a caller-supplied listener,
// treated as the Listen address for route matching) until ctx ends or
// Close. It closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return s.serve(ctx, l, s.state.Load().cfg.Listen)
}

// ServeListen is Serve for a listener standing for one of the configured
// addresses (Listen or an ExtraListen entry, as written), for Match.Listen.
func (s *Server) ServeListen(ctx context.Context, l net.Listener, name string) error {
	return s.serve(ctx, l, name)
}

func (s *Server) track(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server) untrack(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

func (s *Server) trackConn(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Server) acceptLoop(ctx context.Context, l net.Listener, handle func(net.Conn)) error {
	// Every accept error of a live listener is retried with backoff (an
	// error returned here would stop the node), and descriptors are left
	// free for management: half the share SIP stream listeners leave, so
	// the shared port still answers when they refuse.
	lc := connlimit.Config{Name: "accessproxy-" + l.Addr().String(), Descriptors: s.fds}
	if s.fds != nil {
		lc.KeepFree = max(s.fds.Keep()/2, 1)
	}
	l = connlimit.Wrap(l, lc, connlimit.Deps{Logger: s.log, Registerer: s.reg})
	if !s.track(l) {
		l.Close()
		return ErrClosed
	}
	defer s.untrack(l)
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				if s.ctx.Err() != nil {
					return ErrClosed
				}
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accessproxy: accept: %w", err)
		}
		delay = 0
		if !s.trackConn(c, true) {
			c.Close()
			return ErrClosed
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.trackConn(c, false)
			handle(c)
		}()
	}
}

func isTemporary(err error) bool {
	type temp interface{ Temporary() bool }
	var t temp
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) serve(ctx context.Context, l net.Listener, name string) error {
	s.startHTTP()
	return s.acceptLoop(ctx, l, func(c net.Conn) { s.handle(ctx, c, name) })
}

// Close stops listening, closes every connection and waits for all
// goroutines. Safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.mu.Lock()
		s.closed = true
		for l := range s.listeners {
			l.Close()
		}
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.httpSrv.Close()
		s.httpL.Close()
		s.wg.Wait()
		s.state.Load().retire()
	})
	return nil
}

type connInfoKey struct{}

// TLS alert descriptions (RFC 8446 §6).
const (
	alertHandshakeFailure = 40
	alertAccessDenied     = 49
	alertInternalError    = 80
	alertUnrecognizedName = 112
)

func writeAlert(c net.Conn, desc byte) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, desc})
}

// handle demultiplexes one accepted connection.
func (s *Server) handle(ctx context.Context, raw net.Conn, listen string) {
	st := s.state.Load()
	if n := s.open.Add(1); st.cfg.MaxConns > 0 && n > int64(st.cfg.MaxConns) {
		s.open.Add(-1)
		s.m.rejected.WithLabelValues("conn_limit").Inc()
		raw.Close()
		return
	}
	defer s.open.Add(-1)
	s.m.active.Inc()
	defer s.m.active.Dec()
	pc := &peekConn{Conn: raw, closed: make(chan struct{})}
	pc.info.listen = listen
	pc.info.src = addrPortOf(raw.RemoteAddr())
	_ = raw.SetReadDeadline(time.Now().Add(st.cfg.Timeouts.Peek))
	if st.isTrusted(pc.info.src.Addr()) {
		h, err := pc.readProxyHeader()
		if err != nil {
			s.m.rejected.WithLabelValues("proxy_protocol").Inc()
			s.log.Debug("bad PROXY header from trusted balancer", "from", pc.info.src, "err", err)
			raw.Close()
			return
		}
		if !h.Local {
			pc.info.src = h.Source
			pc.remote = net.TCPAddrFromAddrPort(h.Source)
		}
	}
	pc.info.ip = pc.info.src.Addr().String()
	client := pc.info.src.Addr().Unmap()
	if !s.admitClient(client, st.cfg.MaxConnsPerClient) {
		s.m.rejected.WithLabelValues("client_conn_limit").Inc()
		raw.Close()
		return
	}
	defer s.releaseClient(client)
	kind, err := pc.classify()
	if err != nil {
		s.m.rejected.WithLabelValues("peek").Inc()
		raw.Close()
		return
	}
	s.m.conns.WithLabelValues(kind.String()).Inc()
	switch kind {
	case sniff.TLS:
		s.handleTLS(ctx, st, pc)
	case sniff.HTTP:
		_ = raw.SetReadDeadline(time.Time{})
		if s.httpL.Push(ctx, pc) != nil {
			raw.Close()
			return
		}
		s.waitClosed(pc)
	case sniff.LDAP:
		r := st.matchPlain(&pc.info, ActionLDAP)
		if r == nil || !r.allowed(pc.info.src.Addr()) {
			s.m.rejected.WithLabelValues("no_route").Inc()
			raw.Close()
			return
		}
		_ = raw.SetReadDeadline(time.Time{})
		s.serveLDAP(ctx, st, r, pc, false)
	case sniff.XMPP:
		r := st.matchPlain(&pc.info, ActionXMPP)
		if r == nil || !r.allowed(pc.info.src.Addr()) {
			s.m.rejected.WithLabelValues("no_route").Inc()
			raw.Close()
			return
		}
		_ = raw.SetReadDeadline(time.Time{})
		s.relayTo(ctx, st, r.Name, pc, r.Upstream, r.SendProxyProtocol)
	case sniff.STUN:
		h := s.handlers[st.cfg.STUNHandler]
		if h == nil {
			s.m.rejected.WithLabelValues("no_route").Inc()
			raw.Close()
			return
		}
		_ = raw.SetReadDeadline(time.Time{})
		h.HandleConn(ctx, pc)
	default:
		s.m.rejected.WithLabelValues("unknown_protocol").Inc()
		raw.Close()
	}
}

// admitClient counts a connection from client against limit (-1: none),
// reporting false when the client already holds limit connections.
func (s *Server) admitClient(client netip.Addr, limit int) bool {
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	if limit >= 0 && s.clients[client] >= limit {
		return false
	}
	s.clients[client]++
	return true
}

func (s *Server) releaseClient(client netip.Addr) {
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	if s.clients[client]--; s.clients[client] <= 0 {
		delete(s.clients, client)
	}
}

func (s *Server) handleTLS(ctx context.Context, st *state, pc *peekConn) {
	ch, err := pc.readClientHello()
	if err != nil {
		s.m.rejected.WithLabelValues("client_hello").Inc()
		writeAlert(pc.Conn, alertHandshakeFailure)
		pc.Close()
		return
	}
	pc.info.tls, pc.info.sni, pc.info.alpn = true, ch.ServerName, ch.ALPN
	r := st.matchTLS(&pc.info)
	if r == nil {
		s.m.rejected.WithLabelValues("no_route").Inc()
		s.log.Debug("no route", "sni", ch.ServerName, "alpn", ch.ALPN, "from", pc.info.src)
		writeAlert(pc.Conn, alertUnrecognizedName)
		pc.Close()
		return
	}
	r.routedC.Inc()
	if r.Action != ActionHTTP && !r.allowed(pc.info.src.Addr()) {
		s.m.rejected.WithLabelValues("acl").Inc()
		writeAlert(pc.Conn, alertAccessDenied)
		pc.Close()
		return
	}
	switch r.Action {
	case ActionPassthrough, ActionXMPP:
		_ = pc.SetReadDeadline(time.Time{})
		s.relayTo(ctx, st, r.Name, pc, r.Upstream, r.SendProxyProtocol)
	case ActionHTTP:
		tc := s.tlsServer(pc, s.serverTLS(st, r, []string{"h2", "http/1.1"}))
		if err := s.handshake(st, tc); err != nil {
			return
		}
		if s.httpL.Push(ctx, tc) != nil {
			tc.Close()
			return
		}
		s.waitClosed(pc)
	case ActionHandoff:
		h := s.handlers[r.Handler]
		if h == nil {
			writeAlert(pc.Conn, alertInternalError)
			pc.Close()
			return
		}
		_ = pc.SetReadDeadline(time.Time{})
		if r.HandoffRaw {
			h.HandleConn(ctx, pc)
			return
		}
		protos := offered(ch.ALPN)
		if ps, ok := h.(ProtocolSpeaker); ok {
			protos = ps.ALPNProtocols()
		}
		tc := s.tlsServer(pc, s.serverTLS(st, r, protos))
		if err := s.handshake(st, tc); err != nil {
			return
		}
		h.HandleConn(ctx, tc)
	case ActionLDAP:
		tc := s.tlsServer(pc, s.serverTLS(st, r, nil))
		if err := s.handshake(st, tc); err != nil {
			return
		}
		s.serveLDAP(ctx, st, r, tc, true)
	}
}

// offered echoes the client's first ALPN protocol back, for a handoff
// handler that does not say which it speaks (TURN's stun.turn, RFC 7443).
func offered(alpn []string) []string {
	if len(alpn) == 0 {
		return nil
	}
	return alpn[:1]
}

func (s *Server) handshake(st *state, tc *tls.Conn) error {
	_ = tc.SetDeadline(time.Now().Add(st.cfg.Timeouts.Handshake))
	if err := tc.Handshake(); err != nil {
		s.m.rejected.WithLabelValues("tls_handshake").Inc()
		s.log.Debug("tls handshake failed", "from", tc.RemoteAddr(), "err", err)
		tc.Close()
		return err
	}
	_ = tc.SetDeadline(time.Time{})
	return nil
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// peekConn replays bytes read while sniffing, and reports the real client
// address from a PROXY header as RemoteAddr.
type peekConn struct {
	net.Conn
	buf    []byte // sniffed bytes not yet returned by Read
	remote net.Addr
	info   connInfo
	tlsCfg *tls.Config // for the handshake Portico terminates, see tlsServer
	once   sync.Once
	closed chan struct{} // closed by Close when not nil
}

func (c *peekConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.closed != nil {
			close(c.closed)
		}
	})
	return err
}

// waitClosed blocks until the connection is closed (by the HTTP server) or
// the server shuts down.
func (s *Server) waitClosed(c *peekConn) {
	select {
	case <-c.closed:
	case <-s.ctx.Done():
	}
}

func (c *peekConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *peekConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

const maxPeek = sniff.MaxClientHello + 4096

// more reads at least one more byte into buf.
func (c *peekConn) more() error {
	if len(c.buf) >= maxPeek {
		return sniff.ErrTooLarge
	}
	if cap(c.buf)-len(c.buf) < 512 {
		nb := make([]byte, len(c.buf), max(2*cap(c.buf), 2048))
		copy(nb, c.buf)
		c.buf = nb
	}
	n, err := c.Conn.Read(c.buf[len(c.buf):cap(c.buf)])
	c.buf = c.buf[:len(c.buf)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		err = errors.New("accessproxy: empty read")
	}
	return err
}

func (c *peekConn) readProxyHeader() (proxyproto.Header, error) {
	for {
		h, err := proxyproto.Parse(c.buf)
		if err == nil {
			c.buf = c.buf[h.Len:]
			return h, nil
		}
		if err != proxyproto.ErrShort {
			return h, err
		}
		if err := c.more(); err != nil {
			return h, err
		}
	}
}

func (c *peekConn) classify() (sniff.Kind, error) {
	for {
		k, err := sniff.Classify(c.buf)
		if err != sniff.ErrShort {
			return k, nil
		}
		if err := c.more(); err != nil {
			return sniff.Unknown, err
		}
	}
}

func (c *peekConn) readClientHello() (sniff.ClientHello, error) {
	for {
		ch, err := sniff.ParseClientHello(c.buf)
		if err != sniff.ErrShort {
			return ch, err
		}
		if err := c.more(); err != nil {
			return ch, err
		}
	}
}
