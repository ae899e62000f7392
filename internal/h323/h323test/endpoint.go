package h323test

import (
	"bytes"
	"context"
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

// EndpointConfig configures a simulated endpoint.
type EndpointConfig struct {
	// Alias is the endpoint's alias: dialledDigits when it is all digits,
	// h323-ID otherwise.
	Alias string
	// Gatekeeper is the RAS address of the gatekeeper (or of Portico's
	// gatekeeper proxy); zero for an unregistered endpoint.
	Gatekeeper netip.AddrPort
	// IP is the local address of every socket; default 127.0.0.1.
	IP netip.Addr
	// H46018 lists H.460.18 in the GRQ/RRQ featureSet and, when the
	// gatekeeper confirms it, keeps registered with keep-alive RRQs and
	// answers SCIs by connecting out (H.460.18 §7–8).
	H46018 bool
	// TimeToLive is the timeToLive asked for in the RRQ, in seconds;
	// default 60.
	TimeToLive int64
	// KeepAlive is the interval of lightweight RRQs; default half the
	// timeToLive of the RCF. Tests set it short to see keep-alives.
	KeepAlive time.Duration
	// AdvertiseRAS and AdvertiseCallSignal, when valid, replace the
	// endpoint's own addresses in the rasAddress and callSignalAddress of
	// its RAS messages and the sourceCallSignalAddress of its Setups: an
	// endpoint behind a NAT advertises its private addresses.
	AdvertiseRAS, AdvertiseCallSignal netip.AddrPort
	// SignallingKeepAlive, when set, sends an empty TPKT packet (H.225.0
	// §7.2.2 keep-alive; H.460.18 endpoints keep their outbound
	// connection open so) on every call-signalling connection at this
	// interval.
	SignallingKeepAlive time.Duration
	// H46019 offers H.460.19 media traversal with H.460.18 in GRQ/RRQ and
	// in every Setup and Connect (as h323plus does). Given keepAliveChannel
	// in an OpenLogicalChannel or OpenLogicalChannelAck, the endpoint sends
	// RTP keep-alives (payload type 127, no payload) from the channel's
	// RTP port there at once and then every keepAliveInterval (H.460.19
	// §7.3), and names payload type 127 in its OpenLogicalChannelAck.
	H46019 bool
	// H46019Multiplex adds supportTransmitMultiplexedMedia to the offer,
	// asks (in its OpenLogicalChannel and OpenLogicalChannelAck traversal
	// parameters) to receive each channel's media prefixed with a
	// multiplexID of its own, and sends its RTP and keep-alives to the
	// multiplexedMediaChannel the server names, prefixed with the server's
	// multiplexID, as h323plus does (H.460.19 multiplexing).
	H46019Multiplex bool
	// H46019CallsOnly leaves H.460.19 out of GRQ and RRQ: it is offered in
	// Setup and Connect only, as the h323plus endpoints of the GnuGk
	// captures do.
	H46019CallsOnly bool
	// MediaKeepAlive, when set, replaces the keepAliveInterval received.
	MediaKeepAlive time.Duration
	// WrapMedia, when set, wraps every RTP and RTCP socket of the
	// endpoint's calls: a test puts the media behind a simulated NAT so.
	WrapMedia func(*net.UDPConn) MediaConn
	// Answer is how incoming calls are answered.
	Answer AnswerConfig
	// Recorder, when set, records everything the endpoint sends.
	Recorder *Recorder
}

// Endpoint is a simulated H.323 endpoint: a test stand-in for real
// products (room systems and soft clients such as those in the reference
// captures: Tandberg, h323plus, ooh323c), built on Portico's own codecs.
// It registers (GRQ/RRQ, optionally with H.460.18), keeps alive, answers
// SCI with SCR + Facility on a new call-signalling connection, places and
// answers calls with fastStart or H.245 (tunnelled or separate), opens
// audio, video and H.239 content channels, and sends, counts and echoes
// RTP. It listens for call signalling on its own TCP port.
type Endpoint struct {
	node
	cfg EndpointConfig
	t   testing.TB

	mu         sync.Mutex
	gkID       string
	endpointID string
	ttl        int64
	h46018     bool // the gatekeeper confirmed H.460.18
	h46019     bool // ... and H.460.19
	registered bool
	keepAlives int
	// reregistrations counts full registrations after a keep-alive RRJ.
	reregistrations int
	// indications holds the callIDs of the SCIs acted on.
	indications map[[16]byte]bool
	calls       []*Call
	closeOnce   sync.Once
}

// NewEndpoint binds the endpoint's RAS and call-signalling sockets and
// starts serving; it is closed when the test ends.
func NewEndpoint(t testing.TB, cfg EndpointConfig) *Endpoint {
	t.Helper()
	if !cfg.IP.IsValid() {
		cfg.IP = netip.MustParseAddr("127.0.0.1")
	}
	if cfg.TimeToLive == 0 {
		cfg.TimeToLive = 60
	}
	e := &Endpoint{cfg: cfg, t: t}
	e.init(t, cfg.IP, cfg.Recorder, "endpoint", cfg.Alias, cfg.Answer)
	e.p.keepAlive = cfg.SignallingKeepAlive
	e.p.h46019, e.p.mediaKeepAlive, e.p.wrap = cfg.H46019, cfg.MediaKeepAlive, cfg.WrapMedia
	e.p.mux19 = cfg.H46019 && cfg.H46019Multiplex
	e.p.track = func(c *Call) {
		e.mu.Lock()
		e.calls = append(e.calls, c)
		e.mu.Unlock()
	}
	e.p.admit = e.admit
	e.p.disengage = e.disengage
	if cfg.Gatekeeper.IsValid() {
		cfg.Recorder.Port(int(cfg.Gatekeeper.Port()), "h225")
	}
	e.run(e.handleRAS, func(conn net.Conn) { e.serve(conn, nil) })
	t.Cleanup(e.Close)
	return e
}

// RASAddr returns the endpoint's RAS address.
func (e *Endpoint) RASAddr() netip.AddrPort { return e.ras.addr() }

// CallSignalAddr returns the address the endpoint listens on for call
// signalling (the callSignalAddress of its RRQ).
func (e *Endpoint) CallSignalAddr() netip.AddrPort { return addrPort(e.cs.Addr()) }

// EndpointID returns the endpointIdentifier of the RCF.
func (e *Endpoint) EndpointID() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.endpointID
}

