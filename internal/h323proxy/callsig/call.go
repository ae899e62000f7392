package callsig

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h460"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/ladder"
	"github.com/portico-edge/portico/internal/store"
)

// leg is one TCP connection of a call.
type leg struct {
	conn          net.Conn
	fr            *h245proxy.FrameReader
	local, remote netip.AddrPort
	wmu           sync.Mutex
}

func newLeg(conn net.Conn, fr *h245proxy.FrameReader, max int) *leg {
	if fr == nil {
		fr = h245proxy.NewFrameReader(conn, max)
	}
	return &leg{conn: conn, fr: fr, local: addrOf(conn.LocalAddr()), remote: addrOf(conn.RemoteAddr())}
}

func (l *leg) send(payload []byte) error {
	return l.sendFrame(h245proxy.AppendFrame(make([]byte, 0, len(payload)+4), payload))
}

// sendFrame writes a whole TPKT frame.
func (l *leg) sendFrame(frame []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := l.conn.Write(frame)
	return err
}

// call is one proxied call. caller is the side the Setup came from.
type call struct {
	srv    *Server
	caller Side
	crv    uint32
	id     []byte
	legs   [2]*leg
	media  *h245proxy.Session
	// outside is the registered callee of a call from inside; h46019 is
	// set when Portico is the outside endpoint's H.460.19 media
	// traversal server in this call.
	outside Endpoint
	h46019  bool
	// offerMux is set when the outside endpoint may yet say, in its
	// answer to the Setup, that it can transmit multiplexed media.
	offerMux bool

	done    chan struct{} // closed when the call is finished
	mu      sync.Mutex
	ka      KeepAlive // the outside connections' keep-alives
	bridges map[netip.AddrPort]*h245proxy.Bridge
	ended   bool
	// releasing counts releaseEach calls writing their ReleaseCompletes.
	releasing int
	// dest is the only destination the Setup from outside may name
	// inside (Decision.To); empty: as dialled.
	dest     string
	answered time.Time
	// times are the setup's moments (Deps.Setup); Read, Admitted and
	// Dialled are set before the pumps start, Forwarded under mu.
	times   SetupTimes
	rec     store.CallRecord
	cause   byte
	endedBy string
	disp    string
}

// aliases returns the destination aliases of a Setup and the called
// party number, and the source aliases.
func aliases(m *q931.Message, s *h225.SetupUUIE) (from, to []string) {
	for i := range s.DestinationAddress {
		if a, ok := ras.AliasString(&s.DestinationAddress[i]); ok && a != "" {
			to = append(to, a)
		}
	}
	if n, err := m.Number(q931.IECalledPartyNumber); err == nil && n.Digits != "" {
		to = append(to, n.Digits)
	}
	for i := range s.SourceAddress {
		if a, ok := ras.AliasString(&s.SourceAddress[i]); ok && a != "" {
			from = append(from, a)
		}
	}
	if n, err := m.Number(q931.IECallingPartyNumber); err == nil && n.Digits != "" {
		from = append(from, n.Digits)
	}
	return from, to
}

func first(s []string) string {
	if len(s) > 0 {
		return s[0]
	}
	return ""
}

