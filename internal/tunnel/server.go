package tunnel

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
)

// Deps are what a tunnel end needs from its surroundings.
type Deps struct {
	// Logger gets the end's logs; a component attribute is added.
	Logger *slog.Logger
	// State keeps the identity, pins and tokens. Required.
	State StateStore
	// OnState is called with "up" or "down" on every state change.
	// Optional; it must not block.
	OnState func(state string)
	// Registerer receives the tunnel metrics. Nil: none exported.
	Registerer prometheus.Registerer
	// OnEvent is called with a severity ("info", "warning") and a
	// message on other notable changes: a service moving to another
	// client, a client whose server certificate changed. Optional; it
	// must not block.
	OnEvent func(severity, message string)
}

// Server is the DMZ end: it listens, accepts enrollments and the pinned
// clients, and offers the configured services to local users.
type Server struct {
	*end
	deps Deps
	tls  *tls.Config
	rot  sync.Mutex // one rotation at a time

	connections atomic.Uint64 // tunnel connections accepted
	clients     clientSet
	laneConns   laneGroup  // the clients' datagram connections
	emu         sync.Mutex // orders elections
	routes      atomic.Pointer[routes]

	mu    sync.Mutex // guards st, fresh, cert and fp
	st    State
	fresh bool // identity made by NewServer, not saved yet
	cert  tls.Certificate
	fp    string
}

// NewServer validates cfg and loads (or creates) the server's identity.
func NewServer(cfg Config, deps Deps) (*Server, error) {
	p, err := prepare(cfg, deps, RoleServer)
	if err != nil {
		return nil, err
	}
	s := &Server{fresh: p.fresh, end: p.end, deps: p.deps, fp: p.fp, st: p.st, cert: p.cert}
	s.control = func(conn *quic.Conn, st *quic.Stream) {
		if err := serveControl(conn, st, s.applyControl); err != nil {
			s.log.Warn("tunnel control request refused", "addr", conn.RemoteAddr().String(), "err", err)
		}
	}
	s.pick = s.pickFlow
	s.tls = &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The certificate changes when the server rotates it.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			c := s.cert
			return &c, nil
		},
		ClientAuth:       tls.RequireAnyClientCert,
		NextProtos:       []string{alpnTunnel, alpnDatagrams, alpnTunnelV1, alpnEnroll},
		VerifyConnection: s.verify,
	}
	register(p.deps.Registerer, s.Stats)
	return s, nil
}

// prepared is what both constructors start from.
type prepared struct {
	end   *end
	deps  Deps
	st    State
	cert  tls.Certificate
	fp    string
	fresh bool // the identity was made now and is not saved yet
}

// prepare validates cfg for role, fills defaults and loads the state,
// making an identity in memory when there is none. It does no writes.
func prepare(cfg Config, deps Deps, role string) (prepared, error) {
	cfg.Role = role
	if err := cfg.Validate("tunnel"); err != nil {
		return prepared{}, err
	}
	if deps.State == nil {
		return prepared{}, errors.New("tunnel: no state store")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	st, err := deps.State.Load()
	if err != nil {
		return prepared{}, err
	}
	fresh := len(st.CertPEM) == 0
	cert, fp, err := identity(&st)
	if err != nil {
		return prepared{}, err
	}
	return prepared{end: newEnd(cfg, deps.Logger.With("component", "tunnel", "role", role)), deps: deps, st: st, cert: cert, fp: fp, fresh: fresh}, nil
}

// saveIdentity stores an identity NewServer made (New does no writes, so a
// configuration check leaves the state alone).
func (s *Server) saveIdentity() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fresh {
		return nil
	}
	if err := s.deps.State.Save(s.st); err != nil {
		return err
	}
	s.fresh = false
	return nil
}

// Fingerprint is the server certificate's SHA-256 fingerprint.
func (s *Server) Fingerprint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fp
}

// verify admits any certificate to enrollment and only pinned ones to the
// tunnel.
func (s *Server) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrUnknownPeer
	}
	if cs.NegotiatedProtocol == alpnEnroll {
		return nil
	}
	fp := Fingerprint(cs.PeerCertificates[0].Raw)
	s.mu.Lock()
	ok := slices.Contains(s.st.Peers, fp)
	s.mu.Unlock()
	if !ok {
		s.rejected.Add(1)
		s.log.Warn("tunnel client refused: certificate not pinned", "fingerprint", fp)
		return ErrUnknownPeer
	}
	return nil
}

