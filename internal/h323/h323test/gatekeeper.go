package h323test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// GatekeeperConfig configures the minimal gatekeeper.
type GatekeeperConfig struct {
	// ID is the gatekeeperIdentifier; default "portico-test-gk".
	ID string
	// IP is the local address of its sockets; default 127.0.0.1.
	IP netip.Addr
	// Routed answers ARQs with the gatekeeper's own call-signalling
	// address (gatekeeper-routed call signalling); otherwise ACFs carry
	// the callee's registered address (direct).
	Routed bool
	// TimeToLive is the timeToLive of RCFs, in seconds; default 60.
	TimeToLive int64
	// RejectRRQ, when set, is asked for every full RRQ and returns a
	// RegistrationRejectReason alternative (h225.RegistrationRejectReason_*)
	// to reject it, or -1 to accept.
	RejectRRQ func(*h225.RegistrationRequest) int
	// RejectARQ, when set, is asked for every ARQ and returns an
	// AdmissionRejectReason alternative (h225.AdmissionRejectReason_*) to
	// reject it, or -1 to go on.
	RejectARQ func(*h225.AdmissionRequest) int
	// StrictKeepAlive rejects a keep-alive RRQ whose endpointIdentifier
	// it did not assign with fullRegistrationRequired. By default such an
	// RRQ is matched to a registration by its callSignalAddress, or, when
	// it carries aliases and a call-signalling address, registers the
	// endpoint, so RRQs replayed from captures are accepted.
	StrictKeepAlive bool
	// Callees are aliases the gatekeeper answers itself, as a scripted
	// callee, when a routed Setup is for them (ARQs for them are
	// confirmed with the gatekeeper's call-signalling address).
	Callees []string
	// Answer is how the scripted callees answer.
	Answer AnswerConfig
	// Recorder, when set, records everything the gatekeeper sends.
	Recorder *Recorder
}

// Registration is an endpoint registered with the gatekeeper.
type Registration struct {
	EndpointID string
	Aliases    []string
	// CallSignal is the first callSignalAddress of the RRQ; RAS the
	// rasAddress it carried and Source where the RRQ came from.
	CallSignal, RAS, Source netip.AddrPort
	// H46018 is set when the RRQ listed H.460.18 in its featureSet.
	H46018 bool
	// KeepAlives counts the lightweight RRQs since registration.
	KeepAlives int
}

// Gatekeeper is a minimal H.323 gatekeeper: a test stand-in for real
// gatekeepers (GnuGk, Cisco VCS) on the inside of Portico. It answers RAS
// on UDP (GRQ, RRQ with configurable rejects, URQ, ARQ direct or routed,
// LRQ, BRQ, DRQ, IRR, and SCI/SCR for H.460.18 endpoints), accepts routed
// call signalling on TCP — forwarding each Setup to the registered
// callee (over the connection an H.460.18 callee opens after an SCI) or
// answering it itself for Callees — and records every message it
// receives for tests to assert on.
type Gatekeeper struct {
	node
	cfg GatekeeperConfig

	mu      sync.Mutex
	next    int
	regs    map[string]*Registration   // by endpointID
	waiting map[[16]byte]chan net.Conn // H.460.18 calls awaiting the callee's Facility
	once    sync.Once
}

// NewGatekeeper binds the gatekeeper's sockets and starts serving; it is
// closed when the test ends.
func NewGatekeeper(t testing.TB, cfg GatekeeperConfig) *Gatekeeper {
	t.Helper()
	if cfg.ID == "" {
		cfg.ID = "portico-test-gk"
	}
	if !cfg.IP.IsValid() {
		cfg.IP = netip.MustParseAddr("127.0.0.1")
	}
	if cfg.TimeToLive == 0 {
		cfg.TimeToLive = 60
	}
	g := &Gatekeeper{cfg: cfg, regs: map[string]*Registration{}, waiting: map[[16]byte]chan net.Conn{}}
	g.init(t, cfg.IP, cfg.Recorder, "gatekeeper", cfg.ID, cfg.Answer)
	cfg.Recorder.Port(int(g.RASAddr().Port()), "h225")
	g.run(g.handle, g.serveConn)
	t.Cleanup(g.Close)
	return g
}

