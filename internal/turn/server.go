package turn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	pturn "github.com/pion/turn/v5"
	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/handoff"
	"github.com/prometheus/client_golang/prometheus"
)

// Timeouts of the service's own making.
const (
	handoverTimeout = 5 * time.Second
	storeTimeout    = 2 * time.Second
	drainTimeout    = 3 * time.Second
	acceptBackoff   = 5 * time.Millisecond
	// maxClockSkew is tolerated between the minting web application and
	// Portico when checking a REST credential's TTL against auth.max_ttl.
	maxClockSkew = 5 * time.Minute
)

// ALPN identifiers of RFC 7443.
var alpnProtocols = []string{"stun.turn", "stun.nat-discovery"}

// aeadSuites are the TLS 1.2 (and DTLS 1.2) suites offered: AEAD with
// forward secrecy only, the policy of Portico's other TLS listeners (no CBC,
// RC4 or 3DES, which Go's and pion's defaults still include). TLS 1.3 suites
// are all AEAD and not configurable.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Deps are the service's collaborators.
type Deps struct {
	// Logger receives the service's logs; a "component" attribute is added.
	// Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics. Nil: metrics are kept but not
	// exported.
	Registerer prometheus.Registerer
	// Users holds long-term credentials. Nil: only REST credentials work.
	Users UserStore
	// GetCertificate supplies the certificate of the TLS and DTLS listeners.
	// Required when Config.Listen.TLS or DTLS is set.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Guard drops blocked clients and counts refused credentials
	// (guardhook.go). Nil: unguarded.
	Guard Guard
	// ACL admits clients by network. Nil: all.
	ACL ACL
	// Descriptors, when set, makes the TCP and TLS listeners refuse
	// connections while the node's descriptor reserve is short (shared with
	// the other services' listeners).
	Descriptors *connlimit.Reserve
	// OnChange, when set, is called with the key (AllocationState.Key) of a
	// UDP allocation that was created, refreshed, deleted or whose
	// permissions or channels changed. It must not block.
	OnChange func(key string)
}

// Server is the STUN/TURN service. Create it with New.
type Server struct {
	// cfg is the configuration the server was built with: listeners,
	// realm, relay addresses and the default lifetime are read from it.
	// live is what Reload replaces: credentials, peer policy, quotas, rate
	// limit and the maximum allocation age.
	cfg     *validated
	realm   []byte // cfg.Realm, for the sockets' own responses
	live    atomic.Pointer[validated]
	log     *slog.Logger
	users   UserStore
	keys    keyCache // users' keys, so that not every request asks users
	getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	now     func() time.Time
	guard   Guard
	acl     ACL
	fds     *connlimit.Reserve
	promReg prometheus.Registerer
	m       *metrics
	limiter atomic.Pointer[rateLimiter]
	alloc   *allocator
	reg     *registry
	nonces  *nonceKeeper
	// own is the live configuration's own addresses plus the sockets
	// being served (see ownAddrs).
	own atomic.Pointer[ownAddrs]

	mu       sync.Mutex
	serving  bool
	handover *handoff.Listener
	// locals are the UDP listener sockets by local address: several
	// share one with listen.sockets above 1, and a client reaches one of
	// them by the kernel's hash, so the fast path is told on all of them.
	locals      map[string][]*listenPacketConn
	closed      bool
	closeCh     chan struct{}
	served      chan struct{}    // closed when the current Serve returns
	servedAddrs []netip.AddrPort // local addresses of the sockets being served
	streamLs    []*streamListener

	mutedMu sync.Mutex
	muted   map[string]struct{} // clients whose next Allocate error is dropped (mute)
	conns   sync.WaitGroup
	streams atomic.Int64 // open stream connections

	// onChange is Deps.OnChange; authUsers holds the USERNAME of each
	// 5-tuple's last authenticated Allocate until its allocation is made.
	onChange  func(key string)
	authUsers sync.Map
	standbyMu sync.Mutex
	standby   map[string]*standbyAlloc // by AllocationState.Key
	standbyWG sync.WaitGroup
}

