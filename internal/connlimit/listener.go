package connlimit

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Accept backoff bounds, as net/http's Server.Serve.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Config bounds one listener. A zero or negative field turns its limit off.
type Config struct {
	// Name labels the listener's metrics and logs ("sip-external-tcp").
	Name string
	// MaxConns caps the connections open at once on the listener.
	MaxConns int
	// MaxConnsPerSource caps the connections open at once from one client
	// IPv4 address or IPv6 /64 (an IPv6 host usually holds a whole /64).
	MaxConnsPerSource int
	// HandshakeTimeout is how long a new connection has until Established
	// is called for it (its first request arrived, after any TLS and
	// WebSocket handshake); then it is closed. Only a caller that calls
	// Established may set it.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that has read and written nothing for
	// this long, unless Busy says it is still in use.
	IdleTimeout time.Duration
	// Busy, when set, is asked before an idle connection is closed; true
	// keeps it open for another IdleTimeout.
	Busy func(remote net.Addr) bool
	// Descriptors, when set, refuses connections while fewer than KeepFree
	// file descriptors are free. Shared by every listener of the process.
	Descriptors *Reserve
	// KeepFree is this listener's share of free descriptors; 0 uses the
	// Reserve's own (NewReserve's keep). Listeners that should still answer
	// when others refuse get a smaller share.
	KeepFree int
	// Group, when set, counts the listener's connections together with
	// those of the other listeners given the same Group: MaxConns and
	// MaxConnsPerSource then cap them all together (the ports of one
	// service offered on a range). Listeners of a Group are given the same
	// caps. Nil: the listener counts its own.
	Group *Group
	// Refused, when set, is called with the reason of each connection
	// refused at accept (ReasonMaxConns, ReasonPerSource,
	// ReasonDescriptors), besides the metric; it must not block.
	Refused func(reason string)
}

// Deps are a Listener's collaborators.
type Deps struct {
	// Logger; nil discards. Logs carry a listener attribute.
	Logger *slog.Logger
	// Registerer for metrics; nil registers none. Listeners sharing a
	// registerer share the metric families, labelled by Config.Name.
	Registerer prometheus.Registerer
}

// Listener is a net.Listener that enforces a Config on the connections
// it accepts from the wrapped listener:
//
//   - Accept returns only connections within the caps, or net.ErrClosed
//     (or the wrapped listener's error once that is closed by someone
//     else); every other accept error is retried with backoff and shown
//     by Err until an accept succeeds again.
//   - A refused connection is closed with a reset before anything is read.
//   - The connections it returns count until their Close, which is safe
//     to call more than once; closing the Listener does not close them.
type Listener struct {
	inner net.Listener
	cfg   Config
	log   *slog.Logger
	m     listenerMetrics

	done      chan struct{}
	closeOnce sync.Once
	acceptErr atomic.Pointer[error] // the error of a failing accept, nil when accepting

	group *Group // the counts the caps apply to: cfg.Group, or the listener's own

	mu       sync.Mutex
	active   int // this listener's own connections
	byRemote map[string]*Conn

	warnMu   sync.Mutex
	lastWarn map[string]time.Time
}

// Wrap returns a Listener enforcing cfg on l's connections. It owns l:
// Close closes it.
func Wrap(l net.Listener, cfg Config, deps Deps) *Listener {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := cfg.Group
	if g == nil {
		g = NewGroup()
	}
	return &Listener{
		inner: l, cfg: cfg, log: log.With("listener", cfg.Name),
		m:    newMetrics(deps.Registerer).forListener(cfg.Name),
		done: make(chan struct{}), group: g, byRemote: map[string]*Conn{},
		lastWarn: map[string]time.Time{},
	}
}

// Accept waits for the next connection the limits admit.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return nil, net.ErrClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil, err // closed under us: the caller's serving ends
			}
			l.m.acceptErrors.Inc()
			if l.acceptErr.Swap(&err) == nil {
				l.log.Warn("accept failing; retrying", "err", err)
			}
			delay = min(max(2*delay, minBackoff), maxBackoff)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		if delay > 0 {
			delay = 0
			l.acceptErr.Store(nil)
			l.log.Info("accepting again")
		}
		lc, reason := l.admit(c)
		if lc != nil {
			return lc, nil
		}
		l.refuse(c, reason)
	}
}

// admit counts c in, or says why not.
func (l *Listener) admit(c net.Conn) (*Conn, string) {
	if r := l.cfg.Descriptors; r != nil && !r.Allow(l.cfg.KeepFree, fdOf(c)) {
		return nil, ReasonDescriptors
	}
	key := sourceKey(c.RemoteAddr())
	if reason := l.group.take(key, l.cfg.MaxConns, l.cfg.MaxConnsPerSource); reason != "" {
		return nil, reason
	}
	remote := c.RemoteAddr().String()
	lc := &Conn{Conn: c, l: l, key: key, remote: remote, accepted: time.Now()}
	lc.last.Store(lc.accepted.UnixNano())
	l.mu.Lock()
	l.active++
	l.byRemote[remote] = lc
	l.mu.Unlock()
	l.m.active.Inc()
	if d := l.firstCheck(); d > 0 {
		lc.mu.Lock()
		lc.timer = time.AfterFunc(d, lc.check)
		lc.mu.Unlock()
	}
	return lc, ""
}