// newCall admits, routes and connects the call of a Setup from side
// caller; nil when it was refused (answered and recorded).
// read is when the Setup was read.
func (s *Server) newCall(conn net.Conn, fr *h245proxy.FrameReader, caller Side, m *q931.Message, ui *h225.H323UserInformation, read time.Time) *call {
	setup := ui.H323UuPdu.H323MessageBody.Setup
	from, to := aliases(m, setup)
	// The decoded GUID aliases the frame the Setup was read into, which the
	// caller's next message overwrites: the call keeps a copy.
	c := &call{srv: s, caller: caller, crv: m.CallRef, id: bytes.Clone(callID(ui)), bridges: map[netip.AddrPort]*h245proxy.Bridge{}, done: make(chan struct{})}
	c.times.Read = read
	c.legs[caller] = newLeg(conn, fr, s.cfg.MaxFrame)
	src := c.legs[caller].remote
	// localID stands for the callIdentifier an H.225.0 version 1 Setup lacks.
	c.rec = store.CallRecord{ID: localID(), Protocol: "h323", From: first(from), To: first(to), SourceAddr: src.String(), StartedAt: time.Now()}
	if len(c.id) == 16 {
		c.rec.ID = hex.EncodeToString(c.id)
		if s.deps.Capture != nil {
			s.deps.Capture.Link(c.rec.ID, c.rec.ID)
		}
	}
	refuse := func(cause byte, reason int, disp string) *call {
		s.Rejected.Add(1)
		c.legs[caller].send(releaseComplete(c.crv, true, cause, reason, c.id))
		c.rec.EndedAt, c.rec.EndedBy, c.rec.Status, c.rec.Disposition = time.Now(), "portico", int(cause), disp
		s.record(c.rec)
		return nil
	}
	if s.active.Add(1) > int64(s.cfg.MaxCalls) {
		s.active.Add(-1)
		return refuse(CauseResourceUnavail, h225.ReleaseCompleteReason_GatewayResources, "resource unavailable: max calls reached")
	}
	ok := false
	defer func() {
		if !ok {
			s.active.Add(-1)
		}
	}()
	loop := func() *call {
		s.Loops.Add(1)
		s.log.Info("call loop refused", "call", c.rec.ID, "from", src, "to", first(to), "side", caller)
		return refuse(CauseRoutingError, h225.ReleaseCompleteReason_HopCountExceeded, "call loop")
	}
	if (setup.HasHopCount && setup.HopCount <= 1) || (caller == Outside && s.looped(Outside, c.id, "")) {
		return loop()
	}
	info := CallInfo{From: from, To: to, Source: src.Addr(), CallID: c.id}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()
	var out net.Conn
	var err error
	if caller == Outside {
		c.rec.CallType = "guest"
		if s.deps.Policy != nil {
			d := s.deps.Policy(info)
			if d.CallType != "" {
				c.rec.CallType = d.CallType
			}
			if d.To != "" {
				c.dest = d.To
				c.rec.To = d.To
				info.To = []string{d.To} // routed as admitted
			}
			if !d.Allow {
				r := d.Reason
				if r == "" {
					r = "destination not allowed"
				}
				s.observe(caller, src.Addr(), guard.Forbidden)
				return refuse(CauseRejected, h225.ReleaseCompleteReason_NoPermission, "policy: "+r)
			}
		}
		dst, rerr := s.deps.Route(ctx, setup, info)
		if rerr != nil {
			s.observe(caller, src.Addr(), guard.NotFound)
			return refuse(CauseNoRoute, h225.ReleaseCompleteReason_UnreachableDestination, "no route to destination")
		}
		c.times.Admitted = time.Now()
		out, err = s.dial(ctx, Inside, dst)
	} else {
		c.rec.CallType = "inbound"
		var ep Endpoint
		found := false
		if s.deps.Registry != nil {
			for _, a := range to {
				if ep, found = s.deps.Registry.Outside(a); found {
					break
				}
			}
		}
		if !found {
			return refuse(CauseUnallocated, h225.ReleaseCompleteReason_CalledPartyNotRegistered, "callee not registered")
		}
		if ep.Dial != nil && s.looped(Inside, c.id, ep.CallType) {
			return loop()
		}
		c.outside = ep
		c.times.Admitted = time.Now()
		if ep.H46018 {
			if s.deps.Traversal == nil || len(c.id) != 16 {
				return refuse(CauseOutOfOrder, h225.ReleaseCompleteReason_UnreachableDestination, "destination out of order")
			}
			var key [16]byte
			copy(key[:], c.id)
			out, err = s.deps.Traversal.Connect(ctx, ep, key)
		} else {
			out, err = c.dialCallee(ctx, ep)
		}
	}
	if err != nil {
		s.log.Debug("connect to callee", "err", err)
		return refuse(CauseOutOfOrder, h225.ReleaseCompleteReason_UnreachableDestination, "destination out of order")
	}
	c.times.Dialled = time.Now()
	if !s.track(out) {
		out.Close()
		return refuse(CauseTemporary, -1, "portico shutting down")
	}
	c.legs[caller.Other()] = newLeg(out, nil, s.cfg.MaxFrame)
	var source [2]netip.Addr
	source[Outside] = c.legs[Outside].remote.Addr()
	mux := false
	if caller == Outside {
		c.h46019, mux = offersMediaTraversal(setup)
	} else {
		// An H.460.18 endpoint that did not offer H.460.19 at registration
		// (h323plus offers it in its calls only) is offered it in the
		// Setup, as GnuGk does; traversal parameters it does not know it
		// ignores.
		c.h46019, mux = c.outside.H46019 || c.outside.H46018, c.outside.H46019Multiplex
		c.offerMux = !mux
	}
	c.h46019 = c.h46019 && s.cfg.MediaTraversal
	c.media = h245proxy.NewSession(s.deps.Media, h245proxy.SessionConfig{
		Label:      c.rec.ID,
		Interfaces: [2]string{s.cfg.Sides[Outside].Interface, s.cfg.Sides[Inside].Interface},
		Source:     source,
		Traversal: h245proxy.Traversal{Enabled: c.h46019, Multiplex: mux,
			KeepAliveInterval: s.cfg.MediaKeepAliveInterval, PayloadType: s.cfg.MediaKeepAlivePayloadType},
	})
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		out.Close()
		s.untrack(out)
		c.media.Close()
		return refuse(CauseTemporary, -1, "portico shutting down")
	}
	s.calls[c] = struct{}{}
	if len(c.id) == 16 {
		s.byID[[16]byte(c.id)] = append(s.byID[[16]byte(c.id)], c)
	}
	s.mu.Unlock()
	ok = true
	return c
}