// H46018 reports whether the gatekeeper confirmed H.460.18.
func (e *Endpoint) H46018() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.h46018
}

// H46019 reports whether the gatekeeper confirmed H.460.19 (with
// H.460.18).
func (e *Endpoint) H46019() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.h46019
}

// KeepAlives returns how many keep-alive RRQs were confirmed.
func (e *Endpoint) KeepAlives() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.keepAlives
}

// RAS returns the RAS messages the endpoint received.
func (e *Endpoint) RAS() []Message { return e.msgs.all() }

// Close unregisters (URQ, when registered), ends calls and closes the
// sockets; it waits for the endpoint's goroutines.
func (e *Endpoint) Close() {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		reg := e.registered
		calls := e.calls
		e.mu.Unlock()
		for _, c := range calls {
			c.end(ErrClosed)
		}
		if reg {
			ctx, cancel := context.WithTimeout(e.ctx, time.Second)
			e.Unregister(ctx)
			cancel()
		}
		e.shutdown()
	})
}

func (e *Endpoint) advertisedRAS() netip.AddrPort {
	if e.cfg.AdvertiseRAS.IsValid() {
		return e.cfg.AdvertiseRAS
	}
	return e.RASAddr()
}

func (e *Endpoint) advertisedCallSignal() netip.AddrPort {
	if e.cfg.AdvertiseCallSignal.IsValid() {
		return e.cfg.AdvertiseCallSignal
	}
	return e.CallSignalAddr()
}

