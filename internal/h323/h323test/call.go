package h323test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/h460"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// H245Mode says how a call carries H.245 when fastStart is not used or
// refused.
type H245Mode int

const (
	// Tunnelled carries H.245 in the h245Control of Q.931 Facility
	// messages (H.225.0 §10.3, h245Tunnelling TRUE).
	Tunnelled H245Mode = iota
	// Separate opens a separate H.245 TCP connection to the h245Address
	// the callee signals in Connect.
	Separate
)

func (m H245Mode) String() string {
	if m == Separate {
		return "separate"
	}
	return "tunnelled"
}

// CallOptions select how Endpoint.Call sets up a call.
type CallOptions struct {
	// FastStart proposes fastStart OpenLogicalChannels in the Setup; the
	// callee's Connect accepts them unless it refuses fastStart, and then
	// H.245 runs in H245 mode.
	FastStart bool
	// H245 is the mode of H.245 when fastStart is off or refused.
	H245 H245Mode
	// Kinds are the channels to open; nil means AllKinds.
	Kinds []Kind
	// Direct, when valid, calls this call-signalling address without an
	// ARQ (a direct call, or an unregistered endpoint).
	Direct netip.AddrPort
}

// AnswerConfig is how a simulated callee answers.
type AnswerConfig struct {
	// Reject, when not zero, answers Setup with a ReleaseComplete with
	// this reason alternative plus one (h225.ReleaseCompleteReason_* + 1)
	// instead of Alerting/Connect.
	Reject int
	// NoFastStart refuses fastStart proposals; H.245 then runs tunnelled
	// when the caller tunnels, separate otherwise.
	NoFastStart bool
	// Echo sends every RTP packet received back to the peer's media
	// address.
	Echo bool
	// NoConnect stops after Alerting: the call rings until the caller
	// gives up (for answer-timeout tests).
	NoConnect bool
}

// Call is one simulated call, on either side: part of the Endpoint and
// Gatekeeper test stand-ins for real H.323 products. It owns its
// signalling connection, its separate H.245 connection if any, and one
// RTP and one RTCP socket per channel; all are closed when it ends.
type Call struct {
	// ID is the callIdentifier, ConferenceID the conferenceID.
	ID, ConferenceID [16]byte
	Ref              uint32 // call reference value
	Caller           bool   // this side placed the call
	Dest             string // dialled alias
	// FastStart reports whether the call's media came from fastStart.
	FastStart bool

	p       *party
	sig     *sigConn
	mode    H245Mode
	kinds   []Kind
	streams map[Kind]*stream
	msgs    msgLog

	mu        sync.Mutex
	h245      *sigConn // separate H.245 connection
	h245ln    net.Listener
	opened    bool
	connected chan struct{}
	done      chan struct{}
	err       error
	released  bool
	// keepAlives counts the empty TPKT packets sent.
	keepAlives int
	// disengaged is set when the gatekeeper's DRQ ended the call.
	disengaged bool
}

func newID() (id [16]byte) {
	rand.Read(id[:])
	return id
}

// party is what a call needs from its owner (an Endpoint, or the
// gatekeeper's scripted callee).
type party struct {
	alias   string
	mediaIP netip.Addr
	rec     *Recorder
	answer  AnswerConfig
	// admit asks the gatekeeper to admit the call (ARQ) and returns the
	// address from the ACF; nil when not registered.
	admit func(ctx context.Context, c *Call, answer bool) (netip.AddrPort, error)
	// disengage sends the DRQ of an ended call; nil when not registered.
	disengage func(c *Call)
	// track, when set, is told of every call once it has a connection.
	track    func(c *Call)
	incoming chan *Call
	wg       *sync.WaitGroup
	// keepAlive is the interval of empty TPKT packets on call signalling,
	// 0 for none.
	keepAlive time.Duration
	// h46019 offers H.460.19 and follows its traversal parameters;
	// mediaKeepAlive overrides their interval; wrap wraps media sockets.
	h46019, mux19  bool
	mediaKeepAlive time.Duration
	wrap           func(*net.UDPConn) MediaConn
}

