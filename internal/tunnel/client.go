package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Client is the inside end: it dials the server, keeps the connection up,
// and delivers the server's flows to the services' targets.
type Client struct {
	*end
	deps Deps
	cert tls.Certificate

	mu  sync.Mutex // guards st and cert
	st  State
	rot sync.Mutex // one rotation at a time
	// attempts counts failed dials; with Discover it picks the SRV target.
	attempts atomic.Int64
	// migrations counts connections moved to a new local address;
	// connections those established.
	migrations, connections atomic.Uint64
	// laneDrops counts extra datagram connections that went down.
	laneDrops atomic.Uint64
	// presented is the certificate fingerprint the server presented that
	// is not pinned here (the server rotated while this client was away);
	// nil while the pins match. tried is the configured token already
	// presented for it.
	presented atomic.Pointer[string]
	tried     string
	// kick wakes Run's reconnect wait after an enrollment.
	kick chan struct{}
}

// NewClient validates cfg and loads (or creates) the client's identity.
func NewClient(cfg Config, deps Deps) (*Client, error) {
	p, err := prepare(cfg, deps, RoleClient)
	if err != nil {
		return nil, err
	}
	// The identity is saved with the enrollment's pin, so New does no
	// writes; until then a new one each start costs nothing.
	c := &Client{end: p.end, deps: p.deps, cert: p.cert, st: p.st, kick: make(chan struct{}, 1)}
	c.control = func(conn *quic.Conn, st *quic.Stream) {
		if err := serveControl(conn, st, c.applyControl); err != nil {
			c.log.Warn("tunnel control request refused", "err", err)
		}
	}
	register(p.deps.Registerer, c.Stats)
	return c, nil
}

// Dial opens a TCP flow of the named reverse service to the DMZ node
// through the tunnel.
func (c *Client) Dial(ctx context.Context, service string) (net.Conn, error) {
	return c.openFlow(ctx, service)
}

// Fingerprint is the client certificate's SHA-256 fingerprint.
func (c *Client) Fingerprint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Fingerprint(c.cert.Certificate[0])
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	st := c.stats(RoleClient)
	st.Connections, st.Migrations, st.Fingerprint = c.connections.Load(), c.migrations.Load(), c.Fingerprint()
	st.DatagramConnectionDrops = c.laneDrops.Load()
	if fp := c.presented.Load(); fp != nil {
		st.Problem, st.PresentedFingerprint = ProblemServerChanged, *fp
	}
	return st
}

func (c *Client) tlsConfig(alpn string, pinned func(fp string) bool) *tls.Config {
	c.mu.Lock()
	cert := c.cert
	c.mu.Unlock()
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{alpn},
		ServerName:   "portico-tunnel",
		// The server's certificate is self-signed; it is checked against the
		// pinned fingerprint below instead of a CA.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !pinned(Fingerprint(cs.PeerCertificates[0].Raw)) {
				return ErrUnknownPeer
			}
			return nil
		},
	}
}

