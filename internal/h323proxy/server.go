package h323proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323proxy/callsig"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/policy"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/udpbuf"
)

// Interface names, as in metrics and logs.
const (
	External = "external"
	Internal = "internal"
)

// History receives registration events.
type History interface {
	AddRegistrationEvent(ctx context.Context, r store.RegistrationEvent) error
}

// Guard is what the H.323 edge tells of, and asks about, outside sources
// (a *guard.Guard).
type Guard interface {
	Blocked(src netip.Addr) bool
	Observe(src netip.Addr, k guard.Kind) bool
}

// ACL admits outside sources (a *policy.LiveACL's h323 list).
type ACL interface {
	Allow(src netip.Addr) bool
}

// Deps are the service's collaborators.
type Deps struct {
	// Logger receives logs; a component=h323 attribute is added.
	Logger *slog.Logger
	// Registerer receives Prometheus metrics. Nil: not exported.
	Registerer prometheus.Registerer
	// History records registration events. Nil: not recorded.
	History History
	// Guard drops blocked sources and scores what they do. Nil: unguarded.
	Guard Guard
	// ACL admits outside sources before parsing. Nil: all.
	ACL ACL
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
	// Media relays the calls' media (a *media.Relay). Nil: RAS only, no
	// call signalling (Run binds no TCP listener).
	Media h245proxy.Media
	// Calls receives one history record per call (protocol "h323").
	// Nil: not recorded.
	Calls func(store.CallRecord)
	// CallBatch, when set, receives several records at once in place of
	// Calls (a store takes a batch in one transaction).
	CallBatch func([]store.CallRecord)
	// Policy decides calls from outside: the policy rules, then the guest
	// rules (policy.WithGuests), evaluated per dialled alias with
	// protocol h323. Nil: every call is admitted.
	Policy func(policy.Call) policy.Decision
	// Descriptors keeps file descriptors free for management: the
	// call-signalling listeners refuse connections while fewer are free.
	// Nil: not checked.
	Descriptors *connlimit.Reserve
	// Capture keeps each call's Q.931 messages for its ladder diagram (a
	// *ladder.Store). Nil: not kept.
	Capture callsig.Capture
	// OnCall is told the ID of a call when it is answered and when an
	// answered call ends (callsig.Deps.OnCall): the HA link replicates
	// it. Nil: nothing is told.
	OnCall func(id string)
	// DialH245 connects to the H.245 address an inside endpoint announced
	// (the tunnel's dial service named by h323.h245_tunnel_service). Nil:
	// directly.
	DialH245 func(ctx context.Context, to netip.AddrPort) (net.Conn, error)
}

// Server is the H.323 edge's RAS side.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	m    *metrics
	now  func() time.Time

	gk  netip.AddrPort // cfg.Gatekeeper, which Reload never changes
	acl ACL            // Deps.ACL, seen from the outside RAS socket; set before serving

	// writeHook, when set (tests), runs before every RAS datagram is
	// written: a test makes a send block with it.
	writeHook atomic.Pointer[func(side string, dst netip.AddrPort, b []byte)]
	// sock is the tuning of the external and internal RAS sockets (Serve,
	// under mu).
	sock     [2]*udpbuf.Socket
	sockStat *socketMetrics

	mu         sync.Mutex
	ext, in    net.PacketConn
	extAddr    netip.AddrPort // Portico's outside RAS address as announced
	inAddr     netip.AddrPort // Portico's inside RAS address as bound
	regs       *table
	seq        uint16
	pendingIn  map[uint16]*pending // requests Portico sent inside
	pendingOut map[uint16]*pending // requests Portico sent outside
	waiters    map[[16]byte]chan net.Conn
	calls      map[[16]byte]*registration   // admitted calls, for IRQ routing
	dests      map[[16]byte]admitted        // admitted calls: the inside ACF's destCallSignalAddress
	fedRoutes  map[string]fedRoute          // aliases a neighbour's LCF located (federation.go)
	fedPeers   map[netip.Addr]time.Time     // sources whose LRQ was confirmed, until when
	perSource  map[netip.Addr]int           // outside requests in flight, by source address
	events     chan store.RegistrationEvent // registration history waiting to be written
	dups       map[dupKey]uint16            // outside requests in flight -> Portico's inside seq
	// extInfo is set when the outside RAS socket is bound to the wildcard
	// address (multihome.go): rxLocal is the local address of the datagram
	// being handled (read loop only), locals where each source sent to.
	extInfo *pktinfo
	rxLocal netip.Addr
	locals  map[netip.AddrPort]netip.Addr

	ctx       context.Context
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	serving   bool
	// attached run beside RAS for as long as it serves (Attach).
	attached []func(context.Context) error
	runErr   error // the first attached runner's failure (under mu)
	signal   SignalServer
	cs       *callsig.Server // the call-signalling proxy, with Deps.Media
	zones    []*zoneClient   // the traversal zones (cfg.Zones), fixed at New
}

