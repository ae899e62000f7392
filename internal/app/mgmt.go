package app

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/web"
)

// newConsole builds the web console in front of the API: the management
// listener serves the console's pages and passes /api/, /healthz, /readyz
// and /metrics to the API.
func newConsole(a *api.Server, reg prometheus.Gatherer, log *slog.Logger) (*web.Server, error) {
	return web.New(web.Config{}, web.Deps{API: a, Gatherer: reg, Logger: log})
}

// mgmtACL is management.allowed_networks: the client networks whose TCP
// connections the management listener accepts. Empty allows any. Loopback
// clients are always allowed, so the CLI on the node itself can never be
// locked out by a bad list. It is swapped whole when the configuration
// changes and read lock-free on every accept.
type mgmtACL struct {
	nets   atomic.Pointer[[]netip.Prefix]
	denied prometheus.Counter
	// admit, when set before serving, also refuses what policy.acl.management
	// denies and what the guard blocks (loopback excepted).
	admit func(netip.Addr) bool
}

func newMgmtACL() *mgmtACL {
	return &mgmtACL{denied: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portico_management_denied_connections_total",
		Help: "Connections to the management listener refused by management.allowed_networks.",
	})}
}

// set installs networks already checked by config validation; a network
// that does not parse is skipped.
func (a *mgmtACL) set(networks []string) {
	var ps []netip.Prefix
	for _, n := range networks {
		if p, err := netip.ParsePrefix(n); err == nil {
			ps = append(ps, p.Masked())
		}
	}
	a.nets.Store(&ps)
}

func (a *mgmtACL) allows(addr net.Addr) bool {
	ps := a.nets.Load()
	if ps == nil {
		ps = &[]netip.Prefix{}
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return len(*ps) == 0
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return len(*ps) == 0
	}
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return true
	}
	if a.admit != nil && !a.admit(ip) {
		return false
	}
	if len(*ps) == 0 {
		return true
	}
	for _, p := range *ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// aclListener closes connections the ACL refuses before any TLS byte is
// exchanged, so a refused client learns nothing but a reset.
type aclListener struct {
	net.Listener
	acl *mgmtACL
	log *slog.Logger
}

func (l aclListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.acl.allows(c.RemoteAddr()) {
			return c, err
		}
		l.acl.denied.Inc()
		l.log.Debug("connection refused by management.allowed_networks", "remote", c.RemoteAddr().String())
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

// mgmtServer is the management HTTPS listener. Its address can change while
// it runs: the new socket is bound first (so a bad address refuses the
// change), then served, then the old server drains.
type mgmtServer struct {
	handler http.Handler
	tls     *tls.Config
	log     *slog.Logger
	acl     *mgmtACL

	mu      sync.Mutex
	cur     *http.Server
	curLn   net.Listener
	started bool
	errs    chan error
	closed  bool
}

type preparedListener struct {
	ln net.Listener
}

func (p *preparedListener) abandon() {
	if p != nil {
		p.ln.Close()
	}
}

func newMgmtServer(h http.Handler, tc *tls.Config, log *slog.Logger) *mgmtServer {
	return &mgmtServer{handler: h, tls: tc, log: log, acl: newMgmtACL(), errs: make(chan error, 4)}
}

func (m *mgmtServer) newServer() *http.Server {
	return &http.Server{
		Handler:           m.handler,
		TLSConfig:         m.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // restore uploads
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
}

// bind opens the first listener.
func (m *mgmtServer) bind(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.curLn = ln
	m.mu.Unlock()
	return nil
}

func (m *mgmtServer) addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.curLn == nil {
		return ""
	}
	return m.curLn.Addr().String()
}

func (m *mgmtServer) serve(srv *http.Server, ln net.Listener) {
	// net/http retries only "temporary" accept errors and returns on the
	// rest (ENOBUFS, ENOMEM), which would stop the node: connlimit retries
	// every error of a live listener. No caps: management keeps the
	// descriptors outside listeners leave free (node.fd_reserve).
	// The ACL sees the raw connections, so a refused one is reset.
	guarded := connlimit.Wrap(aclListener{ln, m.acl, m.log}, connlimit.Config{Name: "management"}, connlimit.Deps{Logger: m.log})
	go func() {
		err := srv.Serve(tls.NewListener(guarded, m.tls))
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.errs <- err
		}
	}()
}

// run serves until ctx ends, then drains open requests within drain().
func (m *mgmtServer) run(ctx context.Context, drain func() time.Duration) error {
	m.mu.Lock()
	m.cur = m.newServer()
	m.started = true
	m.serve(m.cur, m.curLn)
	m.mu.Unlock()
	m.log.Info("management listening", "addr", m.addr())
	select {
	case <-ctx.Done():
	case err := <-m.errs:
		return err
	}
	m.mu.Lock()
	srv := m.cur
	m.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.Background(), drain())
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

// prepare binds a new address without serving it yet.
func (m *mgmtServer) prepare(addr string) (*preparedListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &preparedListener{ln: ln}, nil
}

// commit serves the prepared listener and drains the old server shortly
// after, so the response to the request that made the change is delivered.
func (m *mgmtServer) commit(p *preparedListener) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.cur
	m.curLn = p.ln
	if !m.started {
		return
	}
	m.cur = m.newServer()
	m.serve(m.cur, p.ln)
	m.log.Info("management listener moved", "addr", p.ln.Addr().String())
	go func() {
		time.Sleep(500 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := old.Shutdown(ctx); err != nil {
			old.Close()
		}
	}()
}

func (m *mgmtServer) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	if m.cur != nil {
		m.cur.Close()
	} else if m.curLn != nil {
		m.curLn.Close()
	}
}