// RASAddr returns the gatekeeper's RAS address.
func (g *Gatekeeper) RASAddr() netip.AddrPort { return g.ras.addr() }

// CallSignalAddr returns the gatekeeper's call-signalling address.
func (g *Gatekeeper) CallSignalAddr() netip.AddrPort { return addrPort(g.cs.Addr()) }

// Received returns every message the gatekeeper received: RAS, and the
// Q.931 messages of routed calls (both directions of a forwarded call).
func (g *Gatekeeper) Received() []Message { return g.msgs.all() }

// WaitFor waits until the gatekeeper has received n messages named name.
func (g *Gatekeeper) WaitFor(ctx context.Context, name string, n int) error {
	for {
		ch := g.msgs.changed()
		if Count(g.msgs.all(), name) >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("h323test: gatekeeper waiting for %d %s: %w", n, name, errors.Join(ErrTimeout, ctx.Err()))
		}
	}
}

// Registered returns the registration holding alias.
func (g *Gatekeeper) Registered(alias string) (Registration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.lookup(alias); r != nil {
		return *r, true
	}
	return Registration{}, false
}

// Registrations returns every registration.
func (g *Gatekeeper) Registrations() []Registration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Registration
	for _, r := range g.regs {
		out = append(out, *r)
	}
	return out
}

// Incoming returns the next call a scripted callee answered.
func (g *Gatekeeper) Incoming(ctx context.Context) (*Call, error) { return g.incoming(ctx) }

// Close stops the gatekeeper and waits for its goroutines.
func (g *Gatekeeper) Close() {
	g.once.Do(func() {
		g.shutdown()
	})
}

func (g *Gatekeeper) lookup(alias string) *Registration {
	for _, r := range g.regs {
		for _, a := range r.Aliases {
			if a == alias {
				return r
			}
		}
	}
	return nil
}

func (g *Gatekeeper) isCallee(alias string) bool {
	for _, a := range g.cfg.Callees {
		if a == alias {
			return true
		}
	}
	return false
}

func (g *Gatekeeper) send(m *h225.RasMessage, to netip.AddrPort) { g.ras.send(m, to) }

func aliases(list []h225.AliasAddress) []string {
	var out []string
	for i := range list {
		if s, ok := ras.AliasString(&list[i]); ok {
			out = append(out, s)
		}
	}
	return out
}

func firstAddr(list []h225.TransportAddress) netip.AddrPort {
	for i := range list {
		if ap, err := ras.AddrPort(&list[i]); err == nil {
			return ap
		}
	}
	return netip.AddrPort{}
}