// Attach adds a runner that Serve starts beside RAS and stops with it:
// the hook for the call-signalling proxy (package callsig), which is
// built with this Server as its Registry (Outside) and Traversal
// (Connect; its outside listener hands an H.460.18 endpoint's connection
// to Arrived after FacilityCallID). A runner's failure ends Serve with that
// error. Attach before Run or Serve.
func (s *Server) Attach(run func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attached = append(s.attached, run)
}

// New validates cfg and builds the server; it does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Server{
		cfg: cfg, deps: deps, now: deps.Now, gk: cfg.Gatekeeper, acl: deps.ACL,
		log:        deps.Logger.With("component", "h323"),
		m:          newMetrics(deps.Registerer),
		regs:       newTable(cfg.MaxRegistrations),
		pendingIn:  map[uint16]*pending{},
		pendingOut: map[uint16]*pending{},
		waiters:    map[[16]byte]chan net.Conn{},
		calls:      map[[16]byte]*registration{},
		dests:      map[[16]byte]admitted{},
		fedRoutes:  map[string]fedRoute{},
		fedPeers:   map[netip.Addr]time.Time{},
		perSource:  map[netip.Addr]int{},
		events:     make(chan store.RegistrationEvent, historyQueue),
		dups:       map[dupKey]uint16{},
		locals:     map[netip.AddrPort]netip.Addr{},
	}
	s.sockStat = newSocketMetrics(deps.Registerer, s)
	s.ctx, s.stop = context.WithCancel(context.Background())
	if deps.Media != nil {
		if s.cs, err = s.newCalls(cfg); err != nil {
			return nil, err
		}
	}
	if len(cfg.Zones) > 0 {
		zm := newZoneMetrics(s)
		for _, z := range cfg.Zones {
			zc := newZoneClient(s, z, zm)
			s.zones = append(s.zones, zc)
			s.attached = append(s.attached, zc.run)
		}
	}
	return s, nil
}

// Calls returns the number of calls in progress.
func (s *Server) Calls() int {
	if s.cs == nil {
		return 0
	}
	return s.cs.Calls()
}

// SignalServer serves one call-signalling TCP listener (outside: the
// external one): callsig.Server.Serve with its side.
type SignalServer func(ctx context.Context, ln net.Listener, outside bool) error

// Limits of the outside call-signalling listener Run binds.
const (
	signalMaxConns          = 20000
	signalMaxConnsPerSource = 200
)

// AttachSignalling makes Run bind the call-signalling listeners (TCP
// signal_port on the external and internal addresses; the external one
// capped per source and in all, keeping Deps.Descriptors free) and serve
// each with serve beside RAS. Call it before Run.
func (s *Server) AttachSignalling(serve SignalServer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signal = serve
}