// New validates cfg and builds a Server. It does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	v, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if deps.GetCertificate == nil {
		var errs Errors
		if len(v.Listen.TLS) > 0 {
			errs = append(errs, FieldError{Path: "turn.listen.tls", Reason: "needs a certificate (Deps.GetCertificate is nil)"})
		}
		if len(v.Listen.DTLS) > 0 {
			errs = append(errs, FieldError{Path: "turn.listen.dtls", Reason: "needs a certificate (Deps.GetCertificate is nil)"})
		}
		if len(errs) > 0 {
			return nil, errs
		}
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.Default()
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	m := newMetrics(deps.Registerer)
	nonces, err := newNonceKeeper(now)
	if err != nil {
		return nil, fmt.Errorf("turn: nonce key: %w", err)
	}
	s := &Server{
		nonces:  nonces,
		cfg:     v,
		realm:   []byte(v.Realm),
		log:     logger.With("component", "turn"),
		users:   deps.Users,
		getCert: deps.GetCertificate,
		now:     now,
		guard:   deps.Guard,
		acl:     deps.ACL,
		fds:     deps.Descriptors,
		promReg: deps.Registerer,
		m:       m,

		reg:     newRegistry(),
		closeCh: make(chan struct{}),
		muted:   map[string]struct{}{},

		onChange: deps.OnChange,
	}
	s.live.Store(v)
	s.own.Store(v.own)
	s.alloc = newAllocator(v, m, &s.own)
	s.limiter.Store(newRateLimiter(v.RateLimit.PerSecond, v.RateLimit.Burst))
	return s, nil
}

// Run binds the configured listeners, serves until ctx is done or Close is
// called, and returns nil on a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	var (
		pcs     []net.PacketConn
		streams []*streamListener
	)
	fail := func(err error) error {
		for _, pc := range pcs {
			_ = pc.Close()
		}
		for _, l := range streams {
			_ = l.Close()
		}
		return err
	}
	for _, a := range s.cfg.Listen.UDP {
		got, err := listenUDP(ctx, a, s.cfg.Listen.Sockets, s.cfg.Listen.SocketBufferKB)
		if err != nil {
			return fail(fmt.Errorf("turn: listen udp %s: %w", a, err))
		}
		pcs = append(pcs, got...)
	}
	var lc net.ListenConfig
	for _, a := range s.cfg.Listen.TCP {
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			return fail(fmt.Errorf("turn: listen tcp %s: %w", a, err))
		}
		lim := s.limit(l, "tcp")
		streams = append(streams, &streamListener{Listener: lim, kind: "tcp", lim: lim})
	}
	for _, a := range s.cfg.Listen.TLS {
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			return fail(fmt.Errorf("turn: listen tls %s: %w", a, err))
		}
		lim := s.limit(l, "tls")
		streams = append(streams, &streamListener{Listener: tls.NewListener(lim, s.tlsConfig()), kind: "tls", lim: lim})
	}
	for _, a := range s.cfg.Listen.DTLS {
		ap, _ := netip.ParseAddrPort(a)
		l, err := dtls.ListenWithOptions("udp", net.UDPAddrFromAddrPort(ap), s.dtlsOptions()...)
		if err != nil {
			return fail(fmt.Errorf("turn: listen dtls %s: %w", a, err))
		}
		streams = append(streams, &streamListener{Listener: l, kind: "dtls"})
	}
	return s.serve(ctx, pcs, streams)
}

// Serve serves STUN/TURN on caller-supplied sockets until ctx is done or
// Close is called, and returns nil on a clean shutdown. pc may be nil. A
// listener that yields *tls.Conn is served as TLS, any other as TCP; both
// accept under the stream limits, as Run's. Serve takes ownership of the
// sockets and closes them when it returns.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, listeners ...net.Listener) error {
	var pcs []net.PacketConn
	if pc != nil {
		pcs = append(pcs, pc)
	}
	streams := make([]*streamListener, 0, len(listeners))
	for _, l := range listeners {
		lim := s.limit(l, "tcp")
		streams = append(streams, &streamListener{Listener: lim, kind: "tcp", lim: lim})
	}
	return s.serve(ctx, pcs, streams)
}

// TLSConfig returns the TLS configuration the TLS listeners use (ALPN
// "stun.turn" per RFC 7443), for a demultiplexer that terminates TLS itself.
func (s *Server) TLSConfig() *tls.Config { return s.tlsConfig() }

