package sipedge

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/connlimit"
	"github.com/portico-edge/portico/internal/handoff"
	"github.com/portico-edge/portico/internal/ladder"
	"github.com/portico-edge/portico/internal/store"
)

// History receives call and registration history.
type History interface {
	AddCall(ctx context.Context, c store.CallRecord) error
	AddRegistrationEvent(ctx context.Context, r store.RegistrationEvent) error
}

// Deps are the SIP edge's collaborators.
type Deps struct {
	// Logger receives logs; a component=sip attribute is added. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives Prometheus metrics. Nil: not exported.
	Registerer prometheus.Registerer
	// Media anchors every call's media (a *media.Relay, see NewMediaAdapter).
	// Required.
	Media Media
	// History records calls and registration events. Nil: not recorded.
	History History
	// TLSConfig serves tls and wss listeners and dials tls call servers
	// (certificate from the store). Required only with such listeners.
	TLSConfig *tls.Config
	// FlowSecret keys the flow-token HMAC. Default: 32 random bytes (tokens
	// then do not survive a restart, so endpoints re-register).
	FlowSecret []byte
	// Resolver does the RFC 3263 lookups of outbound federated calls.
	// Default: a DNS resolver asking Config.Federation.DNSServer.
	Resolver Resolver
	// Guard drops blocked outside sources and scores what they do
	// (guardhook.go). Nil: unguarded.
	Guard Guard
	// ACL admits outside sources, From domains and user agents before
	// parsing (guardhook.go). Nil: all.
	ACL ACL
	// Descriptors keeps file descriptors free for management: stream
	// listeners refuse connections while fewer than its share are free
	// (internal ones while fewer than half of it). Nil: not checked.
	Descriptors *connlimit.Reserve
	// Capture keeps the signalling of calls (a *ladder.Store): every
	// datagram and every message on an accepted tcp, tls, ws or wss
	// connection is observed, and each call's dialogs are linked to its
	// ID. Nil: nothing is captured and the sockets are not wrapped.
	Capture Capture
	// OnRegistration is called with a binding's key (RegistrationKeys)
	// when this node stores, refreshes or removes it, so that it can be
	// replicated to the HA peer (ExportRegistration). It is called with
	// the registrar's lock held and must return at once. Nil: nothing is
	// called.
	OnRegistration func(key string)
	// Node is this node's name in a cluster: the Path of every REGISTER
	// relayed to the call server carries it as the parameter node, naming
	// the node that holds the endpoint's flow. Empty: no parameter.
	Node string
	// OnCall is called with a call's ID (CallKeys) when it is answered,
	// re-negotiated, taken over from the HA peer or ended, so that it can
	// be replicated to the peer (ExportCall). It must return at once. Nil:
	// nothing is called.
	OnCall func(id string)
}

// Capture is where the SIP edge reports the messages its sockets carry
// and which dialogs (Call-IDs) make up each call.
type Capture interface {
	ladder.Observer
	Link(callID, dialog string)
}

// BoundListener is a caller-supplied socket for Serve: exactly one of
// Packet (udp) and Stream (tcp, tls, ws, wss) is set. A tls or wss Stream
// is a plain TCP listener; the server wraps it with Deps.TLSConfig.
type BoundListener struct {
	Interface string
	Transport string
	Packet    net.PacketConn
	Stream    net.Listener
}

// side is one interface's user agent: its own transport and transaction
// layers, so every message leaves from that interface's sockets.
type side struct {
	name   string
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	cl     *sipgo.Client
	host   string // host put in Via, Contact, Path
	mu     sync.Mutex
	ports  map[string]int        // transport -> bound port
	ips    map[string]netip.Addr // transport -> bound IP
	server *Server
	// handoffPort is the local port of the first WSS connection handed off
	// (the access proxy's): the wss port in Via and Contact when no wss
	// listener is served.
	handoffPort atomic.Int32
	// streams are the stream listeners by transport (under mu), told when
	// a connection carried its first request.
	streams map[string]*connlimit.Listener
}