// CreateToken issues a one-time enrollment token valid for the configured
// TokenTTL.
func (s *Server) CreateToken() (string, time.Time, error) {
	secret, hash, err := newTokenSecret()
	if err != nil {
		return "", time.Time{}, err
	}
	exp := time.Now().Add(s.cfg.TokenTTL).UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	next := cloneState(s.st)
	now := time.Now()
	next.Tokens = slices.DeleteFunc(next.Tokens, func(t Token) bool { return !t.Used && now.After(t.Expires) })
	next.Tokens = append(next.Tokens, Token{Hash: hash, Expires: exp})
	if err := s.deps.State.Save(next); err != nil {
		return "", time.Time{}, err
	}
	s.st, s.fresh = next, false
	return tokenPrefix + secret + "." + s.fp, exp, nil
}

// Peers lists the pinned client fingerprints.
func (s *Server) Peers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.st.Peers)
}

// redeem checks a token and pins clientFP with it.
func (s *Server) redeem(tok, clientFP string) error {
	secret, fp, err := parseToken(tok)
	if err != nil {
		return err
	}
	hash := hashSecret(secret)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !equalHex(fp, s.fp) {
		return fmt.Errorf("%w: names another server", ErrToken)
	}
	i := slices.IndexFunc(s.st.Tokens, func(t Token) bool { return equalHex(t.Hash, hash) })
	switch {
	case i < 0:
		return ErrToken
	case s.st.Tokens[i].Used:
		return ErrTokenUsed
	case time.Now().After(s.st.Tokens[i].Expires):
		return ErrTokenExpired
	}
	next := cloneState(s.st)
	next.Tokens[i].Used = true
	next.Tokens[i].UsedBy = clientFP
	if !slices.Contains(next.Peers, clientFP) {
		next.Peers = append(next.Peers, clientFP)
	}
	if err := s.deps.State.Save(next); err != nil {
		return err
	}
	s.st = next
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := s.stats(RoleServer)
	st.Connections, st.Fingerprint, st.Clients = s.connections.Load(), s.Fingerprint(), s.clients.len()
	st.ClientList = s.clients.list(s.conn.Load())
	rt := s.routes.Load()
	for i := range st.Services {
		svc, _ := s.cfg.service(st.Services[i].Name)
		if svc.Target != "" {
			continue
		}
		st.Services[i].Mode = cmp.Or(svc.Mode, ModeOne)
		st.Services[i].ServedBy = rt.servedBy(svc.Name)
	}
	return st
}

// Dial opens a TCP flow of the named service to the inside through the
// tunnel.
func (s *Server) Dial(ctx context.Context, service string) (net.Conn, error) {
	return s.openFlow(ctx, service)
}

// Run listens on cfg.Listen and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	pc, err := net.ListenPacket("udp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("tunnel: listen: %w", err)
	}
	defer pc.Close()
	return s.Serve(ctx, pc)
}

// Serve serves the tunnel on pc (which the caller keeps and closes) and the
// services' local listeners until ctx ends. It returns nil on a clean stop.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	if err := s.saveIdentity(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := &quic.Transport{Conn: pc}
	defer tr.Close()
	ln, err := tr.Listen(s.tls, quicConfig(s.cfg))
	if err != nil {
		return fmt.Errorf("tunnel: listen: %w", err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer s.closeFlows()
	defer cancel()
	if err := s.listenServices(ctx, &wg); err != nil {
		return err
	}
	s.sendLoops(ctx, &wg)
	s.log.Info("tunnel server listening", "addr", pc.LocalAddr().String(), "fingerprint", s.Fingerprint())
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				s.shutdownClients()
				return nil
			}
			return fmt.Errorf("tunnel: accept: %w", err)
		}
		switch c.ConnectionState().TLS.NegotiatedProtocol {
		case alpnEnroll:
			wg.Go(func() { s.enroll(ctx, c) })
		case alpnTunnel:
			s.connections.Add(1)
			s.connected(c)
			fp := peerFingerprint(c)
			for _, old := range s.clients.add(c, fp) {
				_ = old.CloseWithError(codeReplaced, "replaced by a newer connection")
			}
			// The client dials its datagram connections after this one:
			// those it holds now belong to a connection it left.
			for _, old := range s.laneConns.of(fp) {
				_ = old.CloseWithError(codeReplaced, "replaced by a newer connection")
			}
			s.log.Info("tunnel client connected", "addr", c.RemoteAddr().String())
			s.elect()
			wg.Go(func() { s.serveConn(ctx, c, &wg) })
		case alpnDatagrams:
			wg.Go(func() { s.serveLane(ctx, c, &wg) })
		case alpnTunnelV1:
			s.rejected.Add(1)
			s.log.Warn("tunnel client refused", "addr", c.RemoteAddr().String(), "err", ErrVersion, "peer", alpnTunnelV1, "want", alpnTunnel)
			_ = c.CloseWithError(codeVersion, ErrVersion.Error()+": "+alpnTunnelV1+", want "+alpnTunnel)
		default:
			_ = c.CloseWithError(codeShutdown, "no protocol")
		}
	}
}