func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   aeadSuites,
		GetCertificate: s.getCert,
		NextProtos:     alpnProtocols,
	}
}

func (s *Server) dtlsOptions() []dtls.ServerOption {
	suites := make([]dtls.CipherSuiteID, len(aeadSuites))
	for i, id := range aeadSuites {
		suites[i] = dtls.CipherSuiteID(id)
	}
	return []dtls.ServerOption{
		dtls.WithCipherSuites(suites...),
		dtls.WithGetCertificate(func(chi *dtls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.getCert(&tls.ClientHelloInfo{ServerName: chi.ServerName})
		}),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithSupportedProtocols(alpnProtocols...),
	}
}

func (s *Server) serve(ctx context.Context, pcs []net.PacketConn, streams []*streamListener) error {
	closeAll := func() {
		for _, pc := range pcs {
			_ = pc.Close()
		}
		for _, l := range streams {
			_ = l.Close()
		}
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		closeAll()
		return ErrClosed
	case s.serving:
		s.mu.Unlock()
		closeAll()
		return ErrAlreadyServing
	}
	s.serving = true
	s.locals = nil
	handover := handoff.New(nil)
	served := make(chan struct{})
	s.served = served
	var addrs []netip.AddrPort
	for _, pc := range pcs {
		if ap, ok := addrPort(pc.LocalAddr()); ok {
			addrs = append(addrs, ap)
		}
	}
	for _, l := range streams {
		if ap, ok := addrPort(l.Addr()); ok {
			addrs = append(addrs, ap)
		}
	}
	s.servedAddrs = addrs
	s.streamLs = streams
	s.mu.Unlock()
	defer close(served)
	s.refreshOwn(s.live.Load())

	// The engine's read loops start in NewServer; they wait for ready,
	// closed once the engine has the address-bound nonce manager.
	ready := make(chan struct{})
	pconf := make([]pturn.PacketConnConfig, 0, len(pcs))
	locals := make(map[string][]*listenPacketConn, len(pcs))
	for _, pc := range pcs {
		lpc := newListenPacketConn(s, pc, ready)
		locals[lpc.local] = append(locals[lpc.local], lpc)
		pconf = append(pconf, pturn.PacketConnConfig{
			PacketConn:            lpc,
			RelayAddressGenerator: s.alloc,
			PermissionHandler:     s.permit,
		})
	}
	s.mu.Lock()
	s.locals = locals
	s.mu.Unlock()
	engine, err := pturn.NewServer(pturn.ServerConfig{
		PacketConnConfigs: pconf,
		ListenerConfigs: []pturn.ListenerConfig{{
			Listener:              handover,
			RelayAddressGenerator: s.alloc,
			PermissionHandler:     s.permit,
		}},
		LoggerFactory:      &pionLogs{log: s.log},
		Realm:              s.cfg.Realm,
		AuthHandler:        s.authenticate,
		QuotaHandler:       s.quota,
		EventHandler:       s.events(),
		AllocationLifetime: s.cfg.Lifetime.Default,
	})
	if err == nil {
		if err = installNonces(engine, s.nonces); err != nil {
			_ = engine.Close()
		}
	}
	close(ready)
	if err != nil {
		closeAll()
		_ = handover.Close()
		s.mu.Lock()
		s.serving = false
		s.mu.Unlock()
		return fmt.Errorf("turn: start engine: %w", err)
	}
	s.mu.Lock()
	s.handover = handover
	s.mu.Unlock()

	var accepts sync.WaitGroup
	for _, l := range streams {
		accepts.Add(1)
		go func() {
			defer accepts.Done()
			s.acceptLoop(l, handover)
		}()
	}
	names := make([]string, 0, len(pcs)+len(streams))
	for _, pc := range pcs {
		names = append(names, "udp/"+pc.LocalAddr().String())
	}
	for _, l := range streams {
		names = append(names, l.kind+"/"+l.Addr().String())
	}
	s.log.Info("turn serving", "listeners", names, "realm", s.cfg.Realm, "relay", s.cfg.Relay.Address)

	select {
	case <-ctx.Done():
	case <-s.closeCh:
	}

	s.mu.Lock()
	s.handover = nil
	s.mu.Unlock()
	for _, l := range streams {
		_ = l.Close()
	}
	_ = handover.Close()
	accepts.Wait()
	if err := engine.Close(); err != nil {
		s.log.Debug("turn engine close", "err", err)
	}
	s.stopStandby()
	s.alloc.closeAll()
	select {
	case <-s.alloc.waitDrained():
	case <-time.After(drainTimeout):
		s.log.Warn("turn: relay sockets still open after shutdown")
	}
	s.alloc.stopPollers()
	s.conns.Wait()
	for _, e := range s.reg.removeAll() {
		s.entryGone(e)
	}
	s.mu.Lock()
	s.serving = false
	s.streamLs = nil
	s.mu.Unlock()
	s.log.Info("turn stopped")
	return nil
}