// Server is the SIP edge.
type Server struct {
	// cfg is the configuration the server started with: what Reload cannot
	// change (listeners, hosts, keepalive and probe timing, resolver) is
	// read from it; everything else is read per request from live.
	cfg   Config
	live  atomic.Pointer[liveConfig]
	deps  Deps
	log   *slog.Logger
	m     *metrics
	ext   *side
	int   *side
	flows *flowCodec
	regs  *registrar
	calls *callTable
	res   Resolver
	// handoff feeds WSHandoff's connections to the external WSS transport.
	handoff *handoff.Listener
	// challenge is the last WWW-Authenticate the inside sent for a
	// REGISTER: the shape of the challenges Portico answers for unknown
	// users (see registerResponse).
	challenge atomic.Pointer[string]
	// junkLog rate-limits the log lines of dropped input (junk.go).
	junkLog logLimiter

	sockMu    sync.Mutex
	socks     []io.Closer
	udp       udpSockets
	listeners []*listenerState // under sockMu
	closeOnce sync.Once
	closed    chan struct{}
	serving   atomic.Bool
	// wg counts every goroutine the server starts and every request
	// handler in progress; Close waits for it. ctx ends with Close: every
	// request Portico sends and every wait of a call derives from it.
	wg       sync.WaitGroup
	ctx      context.Context
	stop     context.CancelFunc
	goMu     sync.Mutex
	stopping bool // under goMu: no new goroutine starts

	t1        time.Duration // RFC 3261 T1, shortened by tests
	hangups   hangupQueue
	early     provisionals
	handlers  handlerPool
	adm       admission
	unreached unreachables

	// dormant are the calls the HA peer replicated (replicate_calls.go).
	dormant dormantCalls
	// strays are the dialogs of 2xx answers no call knows (stray.go).
	strays strayDialogs
}

// New validates cfg and builds a server; it does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Media == nil {
		return nil, errors.New("sipedge: deps.Media is required")
	}
	for i, l := range cfg.Listeners {
		if (l.Transport == "tls" || l.Transport == "wss") && deps.TLSConfig == nil {
			return nil, ConfigError{{Path: fmt.Sprintf("sip.listeners[%d].transport", i), Reason: l.Transport + " needs a certificate"}}
		}
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if len(deps.FlowSecret) == 0 {
		deps.FlowSecret = make([]byte, 32)
		if _, err := rand.Read(deps.FlowSecret); err != nil {
			return nil, fmt.Errorf("sipedge: flow secret: %w", err)
		}
	}
	s := &Server{
		cfg:    cfg,
		deps:   deps,
		log:    deps.Logger.With("component", "sip"),
		closed: make(chan struct{}),
		flows:  &flowCodec{key: deps.FlowSecret},

		handoff: handoff.New(nil),
		t1:      sip.T1,
		hangups: hangupQueue{max: defaultHangupWorkers},
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.handlers.handle, s.handlers.spawn, s.handlers.maxIdle = s.dispatch, s.spawn, defaultIdleHandlers
	s.m = newMetrics(deps.Registerer)
	s.adm.register(deps.Registerer)
	s.registerUDP(deps.Registerer)
	s.res = deps.Resolver
	if s.res == nil {
		s.res = &dnsResolver{server: cfg.Federation.DNSServer}
	}
	for _, name := range []string{External, Internal} {
		sd, err := s.newSide(name)
		if err != nil {
			return nil, err
		}
		if name == External {
			s.ext = sd
		} else {
			s.int = sd
		}
	}
	s.live.Store(&liveConfig{cfg: cfg, policy: newCallPolicy(cfg), cs: newCallServers(cfg.CallServers, s.m, nil)})
	s.regs = newRegistrar(s)
	s.calls = newCallTable()
	return s, nil
}

func (s *Server) newSide(name string) (*side, error) {
	sd := &side{name: name, ports: map[string]int{}, ips: map[string]netip.Addr{}, server: s, streams: map[string]*connlimit.Listener{}}
	for _, l := range s.cfg.Listeners {
		if l.Interface == name {
			ap := netip.MustParseAddrPort(l.Address)
			sd.host = ap.Addr().String()
			break
		}
	}
	if name == External && s.cfg.ExternalHost != "" {
		sd.host = s.cfg.ExternalHost
	}
	lg := s.sipgoLogger(name)
	opts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent("Portico"),
		sipgo.WithUserAgentHostname(sd.host),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(lg),
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) { s.strayResponse(sd, r) })),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(lg),
			sip.WithTransportLayerReadFilter(s.inboundFilter(sd))),
	}
	if s.deps.TLSConfig != nil {
		opts = append(opts, sipgo.WithUserAgenTLSConfig(s.deps.TLSConfig))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		return nil, fmt.Errorf("sipedge: %s user agent: %w", name, err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(lg))
	if err != nil {
		return nil, fmt.Errorf("sipedge: %s server: %w", name, err)
	}
	cl, err := sipgo.NewClient(ua, sipgo.WithClientHostname(sd.host), sipgo.WithClientLogger(lg))
	if err != nil {
		return nil, fmt.Errorf("sipedge: %s client: %w", name, err)
	}
	sd.ua, sd.srv, sd.cl = ua, srv, cl
	// Provisional responses are taken in the order they arrive, before
	// the transaction layer handles each message on its own goroutine
	// (where a 200 can overtake a 180 and the 180 is lost).
	ua.TransportLayer().OnMessage(s.early.observe)
	ua.TransportLayer().OnMessage(func(m sip.Message) { s.adm.arrived(m, s.lc().cfg.Overload.MaxWait) })
	s.route(sd)
	return sd, nil
}