// tracked tells the owner of c, once its signalling connection is set.
func (p *party) tracked(c *Call) {
	if p.track != nil {
		p.track(c)
	}
}

func (p *party) newCall(caller bool, kinds []Kind) (*Call, error) {
	if kinds == nil {
		kinds = AllKinds
	}
	c := &Call{p: p, Caller: caller, kinds: kinds, streams: map[Kind]*stream{},
		connected: make(chan struct{}), done: make(chan struct{})}
	var ssrc [4]byte
	rand.Read(ssrc[:])
	for i, k := range kinds {
		s, err := newStream(k, p.mediaIP, p.rec, p.answer.Echo && !caller, uint32(ssrc[0])<<24|uint32(ssrc[1])<<16|uint32(ssrc[2])<<8|uint32(i), p.wrap)
		if err != nil {
			c.closeMedia()
			return nil, err
		}
		c.streams[k] = s
		p.wg.Add(1)
		go func() { defer p.wg.Done(); s.serve() }()
	}
	return c, nil
}

func (c *Call) closeMedia() {
	for _, s := range c.streams {
		s.close()
	}
}

// Messages returns the call-signalling and H.245 messages this side
// received for the call.
func (c *Call) Messages() []Message { return c.msgs.all() }

// KeepAlivesSent returns how many empty TPKT keep-alives this side sent
// on the call's signalling connection (see
// EndpointConfig.SignallingKeepAlive).
func (c *Call) KeepAlivesSent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keepAlives
}

// Connected is closed when the call is connected.
func (c *Call) Connected() <-chan struct{} { return c.connected }

// Done is closed when the call has ended.
func (c *Call) Done() <-chan struct{} { return c.done }

// Err returns why the call ended (nil for a normal release), once Done is
// closed.
func (c *Call) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Media returns the channels' RTP counters.
func (c *Call) Media() []MediaStats {
	var out []MediaStats
	for _, k := range c.kinds {
		out = append(out, c.streams[k].stats())
	}
	return out
}

// Stats returns the counters of channel k.
func (c *Call) Stats(k Kind) MediaStats {
	if s := c.streams[k]; s != nil {
		return s.stats()
	}
	return MediaStats{Kind: k}
}

// WaitMedia waits until the peer has signalled its media address for
// every channel.
func (c *Call) WaitMedia(ctx context.Context) error {
	for _, k := range c.kinds {
		if err := c.streams[k].wait(ctx, func(s MediaStats) bool { return s.Remote.IsValid() }); err != nil {
			return fmt.Errorf("h323test: %s channel not opened: %w", k, err)
		}
	}
	return nil
}

// SendRTP sends n RTP packets on every channel to the address the peer
// signalled.
func (c *Call) SendRTP(n int) error {
	for _, k := range c.kinds {
		if err := c.streams[k].send(n); err != nil {
			return fmt.Errorf("h323test: send %s: %w", k, err)
		}
	}
	return nil
}

// WaitReceived waits until every channel has received at least n RTP
// packets.
func (c *Call) WaitReceived(ctx context.Context, n int) error {
	for _, k := range c.kinds {
		if err := c.streams[k].wait(ctx, func(s MediaStats) bool { return s.Received >= n }); err != nil {
			return fmt.Errorf("h323test: %s received %d of %d: %w", k, c.streams[k].stats().Received, n, err)
		}
	}
	return nil
}

// Hangup ends the call: a ReleaseComplete (with an H.245
// endSessionCommand when H.245 is tunnelled), then the DRQ.
func (c *Call) Hangup() error {
	uu := c.uu(h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_ReleaseComplete,
		ReleaseComplete: &h225.ReleaseCompleteUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
			CallIdentifier: &h225.CallIdentifier{Guid: c.ID[:]}}})
	err := c.sig.sendQ931(q931.ReleaseComplete, c.Ref, !c.Caller, uu, causeIE(16))
	c.end(nil)
	return err
}

func causeIE(v byte) q931.IE { return q931.IE{ID: q931.IECause, Data: []byte{0x80, 0x80 | v}} }

