package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Deps are the relay's collaborators.
type Deps struct {
	// Logger receives the relay's logs; a component attribute is added.
	// Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the relay's Prometheus metrics. Nil: not exported.
	Registerer prometheus.Registerer
	// OnTimeout is called (from the relay's own goroutine, once per session)
	// when a session carried no media for Config.InactivityTimeout. The
	// signalling side may end the call; the session stays allocated until
	// Release. Nil: timeouts are only logged and counted.
	OnTimeout func(Timeout)
	// OnChange is called when a session was allocated, updated, released
	// or latched a peer, so that its state can be replicated (Export).
	// It is called from call setup and from packet workers: it must
	// return at once. Nil: nothing is called.
	OnChange func(SessionID)
}

type iface struct {
	name       string
	addr       netip.Addr
	advertised netip.Addr
	pool       *portPool
	muxPort    int          // H.460.19 multiplexed RTP port (RTCP: +1); 0 none
	latchFrom  netip.Addr   // see InterfaceConfig.LatchFrom
	mux        [2]*endpoint // its sockets once the engine runs
}

// Relay anchors media sessions. Its methods are safe for concurrent use.
type Relay struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	m      *metrics
	ifaces map[string]*iface
	fm     *fastMetrics
	// fast is the loaded eBPF fast path, nil when packets stay in user
	// space. Set once with the engine, under mu.
	fast *fastPath

	mu       sync.Mutex
	eng      *engine
	sessions map[SessionID]*session
	standby  map[SessionID]*session // imported from the HA peer (standby.go), by the peer's ID
	copies   map[string][]*session  // standby copies and the sessions adopted from them, by label (standby.go)
	addrs    addrCache              // the interface addresses, read once a second (standby.go)
	closed   bool
	running  bool
	nextID   atomic.Uint64
	nextWork atomic.Uint32
	mux      *muxTable

	wg        sync.WaitGroup // workers, TCP goroutines, janitor
	done      chan struct{}
	closeOnce sync.Once
}

type session struct {
	mu       sync.Mutex // call setup only; never taken on the packet path
	id       SessionID
	label    string
	names    [2]string
	ifaces   [2]*iface
	created  time.Time
	streams  []*stream
	timedOut bool
	released bool
	standby  bool // a copy of the HA peer's session (standby.go), not counted
	orphan   bool // an adopted copy: no call here owns it (standby.go)
	// here is when a standby copy's addresses were first seen on this
	// node (a failover), zero while they are elsewhere (expireStranded).
	here time.Time
}

// New validates cfg and builds a relay. It does no I/O.
func New(cfg Config, deps Deps) (*Relay, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("media: metrics: %w", err)
	}
	fm, err := newFastMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("media: metrics: %w", err)
	}
	r := &Relay{
		fm:       fm,
		cfg:      c,
		deps:     deps,
		log:      deps.Logger.With("component", "media"),
		m:        m,
		ifaces:   make(map[string]*iface, len(c.Interfaces)),
		sessions: make(map[SessionID]*session),
		standby:  make(map[SessionID]*session),
		copies:   make(map[string][]*session),
		done:     make(chan struct{}),
		mux:      newMuxTable(),
	}
	for name, ic := range c.Interfaces {
		adv := ic.Advertised
		if !adv.IsValid() {
			adv = ic.Addr
		}
		r.ifaces[name] = &iface{name: name, addr: ic.Addr, advertised: adv, pool: newPortPool(ic.PortMin, ic.PortMax), muxPort: ic.MultiplexPort, latchFrom: ic.LatchFrom.Unmap()}
	}
	return r, nil
}

// Config returns the validated configuration with defaults applied.
func (r *Relay) Config() Config { return r.cfg }