func (e *Endpoint) rasEndpoint() ras.Endpoint {
	e.mu.Lock()
	defer e.mu.Unlock()
	re := ras.Endpoint{RAS: e.advertisedRAS(), CallSignal: e.advertisedCallSignal(), Terminal: true,
		Aliases: []h225.AliasAddress{aliasOf(e.cfg.Alias)}, Gatekeeper: e.gkID,
		EndpointID: e.endpointID, TimeToLive: e.cfg.TimeToLive}
	if e.cfg.H46018 {
		fs := []h225.GenericData{ras.Feature(ras.H46018)}
		if e.cfg.H46019 && !e.cfg.H46019CallsOnly {
			fs = append(fs, feature19(e.cfg.H46019Multiplex))
		}
		re.FeatureSet = ras.Supported(fs...)
	}
	return re
}

func (e *Endpoint) nextSeq() int { return e.ras.nextSeq() }

// request sends m to the gatekeeper and waits for the matching answer.
func (e *Endpoint) request(ctx context.Context, m *h225.RasMessage) (*h225.RasMessage, error) {
	if !e.cfg.Gatekeeper.IsValid() {
		return nil, ErrNotRegistered
	}
	return e.ras.request(ctx, e.ctx.Done(), m, e.cfg.Gatekeeper)
}

func (e *Endpoint) reply(m *h225.RasMessage, to netip.AddrPort) { e.ras.send(m, to) }

// Register discovers the gatekeeper (GRQ/GCF) and registers (RRQ/RCF),
// then keeps the registration alive until Close or Unregister. It returns
// an error wrapping ErrRejected on GRJ or RRJ.
func (e *Endpoint) Register(ctx context.Context) error {
	resp, err := e.request(ctx, ras.GRQ(e.nextSeq(), e.rasEndpoint()))
	if err != nil {
		return err
	}
	if resp.Choice != h225.RasMessage_GatekeeperConfirm {
		return fmt.Errorf("%w: %s", ErrRejected, ras.Name(resp))
	}
	gcf := resp.GatekeeperConfirm
	e.mu.Lock()
	if gcf.HasGatekeeperIdentifier {
		e.gkID = asString(gcf.GatekeeperIdentifier)
	}
	e.mu.Unlock()
	resp, err = e.request(ctx, ras.RRQ(e.nextSeq(), e.rasEndpoint()))
	if err != nil {
		return err
	}
	if resp.Choice != h225.RasMessage_RegistrationConfirm {
		reason := -1
		if resp.RegistrationReject != nil {
			reason = resp.RegistrationReject.RejectReason.Choice
		}
		return fmt.Errorf("%w: %s reason %d", ErrRejected, ras.Name(resp), reason)
	}
	rcf := resp.RegistrationConfirm
	e.mu.Lock()
	e.endpointID = asString(rcf.EndpointIdentifier)
	e.ttl = 0
	if rcf.HasTimeToLive {
		e.ttl = int64(rcf.TimeToLive)
	}
	e.h46018 = e.cfg.H46018 && ras.FeatureIn(rcf.FeatureSet, ras.H46018) != nil
	e.h46019 = e.h46018 && e.cfg.H46019 && ras.FeatureIn(rcf.FeatureSet, ras.H46019) != nil
	first := !e.registered
	e.registered = true
	e.mu.Unlock()
	if first {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); e.keepAlive() }()
	}
	return nil
}

func asString[T ~[]uint16](b T) string {
	return string(fromUTF16([]uint16(b)))
}

func (e *Endpoint) interval() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cfg.KeepAlive > 0 {
		return e.cfg.KeepAlive
	}
	ttl := e.ttl
	if ttl <= 0 {
		ttl = e.cfg.TimeToLive
	}
	return time.Duration(ttl) * time.Second / 2
}

// keepAlive sends lightweight RRQs (keepAlive TRUE, endpointIdentifier,
// no aliases: H.225.0 §7.9.1) while registered.
func (e *Endpoint) keepAlive() {
	for {
		select {
		case <-time.After(e.interval()):
		case <-e.ctx.Done():
			return
		}
		e.mu.Lock()
		reg := e.registered
		e.mu.Unlock()
		if !reg {
			return
		}
		re := e.rasEndpoint()
		re.KeepAlive, re.Aliases = true, nil
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		resp, err := e.request(ctx, ras.RRQ(e.nextSeq(), re))
		cancel()
		switch {
		case err != nil:
		case resp.Choice == h225.RasMessage_RegistrationConfirm:
			e.mu.Lock()
			e.keepAlives++
			e.mu.Unlock()
		case resp.Choice == h225.RasMessage_RegistrationReject:
			// the gatekeeper lost the registration (fullRegistrationRequired
			// after a restart, say): register again, as real endpoints do
			ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
			if e.Register(ctx) == nil {
				e.mu.Lock()
				e.reregistrations++
				e.mu.Unlock()
			}
			cancel()
		}
	}
}