// end releases the call once.
func (c *Call) end(err error) {
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return
	}
	c.released = true
	c.err = err
	h, ln := c.h245, c.h245ln
	c.mu.Unlock()
	c.sig.close()
	if h != nil {
		h.close()
	}
	if ln != nil {
		ln.Close()
	}
	c.closeMedia()
	if c.p.disengage != nil {
		c.p.disengage(c)
	}
	close(c.done)
}

// uu wraps body in an H323-UserInformation with h245Tunnelling set as
// the call's mode says.
func (c *Call) uu(body h225.H323UUPDUH323MessageBody) *h225.H323UserInformation {
	return &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{H323MessageBody: body,
		H245Tunnelling: c.mode == Tunnelled, HasH245Tunnelling: true}}
}

func (c *Call) callID() *h225.CallIdentifier { return &h225.CallIdentifier{Guid: c.ID[:]} }

func endpointType() h225.EndpointType {
	v := ras.Vendor()
	return h225.EndpointType{Vendor: &v, Terminal: &h225.TerminalInfo{}}
}

// place runs the caller side on conn: Setup, then the loop.
func (c *Call) place(ctx context.Context, conn net.Conn, dest string, opts CallOptions, srcCallSignal netip.AddrPort) error {
	c.sig = newSigConn(conn, c.p.rec)
	c.Dest = dest
	c.p.tracked(c)
	setup := &h225.SetupUUIE{
		ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		SourceAddress:      []h225.AliasAddress{aliasOf(c.p.alias)}, HasSourceAddress: c.p.alias != "",
		SourceInfo:         endpointType(),
		DestinationAddress: []h225.AliasAddress{aliasOf(dest)}, HasDestinationAddress: true,
		ConferenceID:           c.ConferenceID[:],
		ConferenceGoal:         h225.SetupUUIEConferenceGoal{Choice: h225.SetupUUIEConferenceGoal_Create},
		CallType:               h225.CallType{Choice: h225.CallType_PointToPoint},
		CallIdentifier:         c.callID(),
		HasMediaWaitForConnect: true, HasCanOverlapSend: true, HasMultipleCalls: true, HasMaintainConnection: true,
	}
	dst := addrPort(conn.RemoteAddr())
	t := ras.Transport(dst)
	setup.DestCallSignalAddress = &t
	if srcCallSignal.IsValid() {
		s := ras.Transport(srcCallSignal)
		setup.SourceCallSignalAddress = &s
	}
	if c.p.h46019 {
		setup.SupportedFeatures, setup.HasSupportedFeatures = []h225.FeatureDescriptor{feature19(c.p.mux19)}, true
	}
	if opts.FastStart {
		n := 1
		for _, k := range c.kinds {
			s := c.streams[k]
			st := s.stats()
			for _, olc := range []*h245.OpenLogicalChannel{transmitOLC(n, k, st.LocalRTCP), receiveOLC(n+1, k, st.Local, st.LocalRTCP)} {
				if c.p.mux19 {
					h460.SetOLCTraversal(olc, s.clientParams(true))
				}
				b, err := olc.Marshal()
				if err != nil {
					return fmt.Errorf("h323test: fastStart %s: %w", k, err)
				}
				setup.FastStart = append(setup.FastStart, b)
			}
			n += 2
		}
		setup.HasFastStart = true
	}
	uu := c.uu(h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_Setup, Setup: setup})
	called := q931.Number{Plan: 1, Digits: digits(dest)}
	ies := []q931.IE{{ID: q931.IEBearerCapability, Data: q931.BearerVideo}, {ID: q931.IEDisplay, Data: []byte(c.p.alias)}}
	if called.Digits != "" {
		ies = append(ies, q931.IE{ID: q931.IECalledPartyNumber, Data: called.Append(nil)})
	}
	if err := c.sig.sendQ931(q931.Setup, c.Ref, false, uu, ies...); err != nil {
		return fmt.Errorf("h323test: send Setup: %w", err)
	}
	c.p.wg.Add(1)
	go func() { defer c.p.wg.Done(); c.loop() }()
	select {
	case <-c.connected:
		return nil
	case <-c.done:
		if err := c.Err(); err != nil {
			return err
		}
		return fmt.Errorf("%w: released before Connect", ErrRejected)
	case <-ctx.Done():
		c.end(ctx.Err())
		return errors.Join(ErrTimeout, ctx.Err())
	}
}

