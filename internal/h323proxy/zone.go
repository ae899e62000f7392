package h323proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/h323proxy/callsig"
)

// Zone is a traversal zone: another edge's H.460.18 traversal server that
// Portico registers to as a traversal client (ITU-T H.460.18 (11/2005)
// §7 and §8, the endpoint's side), as an Expressway-C's traversal zone
// registers to its Expressway-E. Calls the server signals with an SCI
// come in over a TCP connection Portico opens and are routed inside like
// federated calls; calls from inside to the aliases the zone serves are
// admitted by ARQ and set up over a connection Portico opens.
type Zone struct {
	// Name labels the zone in history ("zone:<name>"), metrics and logs.
	Name string
	// Server is the traversal server's RAS address; with Host, only its
	// port (0: the SRV record's, else 1719).
	Server netip.AddrPort
	// Host is the server's DNS name, resolved at each registration so that
	// a server that moved is followed: without a port, its _h323rs._udp
	// SRV record first, then its address records (of the external
	// address's family). An address that is the inside gatekeeper's or
	// Portico's own RAS address is refused then, as validation refuses a
	// literal one.
	Host string
	// GatekeeperID is the server's gatekeeper identifier (GRQ, RRQ);
	// empty: the one its GCF names.
	GatekeeperID string
	// Aliases are Portico's identity in the zone, registered in the RRQ.
	Aliases []string
	// Prefixes and Domains select the aliases called through the zone.
	Prefixes, Domains []string
	// TimeToLive is asked in the RRQ (default 300s); the keep-alive
	// interval is the server's grant (H.460.18 keepAliveInterval, else
	// its timeToLive).
	TimeToLive time.Duration
	// RetryMax caps the backoff between registration attempts (default
	// 60s; the first retry waits 1s, each next one twice as long).
	RetryMax time.Duration
}

// Defaults and pacing of zones.
const (
	defaultZoneTTL      = 300 * time.Second
	defaultZoneRetryMax = 60 * time.Second
	zoneRetryMin        = time.Second
	// zoneTries and zoneRetransmit pace a zone's RAS requests: each is
	// sent up to zoneTries times, zoneRetransmit apart (H.225.0 §7.6).
	zoneTries      = 3
	zoneRetransmit = 2 * time.Second
)

// serves reports whether alias is called through z.
func (z *Zone) serves(alias string) bool {
	n := Neighbour{Prefixes: z.Prefixes, Domains: z.Domains}
	return n.serves(alias)
}

// validateZones fills the zones' defaults (on a copy of the slice) and
// refuses contradictions: names missing or repeated, a server that is
// the inside gatekeeper or Portico itself, no identity, and prefixes or
// domains that a neighbour or another zone serves too.
func (c *Config) validateZones(es *field.Errors) {
	c.Zones = append([]Zone(nil), c.Zones...)
	names := map[string]bool{}
	owner := map[string]string{} // "p:"+prefix or "d:"+domain -> who serves it
	for i, n := range c.Neighbours {
		for _, p := range n.Prefixes {
			owner["p:"+p] = fmt.Sprintf("h323.neighbours[%d]", i)
		}
		for _, d := range n.Domains {
			owner["d:"+strings.ToLower(d)] = fmt.Sprintf("h323.neighbours[%d]", i)
		}
	}
	for i := range c.Zones {
		z := &c.Zones[i]
		path := fmt.Sprintf("h323.zones[%d]", i)
		switch {
		case z.Name == "" || strings.ContainsAny(z.Name, " \t:/"):
			es.Add(path+".name", "%q: a name without spaces, ':' or '/' is required", z.Name)
		case names[z.Name]:
			es.Add(path+".name", "%q names another zone too", z.Name)
		}
		names[z.Name] = true
		if z.Host != "" {
			// Checked against the inside gatekeeper and Portico when resolved.
		} else if !z.Server.Addr().IsValid() || z.Server.Port() == 0 {
			es.Add(path+".server", "the traversal server's RAS address (host[:port]) is required")
		} else if z.Server.Addr().Unmap() == c.Gatekeeper.Addr().Unmap() {
			es.Add(path+".server", "%s is the inside gatekeeper; a traversal zone's server is another edge outside", z.Server)
		} else if z.Server.Addr().Unmap() == c.ExternalRAS.Addr().Unmap() && z.Server.Port() == c.ExternalRAS.Port() {
			es.Add(path+".server", "%s is Portico's own RAS address", z.Server)
		}
		if len(z.Aliases) == 0 {
			es.Add(path+".aliases", "at least one alias (Portico's identity in the zone) is required")
		}
		for _, a := range z.Aliases {
			if a == "" || len(a) > 128 {
				es.Add(path+".aliases", "%q: aliases are 1 to 128 characters", a)
			}
		}
		if len(z.Prefixes) == 0 && len(z.Domains) == 0 {
			es.Add(path+".prefixes", "a zone serves at least one prefix or domain")
		}
		claim := func(key, what string) {
			if key == "p:" || key == "d:" {
				es.Add(path+"."+what, "an empty %s would take every alias", strings.TrimSuffix(what, "es"))
				return
			}
			if o, ok := owner[key]; ok {
				es.Add(path+"."+what, "%q is served by %s too", key[2:], o)
				return
			}
			owner[key] = path
		}
		for _, p := range z.Prefixes {
			claim("p:"+p, "prefixes")
		}
		for _, d := range z.Domains {
			claim("d:"+strings.ToLower(d), "domains")
		}
		if z.TimeToLive == 0 {
			z.TimeToLive = defaultZoneTTL
		}
		if z.RetryMax == 0 {
			z.RetryMax = defaultZoneRetryMax
		}
		if z.TimeToLive < time.Second {
			es.Add(path+".time_to_live", "%s is below 1s", z.TimeToLive)
		}
		if z.RetryMax < zoneRetryMin {
			es.Add(path+".retry_max", "%s is below 1s", z.RetryMax)
		}
	}
}