// Reregistrations returns how many times a rejected keep-alive made the
// endpoint register again.
func (e *Endpoint) Reregistrations() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reregistrations
}

// Unregister sends a URQ and stops the keep-alives.
func (e *Endpoint) Unregister(ctx context.Context) error {
	e.mu.Lock()
	e.registered = false
	e.mu.Unlock()
	resp, err := e.request(ctx, ras.URQ(e.nextSeq(), e.rasEndpoint()))
	if err != nil {
		return err
	}
	if resp.Choice != h225.RasMessage_UnregistrationConfirm {
		return fmt.Errorf("%w: %s", ErrRejected, ras.Name(resp))
	}
	return nil
}

// admit sends the ARQ of c and returns the ACF's destCallSignalAddress.
func (e *Endpoint) admit(ctx context.Context, c *Call, answer bool) (netip.AddrPort, error) {
	e.mu.Lock()
	reg, id := e.registered, e.endpointID
	e.mu.Unlock()
	if !reg {
		return netip.AddrPort{}, nil
	}
	var dest []h225.AliasAddress
	if c.Dest != "" {
		dest = []h225.AliasAddress{aliasOf(c.Dest)}
	}
	arq := ras.ARQ(e.nextSeq(), id, []h225.AliasAddress{aliasOf(e.cfg.Alias)}, dest, 1280, int(c.Ref), c.ConferenceID[:], c.ID[:], answer)
	resp, err := e.request(ctx, arq)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if resp.Choice != h225.RasMessage_AdmissionConfirm {
		reason := -1
		if resp.AdmissionReject != nil {
			reason = resp.AdmissionReject.RejectReason.Choice
		}
		return netip.AddrPort{}, fmt.Errorf("%w: %s reason %d", ErrRejected, ras.Name(resp), reason)
	}
	ap, err := ras.AddrPort(&resp.AdmissionConfirm.DestCallSignalAddress)
	if err != nil && !answer {
		return netip.AddrPort{}, fmt.Errorf("h323test: ACF destCallSignalAddress: %w", err)
	}
	return ap, nil
}

// disengage sends the DRQ of an ended call (best effort).
func (e *Endpoint) disengage(c *Call) {
	e.mu.Lock()
	reg, id := e.registered, e.endpointID
	e.mu.Unlock()
	c.mu.Lock()
	done := c.disengaged
	c.mu.Unlock()
	if !reg || done {
		return
	}
	drq := ras.DRQ(e.nextSeq(), ras.Call{EndpointID: id, Ref: int(c.Ref), ConferenceID: c.ConferenceID[:], ID: c.ID[:], Answered: !c.Caller},
		h225.DisengageReason_NormalDrop)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
		defer cancel()
		e.request(ctx, drq)
	}()
}

// Call places a call to dest (an alias, or opts.Direct): ARQ (when
// registered), TCP to the ACF's destCallSignalAddress, Setup, and waits
// for Connect. The returned call runs until Hangup, the peer's
// ReleaseComplete or Close.
func (e *Endpoint) Call(ctx context.Context, dest string, opts CallOptions) (*Call, error) {
	c, err := e.p.newCall(true, opts.Kinds)
	if err != nil {
		return nil, err
	}
	c.ID, c.ConferenceID = newID(), newID()
	c.Ref = uint32(e.nextSeq() & 0x7fff)
	c.Dest = dest
	c.mode = opts.H245
	to := opts.Direct
	if !to.IsValid() {
		to, err = e.admit(ctx, c, false)
		if err != nil {
			c.closeMedia()
			return nil, err
		}
		if !to.IsValid() {
			c.closeMedia()
			return nil, fmt.Errorf("%w: no destination for %q", ErrNotRegistered, dest)
		}
	}
	conn, err := dialerFrom(e.cfg.IP).DialContext(ctx, "tcp", to.String())
	if err != nil {
		c.closeMedia()
		return nil, fmt.Errorf("h323test: call %s: %w", to, err)
	}
	e.cfg.Recorder.Port(int(to.Port()), "tpkt")
	if err := c.place(ctx, conn, dest, opts, e.advertisedCallSignal()); err != nil {
		return c, err
	}
	return c, nil
}