// Run binds the external and internal RAS sockets (and, with
// AttachSignalling, the call-signalling listeners) and serves until ctx
// ends or Close; it returns nil on a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	serve, cfg := s.signal, s.cfg // Reload may swap s.cfg meanwhile
	s.mu.Unlock()
	var lns []net.Listener
	closeAll := func() {
		for _, l := range lns {
			l.Close()
		}
	}
	if serve != nil {
		for _, a := range []netip.AddrPort{netip.AddrPortFrom(cfg.ExternalRAS.Addr(), cfg.ExternalSignalPort), cfg.InternalSignal} {
			ln, err := callsig.ListenTCP(ctx, a)
			if err != nil {
				closeAll()
				return fmt.Errorf("h323proxy: listen tcp %s: %w", a, err)
			}
			lns = append(lns, ln)
		}
		ext := connlimit.Wrap(lns[0], connlimit.Config{Name: "h323-external-tcp", MaxConns: signalMaxConns,
			MaxConnsPerSource: signalMaxConnsPerSource, Descriptors: s.deps.Descriptors}, connlimit.Deps{Logger: s.log, Registerer: s.deps.Registerer})
		in := connlimit.Wrap(lns[1], connlimit.Config{Name: "h323-internal-tcp", Descriptors: s.deps.Descriptors,
			KeepFree: keepFreeInside(s.deps.Descriptors)}, connlimit.Deps{Logger: s.log, Registerer: s.deps.Registerer})
		lns[0], lns[1] = ext, in
		s.Attach(func(ctx context.Context) error { return serve(ctx, ext, true) })
		s.Attach(func(ctx context.Context) error { return serve(ctx, in, false) })
	}
	ext, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(cfg.ExternalRAS))
	if err != nil {
		closeAll()
		return fmt.Errorf("h323proxy: listen %s: %w", cfg.ExternalRAS, err)
	}
	in, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(cfg.InternalRAS))
	if err != nil {
		ext.Close()
		closeAll()
		return fmt.Errorf("h323proxy: listen %s: %w", cfg.InternalRAS, err)
	}
	defer closeAll()
	return s.Serve(ctx, ext, in)
}

// keepFreeInside is the inside listener's share of free descriptors:
// half the outside's, so the inside still connects when the outside
// refuses.
func keepFreeInside(r *connlimit.Reserve) int {
	if r == nil {
		return 0
	}
	return r.Keep() / 2
}

// Serve serves on caller-supplied sockets (ext faces outside endpoints, in
// the inside gatekeeper) until ctx ends or Close; it closes them.
func (s *Server) Serve(ctx context.Context, ext, in net.PacketConn) error {
	s.mu.Lock()
	if s.serving || s.ctx.Err() != nil {
		s.mu.Unlock()
		ext.Close()
		in.Close()
		return ErrClosed
	}
	s.serving = true
	// Held while the goroutines below are started: a Close that runs
	// meanwhile waits for them instead of racing their Add (a Close
	// whose stop came first is refused above, under the same lock).
	s.wg.Add(1)
	s.ext, s.in = ext, in
	s.extInfo = newPktinfo(ext)
	s.inAddr = addrOf(in.LocalAddr())
	ea := addrOf(ext.LocalAddr())
	if la, ok := s.deps.ACL.(interface {
		On(netip.AddrPort) *policy.ListenerView
	}); ok {
		// policy.acl.listeners narrows the outside RAS socket further.
		s.acl = la.On(ea)
	}
	s.extAddr = netip.AddrPortFrom(s.cfg.PublicAddress, ea.Port())
	if !s.cfg.PublicAddress.IsValid() || s.cfg.PublicAddress.IsUnspecified() {
		s.extAddr = ea
	}
	s.sock = [2]*udpbuf.Socket{udpbuf.Tune(ext, s.cfg.SocketBuffer), udpbuf.Tune(in, s.cfg.SocketBuffer)}
	s.mu.Unlock()
	s.sockStat.granted(s.sock)
	s.log.Info("serving", "external", ext.LocalAddr().String(), "internal", in.LocalAddr().String(), "gatekeeper", s.gk,
		"receive_buffer_requested", s.cfg.SocketBuffer, "receive_buffer_external", s.sock[0].Granted, "receive_buffer_internal", s.sock[1].Granted)

	if s.deps.History != nil {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.historyLoop() }()
	}
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.readLoop(ext, External) }()
	go func() { defer s.wg.Done(); s.readLoop(in, Internal) }()
	go func() { defer s.wg.Done(); s.sweepLoop() }()
	s.mu.Lock()
	runners := s.attached
	s.mu.Unlock()
	for _, run := range runners {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := run(s.ctx); err != nil && s.ctx.Err() == nil {
				s.mu.Lock()
				if s.runErr == nil {
					s.runErr = err
				}
				s.mu.Unlock()
				s.stop()
			}
		}()
	}
	s.wg.Done()
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	s.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runErr
}