// Zone states, as the API and the portico_h323_zone_up metric show them.
const (
	ZoneRegistering = "registering"
	ZoneRegistered  = "registered"
	ZoneFailed      = "failed" // waiting to retry
)

// ZoneStatus is a zone's state for the API.
type ZoneStatus struct {
	Name string `json:"name"`
	// Server is the server as configured; Address its RAS address in use
	// (a name's resolved one; empty while a name does not resolve).
	Server  string `json:"server"`
	Address string `json:"address,omitempty"`
	State   string `json:"state"`
	// EndpointID is the identifier the server gave; KeepAlive the granted
	// interval in seconds.
	EndpointID string `json:"endpoint_id,omitempty"`
	KeepAlive  int    `json:"keep_alive_s,omitempty"`
	// Since is when the state last changed; LastError why the last
	// attempt failed.
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	// Counters since start.
	Registrations uint64 `json:"registrations"`
	KeepAlives    uint64 `json:"keep_alives"`
	Failures      uint64 `json:"failures"`
	CallsIn       uint64 `json:"calls_in"`
	CallsOut      uint64 `json:"calls_out"`
}

// zoneMetrics are shared by the zones of a server.
type zoneMetrics struct {
	up     *prometheus.GaugeVec
	events *prometheus.CounterVec
}

func newZoneMetrics(s *Server) *zoneMetrics {
	m := &zoneMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "portico_h323_zone_up",
			Help: "1 while Portico is registered to the traversal zone's server, else 0."}, []string{"zone"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portico_h323_zone_events_total",
			Help: "Traversal zone events, by zone and event (registered, keep_alive, failed, unregistered, sci, call_in, call_out, call_failed, answer_refused, disengaged)."},
			[]string{"zone", "event"}),
	}
	s.m.register(s.deps.Registerer, m.up, m.events)
	return m
}

// zoneClient is one zone's traversal client. Its RAS socket is its own
// (bound on the external address, any port), so the server's outside
// RAS socket never mistakes the zone server's answers for requests.
//
// Lock order: Server.mu before zoneClient.mu; neither is held while
// waiting for the network.
type zoneClient struct {
	s   *Server
	z   Zone
	m   *zoneMetrics
	bye chan struct{} // an URQ from the server: register again now
	// Of the server's Config at New (Reload changes none of them): the
	// external address to bind, the public one to announce, the
	// call-signalling port, and how long a connection may take.
	bind, public netip.Addr
	signalPort   uint16
	timeout      time.Duration

	mu       sync.Mutex
	conn     net.PacketConn
	server   netip.AddrPort // the server's RAS address in use (Host resolved)
	seq      uint16
	waits    map[uint16]chan *h225.RasMessage
	st       ZoneStatus
	gkID     string
	signal   netip.AddrPort    // the server's call-signalling address (RCF)
	answered map[[16]byte]bool // SCIs acted on, by call identifier
	order    [][16]byte        // answered in arrival order, for bounding
	// connecting counts the connections being opened for SCIs.
	connecting int
}

// maxZoneAnswered bounds the SCIs remembered against retransmission,
// maxZoneConnecting the connections being opened for SCIs at once.
const (
	maxZoneAnswered   = 256
	maxZoneConnecting = 64
)