// looped reports whether a Setup from side caller for call id (its
// callIdentifier) is a call coming back to Portico: from outside, while
// Portico has the same call going out (it left through one edge or zone
// and was routed back); from inside to zone (its Endpoint.CallType), while
// the same call came in from that zone (the inside routed it back there).
// Calls without a callIdentifier are never taken for loops; a call from
// outside to inside and back out to another outside endpoint (two
// endpoints registered through Portico calling each other through the
// inside gatekeeper) is no loop.
func (s *Server) looped(caller Side, id []byte, zone string) bool {
	if len(id) != 16 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.byID[[16]byte(id)] {
		if c.caller == caller {
			continue
		}
		if caller == Outside || (zone != "" && c.rec.CallType == zone) {
			return true
		}
	}
	return false
}

func (s *Server) dial(ctx context.Context, side Side, dst netip.AddrPort) (net.Conn, error) {
	if !dst.IsValid() {
		return nil, ErrNoRoute
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: s.cfg.Sides[side].Bind.AsSlice()}, KeepAlive: -1, Control: bindNoPort}
	return d.DialContext(ctx, "tcp", dst.String())
}

// run forwards the Setup (payload p, read at got and parsed into m and
// ui by handle) and then every message both ways until the call ends.
func (c *call) run(p []byte, m *q931.Message, ui *h225.H323UserInformation, got time.Time) {
	s := c.srv
	deadline := time.Now().Add(s.cfg.AnswerTimeout)
	for _, l := range c.legs {
		l.conn.SetReadDeadline(deadline)
	}
	c.startKeepAlive() // before the Setup: an h245Address in it depends on it
	// The called side's pump reads before the Setup goes out, so that its
	// answer is read as soon as it arrives, whatever the caller's
	// goroutine does after sending.
	var wg sync.WaitGroup
	wg.Add(1)
	s.spawn(func() {
		defer wg.Done()
		c.pump(c.caller.Other())
	})
	// The Setup is not decoded a second time: it is the largest message
	// of a call (its decode is 15 of a setup's 410 allocations, 2.3 KB).
	if c.relay(c.caller, p, got, m, ui) {
		c.pump(c.caller)
	} else {
		c.end(CauseTemporary, "portico", "") // the pump ends with its connection
	}
	wg.Wait()
	c.finish()
}