func (g *Gatekeeper) handle(m Message) {
	r := m.RAS
	switch r.Choice {
	case h225.RasMessage_GatekeeperRequest:
		gcf := ras.GCF(r.GatekeeperRequest, g.cfg.ID, g.RASAddr())
		if ras.FeatureIn(r.GatekeeperRequest.FeatureSet, ras.H46018) != nil {
			gcf.GatekeeperConfirm.FeatureSet = ras.Supported(ras.Feature(ras.H46018))
		}
		g.send(gcf, m.From)
	case h225.RasMessage_RegistrationRequest:
		g.send(g.register(r.RegistrationRequest, m.From), m.From)
	case h225.RasMessage_UnregistrationRequest:
		u := r.UnregistrationRequest
		g.mu.Lock()
		id := asString(u.EndpointIdentifier)
		if _, ok := g.regs[id]; !ok || !u.HasEndpointIdentifier {
			id = ""
			if reg := g.match(&h225.RegistrationRequest{CallSignalAddress: u.CallSignalAddress, TerminalAlias: u.EndpointAlias}); reg != nil {
				id = reg.EndpointID
			}
		}
		_, ok := g.regs[id]
		delete(g.regs, id)
		g.mu.Unlock()
		if !ok {
			g.send(&h225.RasMessage{Choice: h225.RasMessage_UnregistrationReject, UnregistrationReject: &h225.UnregistrationReject{
				RequestSeqNum: u.RequestSeqNum, RejectReason: h225.UnregRejectReason{Choice: h225.UnregRejectReason_NotCurrentlyRegistered}}}, m.From)
			return
		}
		g.send(ras.UCF(u), m.From)
	case h225.RasMessage_AdmissionRequest:
		g.send(g.admit(r.AdmissionRequest), m.From)
	case h225.RasMessage_LocationRequest:
		l := r.LocationRequest
		g.mu.Lock()
		var reg *Registration
		for _, a := range aliases(l.DestinationInfo) {
			if reg = g.lookup(a); reg != nil {
				break
			}
		}
		g.mu.Unlock()
		reply := m.From
		if ap, err := ras.AddrPort(&l.ReplyAddress); err == nil {
			reply = ap
		}
		if reg == nil {
			g.send(ras.LRJ(l, h225.LocationRejectReason_RequestDenied), reply)
			return
		}
		cs := reg.CallSignal
		if g.cfg.Routed {
			cs = g.CallSignalAddr()
		}
		g.send(ras.LCF(l, cs, g.RASAddr()), reply)
	case h225.RasMessage_BandwidthRequest:
		g.send(&h225.RasMessage{Choice: h225.RasMessage_BandwidthConfirm, BandwidthConfirm: &h225.BandwidthConfirm{
			RequestSeqNum: r.BandwidthRequest.RequestSeqNum, BandWidth: r.BandwidthRequest.BandWidth}}, m.From)
	case h225.RasMessage_DisengageRequest:
		g.send(ras.DCF(r.DisengageRequest), m.From)
	case h225.RasMessage_InfoRequestResponse:
		irr := r.InfoRequestResponse
		if irr.HasNeedResponse && irr.NeedResponse {
			g.send(&h225.RasMessage{Choice: h225.RasMessage_InfoRequestAck, InfoRequestAck: &h225.InfoRequestAck{RequestSeqNum: irr.RequestSeqNum}}, m.From)
		}
		g.ras.deliver(r)
	default:
		g.ras.deliver(r)
	}
}

func (g *Gatekeeper) register(rrq *h225.RegistrationRequest, from netip.AddrPort) *h225.RasMessage {
	g.mu.Lock()
	defer g.mu.Unlock()
	id := asString(rrq.EndpointIdentifier)
	if rrq.HasKeepAlive && rrq.KeepAlive {
		reg, ok := g.regs[id]
		if !ok && !g.cfg.StrictKeepAlive {
			// an endpoint registered by a replayed capture keeps the
			// identifier the capture's gatekeeper gave it: find it by
			// its call-signalling address (and aliases, when given)
			if reg = g.match(rrq); reg != nil {
				ok, id = true, reg.EndpointID
			}
		}
		if ok && (rrq.HasEndpointIdentifier || !g.cfg.StrictKeepAlive) {
			reg.KeepAlives++
			rcf := ras.RCF(rrq, g.cfg.ID, id, g.CallSignalAddr(), g.cfg.TimeToLive)
			if reg.H46018 {
				rcf.RegistrationConfirm.FeatureSet = ras.Supported(ras.Feature(ras.H46018))
			}
			return rcf
		}
		if g.cfg.StrictKeepAlive || !rrq.HasTerminalAlias || len(rrq.CallSignalAddress) == 0 {
			return ras.RRJ(rrq, h225.RegistrationRejectReason_FullRegistrationRequired)
		}
	}
	if g.cfg.RejectRRQ != nil {
		if reason := g.cfg.RejectRRQ(rrq); reason >= 0 {
			return ras.RRJ(rrq, reason)
		}
	}
	if len(rrq.CallSignalAddress) == 0 || len(rrq.RasAddress) == 0 {
		return ras.RRJ(rrq, h225.RegistrationRejectReason_InvalidCallSignalAddress)
	}
	names := aliases(rrq.TerminalAlias)
	same := g.match(rrq)
	if id == "" || g.regs[id] == nil {
		if same != nil && len(names) > 0 {
			id = same.EndpointID
		}
	}
	for _, a := range names {
		if r := g.lookup(a); r != nil && r.EndpointID != id {
			return ras.RRJ(rrq, h225.RegistrationRejectReason_DuplicateAlias)
		}
	}
	if id == "" {
		g.next++
		id = fmt.Sprintf("ep%04d", g.next)
	}
	reg := &Registration{EndpointID: id, Aliases: names, CallSignal: firstAddr(rrq.CallSignalAddress),
		RAS: firstAddr(rrq.RasAddress), Source: from,
		H46018: ras.FeatureIn(rrq.FeatureSet, ras.H46018) != nil}
	g.regs[id] = reg
	rcf := ras.RCF(rrq, g.cfg.ID, id, g.CallSignalAddr(), g.cfg.TimeToLive)
	if reg.H46018 {
		rcf.RegistrationConfirm.FeatureSet = ras.Supported(ras.Feature(ras.H46018))
	}
	return rcf
}