func digits(s string) string {
	for _, r := range s {
		if (r < '0' || r > '9') && r != '*' && r != '#' {
			return ""
		}
	}
	return s
}

func aliasOf(s string) h225.AliasAddress {
	if digits(s) != "" {
		return ras.E164(s)
	}
	return ras.H323ID(s)
}

// loop reads call-signalling messages until the connection ends.
func (c *Call) loop() {
	if c.p.keepAlive > 0 {
		c.p.wg.Add(1)
		go func() {
			defer c.p.wg.Done()
			tick := time.NewTicker(c.p.keepAlive)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					if c.sig.write(nil) != nil {
						return
					}
					c.mu.Lock()
					c.keepAlives++
					c.mu.Unlock()
				case <-c.done:
					return
				}
			}
		}()
	}
	for {
		m, err := c.sig.readQ931()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = nil
			}
			c.end(err)
			return
		}
		c.msgs.add(m)
		if err := c.handle(m); err != nil {
			c.end(err)
			return
		}
	}
}

func (c *Call) handle(m Message) error {
	if m.UUIE != nil {
		pdu := &m.UUIE.H323UuPdu
		for _, b := range pdu.H245Control {
			if err := c.handleH245(b, m.From, m.To); err != nil {
				return err
			}
		}
	}
	switch m.Q931.Type {
	case q931.Facility:
		if m.UUIE == nil {
			return nil
		}
		if f := m.UUIE.H323UuPdu.H323MessageBody.Facility; f != nil && f.Reason.Choice == h225.FacilityReason_StartH245 && f.H245Address != nil {
			return c.connectH245(f.H245Address)
		}
	case q931.ReleaseComplete:
		c.mu.Lock()
		connected := isClosed(c.connected)
		c.mu.Unlock()
		if !connected {
			c.end(fmt.Errorf("%w: ReleaseComplete", ErrRejected))
		} else {
			c.end(nil)
		}
		return nil
	case q931.Connect:
		if !c.Caller || m.UUIE == nil || m.UUIE.H323UuPdu.H323MessageBody.Connect == nil {
			return nil
		}
		conn := m.UUIE.H323UuPdu.H323MessageBody.Connect
		if conn.HasFastStart && len(conn.FastStart) > 0 {
			c.FastStart = true
			for _, b := range conn.FastStart {
				var olc h245.OpenLogicalChannel
				if err := olc.Unmarshal(b); err != nil {
					return fmt.Errorf("h323test: Connect fastStart: %w", err)
				}
				c.fastStartReply(&olc)
			}
		}
		close(c.connected)
		if !c.FastStart {
			if c.mode == Separate {
				if conn.H245Address == nil {
					return fmt.Errorf("h323test: Connect without h245Address")
				}
				ap, err := ras.AddrPort(conn.H245Address)
				if err != nil {
					return err
				}
				hc, err := dialerFrom(c.p.mediaIP).Dial("tcp", ap.String())
				if err != nil {
					return fmt.Errorf("h323test: dial H.245 %s: %w", ap, err)
				}
				c.startSeparate(hc)
			} else {
				return c.startH245()
			}
		}
	}
	return nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// fastStartReply applies one OLC of the callee's fastStart answer.
func (c *Call) fastStartReply(olc *h245.OpenLogicalChannel) {
	if olc.ReverseLogicalChannelParameters != nil {
		return // the callee's transmit channel: it sends to the address we proposed
	}
	mp := olc.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters
	if mp == nil {
		return
	}
	k, ok := kindOfSession(mp.SessionID)
	if s := c.streams[k]; ok && s != nil {
		if ap, ok := h245AddrPort(mp.MediaChannel); ok {
			s.setRemote(ap)
		}
		c.traversal(s, olc.GenericInformation)
	}
}

// traversal starts the H.460.19 keep-alives of stream s when gi (the
// genericInformation of an OpenLogicalChannel or OpenLogicalChannelAck
// received) names a keepAliveChannel and the endpoint does H.460.19.
func (c *Call) traversal(s *stream, gi []h245.GenericInformation) {
	if !c.p.h46019 {
		return
	}
	p, found, err := h460.Traversal(gi)
	if !found || err != nil {
		return
	}
	if mm, ok := h245AddrPort(p.MultiplexedMediaChannel); ok && c.p.mux19 && p.HasMultiplexID {
		s.sendMultiplexed(mm, p.MultiplexID)
	}
	to, ok := h245AddrPort(p.KeepAliveChannel)
	if !ok {
		return
	}
	every := time.Duration(p.KeepAliveInterval) * time.Second
	if c.p.mediaKeepAlive > 0 {
		every = c.p.mediaKeepAlive
	}
	if every <= 0 {
		every = 19 * time.Second
	}
	s.keepAlive(c.p.wg, to, keepAlivePT, every)
}

// answerFastStart builds the callee's fastStart answer to proposals and
// learns where to send.
func (c *Call) answerFastStart(proposals [][]byte) ([][]byte, error) {
	var out [][]byte
	seen := map[Kind]int{}
	for _, b := range proposals {
		var olc h245.OpenLogicalChannel
		if err := olc.Unmarshal(b); err != nil {
			return nil, fmt.Errorf("h323test: Setup fastStart: %w", err)
		}
		var mp *h245.H2250LogicalChannelParameters
		if r := olc.ReverseLogicalChannelParameters; r != nil {
			if r.MultiplexParameters != nil {
				mp = r.MultiplexParameters.H2250LogicalChannelParameters
			}
		} else {
			mp = olc.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters
		}
		if mp == nil {
			continue
		}
		k, ok := kindOfSession(mp.SessionID)
		s := c.streams[k]
		if !ok || s == nil {
			continue
		}
		st := s.stats()
		dir := 1
		c.traversal(s, olc.GenericInformation)
		// The answer carries this side's own traversal parameters, not an
		// echo of the proposal's.
		olc.GenericInformation, olc.HasGenericInformation = nil, false
		if c.p.mux19 {
			h460.SetOLCTraversal(&olc, s.clientParams(true))
		}
		if olc.ReverseLogicalChannelParameters != nil {
			dir = 2
			ap, ok := h245AddrPort(mp.MediaChannel)
			if !ok {
				continue
			}
			s.setRemote(ap)
			mp.MediaControlChannel = h245Addr(st.LocalRTCP)
		} else {
			mp.MediaChannel = h245Addr(st.Local)
			mp.MediaControlChannel = h245Addr(st.LocalRTCP)
		}
		if seen[k]&dir != 0 {
			continue
		}
		seen[k] |= dir
		enc, err := olc.Marshal()
		if err != nil {
			return nil, err
		}
		out = append(out, enc)
	}
	return out, nil
}

// sendH245 sends m tunnelled or on the separate connection.
func (c *Call) sendH245(m *h245.MultimediaSystemControlMessage) error {
	b, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("h323test: encode %s: %w", H245Name(m), err)
	}
	c.mu.Lock()
	h := c.h245
	c.mu.Unlock()
	if h != nil {
		return h.write(b)
	}
	uu := c.uu(h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_Empty})
	uu.H323UuPdu.H245Control, uu.H323UuPdu.HasH245Control = [][]byte{b}, true
	return c.sig.sendQ931(q931.Facility, c.Ref, !c.Caller, uu)
}