// engineLocked returns the packet engine, creating it on first use so that
// sessions may be allocated before Run starts forwarding. r.mu is held.
func (r *Relay) engineLocked() (*engine, error) {
	if r.closed {
		return nil, ErrClosed
	}
	if r.eng == nil {
		e, err := newEngine(r)
		if err != nil {
			return nil, err
		}
		if err := r.openMux(e); err != nil {
			r.closeMux(e)
			e.close()
			return nil, fmt.Errorf("media: multiplexed port: %w", err)
		}
		if err := r.startFast(); err != nil {
			r.closeMux(e)
			e.close()
			return nil, err
		}
		r.eng = e
	}
	return r.eng, nil
}

// Run forwards packets and watches for inactivity until ctx is done or
// Close is called; then it releases every session and returns nil.
func (r *Relay) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("media: relay already running")
	}
	e, err := r.engineLocked()
	if err != nil {
		r.mu.Unlock()
		return err
	}
	r.running = true
	e.run(&r.wg)
	r.mu.Unlock()
	r.log.Info("media relay running", "workers", r.cfg.Workers, "latching", r.cfg.Latching.String())

	tick := time.Second
	if t := r.cfg.InactivityTimeout; t > 0 && t/4 < tick {
		tick = max(t/4, 10*time.Millisecond)
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Close()
			return nil
		case <-r.done:
			return nil
		case <-ticker.C:
			r.checkInactivity()
		}
	}
}

// Close releases every session and stops the workers. It is safe to call
// more than once and from any goroutine.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		sessions := make([]*session, 0, len(r.sessions))
		for _, s := range r.sessions {
			sessions = append(sessions, s)
		}
		for _, s := range r.standby {
			sessions = append(sessions, s)
		}
		r.sessions = map[SessionID]*session{}
		r.standby = map[SessionID]*session{}
		e := r.eng
		r.mu.Unlock()
		for _, s := range sessions {
			r.releaseSession(s)
		}
		if e != nil {
			r.closeMux(e)
			e.stopAll()
		}
		r.wg.Wait()
		if e != nil {
			e.close()
		}
		r.fast.close()
		close(r.done)
	})
	return nil
}

func (r *Relay) iface(name string) (*iface, error) {
	ifc, ok := r.ifaces[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownInterface, name)
	}
	return ifc, nil
}

// Allocate opens the relays of a new session and returns the addresses to
// signal. On error nothing stays allocated.
func (r *Relay) Allocate(sc SessionConfig) (SessionID, []StreamInfo, error) {
	s := &session{label: sc.Label, names: sc.Interfaces, created: time.Now()}
	for i, n := range sc.Interfaces {
		ifc, err := r.iface(n)
		if err != nil {
			return 0, nil, fmt.Errorf("media: allocate leg %d: %w", i, err)
		}
		s.ifaces[i] = ifc
	}
	s.id = SessionID(r.nextID.Add(1))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range sc.Streams {
		st, err := r.openStream(s, i, c)
		if err != nil {
			r.m.allocFailures.Inc()
			for _, st := range s.streams {
				r.closeStream(st)
			}
			return 0, nil, fmt.Errorf("media: allocate %s stream %d: %w", c.Kind, i, err)
		}
		s.streams = append(s.streams, st)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		for _, st := range s.streams {
			r.closeStream(st)
		}
		return 0, nil, ErrClosed
	}
	r.sessions[s.id] = s
	r.mu.Unlock()
	r.m.sessions.Inc()
	r.log.Debug("session allocated", "session", s.id, "label", s.label, "streams", len(s.streams))
	r.changed(s.id)
	return s.id, r.infos(s), nil
}

func (r *Relay) infos(s *session) []StreamInfo {
	out := make([]StreamInfo, len(s.streams))
	for i, st := range s.streams {
		out[i] = st.info()
	}
	return out
}