// match returns the registration an RRQ without a known
// endpointIdentifier renews: the one with its callSignalAddress and, when
// the RRQ has aliases, one of them. Several endpoints may share one
// call-signalling address (all those a proxy such as Portico registers);
// nil when none or, without aliases, more than one match.
func (g *Gatekeeper) match(rrq *h225.RegistrationRequest) *Registration {
	cs := firstAddr(rrq.CallSignalAddress)
	names := aliases(rrq.TerminalAlias)
	var found *Registration
	n := 0
	for _, r := range g.regs {
		if r.CallSignal != cs {
			continue
		}
		if len(names) == 0 {
			found, n = r, n+1
			continue
		}
		for _, a := range names {
			for _, b := range r.Aliases {
				if a == b {
					return r
				}
			}
		}
	}
	if n == 1 {
		return found
	}
	return nil
}

func (g *Gatekeeper) admit(arq *h225.AdmissionRequest) *h225.RasMessage {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.regs[asString(arq.EndpointIdentifier)]; !ok {
		return ras.ARJ(arq, h225.AdmissionRejectReason_CallerNotRegistered)
	}
	if g.cfg.RejectARQ != nil {
		if reason := g.cfg.RejectARQ(arq); reason >= 0 {
			return ras.ARJ(arq, reason)
		}
	}
	if arq.AnswerCall {
		return ras.ACF(arq, g.CallSignalAddr(), g.cfg.Routed)
	}
	for _, a := range aliases(arq.DestinationInfo) {
		if g.isCallee(a) {
			return ras.ACF(arq, g.CallSignalAddr(), true)
		}
		if reg := g.lookup(a); reg != nil {
			if g.cfg.Routed || reg.H46018 {
				return ras.ACF(arq, g.CallSignalAddr(), true)
			}
			return ras.ACF(arq, reg.CallSignal, false)
		}
	}
	return ras.ARJ(arq, h225.AdmissionRejectReason_CalledPartyNotRegistered)
}

func (g *Gatekeeper) request(ctx context.Context, m *h225.RasMessage, to netip.AddrPort) (*h225.RasMessage, error) {
	return g.ras.request(ctx, g.ctx.Done(), m, to)
}

func (g *Gatekeeper) nextSeq() int { return g.ras.nextSeq() }

// InfoRequest sends an IRQ to the endpoint registered under alias and
// returns its IRR.
func (g *Gatekeeper) InfoRequest(ctx context.Context, alias string) (*h225.InfoRequestResponse, error) {
	reg, ok := g.Registered(alias)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotRegistered, alias)
	}
	r, err := g.request(ctx, ras.IRQ(g.nextSeq(), 0, g.RASAddr()), reg.Source)
	if err != nil {
		return nil, err
	}
	if r.InfoRequestResponse == nil {
		return nil, fmt.Errorf("%w: %s", ErrRejected, ras.Name(r))
	}
	return r.InfoRequestResponse, nil
}