// Enroll presents a one-time token to the server and, when the server
// accepts it, pins the server's certificate.
func (c *Client) Enroll(ctx context.Context, token string) error {
	_, serverFP, err := parseToken(token)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var other atomic.Pointer[string]
	conn, path, err := c.dialPath(ctx, c.tlsConfig(alpnEnroll, func(fp string) bool {
		ok := equalHex(fp, serverFP)
		if !ok {
			other.Store(&fp)
		}
		return ok
	}))
	if fp := other.Load(); err != nil && fp != nil {
		// An old token (issued before a rotation) or another server's.
		return fmt.Errorf("%w: it names server certificate %s, the server presents %s", ErrToken, serverFP, *fp)
	}
	if err != nil {
		return fmt.Errorf("tunnel: enroll: %w", err)
	}
	defer path.close()
	defer func() { _ = conn.CloseWithError(codeShutdown, "") }()
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("tunnel: enroll: %w", err)
	}
	_ = st.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := st.Write([]byte(strings.TrimSpace(token) + "\n")); err != nil {
		return fmt.Errorf("tunnel: enroll: %w", err)
	}
	_ = st.Close()
	line, err := bufio.NewReader(&limitedReader{r: st, n: 256}).ReadString('\n')
	if err != nil {
		return fmt.Errorf("tunnel: enroll: %w", err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return fmt.Errorf("%w: %s", ErrRefused, strings.TrimPrefix(line, "refused "))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := cloneState(c.st)
	next.Peers = []string{serverFP}
	if err := c.deps.State.Save(next); err != nil {
		return err
	}
	c.st = next
	c.log.Info("tunnel enrolled", "server", c.server(), "fingerprint", serverFP)
	if c.presented.Swap(nil) != nil {
		c.event("info", "tunnel client enrolled again with the server's new certificate "+serverFP)
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

func (c *Client) pinned(fp string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.st.Peers, fp)
}

// dialPath makes one QUIC connection to the server on a fresh socket, bound
// to the address the system routes toward the server from, so that a later
// change of that address is seen (followAddress); the path's close closes
// its sockets once the connection is done with.
func (c *Client) dialPath(ctx context.Context, tc *tls.Config) (*quic.Conn, *clientPath, error) {
	n := c.attempts.Load()
	raddr, err := c.serverAddr(ctx, int(n))
	if err != nil {
		c.attempts.Add(1)
		return nil, nil, err
	}
	p := &clientPath{raddr: raddr}
	src, _ := routeSource(raddr)
	tr, err := p.newPathTransport(src)
	if err != nil {
		return nil, nil, err
	}
	conn, err := tr.Dial(ctx, raddr, tc, quicConfig(c.cfg))
	if err != nil {
		c.attempts.Add(1) // with Discover, the next SRV target
		p.close()
		return nil, nil, err
	}
	return conn, p, nil
}

// dial is dialPath with a release that closes the path's sockets.
func (c *Client) dial(ctx context.Context, tc *tls.Config) (*quic.Conn, func(), error) {
	conn, p, err := c.dialPath(ctx, tc)
	if err != nil {
		return nil, nil, err
	}
	return conn, p.close, nil
}

// connect makes one tunnel connection attempt; it is what Run repeats.
// It returns ErrNotEnrolled before Enroll succeeded.
func (c *Client) connect(ctx context.Context) (*quic.Conn, func(), error) {
	conn, p, err := c.connectPath(ctx)
	if err != nil {
		return nil, nil, err
	}
	return conn, p.close, nil
}

// connectPath is connect with the connection's path, which Run moves when
// the local address changes.
func (c *Client) connectPath(ctx context.Context) (*quic.Conn, *clientPath, error) {
	c.mu.Lock()
	enrolled := len(c.st.Peers) > 0
	c.mu.Unlock()
	if !enrolled {
		return nil, nil, ErrNotEnrolled
	}
	ctx, cancel := context.WithTimeout(ctx, 2*c.cfg.IdleTimeout)
	defer cancel()
	var presented atomic.Pointer[string]
	conn, path, err := c.dialPath(ctx, c.tlsConfig(alpnTunnel, func(fp string) bool {
		ok := c.pinned(fp)
		if !ok {
			presented.Store(&fp)
		}
		return ok
	}))
	if fp := presented.Load(); err != nil && fp != nil {
		err = &ServerChangedError{Presented: *fp, Err: err}
	}
	// A server of an older build offers no protocol this one speaks; TLS
	// ends the handshake with a no_application_protocol alert (120).
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode == quic.TransportErrorCode(0x100+120) {
		err = fmt.Errorf("%w: the server does not offer %s: %w", ErrVersion, alpnTunnel, err)
	}
	return conn, path, err
}

// Run keeps the tunnel up until ctx ends: it connects, serves the
// connection until it fails, then reconnects after a jittered exponential
// backoff. It returns nil on a clean stop and ErrNotEnrolled at once when
// the client has no pinned server.
func (c *Client) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		c.closeFlows()
		wg.Wait()
	}()
	if err := c.enrollFirst(ctx); err != nil {
		return err
	}
	if err := c.listenServices(ctx, &wg); err != nil {
		return err
	}
	c.sendLoops(ctx, &wg)
	failures := 0
	everUp := false
	var follow sync.WaitGroup // the live connection's helpers
	defer follow.Wait()
	for {
		conn, path, err := c.connectPath(ctx)
		if errors.Is(err, ErrNotEnrolled) {
			return err
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d := backoff(c.cfg.BackoffMin, c.cfg.BackoffMax, failures)
			failures++
			lvl := slog.LevelDebug
			if errors.Is(err, ErrVersion) {
				lvl = slog.LevelWarn
			}
			var sc *ServerChangedError
			if errors.As(err, &sc) {
				c.serverChanged(ctx, sc.Presented)
			} else {
				c.log.Log(ctx, lvl, "tunnel connect failed", "server", c.server(), "err", err, "retry_in", d)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-c.kick:
				failures = 0
			case <-time.After(d):
			}
			continue
		}
		c.presented.Store(nil)
		if everUp {
			c.reconnects.Add(1)
		}
		everUp = true
		c.connections.Add(1)
		c.connected(conn)
		follow.Go(func() {
			// The server ranks its clients by it; an older server of this
			// protocol version refuses it, and all clients rank the same.
			// The server routes no service to this client before it knows
			// which it delivers.
			if err := control(ctx, conn, c.announcement()); err != nil {
				c.log.Warn("tunnel services not announced", "err", err)
			}
			if err := control(ctx, conn, controlPriority+" "+strconv.Itoa(c.cfg.Priority)); err != nil {
				c.log.Debug("tunnel priority not announced", "err", err)
			}
		})
		c.conn.Store(conn)
		c.changed("up")
		c.log.Info("tunnel up", "server", c.server())
		since := time.Now()
		fctx, stopFollow := context.WithCancel(ctx)
		follow.Go(func() { c.followAddress(fctx, conn, path, true) })
		c.runLanes(fctx, &follow, &wg)
		c.serveConn(ctx, conn, &wg)
		stopFollow()
		follow.Wait()
		c.conn.Store(nil)
		path.close()
		if ctx.Err() != nil {
			c.changed("down")
			return nil
		}
		c.log.Warn("tunnel down", "server", c.server(), "cause", context.Cause(conn.Context()))
		c.changed("down")
		// A connection the server closes at once (a refused certificate is
		// only known after the client's handshake) counts as a failure, so
		// the retries back off; one that lived is a fresh start.
		if time.Since(since) > c.cfg.IdleTimeout {
			failures = 0
			continue
		}
		d := backoff(c.cfg.BackoffMin, c.cfg.BackoffMax, failures)
		failures++
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// serverChanged handles a server that presented a certificate fp not
// pinned here: the server rotated it while this client was not connected,
// so the client never pinned the new one. The client keeps its identity,
// reports the state (Stats.Problem, an event, a warning), and enrolls again
// when its configured token names fp; otherwise it waits for a new token
// (Enroll) while it keeps trying the old pin.
func (c *Client) serverChanged(ctx context.Context, fp string) {
	if old := c.presented.Swap(&fp); old == nil || *old != fp {
		c.mu.Lock()
		pinned := slices.Clone(c.st.Peers)
		c.mu.Unlock()
		c.log.Warn("tunnel "+ProblemServerChanged, "server", c.server(), "presented", fp, "pinned", pinned)
		c.event("warning", "tunnel "+ProblemServerChanged+" (the server presents "+fp+")")
	}
	tok := c.cfg.EnrollmentToken
	if tok == "" || tok == c.tried {
		return
	}
	if _, tfp, err := parseToken(tok); err != nil || !equalHex(tfp, fp) {
		return
	}
	c.tried = tok
	if err := c.Enroll(ctx, tok); err != nil {
		c.log.Warn("tunnel enrollment with the configured token failed", "server", c.server(), "err", err)
	}
}

// event records a notable change through Deps.OnEvent.
func (c *Client) event(severity, msg string) {
	if c.deps.OnEvent != nil {
		c.deps.OnEvent(severity, msg)
	}
}

// enrollFirst presents cfg.EnrollmentToken when the client is not enrolled,
// retrying while the server cannot be reached; a refusal is final.
func (c *Client) enrollFirst(ctx context.Context) error {
	if c.Enrolled() || c.cfg.EnrollmentToken == "" {
		return nil
	}
	for n := 0; ; n++ {
		err := c.Enroll(ctx, c.cfg.EnrollmentToken)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrRefused) || errors.Is(err, ErrToken) {
			return err
		}
		c.log.Warn("tunnel enrollment failed; retrying", "server", c.server(), "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff(c.cfg.BackoffMin, c.cfg.BackoffMax, n)):
		}
	}
}

// Enrolled reports whether the client has a pinned server.
func (c *Client) Enrolled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.st.Peers) > 0
}