func (st *stream) info() StreamInfo {
	in := StreamInfo{Index: st.index, Kind: st.cfg.Kind, Disabled: st.cfg.Disabled}
	for leg := range st.legs {
		ls := &st.legs[leg]
		if ls.port == 0 {
			continue
		}
		in.Local[leg] = netip.AddrPortFrom(ls.iface.advertised, uint16(ls.port))
		if st.cfg.RTCPMux || st.cfg.Transport == TCP {
			in.LocalRTCP[leg] = in.Local[leg]
		} else {
			in.LocalRTCP[leg] = netip.AddrPortFrom(ls.iface.advertised, uint16(ls.port+1))
		}
		if id := st.muxID[leg]; id != 0 {
			in.MultiplexID[leg] = id
			in.LocalMux[leg] = netip.AddrPortFrom(ls.iface.advertised, uint16(ls.iface.muxPort))
			in.LocalMuxRTCP[leg] = netip.AddrPortFrom(ls.iface.advertised, uint16(ls.iface.muxPort+1))
		}
	}
	return in
}

func rtcpRemote(c *StreamConfig, leg int) netip.AddrPort {
	if c.RemoteRTCP[leg].IsValid() {
		return c.RemoteRTCP[leg]
	}
	rem := c.Remote[leg]
	if !rem.IsValid() || c.RTCPMux {
		return rem
	}
	return netip.AddrPortFrom(rem.Addr(), rem.Port()+1)
}

func validStream(c *StreamConfig) error {
	switch c.Kind {
	case KindAudio, KindVideo, KindContent, KindFECC, KindBFCP, KindApplication:
	default:
		return fmt.Errorf("%w: kind %q", ErrInvalidStream, c.Kind)
	}
	if c.Transport > TCP {
		return fmt.Errorf("%w: transport %d", ErrInvalidStream, c.Transport)
	}
	return nil
}

// openStream reserves ports and opens sockets on both legs. s.mu is held.
func (r *Relay) openStream(s *session, index int, c StreamConfig) (*stream, error) {
	return r.openStreamAt(s, index, c, nil)
}

// openStreamAt is openStream; fixed, when not nil, is each leg's RTP
// address to bind with IP_FREEBIND instead of a port from the pool (a
// session imported from the HA peer).
func (r *Relay) openStreamAt(s *session, index int, c StreamConfig, fixed *[2]netip.AddrPort) (*stream, error) {
	if err := validStream(&c); err != nil {
		return nil, err
	}
	st := &stream{index: index, cfg: c, secure: c.Secure, worker: int(r.nextWork.Add(1))}
	if fixed == nil { // a standby copy's changes are not replicated back
		st.session.Store(uint64(s.id))
	}
	st.hold.Store(c.Hold)
	st.clockHz = c.ClockRate
	if st.clockHz == 0 {
		st.clockHz = 90000
		if c.Kind == KindAudio {
			st.clockHz = 8000
		}
	}
	if c.Disabled {
		return st, nil
	}
	if c.Transport == TCP {
		return st, r.openTCP(s, st)
	}
	r.mu.Lock()
	e, err := r.engineLocked()
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for leg := 0; leg < 2; leg++ {
		ls := &st.legs[leg]
		ls.iface = s.ifaces[leg]
		open := func(addr netip.Addr, port int, free bool) error {
			bind := openUDP
			if free {
				bind = openUDPFree
			}
			rtpSock, err := bind(netip.AddrPortFrom(addr, uint16(port)), r.cfg.SocketBuffer)
			if err != nil {
				return err
			}
			ls.rtp = &endpoint{r: r, st: st, leg: uint8(leg), sys: rtpSock, local: netip.AddrPortFrom(addr, uint16(port))}
			if c.RTCPMux {
				return nil
			}
			rtcpSock, err := bind(netip.AddrPortFrom(addr, uint16(port+1)), r.cfg.SocketBuffer)
			if err != nil {
				closeSock(rtpSock)
				ls.rtp = nil
				return err
			}
			ls.rtcp = &endpoint{r: r, st: st, leg: uint8(leg), rtcp: true, sys: rtcpSock, local: netip.AddrPortFrom(addr, uint16(port+1))}
			return nil
		}
		pool := ls.iface.pool
		var port int
		var err error
		if fixed == nil {
			port, err = pool.take(func(port int) error { return open(ls.iface.addr, port, false) })
		} else {
			port = int(fixed[leg].Port())
			if fixed[leg].Addr() != ls.iface.addr || !pool.reserve(port) {
				pool = nil // another node's address, or a port this node does not hand out
			}
			if err = open(fixed[leg].Addr(), port, true); err != nil && pool != nil {
				pool.put(port)
			}
		}
		if err != nil {
			r.closeStream(st)
			return nil, fmt.Errorf("interface %q: %w", ls.iface.name, err)
		}
		ls.port = port
		ref := &portRef{pool: pool, port: port}
		for _, ep := range []*endpoint{ls.rtp, ls.rtcp} {
			if ep != nil {
				ep.ports = ref
				ref.refs.Add(1)
			}
		}
	}
	for leg := 0; leg < 2; leg++ {
		ls, other := &st.legs[leg], &st.legs[1-leg]
		ls.rtp.out = other.rtp
		ls.rtp.setSignalled(c.Remote[leg], c.Source[leg], c.Asymmetric[leg], c.StrictSource[leg])
		ls.rtp.setKeepAlive(c.KeepAlive[leg])
		if ls.rtcp != nil {
			ls.rtcp.out = other.rtcp
			ls.rtcp.setSignalled(rtcpRemote(&c, leg), c.Source[leg], c.Asymmetric[leg], c.StrictSource[leg])
		}
	}
	for leg := 0; leg < 2; leg++ {
		if err := r.setMux(st, leg, &c); err != nil {
			r.closeStream(st)
			return nil, err
		}
	}
	for leg := 0; leg < 2; leg++ {
		for _, ep := range []*endpoint{st.legs[leg].rtp, st.legs[leg].rtcp} {
			if ep == nil {
				continue
			}
			if err := e.add(ep); err != nil {
				r.closeStream(st)
				return nil, err
			}
			r.m.sockets.Inc()
		}
	}
	r.m.streams.Inc()
	return st, nil
}