// route installs the request handlers of one side.
func (s *Server) route(sd *side) {
	h := func(f func(sd *side, req *sip.Request, tx sip.ServerTransaction)) sipgo.RequestHandler {
		return func(req *sip.Request, tx sip.ServerTransaction) {
			if !s.enter() {
				return // shutting down: the sockets are about to close
			}
			defer s.wg.Done()
			s.handlers.run(handlerJob{f: f, sd: sd, req: req, tx: tx})
		}
	}
	sd.srv.OnRegister(h(s.handleRegister))
	sd.srv.OnInvite(h(s.handleInvite))
	sd.srv.OnAck(h(s.handleAck))
	sd.srv.OnBye(h(s.handleInDialog))
	sd.srv.OnCancel(h(s.handleStrayCancel))
	sd.srv.OnOptions(h(s.handleOptions))
	sd.srv.OnRefer(h(s.handleRefer))
	sd.srv.OnPrack(h(s.handlePrack))
	for _, m := range []sip.RequestMethod{sip.INFO, sip.UPDATE, sip.MESSAGE, sip.NOTIFY, sip.SUBSCRIBE, sip.PUBLISH} {
		sd.srv.OnRequest(m, h(s.handleInDialog))
	}
	sd.srv.OnNoRoute(h(func(sd *side, req *sip.Request, tx sip.ServerTransaction) {
		s.respond(sd, tx, req, 405, "Method Not Allowed", allowHeader())
	}))
}

// dispatch handles one request on a handler goroutine: the guard, the
// overload bounds, then the method's handler.
func (s *Server) dispatch(j handlerJob) {
	sd, req := j.sd, j.req
	tx, ok := s.guardRequest(sd, req, j.tx)
	if !ok {
		return
	}
	s.m.requests.WithLabelValues(sd.name, string(req.Method)).Inc()
	if sd.name == External && s.isScanner(req) {
		// Unanswered: a scanner learns nothing, not even that
		// a SIP server listens here.
		s.m.dropped.WithLabelValues(sd.name, dropScanner).Inc()
		if tx != nil {
			tx.Terminate()
		}
		return
	}
	if newWork(req) {
		// Before any other work: past capacity, refusing is what
		// keeps the accepted requests in time.
		now := time.Now()
		o := s.lc().cfg.Overload
		arrival := s.adm.take(req, now)
		if sd.name == External {
			tx = s.m.timed(tx, req, arrival)
		}
		if why := s.adm.refuse(o, arrival, now); why != "" {
			s.m.rejected.WithLabelValues(why).Inc()
			s.respond(sd, tx, req, 503, "Service Unavailable", overloadRetryAfter(o))
			return
		}
		defer s.adm.done()
	}
	sd.established(req)
	if cs := req.CSeq(); cs == nil || !strings.EqualFold(string(cs.MethodName), string(req.Method)) {
		// RFC 3261 section 8.1.1.5: the CSeq method must match.
		if req.Method != sip.ACK {
			s.respond(sd, tx, req, 400, "CSeq Method Mismatch")
		}
		return
	}
	j.f(sd, req, tx)
}