func newZoneClient(s *Server, z Zone, m *zoneMetrics) *zoneClient {
	zc := &zoneClient{s: s, z: z, m: m, bye: make(chan struct{}, 1), waits: map[uint16]chan *h225.RasMessage{},
		answered: map[[16]byte]bool{}, bind: s.cfg.ExternalRAS.Addr(), public: s.cfg.PublicAddress,
		signalPort: s.cfg.ExternalSignalPort, timeout: s.cfg.RequestTimeout}
	zc.st = ZoneStatus{Name: z.Name, Server: z.Server.String(), State: ZoneRegistering, Since: s.now()}
	switch {
	case z.Host == "":
		zc.server = netip.AddrPortFrom(z.Server.Addr().Unmap(), z.Server.Port())
		zc.st.Address = z.Server.String()
	case z.Server.Port() == 0:
		zc.st.Server = z.Host
	default:
		zc.st.Server = net.JoinHostPort(z.Host, strconv.Itoa(int(z.Server.Port())))
	}
	m.up.WithLabelValues(z.Name).Set(0)
	return zc
}

// Zones returns the traversal zones' states.
func (s *Server) Zones() []ZoneStatus {
	out := make([]ZoneStatus, 0, len(s.zones))
	for _, zc := range s.zones {
		zc.mu.Lock()
		out = append(out, zc.st)
		zc.mu.Unlock()
	}
	return out
}

// zoneFor returns the registered zone serving one of names, whether or
// not it is registered (nil when none serves them).
func (s *Server) zoneFor(names []string) *zoneClient {
	for _, zc := range s.zones {
		for _, a := range names {
			if zc.z.serves(a) {
				return zc
			}
		}
	}
	return nil
}

// zoneAt returns the zone whose server has ip, or nil.
func (s *Server) zoneAt(ip netip.Addr) *zoneClient {
	ip = ip.Unmap()
	for _, zc := range s.zones {
		zc.mu.Lock()
		server, sig := zc.server, zc.signal
		zc.mu.Unlock()
		if server.IsValid() && server.Addr() == ip || sig.IsValid() && sig.Addr().Unmap() == ip {
			return zc
		}
	}
	return nil
}

func (zc *zoneClient) registered() bool {
	zc.mu.Lock()
	defer zc.mu.Unlock()
	return zc.st.State == ZoneRegistered
}

func (zc *zoneClient) setState(state, errText string) {
	zc.mu.Lock()
	if zc.st.State != state {
		zc.st.State, zc.st.Since = state, zc.s.now()
	}
	if errText != "" {
		zc.st.LastError = errText
	}
	zc.mu.Unlock()
	up := 0.0
	if state == ZoneRegistered {
		up = 1
	}
	zc.m.up.WithLabelValues(zc.z.Name).Set(up)
}

func (zc *zoneClient) count(event string) {
	zc.m.events.WithLabelValues(zc.z.Name, event).Inc()
	zc.mu.Lock()
	defer zc.mu.Unlock()
	switch event {
	case "registered":
		zc.st.Registrations++
	case "keep_alive":
		zc.st.KeepAlives++
	case "failed":
		zc.st.Failures++
	case "call_in":
		zc.st.CallsIn++
	case "call_out":
		zc.st.CallsOut++
	}
}

// run binds the zone's RAS socket and keeps Portico registered to the
// server until ctx ends: register, keep alive at the granted interval,
// and after a failure (no answer, RRJ, URQ) register again, waiting 1s,
// 2s, 4s... up to RetryMax between attempts.
func (zc *zoneClient) run(ctx context.Context) error {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(zc.bind, 0)))
	if err != nil {
		return fmt.Errorf("h323proxy: zone %s: %w", zc.z.Name, err)
	}
	zc.mu.Lock()
	zc.conn = c
	zc.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); zc.readLoop(ctx, c) }()
	defer func() {
		c.Close()
		wg.Wait()
		zc.setState(ZoneFailed, "stopped")
	}()
	backoff := zoneRetryMin
	for ctx.Err() == nil {
		zc.setState(ZoneRegistering, "")
		interval, err := zc.register(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			zc.count("failed")
			zc.setState(ZoneFailed, err.Error())
			zc.s.log.Info("zone registration failed", "zone", zc.z.Name, "server", zc.st.Server, "err", err, "retry", backoff)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, zc.z.RetryMax)
			continue
		}
		backoff = zoneRetryMin
		select {
		case <-zc.bye: // an URQ of the registration this one replaces
		default:
		}
		zc.count("registered")
		zc.setState(ZoneRegistered, "")
		zc.s.log.Info("zone registered", "zone", zc.z.Name, "server", zc.st.Server, "address", zc.serverAddr(), "keep_alive", interval)
		zc.keepAlive(ctx, interval)
	}
	return nil
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// keepAlive sends lightweight RRQs at interval until one goes unanswered
// or is rejected, the server unregisters Portico, or ctx ends.
func (zc *zoneClient) keepAlive(ctx context.Context, interval time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-zc.bye:
			zc.count("unregistered")
			zc.setState(ZoneRegistering, "unregistered by the server")
			return
		case <-time.After(interval):
		}
		resp, err := zc.request(ctx, func(seq uint16) *h225.RasMessage { return zc.rrq(seq, true) })
		if err != nil {
			if ctx.Err() == nil {
				zc.count("failed")
				zc.setState(ZoneRegistering, "keep-alive: "+err.Error())
			}
			return
		}
		if resp.Choice != h225.RasMessage_RegistrationConfirm {
			zc.count("failed")
			zc.setState(ZoneRegistering, "keep-alive refused: "+ras.Name(resp))
			return
		}
		zc.count("keep_alive")
	}
}