// serveConn handles a call-signalling connection: a Facility binds an
// H.460.18 callee's connection to a waiting call; a Setup is answered by
// a scripted callee or forwarded to the registered one.
func (g *Gatekeeper) serveConn(conn net.Conn) {
	stop := context.AfterFunc(g.ctx, func() { conn.Close() })
	defer stop()
	sig := newSigConn(conn, g.cfg.Recorder)
	m, err := sig.readQ931()
	if err != nil {
		conn.Close()
		return
	}
	g.msgs.add(m)
	switch m.Q931.Type {
	case q931.Facility:
		f := m.UUIE
		if f == nil || f.H323UuPdu.H323MessageBody.Facility == nil || f.H323UuPdu.H323MessageBody.Facility.CallIdentifier == nil {
			conn.Close()
			return
		}
		var id [16]byte
		copy(id[:], f.H323UuPdu.H323MessageBody.Facility.CallIdentifier.Guid)
		g.mu.Lock()
		ch := g.waiting[id]
		g.mu.Unlock()
		if ch == nil {
			conn.Close()
			return
		}
		select {
		case ch <- conn:
			stop() // the forwarding call owns conn now
		default:
			conn.Close()
		}
	case q931.Setup:
		if m.UUIE == nil || m.UUIE.H323UuPdu.H323MessageBody.Setup == nil {
			conn.Close()
			return
		}
		s := m.UUIE.H323UuPdu.H323MessageBody.Setup
		dest := aliases(s.DestinationAddress)
		for _, a := range dest {
			if g.isCallee(a) {
				g.p.serveIncoming(g.ctx, conn, &m)
				return
			}
		}
		g.forward(sig, m, dest)
	default:
		conn.Close()
	}
}

// forward connects to the callee of a routed Setup and relays the call
// signalling both ways, recording what each side sends.
func (g *Gatekeeper) forward(caller *sigConn, setup Message, dest []string) {
	defer caller.close()
	var reg *Registration
	g.mu.Lock()
	for _, a := range dest {
		if reg = g.lookup(a); reg != nil {
			break
		}
	}
	var r Registration
	if reg != nil {
		r = *reg
	}
	g.mu.Unlock()
	release := func() {
		uu := &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{H323MessageBody: h225.H323UUPDUH323MessageBody{
			Choice: h225.H323UUPDUH323MessageBody_ReleaseComplete, ReleaseComplete: &h225.ReleaseCompleteUUIE{
				ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
				Reason:             &h225.ReleaseCompleteReason{Choice: h225.ReleaseCompleteReason_UnreachableDestination}}}}}
		caller.sendQ931(q931.ReleaseComplete, setup.Q931.CallRef, true, uu, causeIE(3))
	}
	if reg == nil {
		release()
		return
	}
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	defer cancel()
	var conn net.Conn
	var err error
	if r.H46018 {
		conn, err = g.incomingCall(ctx, r, setup)
	} else {
		conn, err = dialerFrom(g.cfg.IP).DialContext(ctx, "tcp", r.CallSignal.String())
	}
	if err != nil {
		release()
		return
	}
	callee := newSigConn(conn, g.cfg.Recorder)
	defer callee.close()
	stop := context.AfterFunc(g.ctx, func() { conn.Close(); caller.close() })
	defer stop()
	if err := callee.write(setup.Raw); err != nil {
		release()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(from, to *sigConn) {
		defer func() { done <- struct{}{} }()
		for {
			b, err := from.next()
			if err != nil {
				return
			}
			if m, err := parseQ931(b, from.from(), from.local()); err == nil {
				g.msgs.add(m)
			}
			if to.write(b) != nil {
				return
			}
		}
	}
	go pipe(caller, callee)
	go pipe(callee, caller)
	<-done
	caller.close()
	callee.close()
	<-done
}