func allowHeader() sip.Header {
	return sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, MESSAGE, NOTIFY")
}

// Run binds every configured listener, serves until ctx ends or Close is
// called, and returns nil on a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	var ls []BoundListener
	closeAll := func() {
		for _, l := range ls {
			if l.Packet != nil {
				l.Packet.Close()
			}
			if l.Stream != nil {
				l.Stream.Close()
			}
		}
	}
	var lc net.ListenConfig
	for i, l := range s.cfg.Listeners {
		bl := BoundListener{Interface: l.Interface, Transport: l.Transport}
		var err error
		if l.Transport == "udp" {
			bl.Packet, err = lc.ListenPacket(ctx, "udp", l.Address)
		} else {
			bl.Stream, err = lc.Listen(ctx, "tcp", l.Address)
		}
		if err != nil {
			closeAll()
			return fmt.Errorf("sipedge: listeners[%d] %s %s: %w", i, l.Transport, l.Address, err)
		}
		ls = append(ls, bl)
	}
	return s.Serve(ctx, ls)
}

// Serve serves the caller-supplied sockets until ctx ends or Close is
// called. The server owns the sockets from then on.
func (s *Server) Serve(ctx context.Context, ls []BoundListener) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("sipedge: already serving")
	}
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	ls = append([]BoundListener(nil), ls...)
	for i, l := range ls {
		if l.Packet != nil {
			s.tuneUDP(l.Interface, l.Packet)
		}
		if l.Packet != nil && l.Interface == Internal {
			// An ICMP error for a request to a call server fails it over
			// at once (see unreachable.go).
			l.Packet = s.watchUnreachable(l.Packet)
		}
		l = s.guardSocket(l)
		if s.deps.Capture != nil && l.Packet != nil {
			l.Packet = ladder.WrapPacketConn(l.Packet, s.deps.Capture, l.Interface)
		}
		ls[i] = l
		var sd *side
		switch l.Interface {
		case External:
			sd = s.ext
		case Internal:
			sd = s.int
		default:
			return fmt.Errorf("sipedge: listener %d: unknown interface %q", i, l.Interface)
		}
		var addr net.Addr
		if l.Stream != nil {
			// Outermost, so that its Established finds what sipgo sees.
			lim := connlimit.Wrap(l.Stream, s.streamLimits(sd, l.Transport), connlimit.Deps{Logger: s.log, Registerer: s.deps.Registerer})
			sd.mu.Lock()
			sd.streams[l.Transport] = lim
			sd.mu.Unlock()
			l.Stream = lim
			ls[i] = l
		}
		s.sockMu.Lock()
		if l.Packet != nil {
			s.socks = append(s.socks, l.Packet)
		}
		if l.Stream != nil {
			s.socks = append(s.socks, l.Stream)
		}
		s.sockMu.Unlock()
		if l.Packet != nil {
			addr = l.Packet.LocalAddr()
		} else if l.Stream != nil {
			addr = l.Stream.Addr()
		} else {
			return fmt.Errorf("sipedge: listener %d: no socket", i)
		}
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return fmt.Errorf("sipedge: listener %d: %w", i, err)
		}
		sd.mu.Lock()
		sd.ports[l.Transport] = int(ap.Port())
		sd.ips[l.Transport] = ap.Addr().Unmap()
		sd.mu.Unlock()
	}
	s.sockMu.Lock()
	s.socks = append(s.socks, s.handoff)
	s.sockMu.Unlock()
	// Handed-off connections had their TLS terminated already: ServeWSS
	// without a TLS listener, so they are WSS connections to sipgo
	// (transport "WSS" on their messages, the WSS connection pool).
	n := len(ls)
	ls = append(ls[:n:n], BoundListener{Interface: External, Transport: "wss", Stream: s.handoff})
	// The internal side serves first, and the outside only once every
	// internal datagram socket is in sipgo's connection pool: a request
	// relayed before that would make sipgo bind the socket's address again
	// (EADDRINUSE) and the outside would get a 503.
	outside := func(l BoundListener) int {
		if l.Interface == Internal {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(ls, func(a, b BoundListener) int {
		return cmp.Compare(outside(a), outside(b))
	})
	var pooled []chan struct{}
	for _, l := range ls {
		sd := s.ext
		if l.Interface == Internal {
			sd = s.int
		} else {
			for _, c := range pooled {
				select {
				case <-c:
				case <-ctx.Done():
				case <-s.closed:
				}
			}
			pooled = nil
		}
		l := l
		if l.Packet != nil && l.Interface == Internal {
			fr := &firstRead{PacketConn: l.Packet, reading: make(chan struct{})}
			l.Packet, pooled = fr, append(pooled, fr.reading)
		}
		st := &listenerState{iface: l.Interface, transport: l.Transport}
		if l.Packet != nil {
			st.addr = l.Packet.LocalAddr().String()
		} else {
			st.addr = l.Stream.Addr().String()
			st.lim, _ = l.Stream.(*connlimit.Listener)
		}
		if l.Stream != s.handoff {
			s.sockMu.Lock()
			s.listeners = append(s.listeners, st)
			s.sockMu.Unlock()
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			var err error
			switch l.Transport {
			case "udp":
				err = sd.srv.ServeUDP(l.Packet)
			case "tcp":
				err = sd.srv.ServeTCP(s.capture(l.Stream, l.Interface, "tcp"))
			case "tls":
				err = sd.srv.ServeTLS(s.capture(tls.NewListener(l.Stream, s.deps.TLSConfig), l.Interface, "tls"))
			case "ws":
				err = sd.srv.ServeWS(s.capture(s.upgradeGate(l.Stream, nil), l.Interface, "ws"))
			case "wss":
				if l.Stream == s.handoff {
					err = sd.srv.ServeWSS(s.capture(l.Stream, l.Interface, "wss"))
				} else {
					err = sd.srv.ServeWSS(s.capture(s.upgradeGate(l.Stream, s.deps.TLSConfig), l.Interface, "wss"))
				}
			default:
				err = fmt.Errorf("unknown transport %q", l.Transport)
			}
			select {
			case <-s.closed:
			default:
				if err == nil {
					err = errors.New("serving ended")
				}
				msg := err.Error()
				st.dead.Store(&msg)
				s.log.Error("listener stopped", "side", sd.name, "transport", l.Transport, "addr", st.addr, "err", err)
			}
		}()
	}
	s.log.Info("sip edge serving", "listeners", n)
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.regs.keepaliveLoop(s.closed) }()
	go func() { defer s.wg.Done(); s.probeLoop(s.closed) }()
	go func() { defer s.wg.Done(); s.regs.sweepLoop(s.closed) }()
	select {
	case <-ctx.Done():
	case <-s.closed:
	}
	s.Close()
	return nil
}