// identity is the zone's aliases: digits are dialledDigits, the rest
// h323-IDs.
func (zc *zoneClient) identity() []h225.AliasAddress {
	out := make([]h225.AliasAddress, 0, len(zc.z.Aliases))
	for _, a := range zc.z.Aliases {
		out = append(out, ras.Alias(a))
	}
	return out
}

// local is Portico's RAS address in the zone as announced: the public
// address (static NAT) with the zone socket's port.
func (zc *zoneClient) local() netip.AddrPort {
	zc.mu.Lock()
	c := zc.conn
	zc.mu.Unlock()
	ap := addrOf(c.LocalAddr())
	if pub := zc.public; pub.IsValid() && !pub.IsUnspecified() {
		ap = netip.AddrPortFrom(pub, ap.Port())
	}
	return ap
}

// rrq builds the zone's RRQ: a full one with H.460.18 desired, or the
// lightweight keep-alive.
func (zc *zoneClient) rrq(seq uint16, keepAlive bool) *h225.RasMessage {
	zc.mu.Lock()
	e := ras.Endpoint{RAS: netip.AddrPort{}, Gatekeeper: zc.gkID, EndpointID: zc.st.EndpointID, KeepAlive: keepAlive,
		TimeToLive: int64(zc.z.TimeToLive / time.Second)}
	zc.mu.Unlock()
	e.RAS = zc.local()
	e.CallSignal = netip.AddrPortFrom(e.RAS.Addr(), zc.signalPort)
	if !keepAlive {
		e.Aliases = zc.identity()
		e.EndpointID = ""
	}
	e.FeatureSet = &h225.FeatureSet{DesiredFeatures: []h225.GenericData{ras.Feature(ras.H46018)}, HasDesiredFeatures: true}
	// The zone's prefixes and domains are the server's side: they are not
	// announced as supported prefixes, which would route them back here.
	return ras.RRQ(int(seq), e)
}

// register discovers the server (GRQ) and registers (RRQ) with
// H.460.18; it returns the keep-alive interval granted.
func (zc *zoneClient) register(ctx context.Context) (time.Duration, error) {
	if err := zc.resolve(ctx); err != nil {
		return 0, err
	}
	gcf, err := zc.request(ctx, func(seq uint16) *h225.RasMessage {
		e := ras.Endpoint{RAS: zc.local(), Aliases: zc.identity(), Gatekeeper: zc.z.GatekeeperID,
			FeatureSet: &h225.FeatureSet{DesiredFeatures: []h225.GenericData{ras.Feature(ras.H46018)}, HasDesiredFeatures: true}}
		return ras.GRQ(int(seq), e)
	})
	if err != nil {
		return 0, fmt.Errorf("GRQ: %w", err)
	}
	if gcf.Choice != h225.RasMessage_GatekeeperConfirm {
		return 0, fmt.Errorf("GRQ answered with %s", ras.Name(gcf))
	}
	if ras.FeatureIn(gcf.GatekeeperConfirm.FeatureSet, ras.H46018) == nil {
		return 0, errors.New("the server does not offer H.460.18")
	}
	zc.mu.Lock()
	zc.gkID = zc.z.GatekeeperID
	if gcf.GatekeeperConfirm.HasGatekeeperIdentifier {
		zc.gkID = bmp(gcf.GatekeeperConfirm.GatekeeperIdentifier)
	}
	zc.st.EndpointID = ""
	zc.mu.Unlock()
	resp, err := zc.request(ctx, func(seq uint16) *h225.RasMessage { return zc.rrq(seq, false) })
	if err != nil {
		return 0, fmt.Errorf("RRQ: %w", err)
	}
	if resp.Choice == h225.RasMessage_RegistrationReject {
		return 0, fmt.Errorf("RRJ: %s", reasonWords(resp.RegistrationReject.RejectReason.Choice))
	}
	if resp.Choice != h225.RasMessage_RegistrationConfirm {
		return 0, fmt.Errorf("RRQ answered with %s", ras.Name(resp))
	}
	rcf := resp.RegistrationConfirm
	interval := zc.z.TimeToLive
	if rcf.HasTimeToLive && rcf.TimeToLive > 0 {
		interval = time.Duration(rcf.TimeToLive) * time.Second
	}
	if f := ras.FeatureIn(rcf.FeatureSet, ras.H46018); f == nil {
		return 0, errors.New("the RCF does not confirm H.460.18")
	} else if p := ras.Param(f, H46018KeepAliveInterval); p != nil && p.Content != nil && p.Content.Number16 > 0 {
		interval = time.Duration(p.Content.Number16) * time.Second
	}
	// Keep alive a little before the grant runs out.
	interval = max(interval*9/10, time.Second)
	zc.mu.Lock()
	zc.st.EndpointID = bmp(rcf.EndpointIdentifier)
	zc.st.KeepAlive = int(interval / time.Second)
	if rcf.HasGatekeeperIdentifier {
		zc.gkID = bmp(rcf.GatekeeperIdentifier)
	}
	zc.signal = netip.AddrPort{}
	for i := range rcf.CallSignalAddress {
		if ap, err := ras.AddrPort(&rcf.CallSignalAddress[i]); err == nil && ap.IsValid() {
			zc.signal = ap
			break
		}
	}
	zc.mu.Unlock()
	return interval, nil
}