// incomingCall asks an H.460.18 endpoint with an SCI to connect to the
// gatekeeper for the call of setup and returns that connection once the
// endpoint's Facility arrived on it (H.460.18 §8).
func (g *Gatekeeper) incomingCall(ctx context.Context, r Registration, setup Message) (net.Conn, error) {
	s := setup.UUIE.H323UuPdu.H323MessageBody.Setup
	var id [16]byte
	if s.CallIdentifier != nil {
		copy(id[:], s.CallIdentifier.Guid)
	}
	ch := make(chan net.Conn, 1)
	g.mu.Lock()
	g.waiting[id] = ch
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.waiting, id)
		g.mu.Unlock()
	}()
	feat, err := ras.IncomingCall(ras.IncomingCallIndication{CallSignal: g.CallSignalAddr(), CallID: id[:]})
	if err != nil {
		return nil, err
	}
	sci := ras.SCI(g.nextSeq(), nil)
	sci.ServiceControlIndication.ServiceControl = []h225.ServiceControlSession{{
		SessionId: 0, Reason: h225.ServiceControlSessionReason{Choice: h225.ServiceControlSessionReason_Open}}}
	sci.ServiceControlIndication.GenericData, sci.ServiceControlIndication.HasGenericData = []h225.GenericData{feat}, true
	if _, err := g.request(ctx, sci, r.Source); err != nil {
		return nil, err
	}
	select {
	case conn := <-ch:
		return conn, nil
	case <-ctx.Done():
		return nil, errors.Join(ErrTimeout, ctx.Err())
	}
}

// waitFacility registers callID as awaiting an H.460.18 Facility, runs
// trigger, and fails t unless a connection bound by such a Facility
// arrives; the connection is then closed.
func (g *Gatekeeper) waitFacility(t testing.TB, callID []byte, trigger func()) {
	t.Helper()
	var id [16]byte
	copy(id[:], callID)
	ch := make(chan net.Conn, 1)
	g.mu.Lock()
	g.waiting[id] = ch
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.waiting, id)
		g.mu.Unlock()
	}()
	trigger()
	select {
	case c := <-ch:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("h323test: no Facility for the SCI's call")
	}
}

// Unregister sends a URQ to the endpoint registered under alias and drops
// the registration once it confirms.
func (g *Gatekeeper) Unregister(ctx context.Context, alias string) error {
	reg, ok := g.Registered(alias)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotRegistered, alias)
	}
	urq := ras.URQ(g.nextSeq(), ras.Endpoint{CallSignal: reg.CallSignal, EndpointID: reg.EndpointID, Gatekeeper: g.cfg.ID})
	r, err := g.request(ctx, urq, reg.Source)
	if err != nil {
		return err
	}
	if r.Choice != h225.RasMessage_UnregistrationConfirm {
		return fmt.Errorf("%w: %s", ErrRejected, ras.Name(r))
	}
	g.mu.Lock()
	delete(g.regs, reg.EndpointID)
	g.mu.Unlock()
	return nil
}

// Disengage sends a DRQ (forcedDrop) for the call callID to the endpoint
// registered under alias and waits for its DCF; the endpoint releases the
// call.
func (g *Gatekeeper) Disengage(ctx context.Context, alias string, callID [16]byte) error {
	reg, ok := g.Registered(alias)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotRegistered, alias)
	}
	drq := ras.DRQ(g.nextSeq(), ras.Call{EndpointID: reg.EndpointID, ConferenceID: make([]byte, 16), ID: callID[:]},
		h225.DisengageReason_ForcedDrop)
	r, err := g.request(ctx, drq, reg.Source)
	if err != nil {
		return err
	}
	if r.Choice != h225.RasMessage_DisengageConfirm {
		return fmt.Errorf("%w: %s", ErrRejected, ras.Name(r))
	}
	return nil
}

// Forget drops every registration without telling the endpoints, as a
// restarted gatekeeper would: their next keep-alive RRQs are rejected
// (fullRegistrationRequired) unless they carry aliases.
func (g *Gatekeeper) Forget() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.regs = map[string]*Registration{}
}