// startH245 sends our TerminalCapabilitySet and MasterSlaveDetermination.
func (c *Call) startH245() error {
	n := int64(1000)
	if !c.Caller {
		n = 10
	}
	if err := c.sendH245(tcs()); err != nil {
		return err
	}
	return c.sendH245(msd(n))
}

// connectH245 opens the H.245 connection a Facility (startH245) asked
// for, as an H.460.18 endpoint does towards the traversal server: it
// sends the H.460.18 genericIndication with the callIdentifier first
// (H.460.18 §11), then runs H.245 there. A listener of our own, offered
// in Connect, is closed.
func (c *Call) connectH245(addr *h225.TransportAddress) error {
	ap, err := ras.AddrPort(addr)
	if err != nil {
		return fmt.Errorf("h323test: Facility h245Address: %w", err)
	}
	c.mu.Lock()
	busy, ln := c.h245 != nil, c.h245ln
	c.h245ln = nil
	c.mu.Unlock()
	if busy {
		return nil
	}
	if ln != nil {
		ln.Close()
	}
	conn, err := dialerFrom(c.p.mediaIP).Dial("tcp", ap.String())
	if err != nil {
		return fmt.Errorf("h323test: dial H.245 %s: %w", ap, err)
	}
	c.p.rec.Port(int(ap.Port()), "h245")
	b, err := traversalIndication(c.ID[:]).Marshal()
	if err == nil {
		h := newSigConn(conn, c.p.rec)
		err = h.write(b)
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("h323test: H.460.18 indication: %w", err)
	}
	c.startSeparate(conn)
	return nil
}