// pump reads messages from side from and forwards them.
func (c *call) pump(from Side) {
	l := c.legs[from]
	for {
		p, err := l.fr.Next()
		if err != nil {
			switch {
			case errors.Is(err, h245proxy.ErrFrame):
				c.malformed(from, err)
			case errors.Is(err, net.ErrClosed):
				c.end(CauseNormal, "", "")
			case isTimeout(err) && !c.isAnswered():
				// The answer deadline (after the answer, a timeout is the
				// keep-alive giving up on a half-open peer: lost below).
				c.releaseBoth(CauseRecoveryTimer, "portico", "timeout: no answer")
			default:
				// The connection closed without ReleaseComplete: clear
				// the other side for it.
				if !c.isEnded() {
					c.legs[from.Other()].send(releaseComplete(c.crv, from.Other() == c.caller, CauseTemporary, -1, c.id))
				}
				c.end(CauseTemporary, c.party(from), "connection lost on the "+from.String())
			}
			return
		}
		if !c.forward(from, p) {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *call) party(side Side) string {
	if side == c.caller {
		return "caller"
	}
	return "callee"
}

// forward rewrites and sends one message from side from; false ends the
// pump.
func (c *call) forward(from Side, p []byte) bool {
	got := time.Now()
	var m q931.Message
	if err := m.Parse(p); err != nil {
		c.malformed(from, err)
		return false
	}
	if m.CallRef != c.crv {
		// One call per connection: another call reference is not this
		// call's (the global one, 0, is not proxied).
		if m.CallRef != 0 && m.Type != q931.ReleaseComplete {
			c.legs[from].send(releaseComplete(m.CallRef, !m.FromDestination, CauseInvalidCallRef, -1, nil))
		}
		return true
	}
	var ui *h225.H323UserInformation
	if _, present := m.Get(q931.IEUserUser); present {
		var err error
		if ui, err = decodeUU(&m); err != nil {
			c.malformed(from, err)
			return false
		}
	}
	return c.relay(from, p, got, &m, ui)
}

// relay rewrites and sends the message p from side from, read at got
// and parsed into m and ui (nil without user-user information); false
// ends the pump.
func (c *call) relay(from Side, p []byte, got time.Time, m *q931.Message, ui *h225.H323UserInformation) bool {
	// What arrived is captured as it was, before the rewrite; the capture
	// store (a lock shared by all calls) is written after the send.
	in, captured := c.captured(from, ladder.In, got, m, ui, len(p))
	out, err := c.rewrite(from, m, ui, p)
	if err != nil {
		if errors.Is(err, h245proxy.ErrMedia) {
			why := "resource unavailable: media relay"
			if errors.Is(err, h245proxy.ErrPorts) {
				why = "resource unavailable: no free H.245 port"
			}
			c.releaseBoth(CauseResourceUnavail, "portico", why)
			return false
		}
		c.malformed(from, err)
		return false
	}
	if m.Type == q931.ReleaseComplete {
		// Settled before the other side sees it: that side closing its
		// connection in answer is not a lost connection.
		c.settle(releaseCause(m), c.party(from), "")
	}
	sent := time.Now()
	if err := c.legs[from.Other()].sendFrame(out); err != nil {
		c.end(CauseTemporary, c.party(from.Other()), "connection lost on the "+from.Other().String())
		return false
	}
	done := time.Now()
	if captured {
		c.srv.deps.Capture.Add(c.rec.ID, in)
		c.capture(from.Other(), ladder.Out, sent, m, ui, len(out)-4)
	}
	switch m.Type {
	case q931.Setup:
		c.mu.Lock()
		if from == c.caller && c.times.Forwarded.IsZero() {
			c.times.Forwarded = done
		}
		c.mu.Unlock()
	case q931.Connect:
		c.mu.Lock()
		first := c.answered.IsZero()
		if first {
			c.answered = done
		}
		t := c.times
		c.mu.Unlock()
		if first && from != c.caller && c.srv.deps.Setup != nil {
			t.Answered, t.Connected = got, done
			c.srv.deps.Setup(t)
		}
		if first {
			c.changed()
		}
		for _, l := range c.legs {
			l.conn.SetReadDeadline(time.Time{})
			keepAlive(l.conn, c.srv.cfg.KeepAlive)
		}
	case q931.ReleaseComplete:
		c.end(releaseCause(m), c.party(from), "")
		return false
	}
	return true
}

// releaseCause is a ReleaseComplete's Q.931 cause (normal when it has none).
func releaseCause(m *q931.Message) byte {
	if cv, err := m.Cause(); err == nil {
		return cv.Value
	}
	return CauseNormal
}

func keepAlive(conn net.Conn, idle time.Duration) {
	for {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: idle, Interval: idle / 3, Count: 3})
			return
		}
		u, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		conn = u.NetConn()
	}
}