// serverAddr returns the server's RAS address in use (invalid while a
// name does not resolve).
func (zc *zoneClient) serverAddr() netip.AddrPort {
	zc.mu.Lock()
	defer zc.mu.Unlock()
	return zc.server
}

// resolve looks the server's name up again (a zone given by address
// keeps it) and refuses an address that is the inside gatekeeper's or
// Portico's own RAS address. Until a lookup succeeds the zone has no
// server address: nothing is sent, and nothing is taken from anywhere.
func (zc *zoneClient) resolve(ctx context.Context) error {
	if zc.z.Host == "" {
		return nil
	}
	zc.mu.Lock()
	zc.server, zc.st.Address = netip.AddrPort{}, ""
	zc.mu.Unlock()
	zc.s.mu.Lock()
	r, timeout, gk, own := zc.s.resolver(), zc.s.cfg.RequestTimeout, zc.s.cfg.Gatekeeper, zc.s.cfg.ExternalRAS
	zc.s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	network := "ip4"
	if zc.bind.Is6() && !zc.bind.Is4In6() {
		network = "ip6"
	}
	ap, err := lookupZoneServer(ctx, r, zc.z.Host, zc.z.Server.Port(), network)
	switch {
	case err != nil:
		return fmt.Errorf("resolve %s: %w", zc.z.Host, err)
	case ap.Addr() == gk.Addr().Unmap():
		return fmt.Errorf("%s resolves to %s, the inside gatekeeper: a traversal zone's server is another edge outside", zc.z.Host, ap)
	case ap.Addr() == own.Addr().Unmap() && ap.Port() == own.Port(), ap.Addr() == zc.public && ap.Port() == own.Port():
		return fmt.Errorf("%s resolves to %s, Portico's own RAS address", zc.z.Host, ap)
	}
	zc.mu.Lock()
	zc.server, zc.st.Address = ap, ap.String()
	zc.mu.Unlock()
	return nil
}

// errZoneNoAnswer: the server answered none of a request's transmissions.
var errZoneNoAnswer = errors.New("no answer from the traversal server")