// acceptLoop moves connections from a listener to the engine, completing
// TLS handshakes off the accept path. A TCP or TLS listener's Accept
// retries failures itself and returns only once the listener is closed;
// if that happens while the server still serves (someone else closed the
// socket), the listener is reported dead (ListenerStatus).
func (s *Server) acceptLoop(l *streamListener, handover *handoff.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			select {
			case <-handover.Closed():
				return
			default:
			}
			if l.lim != nil || errors.Is(err, net.ErrClosed) {
				why := err.Error()
				l.dead.Store(&why)
				s.log.Error("turn listener stopped accepting", "listener", l.kind+"/"+l.Addr().String(), "err", err)
				return
			}
			// A failed DTLS handshake: keep accepting.
			s.log.Debug("turn accept", "listener", l.Addr().String(), "err", err)
			time.Sleep(acceptBackoff)
			continue
		}
		kind := l.kind
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			if tc := tlsConnOf(c); tc != nil {
				kind = "tls"
				ctx := context.Background()
				if d := s.cfg.Listen.HandshakeTimeout; d > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, d)
					defer cancel()
				}
				if err := tc.HandshakeContext(ctx); err != nil {
					s.log.Debug("turn tls handshake", "client", c.RemoteAddr().String(), "err", err)
					_ = c.Close()
					return
				}
			}
			sc := newStreamConn(s, c, kind)
			if sc == nil {
				return
			}
			sc.lim = l.lim
			if !handOver(context.Background(), handover, sc) {
				_ = sc.Close()
			}
		}()
	}
}

// HandleConn serves STUN/TURN over an already accepted stream connection,
// for instance a TLS connection with ALPN "stun.turn" that the one-port
// demultiplexer on 443 terminated (RFC 7443). It blocks until the
// connection ends or ctx is done, and always closes c. It needs Run or Serve
// to be running.
func (s *Server) HandleConn(ctx context.Context, c net.Conn) error {
	s.mu.Lock()
	handover, closed := s.handover, s.closed
	s.mu.Unlock()
	if closed {
		_ = c.Close()
		return ErrClosed
	}
	if handover == nil {
		_ = c.Close()
		return ErrNotServing
	}
	kind := "tcp"
	if _, ok := c.(*tls.Conn); ok {
		kind = "tls"
	}
	sc := newStreamConn(s, c, kind)
	if sc == nil {
		return ErrTooManyConns
	}
	if !handOver(ctx, handover, sc) {
		_ = sc.Close()
		return ErrNotServing
	}
	select {
	case <-sc.closed:
	case <-ctx.Done():
		_ = sc.Close()
	}
	return nil
}

// Close stops Run or Serve and waits for it to return. Safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closeCh)
	}
	served := s.served
	s.mu.Unlock()
	if served != nil {
		<-served
	}
	return nil
}

// Allocations lists the live allocations, oldest first.
func (s *Server) Allocations() []AllocationInfo { return s.reg.list() }

// CloseAllocation ends the allocation whose relayed address is relay
// ("ip:port", with relayTransport "udp" or "tcp"), reporting whether one was
// found. The client learns it at its next Refresh.
func (s *Server) CloseAllocation(relay, relayTransport string) bool {
	ap, err := netip.ParseAddrPort(relay)
	if err != nil {
		return false
	}
	var addr net.Addr = net.UDPAddrFromAddrPort(ap)
	if relayTransport == "tcp" {
		addr = net.TCPAddrFromAddrPort(ap)
	}
	h := s.alloc.lookup(addr)
	if h == nil {
		return false
	}
	_ = h.closer.Close()
	return true
}

