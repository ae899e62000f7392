package callsig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/store"
)

// Server proxies calls. Serve may run on several listeners at once;
// Close ends every call and waits for their goroutines.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// work hands a function to a call goroutine waiting for one (spawn).
	work chan func()

	mu    sync.Mutex
	calls map[*call]struct{}
	// byID indexes the calls by callIdentifier, for the loop check.
	byID  map[[16]byte][]*call
	conns map[net.Conn]struct{}
	// watching is set once the watcher of the HA peer's calls runs (ha.go).
	watching bool

	// peer holds the HA peer's answered calls (ha.go).
	hamu sync.Mutex
	peer map[string]*dormant

	active atomic.Int64
	// hist queues history records for the writer (history.go), which
	// closes histDone when it has written the last.
	hist                chan store.CallRecord
	histDone            chan struct{}
	histStart, histStop sync.Once
	// Counters for the service's metrics.
	Malformed, Rejected, Completed atomic.Uint64
	// KeepAlives counts the keep-alives sent on call-signalling
	// connections of H.460.18 endpoints.
	KeepAlives atomic.Uint64
	// HistoryDropped counts call records dropped because historyQueue
	// records were waiting for the store already.
	HistoryDropped atomic.Uint64
	// H245PortsExhausted counts calls released because a side's H.245
	// port range had no free port.
	H245PortsExhausted atomic.Uint64
	// Loops counts Setups refused as a call loop (a call that came back
	// to Portico, or whose hopCount ran out).
	Loops atomic.Uint64

	h245Ports [2]*h245proxy.Ports // by Side
}

// New validates cfg and deps; it does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Media == nil || deps.Route == nil {
		return nil, errors.Join(ErrConfig, errors.New("callsig: media and route are required"))
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: c, deps: deps, log: deps.Logger.With("component", "h323-callsig"),
		calls: map[*call]struct{}{}, byID: map[[16]byte][]*call{}, conns: map[net.Conn]struct{}{}, work: make(chan func())}
	for i, sc := range c.Sides {
		s.h245Ports[i] = h245proxy.NewPorts(sc.H245Ports)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Busy reports whether a call rides on the connection from remote; a
// connlimit.Config.Busy for the call-signalling listeners, so idle calls
// (no Q.931 traffic for hours is normal) are not closed.
func (s *Server) Busy(remote net.Addr) bool {
	ap := addrOf(remote)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.calls {
		for _, l := range c.legs {
			if l != nil && l.remote == ap {
				return true
			}
		}
	}
	return false
}

// Calls returns the number of calls in progress.
func (s *Server) Calls() int { return int(s.active.Load()) }

// Serve accepts call-signalling connections on ln from side from until ctx
// ends or ln is closed (a *connlimit.Listener is told when a connection
// carried its first message). It returns nil on a clean stop.
func (s *Server) Serve(ctx context.Context, ln net.Listener, from Side) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if !s.track(conn) {
			conn.Close()
			return nil
		}
		s.spawn(func() { s.handle(conn, from, ln) })
	}
}

// Accept serves conn, a call-signalling connection Portico opened
// itself, as one accepted on a listener of side from: its first message
// must be a Setup (an H.460.18 traversal client's connection after the
// Facility that answered the server's SCI).
func (s *Server) Accept(conn net.Conn, from Side) {
	if !s.track(conn) {
		conn.Close()
		return
	}
	s.spawn(func() { s.handle(conn, from, nil) })
}