// malformed answers a message that does not decode with ReleaseComplete
// (invalid message) and clears the other side.
func (c *call) malformed(from Side, err error) {
	c.srv.Malformed.Add(1)
	c.srv.observe(from, c.legs[from].remote.Addr(), guard.Malformed)
	c.srv.log.Debug("malformed message", "call", c.rec.ID, "from", from, "err", err)
	c.releaseEach(CauseInvalidMessage, "portico", "malformed message from the "+from.String(), func(side Side) byte {
		if side == from {
			return CauseInvalidMessage
		}
		return CauseTemporary
	})
}

// releaseBoth clears both sides with cause.
func (c *call) releaseBoth(cause byte, by, disp string) {
	c.releaseEach(cause, by, disp, func(side Side) byte { return cause })
}

// releaseEach sends each side a ReleaseComplete with the cause causeOf
// gives it, then closes both connections. The call is settled first (a
// side that closes its connection on receiving one is not a lost
// connection), and until both are written no other path closes the
// legs: a pump that sees the first side hang up in answer would
// otherwise close the second side's connection before its
// ReleaseComplete went out.
func (c *call) releaseEach(cause byte, by, disp string, causeOf func(Side) byte) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended, c.cause, c.endedBy, c.disp = true, cause, by, disp
	c.releasing++
	c.mu.Unlock()
	for side, l := range c.legs {
		l.send(releaseComplete(c.crv, Side(side) == c.caller, causeOf(Side(side)), -1, c.id))
	}
	c.mu.Lock()
	c.releasing--
	c.mu.Unlock()
	c.closeLegs()
}

// end marks the call over (the first reason wins) and closes both
// connections so the pumps return, unless ReleaseCompletes are being
// written (releaseEach closes them after).
func (c *call) end(cause byte, by, disp string) {
	c.settle(cause, by, disp)
	c.mu.Lock()
	releasing := c.releasing > 0
	c.mu.Unlock()
	if !releasing {
		c.closeLegs()
	}
}

func (c *call) closeLegs() {
	for _, l := range c.legs {
		l.conn.Close()
	}
}

// settle records how the call ended, unless that is known already; end
// also closes both legs.
func (c *call) settle(cause byte, by, disp string) {
	c.mu.Lock()
	if !c.ended {
		c.ended, c.cause, c.endedBy, c.disp = true, cause, by, disp
	}
	c.mu.Unlock()
}

func (c *call) isAnswered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.answered.IsZero()
}

func (c *call) isEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// abort ends the call at shutdown.
func (c *call) abort() {
	if !c.isEnded() {
		c.releaseBoth(CauseTemporary, "portico", "portico shutting down")
	}
}

// finish releases the call's resources and records it.
func (c *call) finish() {
	s := c.srv
	c.end(CauseNormal, "", "")
	if c.done != nil {
		close(c.done)
	}
	c.mu.Lock()
	bridges := c.bridges
	c.bridges = nil
	c.mu.Unlock()
	for _, b := range bridges {
		b.Close()
	}
	stats := c.media.Close()
	for _, l := range c.legs {
		s.untrack(l.conn)
		l.fr.Release() // both pumps have returned
	}
	s.mu.Lock()
	delete(s.calls, c)
	if len(c.id) == 16 {
		k := [16]byte(c.id)
		if rest := slices.DeleteFunc(s.byID[k], func(o *call) bool { return o == c }); len(rest) > 0 {
			s.byID[k] = rest
		} else {
			delete(s.byID, k)
		}
	}
	s.mu.Unlock()
	s.active.Add(-1)
	s.Completed.Add(1)
	r := c.rec
	r.EndedAt = time.Now()
	r.AnsweredAt = c.answered
	if !c.answered.IsZero() {
		r.DurationMs = r.EndedAt.Sub(c.answered).Milliseconds()
	}
	r.Status = int(c.cause)
	r.EndedBy = c.endedBy
	r.Disposition = c.disp
	if r.Disposition == "" {
		r.Disposition = Disposition(c.cause)
	}
	r.Streams = streamStats(stats.Streams)
	s.record(r)
	if !r.AnsweredAt.IsZero() {
		c.changed() // gone: the peer forgets it
	}
}