// MintCredentials returns TURN REST API credentials for user valid for ttl
// (capped at auth.max_ttl; zero or negative means auth.max_ttl). It
// returns empty strings when no shared secret is configured.
func (s *Server) MintCredentials(user string, ttl time.Duration) (username, password string, expires time.Time) {
	auth := s.live.Load().Auth
	if auth.Secret == "" {
		return "", "", time.Time{}
	}
	if ttl <= 0 || ttl > auth.MaxTTL {
		ttl = auth.MaxTTL
	}
	expires = s.now().Add(ttl).Truncate(time.Second)
	username, password = RESTCredentials(auth.Secret, user, expires)
	return username, password, expires
}

// Realm returns the realm in use.
func (s *Server) Realm() string { return s.cfg.Realm }

// authenticate is the engine's AuthHandler: REST credentials first, then
// long-term users.
func (s *Server) authenticate(ra *pturn.RequestAttributes) (string, []byte, bool) {
	return s.credentials(ra, true)
}

// credentials returns the user and key of ra's username; count records
// failures in the metrics and the debug log.
func (s *Server) credentials(ra *pturn.RequestAttributes, count bool) (string, []byte, bool) {
	if auth := s.live.Load().Auth; auth.Secret != "" {
		if exp, user, ok := parseRESTUsername(ra.Username); ok {
			now := s.now()
			if !now.Before(exp) {
				if count {
					s.m.authExpired.Inc()
					s.log.Debug("turn auth: expired REST credential", "username", ra.Username, "client", addrString(ra.SrcAddr))
				}
				return "", nil, false
			}
			if exp.Sub(now) > auth.MaxTTL+maxClockSkew {
				if count {
					s.m.authExpired.Inc()
					s.log.Debug("turn auth: REST credential beyond auth.max_ttl", "username", ra.Username, "client", addrString(ra.SrcAddr))
				}
				return "", nil, false
			}
			return user, s.keys.rest(auth.Secret, s.cfg.Realm, ra.Username), true
		}
	}
	if s.users == nil || ra.Username == "" || len(ra.Username) > maxUsernameLen {
		if count {
			s.m.authUnknown.Inc()
			s.authFailed(ra.SrcAddr)
		}
		return "", nil, false
	}
	now := s.now()
	if key, ok := s.keys.stored(s.cfg.Realm, ra.Username, now); ok {
		return ra.Username, key, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	key, err := s.users.TURNKey(ctx, s.cfg.Realm, ra.Username)
	if err != nil {
		switch {
		case !count:
		case errors.Is(err, ErrUnknownUser):
			s.m.authUnknown.Inc()
			s.authFailed(ra.SrcAddr)
		default:
			s.m.authStore.Inc()
			s.log.Warn("turn auth: user store", "err", err)
		}
		return "", nil, false
	}
	s.keys.putStored(s.cfg.Realm, ra.Username, key, now)
	return ra.Username, key, true
}

// quota is the engine's QuotaHandler, called for authenticated Allocate
// requests; a false answer yields 486 Allocation Quota Reached, which the
// sockets drop when the rate limit refused and the guard's action is
// drop.
func (s *Server) quota(userID, _ string, src net.Addr) bool {
	if ap, ok := addrPort(src); ok && !s.limiter.Load().allow(ap.Addr(), s.now()) {
		if s.rateLimitDrop() {
			s.m.rejRateDrop.Inc()
			s.mute(src)
		} else {
			s.m.rejRate.Inc()
		}
		return false
	}
	switch err := s.alloc.quotaErr(userID); {
	case errors.Is(err, errQuotaTotal):
		s.m.rejTotal.Inc()
		return false
	case errors.Is(err, errQuotaUser):
		s.m.rejUser.Inc()
		return false
	}
	return true
}

// refreshOwn rebuilds the own-address set from v, the interfaces as they
// are now and the sockets being served.
func (s *Server) refreshOwn(v *validated) {
	s.mu.Lock()
	served := s.servedAddrs
	s.mu.Unlock()
	own, _ := newOwnAddrs(v, interfaceAddrs(), served)
	s.own.Store(own)
}

// permit is the engine's PermissionHandler (peer address policy).
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	if s.live.Load().policy.permitsIP(peer) {
		return true
	}
	s.m.peersDenied.Inc()
	s.log.Debug("turn: peer denied by policy", "client", addrString(client), "peer", peer.String())
	return false
}