// capture taps the SIP of l's connections (after TLS) when capture is on.
func (s *Server) capture(l net.Listener, iface, transport string) net.Listener {
	if s.deps.Capture == nil {
		return l
	}
	return ladder.WrapListener(l, s.deps.Capture, iface, transport)
}

// firstRead tells when sipgo first reads its socket, which it does right
// after adding the socket to its connection pool.
type firstRead struct {
	net.PacketConn
	once    sync.Once
	reading chan struct{}
}

func (c *firstRead) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.reading) })
	return c.PacketConn.ReadFrom(b)
}

// Close ends every call (BYE both ways, CANCEL while ringing), then
// cancels the server's context, which ends every request and wait still in
// progress, closes the sockets, and waits for every goroutine the server
// started and every request handler still running. It is safe to call more
// than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var wg sync.WaitGroup
		for _, c := range s.calls.all() {
			wg.Add(1)
			go func() { defer wg.Done(); c.hangup(endedByPortico, "portico shutting down") }()
		}
		wg.Wait()
		s.goMu.Lock()
		s.stopping = true
		s.goMu.Unlock()
		s.stop()
		s.handlers.close()
		close(s.closed)
		s.handoff.Close() // also when Serve never ran
		s.sockMu.Lock()
		for _, c := range s.socks {
			c.Close()
		}
		s.sockMu.Unlock()
		s.ext.ua.Close()
		s.int.ua.Close()
	})
	s.wg.Wait()
	return nil
}