// bridge returns Portico's H.245 address on the far side for the
// h245Address ap that side from announced, starting a bridge once per
// address.
func (c *call) bridge(from Side, ap netip.AddrPort) (netip.AddrPort, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	to := from.Other()
	if b, ok := c.bridges[ap]; ok {
		return netip.AddrPortFrom(c.srv.cfg.Sides[to].Advertise, b.Addr().Port()), nil
	}
	if c.bridges == nil {
		return netip.AddrPort{}, fmt.Errorf("%w: call ended", h245proxy.ErrClosed)
	}
	var allow netip.Addr
	if to == Outside {
		allow = c.legs[Outside].remote.Addr()
	}
	var ka time.Duration // on the outside connection, whichever side opens it
	if c.ka.H245 == keepAliveTPKT {
		ka = c.ka.Interval
	}
	// An endpoint behind NAT (H.460.18) cannot be connected to: Portico
	// listens on its side as well and asks it to connect there.
	var back netip.AddrPort
	var backAllow netip.Addr
	if from == Outside && c.ka.NATed {
		back, backAllow = netip.AddrPortFrom(c.srv.cfg.Sides[Outside].Bind, 0), c.legs[Outside].remote.Addr()
	}
	var hello []byte
	if from == Outside && c.ka.Client && len(c.id) == 16 {
		// Portico answers when the call came from the server.
		ind := h460.Indication{CallID: [16]byte(c.id), AnswerCall: c.caller == Outside}
		var err error
		if hello, err = ind.Message().Marshal(); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: h460.18 indication: %v", h245proxy.ErrMedia, err)
		}
	}
	var dial func(context.Context, netip.AddrPort) (net.Conn, error)
	if from == Inside {
		dial = c.srv.deps.DialH245
	}
	b, err := h245proxy.StartBridge(h245proxy.BridgeConfig{
		Session:     c.media,
		Listen:      to,
		ListenAddr:  netip.AddrPortFrom(c.srv.cfg.Sides[to].Bind, 0),
		ListenPorts: c.srv.h245Ports[to],
		BackPorts:   c.srv.h245Ports[Outside],
		Target:      ap,
		Bind:        c.srv.cfg.Sides[from].Bind,
		Dial:        dial,
		AllowFrom:   allow,
		BackAddr:    back,
		BackAllow:   backAllow,
		Hello:       hello,
		MaxFrame:    c.srv.cfg.MaxFrame,
		KeepAlive:   ka,
		OnMalformed: func(side Side, err error) {
			c.malformed(side, err)
		},
		Logger: c.srv.log,
	})
	if err != nil {
		if errors.Is(err, h245proxy.ErrPorts) {
			c.srv.H245PortsExhausted.Add(1)
			c.srv.log.Warn("h323 call released: no free H.245 port", "side", to.String(), "err", err)
		}
		return netip.AddrPort{}, fmt.Errorf("%w: h245 listener: %w", h245proxy.ErrMedia, err)
	}
	c.bridges[ap] = b
	if back.IsValid() {
		at := netip.AddrPortFrom(c.srv.cfg.Sides[Outside].Advertise, b.BackAddr().Port())
		c.legs[Outside].send(facility(c.crv, c.caller == Outside, c.id, at))
	}
	return netip.AddrPortFrom(c.srv.cfg.Sides[to].Advertise, b.Addr().Port()), nil
}