// startSeparate runs H.245 on its own TCP connection.
func (c *Call) startSeparate(conn net.Conn) {
	h := newSigConn(conn, c.p.rec)
	c.mu.Lock()
	c.h245 = h
	released := c.released
	c.mu.Unlock()
	if released {
		conn.Close()
		return
	}
	c.p.wg.Add(1)
	go func() {
		defer c.p.wg.Done()
		if err := c.startH245(); err != nil {
			c.end(err)
			return
		}
		for {
			b, err := h.next()
			if err != nil {
				return
			}
			if err := c.handleH245(b, h.from(), h.local()); err != nil {
				c.end(err)
				return
			}
		}
	}()
}

func (c *Call) handleH245(b []byte, from, to netip.AddrPort) error {
	m := new(h245.MultimediaSystemControlMessage)
	if err := m.Unmarshal(b); err != nil {
		return fmt.Errorf("h323test: H.245: %w", err)
	}
	c.msgs.add(Message{Name: H245Name(m), From: from, To: to, H245: m, Raw: b})
	switch {
	case m.Request != nil && m.Choice == h245.MultimediaSystemControlMessage_Request:
		switch r := m.Request; r.Choice {
		case h245.RequestMessage_TerminalCapabilitySet:
			return c.sendH245(response(&h245.ResponseMessage{Choice: h245.ResponseMessage_TerminalCapabilitySetAck,
				TerminalCapabilitySetAck: &h245.TerminalCapabilitySetAck{SequenceNumber: r.TerminalCapabilitySet.SequenceNumber}}))
		case h245.RequestMessage_MasterSlaveDetermination:
			// the caller is master: its number is the larger
			d := h245.MasterSlaveDeterminationAckDecision_Slave
			if !c.Caller {
				d = h245.MasterSlaveDeterminationAckDecision_Master
			}
			return c.sendH245(response(&h245.ResponseMessage{Choice: h245.ResponseMessage_MasterSlaveDeterminationAck,
				MasterSlaveDeterminationAck: &h245.MasterSlaveDeterminationAck{Decision: h245.MasterSlaveDeterminationAckDecision{Choice: d}}}))
		case h245.RequestMessage_OpenLogicalChannel:
			olc := r.OpenLogicalChannel
			mp := olc.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters
			if mp == nil {
				return nil
			}
			k, ok := kindOfSession(mp.SessionID)
			s := c.streams[k]
			if !ok || s == nil {
				return c.sendH245(response(&h245.ResponseMessage{Choice: h245.ResponseMessage_OpenLogicalChannelReject,
					OpenLogicalChannelReject: &h245.OpenLogicalChannelReject{ForwardLogicalChannelNumber: olc.ForwardLogicalChannelNumber,
						Cause: h245.OpenLogicalChannelRejectCause{Choice: h245.OpenLogicalChannelRejectCause_DataTypeNotSupported}}}))
			}
			st := s.stats()
			c.traversal(s, olc.GenericInformation)
			ack := olcAck(int64(olc.ForwardLogicalChannelNumber), k, st.Local, st.LocalRTCP)
			if c.p.h46019 {
				// as h323plus: the keep-alive payload type it will use
				// and, multiplexing, where and how it receives
				p := s.clientParams(c.p.mux19)
				p.KeepAlivePayloadType, p.HasKeepAlivePayloadType = keepAlivePT, true
				h460.SetAckTraversal(ack.Response.OpenLogicalChannelAck, p)
			}
			return c.sendH245(ack)
		}
	case m.Response != nil && m.Choice == h245.MultimediaSystemControlMessage_Response:
		switch r := m.Response; r.Choice {
		case h245.ResponseMessage_TerminalCapabilitySetAck:
			c.mu.Lock()
			open := !c.opened
			c.opened = true
			c.mu.Unlock()
			if !open {
				return nil
			}
			n := 1
			if !c.Caller {
				n = 101
			}
			for i, k := range c.kinds {
				olc := transmitOLC(n+i, k, c.streams[k].stats().LocalRTCP)
				if c.p.mux19 {
					h460.SetOLCTraversal(olc, c.streams[k].clientParams(true))
				}
				if err := c.sendH245(request(&h245.RequestMessage{Choice: h245.RequestMessage_OpenLogicalChannel, OpenLogicalChannel: olc})); err != nil {
					return err
				}
			}
		case h245.ResponseMessage_OpenLogicalChannelAck:
			fp := r.OpenLogicalChannelAck.ForwardMultiplexAckParameters
			if fp == nil || fp.H2250LogicalChannelAckParameters == nil {
				return nil
			}
			ack := fp.H2250LogicalChannelAckParameters
			k, ok := kindOfSession(ack.SessionID)
			if !ack.HasSessionID {
				n := int(r.OpenLogicalChannelAck.ForwardLogicalChannelNumber)
				if n > 100 {
					n -= 100
				}
				k, ok = Kind(n-1), n >= 1 && n <= 3
			}
			if s := c.streams[k]; ok && s != nil {
				if ap, ok := h245AddrPort(ack.MediaChannel); ok {
					s.setRemote(ap)
				}
				c.traversal(s, r.OpenLogicalChannelAck.GenericInformation)
			}
		}
	case m.Command != nil && m.Command.Choice == h245.CommandMessage_EndSessionCommand:
		c.end(nil)
	}
	return nil
}