// Incoming returns the next call the endpoint answered.
func (e *Endpoint) Incoming(ctx context.Context) (*Call, error) { return e.incoming(ctx) }

func (e *Endpoint) serve(conn net.Conn, first *Message) {
	go func() {
		<-e.ctx.Done()
		conn.Close()
	}()
	e.p.serveIncoming(e.ctx, conn, first)
}

// handleRAS hands responses to the requests waiting for them and
// answers the gatekeeper's requests.
func (e *Endpoint) handleRAS(m Message) {
	if !e.ras.deliver(m.RAS) {
		e.handleRequest(m)
	}
}

// handleRequest answers the gatekeeper's requests: SCI (H.460.18
// incoming call), IRQ, DRQ and URQ.
func (e *Endpoint) handleRequest(m Message) {
	r := m.RAS
	switch r.Choice {
	case h225.RasMessage_ServiceControlIndication:
		e.reply(ras.SCR(r.ServiceControlIndication, -1, nil), m.From)
		ic, err := ras.FindIncomingCall(r)
		if err != nil {
			return
		}
		// a retransmitted SCI is answered again but connects once
		var id [16]byte
		copy(id[:], ic.CallID)
		e.mu.Lock()
		seen := e.indications[id]
		if e.indications == nil {
			e.indications = map[[16]byte]bool{}
		}
		e.indications[id] = true
		e.mu.Unlock()
		if seen {
			return
		}
		e.wg.Add(1)
		go func() { defer e.wg.Done(); e.connectOut(ic) }()
	case h225.RasMessage_InfoRequest:
		re := e.rasEndpoint()
		e.reply(ras.IRR(r.InfoRequest, 0, re), m.From)
	case h225.RasMessage_DisengageRequest:
		e.reply(ras.DCF(r.DisengageRequest), m.From)
		// the gatekeeper ends the call: release it without a DRQ of ours
		if id := r.DisengageRequest.CallIdentifier; id != nil {
			e.mu.Lock()
			calls := e.calls
			e.mu.Unlock()
			for _, c := range calls {
				if bytes.Equal(c.ID[:], id.Guid) {
					c.mu.Lock()
					c.disengaged = true
					c.mu.Unlock()
					c.Hangup()
				}
			}
		}
	case h225.RasMessage_UnregistrationRequest:
		e.mu.Lock()
		e.registered = false
		e.mu.Unlock()
		e.reply(ras.UCF(r.UnregistrationRequest), m.From)
	}
}

// connectOut opens the call-signalling connection an SCI asked for,
// sends the Facility that binds it to the call (H.460.18 §8.2) and
// answers the Setup that comes on it.
func (e *Endpoint) connectOut(ic ras.IncomingCallIndication) {
	d := dialerFrom(e.cfg.IP)
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	conn, err := d.DialContext(ctx, "tcp", ic.CallSignal.String())
	cancel()
	if err != nil {
		return
	}
	e.cfg.Recorder.Port(int(ic.CallSignal.Port()), "tpkt")
	sig := newSigConn(conn, e.cfg.Recorder)
	uu := &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{
		H323MessageBody: h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_Facility,
			Facility: &h225.FacilityUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
				Reason:         h225.FacilityReason{Choice: h225.FacilityReason_UndefinedReason},
				CallIdentifier: &h225.CallIdentifier{Guid: ic.CallID}, HasMultipleCalls: true, HasMaintainConnection: true}},
		H245Tunnelling: true, HasH245Tunnelling: true}}
	if err := sig.sendQ931(q931.Facility, 0, false, uu); err != nil {
		conn.Close()
		return
	}
	e.serve(conn, nil)
}