func (l *Listener) firstCheck() time.Duration {
	if l.cfg.HandshakeTimeout > 0 {
		return l.cfg.HandshakeTimeout
	}
	return l.cfg.IdleTimeout
}

func (l *Listener) refuse(c net.Conn, reason string) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset: no TIME_WAIT kept for a refused client
	}
	c.Close()
	l.m.refused(reason).Inc()
	if l.cfg.Refused != nil {
		l.cfg.Refused(reason)
	}
	l.warnOnce(reason, "connection refused", "reason", reason, "remote", c.RemoteAddr().String())
}

// warnOnce logs at most once a minute per kind, so a flood costs a counter,
// not a log line per connection.
func (l *Listener) warnOnce(kind, msg string, args ...any) {
	l.warnMu.Lock()
	last := l.lastWarn[kind]
	now := time.Now()
	if now.Sub(last) < time.Minute {
		l.warnMu.Unlock()
		l.log.Debug(msg, args...)
		return
	}
	l.lastWarn[kind] = now
	l.warnMu.Unlock()
	l.log.Warn(msg+" (further ones this minute at debug level)", args...)
}

// release uncounts c; called once, by c's first Close.
func (l *Listener) release(c *Conn) {
	l.group.put(c.key)
	l.mu.Lock()
	l.active--
	if l.byRemote[c.remote] == c {
		delete(l.byRemote, c.remote)
	}
	l.mu.Unlock()
	l.m.active.Dec()
}

// Established marks the connection from remote (its RemoteAddr().String())
// as past its handshake: the handshake timeout no longer applies to it.
// It reports whether such a connection is open on the listener.
func (l *Listener) Established(remote string) bool {
	l.mu.Lock()
	c := l.byRemote[remote]
	l.mu.Unlock()
	if c == nil {
		return false
	}
	c.established.Store(true)
	return true
}

// Active returns the number of connections open on the listener (its
// Group's are counted by Group.Active).
func (l *Listener) Active() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active
}

// Err returns the error of the last accept when accepting is failing
// (being retried), nil while accepts succeed.
func (l *Listener) Err() error {
	if p := l.acceptErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Status says how a served listener fares, for readiness: "" while it
// serves, "not serving: why" once its serving ended (dead is why, nil while
// it serves), or "accept failing: err" while accepts are being retried (lim
// may be nil for a listener not wrapped).
func Status(dead *string, lim *Listener) string {
	if dead != nil {
		return "not serving: " + *dead
	}
	if lim != nil {
		if err := lim.Err(); err != nil {
			return "accept failing: " + err.Error()
		}
	}
	return ""
}

// Close closes the wrapped listener; a blocked Accept returns
// net.ErrClosed. Open connections are not touched. Safe to call twice.
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr returns the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// fdOf returns c's descriptor number, or -1.
func fdOf(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	_ = rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// sourceKey is what MaxConnsPerSource counts by: the IPv4 address, or the
// IPv6 /64.
func sourceKey(a net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// Conn is a connection a Listener admitted. Reads and writes that move
// bytes keep it from being idle.
type Conn struct {
	net.Conn
	l           *Listener
	key         netip.Addr
	remote      string
	accepted    time.Time
	last        atomic.Int64 // UnixNano of the last read or write that moved bytes
	established atomic.Bool

	mu     sync.Mutex
	timer  *time.Timer
	closed bool
}

func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// CloseWrite half-closes the connection when the wrapped one can (TCP),
// else closes it: a relay that forwards an EOF keeps working through the
// wrapper.
func (c *Conn) CloseWrite() error {
	if w, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return w.CloseWrite()
	}
	return c.Close()
}

// SyscallConn returns the wrapped connection's raw connection.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("connlimit: connection has no raw descriptor")
}

// NetConn returns the wrapped connection (as tls.Conn's NetConn does).
// Closing it directly leaves c counted: close c.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Close closes the connection and uncounts it. Safe to call twice.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	if first {
		c.l.release(c)
	}
	return err
}

// check runs on c's timer: the handshake deadline first, then the idle
// timeout for as long as the connection lives.
func (c *Conn) check() {
	cfg := &c.l.cfg
	now := time.Now()
	if cfg.HandshakeTimeout > 0 && !c.established.Load() && now.Sub(c.accepted) >= cfg.HandshakeTimeout {
		c.expire(ReasonHandshake)
		return
	}
	if cfg.IdleTimeout <= 0 {
		return
	}
	next := cfg.IdleTimeout
	if quiet := now.Sub(time.Unix(0, c.last.Load())); quiet < cfg.IdleTimeout {
		next = cfg.IdleTimeout - quiet
	} else if cfg.Busy == nil || !cfg.Busy(c.RemoteAddr()) {
		c.expire(ReasonIdle)
		return
	}
	c.mu.Lock()
	if !c.closed {
		c.timer.Reset(next)
	}
	c.mu.Unlock()
}

func (c *Conn) expire(reason string) {
	c.l.m.closed(reason).Inc()
	c.l.log.Debug("connection closed", "reason", reason, "remote", c.remote)
	c.Close()
}