// request sends the message build makes (under a fresh sequence number)
// up to zoneTries times and returns the server's answer.
func (zc *zoneClient) request(ctx context.Context, build func(seq uint16) *h225.RasMessage) (*h225.RasMessage, error) {
	ch := make(chan *h225.RasMessage, 1)
	zc.mu.Lock()
	zc.seq++
	if zc.seq == 0 {
		zc.seq++
	}
	seq, c, server := zc.seq, zc.conn, zc.server
	zc.waits[seq] = ch
	zc.mu.Unlock()
	defer func() {
		zc.mu.Lock()
		delete(zc.waits, seq)
		zc.mu.Unlock()
	}()
	b, err := build(seq).Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	for try := 0; try < zoneTries; try++ {
		if _, err := c.WriteTo(b, netUDP(server)); err != nil && !isTemporary(err) {
			return nil, err
		}
		t := time.NewTimer(zoneRetransmit)
		select {
		case m := <-ch:
			t.Stop()
			if m.Choice == h225.RasMessage_RequestInProgress {
				// The server needs longer: wait its delay once more.
				d := time.Duration(m.RequestInProgress.Delay) * time.Millisecond
				select {
				case m = <-ch:
				case <-time.After(d + zoneRetransmit):
					return nil, errZoneNoAnswer
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return m, nil
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	return nil, errZoneNoAnswer
}

func isTemporary(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readLoop reads the zone's socket: answers go to the request waiting
// for them, requests (SCI, URQ, IRQ, DRQ) are answered. Datagrams from
// anywhere but the server's address are dropped unread.
func (zc *zoneClient) readLoop(ctx context.Context, c net.PacketConn) {
	buf := make([]byte, maxDatagram+1)
	for {
		n, a, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		src := addrOf(a)
		if server := zc.serverAddr(); !server.IsValid() || src.Addr().Unmap() != server.Addr() {
			zc.s.m.dropped.WithLabelValues("zone", "unknown_source").Inc()
			continue
		}
		if n > maxDatagram {
			zc.s.m.dropped.WithLabelValues("zone", "oversize").Inc()
			continue
		}
		zc.datagram(ctx, src, buf[:n])
	}
}

// datagram handles one datagram from the server. The message is decoded
// from a copy: it aliases its bytes, and answers outlive the read buffer
// in the goroutine that waited for them.
func (zc *zoneClient) datagram(ctx context.Context, src netip.AddrPort, b []byte) {
	m, err := ras.Parse(bytes.Clone(b))
	if err != nil {
		zc.s.m.dropped.WithLabelValues("zone", "malformed").Inc()
		return
	}
	zc.s.m.received.WithLabelValues("zone", ras.Name(m)).Inc()
	if ras.IsRequest(m) {
		zc.serveRequest(ctx, src, m)
		return
	}
	seq, _ := ras.SeqNum(m)
	zc.mu.Lock()
	ch := zc.waits[uint16(seq)]
	zc.mu.Unlock()
	if ch == nil {
		zc.s.m.dropped.WithLabelValues("zone", "unmatched").Inc()
		return
	}
	select {
	case ch <- m:
	default:
	}
}

// reply sends an answer to the server.
func (zc *zoneClient) reply(dst netip.AddrPort, m *h225.RasMessage) {
	b, err := m.Marshal()
	if err != nil {
		zc.s.log.Error("zone: encode", "message", ras.Name(m), "err", err)
		return
	}
	zc.mu.Lock()
	c := zc.conn
	zc.mu.Unlock()
	_, _ = c.WriteTo(b, netUDP(dst))
}

// serveRequest answers the server's requests.
func (zc *zoneClient) serveRequest(ctx context.Context, src netip.AddrPort, m *h225.RasMessage) {
	switch m.Choice {
	case h225.RasMessage_ServiceControlIndication:
		zc.reply(src, ras.SCR(m.ServiceControlIndication, -1, nil))
		ic, err := ras.FindIncomingCall(m)
		if err != nil {
			return // an SCI for another service: answered, nothing to do
		}
		zc.count("sci")
		var id [16]byte
		copy(id[:], ic.CallID)
		zc.mu.Lock()
		seen := zc.answered[id]
		if !seen {
			zc.answered[id] = true
			zc.order = append(zc.order, id)
			if len(zc.order) > maxZoneAnswered {
				delete(zc.answered, zc.order[0])
				zc.order = zc.order[1:]
			}
		}
		zc.mu.Unlock()
		if seen {
			return
		}
		zc.mu.Lock()
		busy := zc.connecting >= maxZoneConnecting
		if !busy {
			zc.connecting++
		}
		zc.mu.Unlock()
		if busy {
			// An SCI flood (UDP sources are easily forged): dropped.
			zc.count("call_failed")
			return
		}
		zc.s.wg.Add(1)
		go func() {
			defer zc.s.wg.Done()
			zc.connectOut(ctx, ic)
			zc.mu.Lock()
			zc.connecting--
			zc.mu.Unlock()
		}()
	case h225.RasMessage_UnregistrationRequest:
		zc.reply(src, ras.UCF(m.UnregistrationRequest))
		select {
		case zc.bye <- struct{}{}:
		default:
		}
	case h225.RasMessage_InfoRequest:
		zc.mu.Lock()
		e := ras.Endpoint{EndpointID: zc.st.EndpointID}
		zc.mu.Unlock()
		if e.EndpointID == "" {
			zc.s.m.dropped.WithLabelValues("zone", "unregistered").Inc()
			return // not registered: nothing to report
		}
		e.RAS = zc.local()
		e.CallSignal = netip.AddrPortFrom(e.RAS.Addr(), zc.signalPort)
		e.Aliases = zc.identity()
		zc.reply(src, ras.IRR(m.InfoRequest, int(m.InfoRequest.RequestSeqNum), e))
	case h225.RasMessage_DisengageRequest:
		zc.reply(src, ras.DCF(m.DisengageRequest))
	default:
		zc.s.m.dropped.WithLabelValues("zone", "unsupported").Inc()
	}
}

// allowedSignal reports whether the server may send Portico to ap for a
// call: its RAS address's IP or the call-signalling address of its RCF,
// never Portico itself.
func (zc *zoneClient) allowedSignal(ap netip.AddrPort) bool {
	if !ap.IsValid() || ap.Port() == 0 {
		return false
	}
	zc.mu.Lock()
	server, sig := zc.server, zc.signal
	zc.mu.Unlock()
	ip := ap.Addr().Unmap()
	return (server.IsValid() && ip == server.Addr()) || (sig.IsValid() && ip == sig.Addr().Unmap())
}

// connectOut opens the call-signalling connection an SCI asked for,
// sends the Facility carrying the call's identifier (H.460.18 §8.2) and
// hands the connection to the call-signalling proxy, which takes the
// Setup the server sends on it as a call from outside.
func (zc *zoneClient) connectOut(ctx context.Context, ic ras.IncomingCallIndication) {
	if !zc.allowedSignal(ic.CallSignal) || zc.s.cs == nil {
		zc.count("call_failed")
		return
	}
	dctx, cancel := context.WithTimeout(ctx, zc.timeout)
	conn, err := zc.dialOutside(dctx, ic.CallSignal)
	cancel()
	if err != nil {
		zc.count("call_failed")
		zc.s.log.Debug("zone: connect for SCI", "zone", zc.z.Name, "to", ic.CallSignal, "err", err)
		return
	}
	if err := writeTPKT(conn, callsig.Facility(0, false, ic.CallID)); err != nil {
		conn.Close()
		zc.count("call_failed")
		return
	}
	zc.count("call_in")
	var id [16]byte
	copy(id[:], ic.CallID)
	zc.s.goZone(func() { zc.admitAnswer(id) })
	zc.s.cs.Accept(zc.track(conn, id, true), callsig.Outside)
}

// admitAnswer asks the server to admit the call Portico answers (ARQ
// with answerCall), as an H.460.18 endpoint does once it has the Setup;
// a refusal is logged and counted, the call goes on as the server routed
// it.
func (zc *zoneClient) admitAnswer(callID [16]byte) {
	zc.mu.Lock()
	epID := zc.st.EndpointID
	zc.mu.Unlock()
	resp, err := zc.request(zc.s.ctx, func(seq uint16) *h225.RasMessage {
		return ras.ARQ(int(seq), epID, zc.identity(), zc.identity(), 7680, int(seq), callID[:], callID[:], true)
	})
	if err == nil && resp.Choice != h225.RasMessage_AdmissionConfirm {
		zc.count("answer_refused")
		zc.s.log.Info("zone: the server refused to admit an answered call", "zone", zc.z.Name, "answer", ras.Name(resp))
	}
}

// goZone runs f on a goroutine the server waits for, unless it is
// shutting down.
func (s *Server) goZone(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
}

// zoneConn is a call's connection through a zone: when the call ends
// (the proxy closes it), Portico disengages the call at the server (DRQ).
type zoneConn struct {
	net.Conn
	once sync.Once
	end  func()
}

// NetConn returns the connection underneath.
func (z *zoneConn) NetConn() net.Conn { return z.Conn }

func (z *zoneConn) Close() error {
	err := z.Conn.Close()
	z.once.Do(z.end)
	return err
}

// track wraps conn so that the call's end sends a DRQ for callID.
func (zc *zoneClient) track(conn net.Conn, callID [16]byte, answered bool) net.Conn {
	return &zoneConn{Conn: conn, end: func() {
		zc.s.goZone(func() { zc.disengage(callID, answered) })
	}}
}

// disengage tells the server the call is over (DRQ normalDrop); an
// unanswered DRQ is given up after its retransmissions.
func (zc *zoneClient) disengage(callID [16]byte, answered bool) {
	if !zc.registered() {
		return
	}
	zc.mu.Lock()
	epID := zc.st.EndpointID
	zc.mu.Unlock()
	_, err := zc.request(zc.s.ctx, func(seq uint16) *h225.RasMessage {
		return ras.DRQ(int(seq), ras.Call{EndpointID: epID, ConferenceID: callID[:], ID: callID[:], Answered: answered}, h225.DisengageReason_NormalDrop)
	})
	if err == nil {
		zc.count("disengaged")
	}
}

// dial admits a call from inside to alias at the server (ARQ, H.460.18
// §7: a traversal client asks its gatekeeper) and opens the
// call-signalling connection to the address the ACF names.
func (zc *zoneClient) dial(ctx context.Context, alias string, callID [16]byte) (net.Conn, error) {
	if !zc.registered() {
		zc.count("call_failed")
		return nil, fmt.Errorf("zone %s: not registered", zc.z.Name)
	}
	zc.mu.Lock()
	epID := zc.st.EndpointID
	zc.mu.Unlock()
	dest := []h225.AliasAddress{ras.H323ID(alias)}
	if strings.Trim(alias, "0123456789#*,") == "" {
		dest = []h225.AliasAddress{ras.E164(alias)}
	}
	resp, err := zc.request(ctx, func(seq uint16) *h225.RasMessage {
		return ras.ARQ(int(seq), epID, zc.identity(), dest, 7680, int(seq), callID[:], callID[:], false)
	})
	if err != nil {
		zc.count("call_failed")
		return nil, fmt.Errorf("zone %s: ARQ: %w", zc.z.Name, err)
	}
	if resp.Choice != h225.RasMessage_AdmissionConfirm {
		zc.count("call_failed")
		return nil, fmt.Errorf("zone %s: ARQ answered with %s", zc.z.Name, ras.Name(resp))
	}
	dst, err := ras.AddrPort(&resp.AdmissionConfirm.DestCallSignalAddress)
	if err != nil || !zc.allowedSignal(dst) {
		zc.count("call_failed")
		return nil, fmt.Errorf("zone %s: ACF names %v, not the traversal server", zc.z.Name, dst)
	}
	conn, err := zc.dialOutside(ctx, dst)
	if err != nil {
		zc.count("call_failed")
		return nil, err
	}
	zc.count("call_out")
	return zc.track(conn, callID, false), nil
}

// dialOutside opens a TCP connection from Portico's external address.
func (zc *zoneClient) dialOutside(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: zc.bind.AsSlice()}, KeepAlive: -1}
	return d.DialContext(ctx, "tcp", dst.String())
}

// writeTPKT writes one TPKT frame.
func writeTPKT(c net.Conn, payload []byte) error {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	n := len(payload) + 4
	_, err := c.Write(append([]byte{3, 0, byte(n >> 8), byte(n)}, payload...))
	c.SetWriteDeadline(time.Time{})
	return err
}

// zoneEqual reports whether two zones are configured alike (Reload).
func zoneEqual(a, b Zone) bool {
	return a.Name == b.Name && a.Server == b.Server && a.Host == b.Host && a.GatekeeperID == b.GatekeeperID && a.TimeToLive == b.TimeToLive &&
		a.RetryMax == b.RetryMax && slices.Equal(a.Aliases, b.Aliases) && slices.Equal(a.Prefixes, b.Prefixes) && slices.Equal(a.Domains, b.Domains)
}

// zoneLocate answers the inside gatekeeper's LRQ for an alias zone zc
// serves: Portico's inside call-signalling address while the zone is
// registered (the Setup that follows is admitted at the server by ARQ),
// else LRJ unavailable. Callers hold s.mu.
func (s *Server) zoneLocate(src netip.AddrPort, q *h225.LocationRequest, zc *zoneClient) {
	if !zc.registered() {
		s.send(Internal, src, ras.LRJ(q, h225.LocationRejectReason_ResourceUnavailable))
		return
	}
	s.send(Internal, src, ras.LCF(q, s.cfg.InternalSignal, s.inAddr))
}

// zoneRoute returns, for a Setup from inside to alias, the zone serving
// it as an Endpoint whose Dial admits and connects the call there. An
// alias registered through Portico, or that a neighbour located, is not
// the zone's.
func (s *Server) zoneRoute(alias string) (callsig.Endpoint, bool) {
	zc := s.zoneFor([]string{alias})
	if zc == nil {
		return callsig.Endpoint{}, false
	}
	if _, ok := s.Outside(alias); ok {
		return callsig.Endpoint{}, false
	}
	if _, ok := s.neighbourRoute(alias); ok {
		return callsig.Endpoint{}, false
	}
	return callsig.Endpoint{ID: "zone:" + zc.z.Name, CallType: "zone:" + zc.z.Name,
		Dial: func(ctx context.Context, callID [16]byte) (net.Conn, error) { return zc.dial(ctx, alias, callID) }}, true
}