// backoff is min·2^n capped at max, minus a random part of up to half.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n < 30 && lo<<n < hi {
		d = lo << n
	}
	return d - rand.N(d/2+1)
}

func (c *Client) changed(state string) {
	if c.deps.OnState != nil {
		c.deps.OnState(state)
	}
}

// Rotate makes a new key pair and certificate for the client, has the
// server pin it over the tunnel, starts using it and has the server retire
// the old one. The tunnel must be up; it stays up throughout. It returns
// the new fingerprint.
func (c *Client) Rotate(ctx context.Context) (string, error) {
	c.rot.Lock()
	defer c.rot.Unlock()
	conn := c.conn.Load()
	if conn == nil {
		return "", fmt.Errorf("%w: %w", ErrRotate, ErrNoPeer)
	}
	old := c.Fingerprint()
	fp, err := rotate(ctx, []*quic.Conn{conn}, func(certPEM, keyPEM []byte, cert tls.Certificate) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		next := cloneState(c.st)
		next.CertPEM, next.KeyPEM = certPEM, keyPEM
		if err := c.deps.State.Save(next); err != nil {
			return err
		}
		c.st, c.cert = next, cert
		return nil
	})
	if fp != "" {
		c.log.Info("tunnel certificate rotated", "old", old, "new", fp, "err", err)
	}
	return fp, err
}

// applyControl changes the client's pins for a control request from the
// server (a server certificate rotation).
func (c *Client) applyControl(conn *quic.Conn, verb, newFP string) error {
	if verb == controlPriority || verb == controlServices {
		return fmt.Errorf("%w: only a server takes a priority", ErrHeader)
	}
	return changePins(&c.mu, &c.st, c.deps.State, c.log, "server", conn, verb, newFP)
}

// connected retires the server certificate that the one conn was
// authenticated with replaces, when a rotation was cut short.
func (c *Client) connected(conn *quic.Conn) {
	retireReplaced(&c.mu, &c.st, c.deps.State, c.log, conn)
}