// Close ends every call, waits for them and for their history records to
// be handed to the store.
func (s *Server) Close() error {
	s.cancel()
	s.mu.Lock()
	for c := range s.calls {
		c.abort() // ReleaseComplete to both sides first
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.stopHistory()
	return nil
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func addrOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// observe tells the guard what an outside source did; true when the
// source is now blocked.
func (s *Server) observe(side Side, src netip.Addr, k guard.Kind) bool {
	if s.deps.Guard == nil || side != Outside {
		return false
	}
	return s.deps.Guard.Observe(src, k)
}

// handle reads the first message of a new connection: a Setup starts a
// call, an outside Facility may be an H.460.18 endpoint answering SCI.
func (s *Server) handle(conn net.Conn, from Side, ln net.Listener) {
	handed := false
	defer func() {
		if !handed {
			conn.Close()
			s.untrack(conn)
		}
	}()
	src := addrOf(conn.RemoteAddr()).Addr()
	if from == Outside && s.deps.Guard != nil && s.deps.Guard.Blocked(src) {
		return
	}
	fr := h245proxy.NewFrameReader(conn, s.cfg.MaxFrame)
	conn.SetReadDeadline(time.Now().Add(s.cfg.SetupTimeout))
	p, err := fr.Next()
	read := time.Now()
	if err != nil {
		if errors.Is(err, h245proxy.ErrFrame) {
			s.Malformed.Add(1)
			s.observe(from, src, guard.Malformed)
		}
		return
	}
	var m q931.Message
	if err := m.Parse(p); err != nil {
		s.Malformed.Add(1)
		s.log.Debug("malformed first message", "from", conn.RemoteAddr(), "err", err)
		if s.observe(from, src, guard.Malformed) {
			return
		}
		writeFrame(conn, releaseComplete(0, true, CauseInvalidMessage, -1, nil))
		return
	}
	ui, uerr := decodeUU(&m)
	if m.Type == q931.Facility && from == Outside && uerr == nil && s.deps.Traversal != nil {
		if id := callID(ui); id != nil {
			var key [16]byte
			copy(key[:], id)
			if rest := fr.Buffered(); len(rest) > 0 {
				conn = &prefixed{Conn: conn, pre: append([]byte(nil), rest...)}
			}
			conn.SetReadDeadline(time.Time{})
			if s.deps.Traversal.Arrived(key, conn) {
				handed = true
				s.untrack(conn)
				return
			}
		}
	}
	if m.Type != q931.Setup || uerr != nil || ui.H323UuPdu.H323MessageBody.Setup == nil {
		s.Malformed.Add(1)
		if s.observe(from, src, guard.Malformed) {
			return
		}
		writeFrame(conn, releaseComplete(m.CallRef, !m.FromDestination, CauseInvalidMessage, -1, nil))
		return
	}
	if s.observe(from, src, guard.Invite) {
		return
	}
	if l, ok := ln.(interface{ Established(string) bool }); ok {
		l.Established(conn.RemoteAddr().String())
	}
	c := s.newCall(conn, fr, from, &m, ui, read)
	if c == nil {
		return
	}
	handed = true
	c.run(p, &m, ui, read)
}

// prefixed is a connection with bytes already read in front of it.
type prefixed struct {
	net.Conn
	pre []byte
}

// NetConn returns the connection underneath.
func (p *prefixed) NetConn() net.Conn { return p.Conn }

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

func decodeUU(m *q931.Message) (*h225.H323UserInformation, error) {
	uu, err := m.UserUser()
	if err != nil {
		return nil, err
	}
	ui := new(h225.H323UserInformation)
	if err := ui.Unmarshal(uu); err != nil {
		return nil, err
	}
	return ui, nil
}

// callID returns the callIdentifier GUID of a UUIE, if any.
func callID(ui *h225.H323UserInformation) []byte {
	b := &ui.H323UuPdu.H323MessageBody
	var id *h225.CallIdentifier
	switch {
	case b.Setup != nil:
		id = b.Setup.CallIdentifier
	case b.Facility != nil:
		id = b.Facility.CallIdentifier
	case b.Connect != nil:
		id = b.Connect.CallIdentifier
	}
	if id == nil || len(id.Guid) != 16 {
		return nil
	}
	return id.Guid
}

// writeTimeout bounds each write of a message to a call's connection.
const writeTimeout = 5 * time.Second

func writeFrame(w net.Conn, payload []byte) error {
	w.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := w.Write(h245proxy.AppendFrame(make([]byte, 0, len(payload)+4), payload))
	return err
}

// listenConfig leaves TCP keep-alive off on the connections a listener
// accepts (Go would turn it on at 15 s, four system calls per connection):
// a call's connections get the configured keep-alive when it is answered,
// and until then its answer deadline bounds them.
var listenConfig = net.ListenConfig{KeepAlive: -1}

// Listen opens a call-signalling listener on addr guarded by connlimit
// (H.225.0 on TCP 1720 by default): lc's caps, SetupTimeout as the
// handshake timeout unless lc sets one, and Busy so that a quiet call
// outlives lc.IdleTimeout. Serve it with Serve.
func (s *Server) Listen(addr netip.AddrPort, lc connlimit.Config, deps connlimit.Deps) (*connlimit.Listener, error) {
	ln, err := ListenTCP(context.Background(), addr)
	if err != nil {
		return nil, fmt.Errorf("callsig: listen %v: %w", addr, err)
	}
	if lc.HandshakeTimeout <= 0 {
		lc.HandshakeTimeout = s.cfg.SetupTimeout
	}
	lc.Busy = s.Busy
	return connlimit.Wrap(ln, lc, deps), nil
}

// ListenTCP opens a call-signalling listener on addr whose connections
// start without TCP keep-alive (listenConfig).
func ListenTCP(ctx context.Context, addr netip.AddrPort) (net.Listener, error) {
	return listenConfig.Listen(ctx, "tcp", addr.String())
}