// closeStream closes a stream's sockets and returns its ports.
func (r *Relay) closeStream(st *stream) {
	for leg := range st.muxID {
		r.mux.remove(st.muxID[leg])
		st.muxID[leg] = 0
	}
	opened := false
	if st.tcp != nil {
		st.tcp.close()
		st.tcp = nil
		opened = true
	}
	for leg := range st.legs {
		ls := &st.legs[leg]
		for _, ep := range []*endpoint{ls.rtp, ls.rtcp} {
			if ep == nil {
				continue
			}
			opened = true
			if ep.sys.registered() {
				r.eng.remove(ep)
				r.m.sockets.Dec()
			} else if !ep.dead.Swap(true) {
				closeSock(ep.sys)
				ep.ports.done()
			}
			r.fastForget(ep)
		}
		if ls.port != 0 && ls.rtp == nil && ls.rtcp == nil {
			ls.iface.pool.put(ls.port) // TCP or a failed open: no socket holds the pair
		}
	}
	if opened {
		r.m.streams.Dec()
	}
}

func (r *Relay) lookup(id SessionID) (*session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	s, ok := r.sessions[id]
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrNoSession, id)
	}
	return s, nil
}

// Update applies a new description of the session (an answer, a re-INVITE):
// streams[i] updates stream i; extra entries add streams; Disabled closes a
// stream and re-enabling opens it on new ports. Changed remote addresses
// reset latching for that leg unless the latched source still fits.
func (r *Relay) Update(id SessionID, streams []StreamConfig) ([]StreamInfo, error) {
	s, err := r.lookup(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return nil, fmt.Errorf("%w: %v", ErrNoSession, id)
	}
	for i, c := range streams {
		if err := validStream(&c); err != nil {
			return nil, fmt.Errorf("media: update stream %d: %w", i, err)
		}
		if i >= len(s.streams) {
			st, err := r.openStream(s, i, c)
			if err != nil {
				r.m.allocFailures.Inc()
				return nil, fmt.Errorf("media: update: add %s stream %d: %w", c.Kind, i, err)
			}
			s.streams = append(s.streams, st)
			continue
		}
		st := s.streams[i]
		switch {
		case c.Disabled && !st.cfg.Disabled:
			r.closeStream(st)
			st.legs = [2]legSocks{}
			st.cfg.Disabled = true
			continue
		case !c.Disabled && (st.cfg.Disabled || c.Transport != st.cfg.Transport || c.RTCPMux != st.cfg.RTCPMux && !c.RTCPMux || c.Secure != st.cfg.Secure):
			// Reopen: the socket layout changed.
			nst, err := r.openStream(s, i, c)
			if err != nil {
				r.m.allocFailures.Inc()
				return nil, fmt.Errorf("media: update stream %d: %w", i, err)
			}
			r.closeStream(st)
			s.streams[i] = nst
			continue
		case c.Disabled:
			continue
		}
		st.hold.Store(c.Hold)
		if c.Transport == TCP {
			st.cfg.Remote, st.cfg.Source, st.cfg.Hold = c.Remote, c.Source, c.Hold
			r.updateTCP(st)
			continue
		}
		mux := st.cfg.RTCPMux
		st.cfg = c
		st.cfg.RTCPMux = mux
		for leg := 0; leg < 2; leg++ {
			ls := &st.legs[leg]
			ls.rtp.setSignalled(c.Remote[leg], c.Source[leg], c.Asymmetric[leg], c.StrictSource[leg])
			ls.rtp.setKeepAlive(c.KeepAlive[leg])
			r.fastForget(ls.rtp)
			if ls.rtcp != nil {
				ls.rtcp.setSignalled(rtcpRemote(&c, leg), c.Source[leg], c.Asymmetric[leg], c.StrictSource[leg])
			}
			if err := r.setMux(st, leg, &st.cfg); err != nil {
				return nil, fmt.Errorf("media: update stream %d: %w", i, err)
			}
		}
	}
	s.timedOut = false
	r.changed(id)
	return r.infos(s), nil
}