// answer runs the callee side for a received Setup on sig.
func (c *Call) answer(ctx context.Context, setup Message) error {
	s := setup.UUIE.H323UuPdu.H323MessageBody.Setup
	c.Ref = setup.Q931.CallRef
	if s.CallIdentifier != nil {
		copy(c.ID[:], s.CallIdentifier.Guid)
	}
	copy(c.ConferenceID[:], s.ConferenceID)
	if s.HasDestinationAddress && len(s.DestinationAddress) > 0 {
		c.Dest, _ = ras.AliasString(&s.DestinationAddress[0])
	}
	c.mode = Separate
	if setup.UUIE.H323UuPdu.HasH245Tunnelling && setup.UUIE.H323UuPdu.H245Tunnelling {
		c.mode = Tunnelled
	}
	c.msgs.add(setup)
	reject := func(reason int) error {
		uu := c.uu(h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_ReleaseComplete,
			ReleaseComplete: &h225.ReleaseCompleteUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
				Reason: &h225.ReleaseCompleteReason{Choice: reason}, CallIdentifier: c.callID()}})
		err := c.sig.sendQ931(q931.ReleaseComplete, c.Ref, true, uu, causeIE(21))
		c.end(fmt.Errorf("%w: rejected with reason %d", ErrRejected, reason))
		return err
	}
	if c.p.answer.Reject != 0 {
		return reject(c.p.answer.Reject - 1)
	}
	if c.p.admit != nil {
		if _, err := c.p.admit(ctx, c, true); err != nil {
			return reject(h225.ReleaseCompleteReason_CalledPartyNotRegistered)
		}
	}
	body := func(choice int) h225.H323UUPDUH323MessageBody {
		b := h225.H323UUPDUH323MessageBody{Choice: choice}
		switch choice {
		case h225.H323UUPDUH323MessageBody_CallProceeding:
			b.CallProceeding = &h225.CallProceedingUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
				DestinationInfo: endpointType(), CallIdentifier: c.callID(), HasMultipleCalls: true, HasMaintainConnection: true}
		case h225.H323UUPDUH323MessageBody_Alerting:
			b.Alerting = &h225.AlertingUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
				DestinationInfo: endpointType(), CallIdentifier: c.callID(), HasMultipleCalls: true, HasMaintainConnection: true}
		}
		return b
	}
	if err := c.sig.sendQ931(q931.CallProceeding, c.Ref, true, c.uu(body(h225.H323UUPDUH323MessageBody_CallProceeding))); err != nil {
		return err
	}
	if err := c.sig.sendQ931(q931.Alerting, c.Ref, true, c.uu(body(h225.H323UUPDUH323MessageBody_Alerting))); err != nil {
		return err
	}
	if c.p.answer.NoConnect {
		return nil
	}
	conn := &h225.ConnectUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		DestinationInfo: endpointType(), ConferenceID: c.ConferenceID[:], CallIdentifier: c.callID(),
		HasMultipleCalls: true, HasMaintainConnection: true}
	if c.p.h46019 {
		conn.FeatureSet = ras.Supported(feature19(c.p.mux19))
	}
	if s.HasFastStart && len(s.FastStart) > 0 && !c.p.answer.NoFastStart {
		fs, err := c.answerFastStart(s.FastStart)
		if err != nil {
			return reject(h225.ReleaseCompleteReason_UndefinedReason)
		}
		if len(fs) > 0 {
			conn.FastStart, conn.HasFastStart = fs, true
			c.FastStart = true
		}
	}
	if !c.FastStart && c.mode == Separate {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(c.p.mediaIP, 0).String())
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.h245ln = ln
		c.mu.Unlock()
		c.p.rec.Port(ln.Addr().(*net.TCPAddr).Port, "h245")
		a := ras.Transport(addrPort(ln.Addr()))
		conn.H245Address = &a
		c.p.wg.Add(1)
		go func() {
			defer c.p.wg.Done()
			hc, err := ln.Accept()
			ln.Close()
			if err != nil {
				return
			}
			c.startSeparate(hc)
		}()
	}
	if err := c.sig.sendQ931(q931.Connect, c.Ref, true, c.uu(h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_Connect, Connect: conn})); err != nil {
		return err
	}
	close(c.connected)
	if !c.FastStart && c.mode == Tunnelled {
		if err := c.startH245(); err != nil {
			return err
		}
	}
	return nil
}