func (s *Server) events() pturn.EventHandler {
	return pturn.EventHandler{
		OnAuth: func(src, dst net.Addr, _, username, _, method string, verdict bool) {
			if verdict && method == "Allocate" && s.onChange != nil {
				s.authUsers.Store(fiveTupleKey(src, dst), username)
			}
			if !verdict {
				s.m.authIntegrity.Inc()
				s.authFailed(src)
				s.log.Debug("turn auth: bad message integrity", "username", username, "method", method, "client", addrString(src))
			}
		},
		OnAllocationCreated: func(src, dst net.Addr, _, userID, _ string, relay net.Addr, _ int) {
			key := fiveTupleKey(src, dst)
			now := s.now()
			kind := "udp"
			if k, ok := s.reg.kinds.Load(key); ok {
				kind = k.(string)
			}
			e := &allocEntry{
				info: AllocationInfo{
					User: userID, Client: addrString(src), Server: addrString(dst),
					Transport: kind, Relay: addrString(relay), RelayTransport: "udp",
					Created: now, Expires: now.Add(s.cfg.Lifetime.Default),
				},
				perms: map[string]int{},
				chans: map[uint16]string{},
				relay: s.alloc.lookup(relay),
			}
			if u, ok := s.authUsers.LoadAndDelete(key); ok {
				e.username = u.(string)
			}
			if _, ok := relay.(*net.TCPAddr); ok {
				e.info.RelayTransport = "tcp"
				s.m.allocTCP.Inc()
			} else {
				s.m.allocUDP.Inc()
			}
			if maxAge := s.live.Load().Lifetime.MaxAge; e.relay != nil && maxAge > 0 {
				h := e.relay
				e.maxAge = time.AfterFunc(maxAge, func() {
					s.log.Info("turn: allocation reached lifetime.max_age", "user", userID, "relay", h.addr)
					_ = h.closer.Close()
				})
			}
			s.m.allocationsTotal.Inc()
			s.reg.add(key, e)
			s.fastAlloc(src, dst, e.relay, true)
			s.changed(key)
			s.log.Debug("turn allocation created", "user", userID, "client", e.info.Client, "transport", kind, "relay", e.info.Relay)
		},
		OnAllocationDeleted: func(src, dst net.Addr, _, userID, _ string) {
			if e := s.reg.remove(fiveTupleKey(src, dst)); e != nil {
				s.fastAlloc(src, dst, e.relay, false)
				if e.relay != nil {
					if rc, ok := e.relay.closer.(*relayPacketConn); ok {
						rc.sayFarewell()
					}
				}
				s.entryGone(e)
				s.changed(fiveTupleKey(src, dst))
				s.log.Debug("turn allocation deleted", "user", userID, "client", e.info.Client, "relay", e.info.Relay)
			}
		},
		OnAllocationError: func(src, _ net.Addr, _, message string) {
			s.log.Debug("turn request failed", "client", addrString(src), "err", message)
		},
		OnPermissionCreated: func(src, dst net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
			s.reg.with(fiveTupleKey(src, dst), func(e *allocEntry) {
				e.perms[peer.String()]++
			})
			s.fastPerm(src, dst, relay, peer, true)
			s.changed(fiveTupleKey(src, dst))
			s.m.permissions.Inc()
		},
		OnPermissionDeleted: func(src, dst net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
			s.fastPerm(src, dst, relay, peer, false)
			s.reg.with(fiveTupleKey(src, dst), func(e *allocEntry) {
				p := peer.String()
				if e.perms[p]--; e.perms[p] <= 0 {
					delete(e.perms, p)
				}
			})
			s.changed(fiveTupleKey(src, dst))
			s.m.permissions.Dec()
		},
		OnChannelCreated: func(src, dst net.Addr, _, _, _ string, relay, peer net.Addr, number uint16) {
			s.reg.with(fiveTupleKey(src, dst), func(e *allocEntry) { e.chans[number] = addrString(peer) })
			s.fastPath(src, dst, relay, peer, number, true)
			s.changed(fiveTupleKey(src, dst))
		},
		OnChannelDeleted: func(src, dst net.Addr, _, _, _ string, relay, peer net.Addr, number uint16) {
			s.reg.with(fiveTupleKey(src, dst), func(e *allocEntry) { delete(e.chans, number) })
			s.fastPath(src, dst, relay, peer, number, false)
			s.changed(fiveTupleKey(src, dst))
		},
	}
}