// Release closes a session's relays and returns its final statistics (for
// call history).
func (r *Relay) Release(id SessionID) (SessionStats, error) {
	r.mu.Lock()
	s, ok := r.sessions[id]
	delete(r.sessions, id)
	r.mu.Unlock()
	if !ok {
		return SessionStats{}, fmt.Errorf("%w: %v", ErrNoSession, id)
	}
	defer r.changed(id)
	return r.releaseSession(s), nil
}

func (r *Relay) releaseSession(s *session) SessionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats()
	if !s.released {
		s.released = true
		for _, x := range s.streams {
			r.closeStream(x)
		}
		if !s.standby {
			r.m.sessions.Dec()
		}
	}
	return st
}

// Session returns one live session's statistics.
func (r *Relay) Session(id SessionID) (SessionStats, error) {
	s, err := r.lookup(id)
	if err != nil {
		return SessionStats{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats(), nil
}

// Sessions returns every live session's statistics.
func (r *Relay) Sessions() []SessionStats { return r.statsOf(false) }

// statsOf returns the statistics of the live sessions or, with standby,
// of the standby copies.
func (r *Relay) statsOf(standby bool) []SessionStats {
	r.mu.Lock()
	m := r.sessions
	if standby {
		m = r.standby
	}
	list := make([]*session, 0, len(m))
	for _, s := range m {
		list = append(list, s)
	}
	r.mu.Unlock()
	out := make([]SessionStats, 0, len(list))
	for _, s := range list {
		s.mu.Lock()
		out = append(out, s.stats())
		s.mu.Unlock()
	}
	return out
}

// Available returns the free port pairs of an interface.
func (r *Relay) Available(ifaceName string) (int, error) {
	ifc, err := r.iface(ifaceName)
	if err != nil {
		return 0, err
	}
	return ifc.pool.available(), nil
}

func (s *session) stats() SessionStats {
	out := SessionStats{ID: s.id, Label: s.label, Interfaces: s.names, Created: s.created, Streams: make([]StreamStats, len(s.streams))}
	for i, st := range s.streams {
		ss := StreamStats{Index: st.index, Kind: st.cfg.Kind, Transport: st.cfg.Transport, Hold: st.hold.Load(), Disabled: st.cfg.Disabled}
		info := st.info()
		ss.Local = info.Local
		for leg := range st.legs {
			l := &ss.Legs[leg]
			ls := &st.legs[leg]
			for _, ep := range []*endpoint{ls.rtp, ls.rtcp} {
				if ep == nil {
					continue
				}
				l.Packets += ep.packets.Load()
				l.Bytes += ep.bytes.Load()
				l.Forwarded += ep.forwarded.Load()
				l.Dropped += ep.dropped.Load()
				l.KeepAlives += ep.keepAlives.Load()
				if t := ep.lastRx.Load(); t > 0 && time.Unix(0, t).After(l.LastPacket) {
					l.LastPacket = time.Unix(0, t)
				}
				if k := ep.r.fastRead(ep); k.packets > 0 {
					l.Packets += k.packets
					l.Bytes += k.bytes
					l.Forwarded += k.packets
					l.InKernel += k.packets
					if t := time.Unix(0, k.last); t.After(l.LastPacket) {
						l.LastPacket = t
					}
				}
			}
			if ls.rtp != nil {
				if p := ls.rtp.peer.Load(); p != nil {
					l.Peer, l.Latched = p.addr, p.latched
				}
			}
			if st.tcp != nil {
				st.tcp.legStats(leg, l)
			}
			rc := &st.rtcp[leg]
			l.Lost = rc.lost.Load()
			l.LossFraction = float64(rc.fraction.Load()) / 256
			l.JitterMs = float64(rc.jitterUs.Load()) / 1000
			l.RTTMs = float64(rc.rttUs.Load()) / 1000
			l.Reports = rc.reports.Load()
		}
		out.Streams[i] = ss
	}
	return out
}

// checkInactivity reports sessions silent past the timeout, once each.
func (r *Relay) checkInactivity() {
	r.adoptCopies()
	limit := r.cfg.InactivityTimeout
	if limit <= 0 {
		return
	}
	now := time.Now()
	r.expireStranded(now, limit, r.LocalAddrs)
	r.mu.Lock()
	list := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		list = append(list, s)
	}
	r.mu.Unlock()
	for _, s := range list {
		s.mu.Lock()
		if s.timedOut || s.released {
			s.mu.Unlock()
			continue
		}
		last := s.created
		active := false
		for _, st := range s.streams {
			if st.cfg.Disabled || st.hold.Load() {
				continue
			}
			active = true
			for leg := range st.legs {
				for _, ep := range []*endpoint{st.legs[leg].rtp, st.legs[leg].rtcp} {
					if ep == nil {
						continue
					}
					if t := time.Unix(0, ep.lastRx.Load()); t.After(last) {
						last = t
					}
					if k := r.fastRead(ep); k.last > 0 && time.Unix(0, k.last).After(last) {
						last = time.Unix(0, k.last)
					}
				}
			}
			if st.tcp != nil && st.tcp.last().After(last) {
				last = st.tcp.last()
			}
		}
		silent := now.Sub(last)
		fire := active && silent >= limit
		if fire {
			s.timedOut = true
		}
		id, label, orphan := s.id, s.label, s.orphan
		s.mu.Unlock()
		if fire && orphan {
			r.endAdopted(id, silent)
			continue
		}
		if fire {
			r.m.timeouts.Inc()
			r.log.Info("media inactivity timeout", "session", id, "label", label, "silent", silent.Round(time.Millisecond))
			if r.deps.OnTimeout != nil {
				r.deps.OnTimeout(Timeout{ID: id, Label: label, Silent: silent})
			}
		}
	}
}