// serveIncoming answers the Setup that must come first on conn (for an
// H.460.18 connection, after our Facility) and then runs the call.
func (p *party) serveIncoming(ctx context.Context, conn net.Conn, first *Message) {
	sig := newSigConn(conn, p.rec)
	var setup Message
	if first != nil {
		setup = *first
	} else {
		m, err := sig.readQ931()
		if err != nil {
			conn.Close()
			return
		}
		setup = m
	}
	if setup.Q931.Type != q931.Setup || setup.UUIE == nil || setup.UUIE.H323UuPdu.H323MessageBody.Setup == nil {
		conn.Close()
		return
	}
	c, err := p.newCall(false, nil)
	if err != nil {
		conn.Close()
		return
	}
	c.sig = sig
	p.tracked(c)
	if err := c.answer(ctx, setup); err != nil {
		c.end(err)
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	select {
	case p.incoming <- c:
	default: // nobody collects calls: they still run
	}
	c.loop()
}

// dialerFrom dials from ip, so that every connection of a simulated
// party comes from its configured address (as its RAS and media do).
func dialerFrom(ip netip.Addr) *net.Dialer {
	if !ip.IsValid() {
		return &net.Dialer{}
	}
	return &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))}
}

// feature19 is the H.460.19 feature an endpoint offers, with
// supportTransmitMultiplexedMedia when multiplex.
func feature19(multiplex bool) h225.FeatureDescriptor {
	if multiplex {
		return ras.Feature(ras.H46019, ras.Flag(ras.H46019TransmitMultiplexed))
	}
	return ras.Feature(ras.H46019)
}