// Addr returns the bound address of a side's listener for transport, for
// tests and the API. ok is false when no such listener is served.
func (s *Server) Addr(iface, transport string) (netip.AddrPort, bool) {
	sd := s.ext
	if iface == Internal {
		sd = s.int
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	p, ok := sd.ports[transport]
	return netip.AddrPortFrom(sd.ips[transport], uint16(p)), ok
}

// port returns the side's listening port for transport (udp as fallback).
func (sd *side) port(transport string) int {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if p, ok := sd.ports[transport]; ok {
		return p
	}
	if p := sd.handoffPort.Load(); p != 0 && transport == "wss" {
		return int(p)
	}
	return sd.ports["udp"]
}

// contact returns this side's Contact URI for transport.
func (sd *side) contact(transport, user string) sip.Uri {
	u := sip.Uri{Scheme: "sip", User: user, Host: sd.host, Port: sd.port(transport)}
	if transport != "udp" && transport != "" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", transport)
	}
	return u
}

// prepare fills the Via, transport, destination and local address of a
// request about to leave this side towards dest over transport.
func (sd *side) prepare(req *sip.Request, transport, dest string) {
	transport = strings.ToLower(transport)
	if transport == "" {
		transport = "udp"
	}
	req.RemoveHeader("Via")
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: sip.NetworkToUpper(transport),
		Host: sd.host, Port: sd.port(transport), Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	via.Params.Add("rport", "")
	req.PrependHeader(via)
	req.SetTransport(sip.NetworkToUpper(transport))
	req.SetDestination(dest)
	sd.mu.Lock()
	ip := sd.ips[transport]
	port := sd.ports[transport]
	sd.mu.Unlock()
	if ip.IsValid() {
		req.Laddr = sip.Addr{IP: net.IP(ip.AsSlice()), Port: 0}
		if transport == "udp" {
			req.Laddr.Port = port
		}
	}
	if req.ContentLength() == nil {
		req.SetBody(req.Body())
	}
}

func prebuilt(*sipgo.Client, *sip.Request) error { return nil }

// request starts a client transaction of a prepared request.
func (sd *side) request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	return sd.cl.TransactionRequest(ctx, req, prebuilt)
}

// write sends a prepared request without a transaction (ACK).
func (sd *side) write(req *sip.Request) error {
	return sd.cl.WriteRequest(req, prebuilt)
}

// do sends a prepared request and waits for its final response.
func (sd *side) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	tx, err := sd.request(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode >= 200 {
				return res, nil
			}
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// respond sends a response built from req with extra headers.
func (s *Server) respond(sd *side, tx sip.ServerTransaction, req *sip.Request, code int, reason string, hdrs ...sip.Header) error {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		if h != nil {
			res.AppendHeader(h)
		}
	}
	return tx.Respond(res)
}

func (s *Server) retryAfter() sip.Header {
	return sip.NewHeader("Retry-After", strconv.Itoa(int(s.lc().cfg.Limits.RetryAfter/time.Second)))
}

func (s *Server) handleOptions(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	s.respond(sd, tx, req, 200, "OK", allowHeader(), sip.NewHeader("Accept", "application/sdp"))
}

func (s *Server) handleRefer(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	s.respond(sd, tx, req, 403, "REFER Not Allowed")
}

func (s *Server) handleStrayCancel(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	// A CANCEL that matched an INVITE was answered by the transaction layer.
	s.respond(sd, tx, req, 481, "Call/Transaction Does Not Exist")
}

// record writes a registration event to history, if configured.
func (s *Server) recordReg(ev store.RegistrationEvent) {
	if s.deps.History == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.deps.History.AddRegistrationEvent(ctx, ev); err != nil {
		s.log.Warn("registration history", "err", err)
	}
}

func (s *Server) recordCall(r store.CallRecord) {
	if s.deps.History == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.deps.History.AddCall(ctx, r); err != nil {
		s.log.Warn("call history", "err", err)
	}
}