// udpFast returns the listener sockets a UDP client's 5-tuple may have
// arrived on and the relay socket of relay, for the fast path; ok is false
// for stream clients, TCP allocations and sockets without a fast path.
func (s *Server) udpFast(src, dst, relay net.Addr) (client netip.AddrPort, lpcs []*listenPacketConn, rc *relayPacketConn, ok bool) {
	return s.udpFastHandle(src, dst, s.alloc.lookup(relay))
}

func (s *Server) udpFastHandle(src, dst net.Addr, h *relayHandle) (client netip.AddrPort, lpcs []*listenPacketConn, rc *relayPacketConn, ok bool) {
	cl, ok1 := src.(*net.UDPAddr)
	if !ok1 || dst == nil {
		return client, nil, nil, false
	}
	s.mu.Lock()
	lpcs = s.locals[dst.String()]
	s.mu.Unlock()
	if len(lpcs) == 0 || lpcs[0].udp == nil {
		return client, nil, nil, false
	}
	if h != nil {
		rc, _ = h.closer.(*relayPacketConn)
	}
	return unmapAP(cl.AddrPort()), lpcs, rc, rc != nil
}

// fastPath installs or removes a UDP channel in the listeners' and the
// relay's fast paths.
func (s *Server) fastPath(src, dst, relay, peer net.Addr, number uint16, add bool) {
	peerAddr, ok := peer.(*net.UDPAddr)
	if !ok {
		return
	}
	client, lpcs, rc, ok := s.udpFast(src, dst, relay)
	pa := unmapAP(peerAddr.AddrPort())
	if !add {
		for _, lpc := range lpcs {
			lpc.removeChannel(client, number)
		}
		if rc != nil {
			rc.removePeer(pa, number)
		}
		return
	}
	if !ok {
		return
	}
	for _, lpc := range lpcs {
		lpc.addChannel(client, number, rc, pa)
	}
	rc.addPeer(pa, number, client, lpcs[0].udp)
}

// fastPerm adds or removes a permission in the relay's fast path.
func (s *Server) fastPerm(src, dst, relay net.Addr, peer net.IP, add bool) {
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		return
	}
	if _, _, rc, ok := s.udpFast(src, dst, relay); ok {
		if add {
			rc.addPerm(ip)
		} else {
			rc.removePerm(ip)
		}
	}
}

// fastAlloc makes a UDP client's new allocation known to the fast path
// (Send and Data indications), or forgets it.
func (s *Server) fastAlloc(src, dst net.Addr, h *relayHandle, add bool) {
	client, lpcs, rc, ok := s.udpFastHandle(src, dst, h)
	if !ok {
		return
	}
	if add {
		rc.setClient(client, lpcs[0].udp)
		rc.usePoller(s.alloc.nextPoller())
	}
	for _, lpc := range lpcs {
		if add {
			lpc.addAlloc(client, rc)
		} else {
			lpc.removeAlloc(client, rc)
		}
	}
}

// entryGone updates the gauges for an allocation that ended.
func (s *Server) entryGone(e *allocEntry) {
	if e.info.RelayTransport == "tcp" {
		s.m.allocTCP.Dec()
	} else {
		s.m.allocUDP.Dec()
	}
}

// noteLifetime records the lifetime the server just granted to a 5-tuple.
func (s *Server) noteLifetime(key string, lt time.Duration) {
	exp := s.now().Add(lt)
	s.reg.with(key, func(e *allocEntry) { e.info.Expires = exp })
	s.changed(key)
}

// changed tells OnChange about a UDP allocation's change.
func (s *Server) changed(key string) {
	if s.onChange != nil && strings.HasPrefix(key, "udp|") {
		s.onChange(key)
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort(), true
	case *net.TCPAddr:
		return a.AddrPort(), true
	}
	return netip.AddrPort{}, false
}