func (s *Server) changed(state string) {
	if s.deps.OnState != nil {
		s.deps.OnState(state)
	}
}

// serveConn carries the client's flows until the connection ends.
func (s *Server) serveConn(ctx context.Context, c *quic.Conn, wg *sync.WaitGroup) {
	s.end.serveConn(ctx, c, wg)
	if s.clients.remove(c) {
		s.log.Warn("tunnel client disconnected", "addr", c.RemoteAddr().String(), "cause", context.Cause(c.Context()))
	}
	s.elect()
}

// enroll reads one token from the client's first stream and pins the
// client's certificate when the token is good.
func (s *Server) enroll(ctx context.Context, c *quic.Conn) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	defer func() { _ = c.CloseWithError(codeShutdown, "") }()
	fp := Fingerprint(c.ConnectionState().TLS.PeerCertificates[0].Raw)
	st, err := c.AcceptStream(ctx)
	if err != nil {
		return
	}
	_ = st.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(&limitedReader{r: st, n: 256}).ReadString('\n')
	if err == nil {
		err = s.redeem(strings.TrimSpace(line), fp)
	}
	if err != nil {
		s.enrollRefused.Add(1)
		s.log.Warn("tunnel enrollment refused", "addr", c.RemoteAddr().String(), "fingerprint", fp, "err", err)
		_, _ = st.Write([]byte("refused " + strings.TrimPrefix(err.Error(), "tunnel: ") + "\n"))
	} else {
		s.enrollAccepted.Add(1)
		s.log.Info("tunnel client enrolled", "addr", c.RemoteAddr().String(), "fingerprint", fp)
		_, _ = st.Write([]byte("ok\n"))
	}
	_ = st.Close()
	// Wait for the client to read the answer and close.
	<-ctx.Done()
}

type limitedReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("tunnel: enrollment line too long")
	}
	if len(b) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= n
	return n, err
}

func quicConfig(cfg Config) *quic.Config {
	return &quic.Config{
		KeepAlivePeriod:      cfg.KeepAlive,
		MaxIdleTimeout:       cfg.IdleTimeout,
		HandshakeIdleTimeout: 2 * cfg.IdleTimeout,
		EnableDatagrams:      true,
		MaxIncomingStreams:   10000,
	}
}

// Rotate makes a new key pair and certificate for the server, has every
// connected client pin it over the tunnel, starts presenting it and has the
// clients retire the old one. A client must be connected; enrolled clients
// that are not keep only the old certificate's pin and must enroll again.
// It returns the new fingerprint.
func (s *Server) Rotate(ctx context.Context) (string, error) {
	s.rot.Lock()
	defer s.rot.Unlock()
	conns := s.clients.conns()
	if len(conns) == 0 {
		return "", fmt.Errorf("%w: %w", ErrRotate, ErrNoPeer)
	}
	old := s.Fingerprint()
	fp, err := rotate(ctx, conns, func(certPEM, keyPEM []byte, cert tls.Certificate) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		next := cloneState(s.st)
		next.CertPEM, next.KeyPEM = certPEM, keyPEM
		if err := s.deps.State.Save(next); err != nil {
			return err
		}
		s.st, s.fresh, s.cert, s.fp = next, false, cert, Fingerprint(cert.Certificate[0])
		return nil
	})
	if fp != "" {
		s.log.Info("tunnel certificate rotated", "old", old, "new", fp, "err", err)
	}
	return fp, err
}

// applyControl changes the server's pins for a control request from a
// client (a client certificate rotation) or records its priority.
func (s *Server) applyControl(conn *quic.Conn, verb, newFP string) error {
	switch verb {
	case controlPriority:
		return s.setPriority(conn, newFP)
	case controlServices:
		return s.setServices(conn, newFP)
	}
	return changePins(&s.mu, &s.st, s.deps.State, s.log, "client", conn, verb, newFP)
}

// connected retires the client certificate that the one conn was
// authenticated with replaces, when a rotation was cut short.
func (s *Server) connected(conn *quic.Conn) {
	retireReplaced(&s.mu, &s.st, s.deps.State, s.log, conn)
}