// Close stops serving, unregisters nothing (the inside registrations
// expire by their timeToLive) and waits for the goroutines. Safe to call
// twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		if s.cs != nil {
			s.cs.Close()
		}
		s.mu.Lock()
		ext, in := s.ext, s.in
		s.mu.Unlock()
		if ext != nil {
			ext.Close()
		}
		if in != nil {
			in.Close()
		}
	})
	s.wg.Wait()
	return nil
}

// Ready reports whether the RAS sockets are bound (readiness).
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serving && s.ctx.Err() == nil
}

// Reload applies what can change live (time_to_live,
// keep_alive_interval, max_registrations, identifiers, traversal,
// gatekeeper_signal) and returns the fields that need a restart
// (addresses, ports, gatekeeper, the call limits, the RAS socket buffer).
func (s *Server) Reload(cfg Config) ([]string, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var restart []string
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cfg
	if cfg.ExternalRAS != old.ExternalRAS || cfg.ExternalSignalPort != old.ExternalSignalPort || cfg.PublicAddress != old.PublicAddress {
		restart = append(restart, "h323.external_address")
	}
	if cfg.SocketBuffer != old.SocketBuffer {
		restart = append(restart, "h323.ras_socket_buffer")
	}
	if cfg.InternalRAS != old.InternalRAS || cfg.InternalSignal != old.InternalSignal {
		restart = append(restart, "h323.internal_address")
	}
	if cfg.Gatekeeper != old.Gatekeeper {
		restart = append(restart, "h323.gatekeeper")
	}
	if !slices.EqualFunc(cfg.Zones, old.Zones, zoneEqual) {
		restart = append(restart, "h323.zones")
	}
	cfg.Zones = old.Zones
	if cfg.MaxCalls != old.MaxCalls || cfg.SetupTimeout != old.SetupTimeout || cfg.AnswerTimeout != old.AnswerTimeout {
		restart = append(restart, "h323.max_calls")
	}
	if cfg.MediaTraversal != old.MediaTraversal { // the call proxy holds it
		restart = append(restart, "h323.disable_media_traversal")
	}
	if cfg.MediaKeepAliveInterval != old.MediaKeepAliveInterval || cfg.MediaKeepAlivePayloadType != old.MediaKeepAlivePayloadType {
		restart = append(restart, "h323.media_keep_alive_interval")
	}
	cfg.MediaKeepAliveInterval, cfg.MediaKeepAlivePayloadType = old.MediaKeepAliveInterval, old.MediaKeepAlivePayloadType
	if cfg.H245External != old.H245External || cfg.H245Internal != old.H245Internal {
		restart = append(restart, "h323.h245_ports")
	}
	cfg.MediaTraversal = old.MediaTraversal
	cfg.H245External, cfg.H245Internal = old.H245External, old.H245Internal
	cfg.ExternalRAS, cfg.ExternalSignalPort, cfg.PublicAddress = old.ExternalRAS, old.ExternalSignalPort, old.PublicAddress
	cfg.InternalRAS, cfg.InternalSignal, cfg.Gatekeeper = old.InternalRAS, old.InternalSignal, old.Gatekeeper
	cfg.SocketBuffer = old.SocketBuffer
	s.cfg = cfg
	s.regs.max = cfg.MaxRegistrations
	return restart, nil
}

func addrOf(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// readLoop reads one socket; each datagram is handled before the next is
// read, with a buffer allocated once. A datagram larger than maxDatagram
// is dropped as oversize.
func (s *Server) readLoop(c net.PacketConn, side string) {
	buf := make([]byte, maxDatagram+1)
	info := s.extInfo
	if side != External {
		info = nil
	}
	for {
		var n int
		var a net.Addr
		var err error
		if info != nil {
			n, s.rxLocal, a, err = info.read(buf)
		} else {
			n, a, err = c.ReadFrom(buf)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Debug("read", "interface", side, "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		src := addrOf(a)
		if n > maxDatagram {
			s.m.dropped.WithLabelValues(side, "oversize").Inc()
			continue
		}
		if side == External {
			s.handleExternal(src, buf[:n])
		} else {
			s.handleInternal(src, buf[:n])
		}
	}
}

// sweepLoop expires registrations and refreshes inside ones once a second.
func (s *Server) sweepLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.sweep(s.now())
		}
	}
}
