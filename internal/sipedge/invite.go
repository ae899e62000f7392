package sipedge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/sdp"
)

// handleInvite takes initial and in-dialog INVITEs on either side.
func (s *Server) handleInvite(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	to, from, cid := req.To(), req.From(), req.CallID()
	if to == nil || from == nil || cid == nil || req.CSeq() == nil || req.Contact() == nil {
		s.respond(sd, tx, req, 400, "Bad Request")
		return
	}
	if to.Params.Has("tag") {
		c := s.findCall(sd, req)
		if c == nil {
			s.respond(sd, tx, req, 481, "Call/Transaction Does Not Exist")
			return
		}
		c.reinvite(sd, req, tx)
		return
	}
	lc := s.lc() // a call keeps the configuration in force when it arrived
	if s.calls.count() >= lc.cfg.Limits.MaxCalls {
		s.m.rejected.WithLabelValues("max_calls").Inc()
		s.respond(sd, tx, req, 503, "Service Unavailable", s.retryAfter())
		s.newCall(lc, CallGuest, req).finish(endedByPortico, 503, "capacity: too many calls", nil)
		return
	}
	if ct := req.ContentType(); len(req.Body()) > 0 && (ct == nil || !isSDPType(ct.Value())) {
		s.respond(sd, tx, req, 415, "Unsupported Media Type", sip.NewHeader("Accept", "application/sdp"))
		return
	}
	if mf := req.MaxForwards(); mf != nil && *mf == 0 {
		s.respond(sd, tx, req, 483, "Too Many Hops")
		return
	}
	s.respond(sd, tx, req, 100, "Trying")
	p, code, reason := s.classify(sd, req, lc)
	c := s.newCall(lc, p.typ, req)
	if code != 0 {
		s.respond(sd, tx, req, code, reason)
		if p.rule != "" {
			reason = "policy: rule " + p.rule // history names the rule, the wire does not
		}
		c.typ = p.typ
		if c.typ == "" {
			c.typ = CallGuest
		}
		c.finish(endedByPortico, code, reason, nil)
		return
	}
	c.run(sd, req, tx, p)
}

// isSDPType reports whether a Content-Type value names SDP, parameters
// aside.
func isSDPType(v string) bool {
	v, _, _ = strings.Cut(v, ";")
	return strings.EqualFold(strings.TrimSpace(v), "application/sdp")
}

// isSDP reports whether a message carries an SDP body.
func isSDP(m interface {
	Body() []byte
	ContentType() *sip.ContentTypeHeader
}) bool {
	if len(m.Body()) == 0 {
		return false
	}
	ct := m.ContentType()
	return ct != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct.Value())), "application/sdp")
}

// anchor updates the media session with what leg idx signalled and returns
// the body to send to the other leg, pointing at the relay. Caller holds c.mu.
func (c *call) anchor(idx int, body []byte) ([]byte, error) {
	if c.state == stateEnded {
		// finish released (or is releasing) the media: a late answer must
		// not allocate a session nothing would release.
		return nil, errCallEnded
	}
	d, err := sdp.Parse(body)
	if err != nil {
		return nil, err
	}
	for len(c.streams) < len(d.Streams) {
		c.streams = append(c.streams, media.StreamConfig{})
	}
	var codecs []string
	hold := false
	for i, st := range d.Streams {
		c.streams[i] = streamConfig(c.streams[i], idx, st, c.signallingSource(idx))
		if !st.Disabled() {
			if len(st.Codecs) > 0 {
				codecs = append(codecs, st.Kind+":"+st.Codecs[0])
			}
			hold = hold || st.Hold() || st.Direction != "sendrecv"
		}
	}
	c.codecs = strings.Join(codecs, ",")
	c.hold = hold
	var infos []media.StreamInfo
	c.claimPeerMedia(false)
	if !c.hasMedia {
		ifaces := [2]string{c.a.sd.name, c.b.sd.name}
		id, in, err := c.s.deps.Media.Allocate(media.SessionConfig{Label: c.id, Interfaces: ifaces, Streams: c.streams})
		if err != nil {
			return nil, fmt.Errorf("media allocate: %w", err)
		}
		c.mediaID, c.hasMedia, infos = id, true, in
	} else {
		in, err := c.s.deps.Media.Update(c.mediaID, c.streams)
		if err != nil {
			return nil, fmt.Errorf("media update: %w", err)
		}
		infos = in
	}
	other := 1 - idx
	eps := make([]sdp.Endpoint, len(d.Streams))
	for i := range eps {
		if i >= len(infos) {
			break
		}
		eps[i].RTP = infos[i].Local[other]
		if !c.streams[i].RTCPMux {
			eps[i].RTCP = infos[i].LocalRTCP[other]
		}
	}
	return d.Rewrite(eps)
}

func (c *call) legs(sd *side) (from, to *leg) {
	if c.a.sd == sd {
		return c.a, c.b
	}
	return c.b, c.a
}

// run places the outgoing leg of a new call and relays its answer.
func (c *call) run(sd *side, req *sip.Request, tx sip.ServerTransaction, p plan) {
	s := c.s
	from, to := req.From(), req.To()
	a := &leg{sd: sd, idx: 0, callID: string(*req.CallID()), localTag: sip.GenerateTagN(16), local: to.Address,
		remote: from.Address, localName: to.DisplayName, remoteName: from.DisplayName, target: req.Contact().Address,
		transport: strings.ToLower(req.Transport())}
	a.remoteTag, _ = from.Params.Get("tag")
	a.cseq = uint32(1 + time.Now().UnixNano()%1000)
	for _, h := range allHeaders(req, "Record-Route") {
		if r, ok := h.(*sip.RecordRouteHeader); ok {
			a.routes = append(a.routes, r.Address)
		}
	}
	if sd.name == External {
		a.fixed = req.Source() // reach the caller through its NAT binding
	}
	b := &leg{sd: p.out, idx: 1, callID: newID(12), localTag: sip.GenerateTagN(16), local: p.from, remote: p.to,
		localName: p.fromName, target: p.ruri, cseq: uint32(1 + time.Now().UnixNano()%1000)}
	c.a, c.b = a, b
	if s.deps.Capture != nil {
		s.deps.Capture.Link(c.id, b.callID)
	}
	if len(p.hops) > 0 {
		b.transport = p.hops[0].transport
		if p.fixed {
			b.fixed = p.hops[0].addr
		}
	}
	s.calls.add(c)
	s.calls.bind(a, c)
	s.calls.bind(b, c)
	s.m.callsActive.Inc()

	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	tx.OnCancel(func(*sip.Request) {
		c.mu.Lock()
		c.cancelled = endedByCaller
		c.mu.Unlock()
		cancel(errCallerCancel)
	})

	var body []byte
	if isSDP(req) {
		c.mu.Lock()
		out, err := c.anchor(0, req.Body())
		c.mu.Unlock()
		if err != nil {
			s.log.Info("invite offer refused", "call", c.id, "err", err)
			code, reason := 488, "Not Acceptable Here"
			if !errors.Is(err, sdp.ErrMalformed) && !errors.Is(err, sdp.ErrNoAddress) && !errors.Is(err, sdp.ErrTooLarge) {
				code, reason = 503, "Service Unavailable"
			}
			s.respond(sd, tx, req, code, reason)
			c.finish(endedByPortico, code, "media: "+err.Error(), nil)
			return
		}
		body = out
	}
	b.inviteHadBody = body != nil

	ringCtx, ringCancel := context.WithTimeout(ctx, c.lc.cfg.NoAnswerTimeout)
	defer ringCancel()
	var lastCode int
	var lastReason string
	lastRetry := true
	send := func(h hop) (int, string, bool) {
		b.transport = h.transport
		if p.fixed {
			b.fixed = h.addr
		}
		inv := b.buildRequest(sip.INVITE) // prepared below, for this hop
		if h.callServer != nil {
			inv.PrependHeader(&sip.RouteHeader{Address: routeURI(*h.callServer)})
		}
		copyHeaders(inv, req, "Supported", "Allow", "Accept", "Session-Expires", "x", "Min-SE")
		if p.out == s.int {
			copyHeaders(inv, req, "Subject", "Priority", "Authorization", "Proxy-Authorization")
			if !c.lc.cfg.TopologyHiding.StripServer {
				copyHeaders(inv, req, "User-Agent")
			}
		}
		if body != nil {
			inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			inv.SetBody(body)
		}
		// Prepare again: the hop (and Route) may differ per attempt.
		b.sd.prepare(inv, h.transport, h.addr)
		c.mu.Lock()
		b.invite = inv
		c.mu.Unlock()
		return c.ring(ctx, ringCtx, sd, req, tx, inv, h.callServer != nil)
	}
	for i, h := range p.hops {
		code, reason, retry := send(h)
		if code == 0 {
			return // answered; the call lives on
		}
		lastCode, lastReason, lastRetry = code, reason, retry
		if !retry || i == len(p.hops)-1 {
			break
		}
		s.log.Info("call server failed, trying next", "call", c.id, "server", h.addr, "status", code)
	}
	// Redirects (3xx) from the callee's side are followed when configured,
	// up to three times; the Contact never reaches the caller.
	for n := 0; ; n++ {
		c.mu.Lock()
		target := c.redirectTo
		c.redirectTo = nil
		c.mu.Unlock()
		if target == nil {
			break
		}
		if n == 3 || (target.Scheme != "sip" && target.Scheme != "sips") {
			lastCode, lastReason, lastRetry = 480, "Temporarily Unavailable", true
			break
		}
		b.target, b.routes, b.remoteTag = *target, nil, ""
		tr := strings.ToLower(target.UriParams.GetOr("transport", b.transport))
		port := target.Port
		if port == 0 {
			port = 5060
		}
		code, reason, retry := send(hop{transport: tr, addr: net.JoinHostPort(target.Host, strconv.Itoa(port))})
		if code == 0 {
			return
		}
		lastCode, lastReason, lastRetry = code, reason, retry
	}
	if lastCode == 0 {
		lastCode, lastReason = 503, "Service Unavailable"
	}
	if lastRetry {
		// Every call server failed without a final answer the caller saw.
		s.respond(sd, tx, req, lastCode, reasonPhrase(lastCode))
	}
	c.mu.Lock()
	by := c.cancelled
	c.mu.Unlock()
	if by == "" {
		by = endedByCallee
	}
	c.finish(by, lastCode, lastReason, nil)
}

// ring runs one INVITE client transaction on the b leg. It returns 0 when
// the call was answered, else the final status relayed to the caller and
// whether another call server may be tried.
func (c *call) ring(ctx, ringCtx context.Context, sd *side, req *sip.Request, tx sip.ServerTransaction, inv *sip.Request, failover bool) (int, string, bool) {
	s, b := c.s, c.b
	// Provisionals come in order from the transport (see provisionals);
	// those the transaction passes up are only counted.
	early, unwatch := s.early.watch(inv)
	defer unwatch()
	var unreachable <-chan struct{}
	if failover {
		ch, stop := s.unreached.watch(inv)
		defer stop()
		unreachable = ch
	}
	btx, err := b.sd.request(c.ctx, inv)
	if err != nil {
		if failover {
			return 503, "Service Unavailable", true
		}
		s.respond(sd, tx, req, 503, "Service Unavailable")
		return 503, "Service Unavailable", false
	}
	defer btx.Terminate()
	gotResponse := false
	cancelled := false
	var cancelDeadline <-chan time.Time
	var silent <-chan time.Time
	if failover {
		silent = time.After(c.lc.cfg.FailoverTimeout)
	}
	doCancel := func() {
		if cancelled {
			return
		}
		cancelled = true
		cancelDeadline = time.After(5 * time.Second)
		if gotResponse {
			s.spawn(func() { c.sendCancel(inv) })
		}
	}
	ringDone := ringCtx.Done()
	relayEarly := func() {
		for {
			select {
			case res := <-early:
				if !cancelled {
					c.provisional(sd, req, tx, res)
				}
			default:
				return
			}
		}
	}
	for {
		select {
		case res := <-early:
			gotResponse = true
			if !cancelled {
				c.provisional(sd, req, tx, res)
			}
		case res := <-btx.Responses():
			gotResponse = true
			if res.StatusCode < 200 {
				if cancelled {
					s.spawn(func() { c.sendCancel(inv) })
				}
				continue // relayed from early, in order
			}
			// Provisionals that arrived before this final are relayed
			// before it.
			relayEarly()
			switch {
			case res.StatusCode < 300:
				c.answer(sd, req, tx, res)
				if cancelled {
					c.mu.Lock()
					by := c.cancelled
					c.mu.Unlock()
					if by == "" {
						by = endedByPortico
					}
					s.spawn(func() { c.hangup(by, "cancelled") })
				}
				return 0, "", false
			default:
				c.mu.Lock()
				by := c.cancelled
				c.mu.Unlock()
				if failover && res.StatusCode == 503 && !cancelled {
					return 503, res.Reason, true
				}
				if res.StatusCode < 400 && c.lc.cfg.FollowRedirects && !cancelled && res.Contact() != nil {
					u := res.Contact().Address
					c.mu.Lock()
					c.redirectTo = &u
					c.mu.Unlock()
					return res.StatusCode, res.Reason, false
				}
				back := sip.NewResponseFromRequest(req, res.StatusCode, reasonPhrase(res.StatusCode), nil)
				copyHeaders(back, res, "WWW-Authenticate", "Proxy-Authenticate", "Retry-After", "Min-Expires", "Unsupported", "Min-SE")
				if res.StatusCode < 400 {
					// A 3xx's targets name hosts of the callee's side.
					for _, h := range redirectContacts(res, sd.host) {
						back.AppendHeader(h)
					}
				}
				if by == "" {
					tx.Respond(back)
				}
				return res.StatusCode, res.Reason, false
			}
		case <-btx.Done():
			if !gotResponse && failover && !cancelled {
				return 408, "Request Timeout", true
			}
			if !cancelled {
				s.respond(sd, tx, req, 408, "Request Timeout")
			}
			return 408, "Request Timeout", false
		case <-ringDone:
			if !cancelled {
				if context.Cause(ctx) == nil && ctx.Err() == nil {
					// no answer: tell the caller and stop ringing
					c.mu.Lock()
					c.cancelled = endedByPortico
					c.mu.Unlock()
					s.respond(sd, tx, req, 480, "Temporarily Unavailable")
				}
				doCancel()
			}
			if s.ctx.Err() != nil {
				return 487, "Request Terminated", false // closing: no wait for the 487
			}
			ringDone = nil
		case <-silent:
			if !gotResponse && !cancelled {
				c.lc.cs.mark(inv.Destination(), false)
				return 408, "Request Timeout", true
			}
		case <-unreachable:
			// ICMP unreachable for the INVITE: the call server is down;
			// no need to wait for the failover timer.
			if !gotResponse && !cancelled {
				s.log.Info("call server unreachable", "call", c.id, "server", inv.Destination())
				c.lc.cs.mark(inv.Destination(), false)
				return 503, "Service Unavailable", true
			}
		case <-cancelDeadline:
			return 487, "Request Terminated", false
		}
	}
}

// sendCancel cancels the b leg's pending INVITE (RFC 3261 section 9.1).
func (c *call) sendCancel(inv *sip.Request) {
	cr := sip.NewRequest(sip.CANCEL, inv.Recipient)
	cr.AppendHeader(inv.Via().Clone())
	for _, h := range allHeaders(inv, "Route") {
		cr.AppendHeader(sip.NewHeader("Route", h.Value()))
	}
	copyHeaders(cr, inv, "From", "To", "Call-ID")
	cr.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	cr.AppendHeader(&mf)
	cr.SetTransport(inv.Transport())
	cr.SetDestination(inv.Destination())
	cr.Laddr = inv.Laddr
	cr.SetBody(nil)
	// Not the call's context: the call may end (and cancel it) before
	// the CANCEL is answered.
	ctx, cancel := context.WithTimeout(c.s.ctx, 10*time.Second)
	defer cancel()
	if _, err := c.b.sd.do(ctx, cr); err != nil {
		c.s.log.Debug("cancel", "call", c.id, "err", err)
	}
}

// provisional relays a 1xx from the callee to the caller, with early media
// anchored, and acknowledges a reliable provisional on the callee's leg.
func (c *call) provisional(sd *side, req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	c.mu.Lock()
	c.b.learn(res)
	var body []byte
	if isSDP(res) {
		out, err := c.anchor(1, res.Body())
		if err == nil {
			body = out
		}
	}
	c.mu.Unlock()
	back := sip.NewResponseFromRequest(req, res.StatusCode, reasonPhrase(res.StatusCode), body)
	back.To().Params.Add("tag", c.a.localTag)
	back.AppendHeader(&sip.ContactHeader{Address: sd.contact(c.a.transport, "")})
	if body != nil {
		back.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	tx.Respond(back)
	if hasOption(res, "Require", "100rel") {
		if rs := firstHeader(res, "RSeq"); rs != nil {
			rseq := strings.TrimSpace(rs.Value())
			c.s.spawn(func() { c.prack(res, rseq) })
		}
	}
}

// provisionals hands the 1xx responses (but 100) to INVITEs Portico sent
// to the ring loop of their call, in the order the transport read them.
// sipgo's transaction layer handles every message on a goroutine of its
// own, so a 200 sent right after a 180 can reach the transaction first,
// which then drops the 180; observe runs in the transport's read loop.
type provisionals struct {
	mu    sync.Mutex
	byKey map[string]chan *sip.Response // client transaction key
}

// maxEarly bounds the provisionals queued for one INVITE; a peer sending
// more before Portico relays them loses the excess.
const maxEarly = 32

// watch starts collecting the provisionals to inv; stop ends it.
func (p *provisionals) watch(inv *sip.Request) (early <-chan *sip.Response, stop func()) {
	ch := make(chan *sip.Response, maxEarly)
	key, err := sip.ClientTxKeyMake(inv)
	if err != nil {
		return ch, func() {}
	}
	p.mu.Lock()
	if p.byKey == nil {
		p.byKey = map[string]chan *sip.Response{}
	}
	p.byKey[key] = ch
	p.mu.Unlock()
	return ch, func() {
		p.mu.Lock()
		if p.byKey[key] == ch {
			delete(p.byKey, key)
		}
		p.mu.Unlock()
	}
}

// observe takes every message a side's transport reads.
func (p *provisionals) observe(m sip.Message) {
	res, ok := m.(*sip.Response)
	if !ok || res.StatusCode <= 100 || res.StatusCode >= 200 {
		return
	}
	if cs := res.CSeq(); cs == nil || cs.MethodName != sip.INVITE {
		return
	}
	key, err := sip.ClientTxKeyMake(res)
	if err != nil {
		return
	}
	p.mu.Lock()
	ch := p.byKey[key]
	p.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- res:
	default:
	}
}

// prack acknowledges a reliable provisional response on the b leg
// (RFC 3262 section 7.2): the B2BUA terminates 100rel per leg.
func (c *call) prack(res *sip.Response, rseq string) {
	c.mu.Lock()
	pr := c.b.newRequest(sip.PRACK)
	pr.AppendHeader(sip.NewHeader("RAck", fmt.Sprintf("%s %d INVITE", rseq, res.CSeq().SeqNo)))
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	if _, err := c.b.sd.do(ctx, pr); err != nil {
		c.s.log.Debug("prack", "call", c.id, "err", err)
	}
}

// answer relays the callee's 2xx to the caller and acknowledges it.
func (c *call) answer(sd *side, req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	c.mu.Lock()
	b := c.b
	b.learn(res)
	var body []byte
	if isSDP(res) {
		out, err := c.anchor(1, res.Body())
		if err != nil {
			c.s.log.Info("answer sdp", "call", c.id, "err", err)
		} else {
			body = out
		}
	}
	ack := b.newRequest(sip.ACK)
	ack.CSeq().SeqNo = res.CSeq().SeqNo
	if b.inviteHadBody {
		b.ack = ack
	} else {
		b.pendingACK = ack
	}
	c.state = stateConfirmed
	c.answered = time.Now()
	c.watchSession(res)
	c.mu.Unlock()
	c.s.callChanged(c)
	if b.inviteHadBody {
		if err := b.sd.write(ack); err != nil {
			c.s.log.Debug("ack", "call", c.id, "err", err)
		}
	}
	back := sip.NewResponseFromRequest(req, res.StatusCode, reasonPhrase(res.StatusCode), body)
	back.To().Params.Add("tag", c.a.localTag)
	back.AppendHeader(&sip.ContactHeader{Address: sd.contact(c.a.transport, "")})
	back.AppendHeader(allowHeader())
	copySessionHeaders(back, res)
	if body != nil {
		back.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	acked := c.expectACK(c.a, back)
	tx.Respond(back)
	c.retransmit2xx(sd, c.a, acked, back)
}

// expectACK arms the wait for the ACK of a 2xx Portico sends as UAS.
func (c *call) expectACK(l *leg, res *sip.Response) chan struct{} {
	acked := make(chan struct{})
	c.mu.Lock()
	l.acked, l.ackedSeq = acked, res.CSeq().SeqNo
	c.mu.Unlock()
	return acked
}

// retransmit2xx re-sends a 2xx Portico sent as UAS on leg l over UDP
// until its ACK arrives (RFC 3261 section 13.3.1.4: T1 doubling to T2).
// When no ACK has come after 64*T1 (on any transport) the dialog is
// confirmed but the session is over: Portico ends the call with BYE both
// ways and the disposition dispNoACK.
//
// One timer does the work rather than a goroutine per call: each firing
// re-sends the 2xx and re-arms the timer, the ACK stops it (handleAck),
// and a call that ended meanwhile is seen at the next firing, at most T2
// later. A firing counts as work Close waits for.
func (c *call) retransmit2xx(sd *side, l *leg, acked chan struct{}, res *sip.Response) {
	udp := strings.EqualFold(res.Transport(), "udp")
	s := c.s
	deadline := time.Now().Add(64 * s.t1)
	interval := s.t1
	var t *time.Timer
	fire := func() {
		if !s.enter() {
			return // closing
		}
		defer s.wg.Done()
		select {
		case <-acked:
			return
		case <-c.done:
			return
		case <-s.ctx.Done():
			return
		default:
		}
		left := time.Until(deadline)
		if left <= 0 {
			c.mu.Lock()
			pending := l.acked == acked // not acknowledged, nor superseded by a later 2xx
			c.mu.Unlock()
			if pending {
				s.log.Info("2xx not acknowledged", "call", c.id, "after", 64*s.t1)
				c.hangup(endedByPortico, dispNoACK)
			}
			return
		}
		if udp {
			sd.srv.WriteResponse(res)
		}
		interval = min(2*interval, sip.T2)
		c.mu.Lock()
		t.Reset(min(interval, left))
		c.mu.Unlock()
	}
	c.mu.Lock()
	t = time.AfterFunc(interval, fire) // fire reads t under c.mu
	l.resend2xx = t
	c.mu.Unlock()
}

// strayResponse handles responses no transaction waits for: 2xx
// retransmissions whose ACK was lost get the ACK again, and a 2xx no call
// knows ends its dialog (stray.go).
func (s *Server) strayResponse(sd *side, r *sip.Response) {
	if r.StatusCode < 200 || r.StatusCode >= 300 || r.CSeq() == nil || r.CSeq().MethodName != sip.INVITE || r.CallID() == nil || r.From() == nil {
		return
	}
	tag, _ := r.From().Params.Get("tag")
	s.calls.mu.Lock()
	c := s.calls.byDialog[dialogID{sd.name, string(*r.CallID()), tag}]
	s.calls.mu.Unlock()
	if c == nil {
		s.endStrayDialog(sd, r)
		return
	}
	c.mu.Lock()
	var ack *sip.Request
	for _, l := range []*leg{c.a, c.b} {
		if l != nil && l.sd == sd && l.localTag == tag && l.ack != nil && l.ack.CSeq().SeqNo == r.CSeq().SeqNo {
			ack = l.ack
		}
	}
	c.mu.Unlock()
	if ack != nil {
		sd.write(ack)
	}
}

// handleAck forwards an ACK that carries the answer to a late offer.
func (s *Server) handleAck(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	cid := req.CallID()
	if cid == nil {
		return
	}
	c := s.calls.lookup(sd.name, req)
	if c == nil {
		return
	}
	c.mu.Lock()
	this, other := c.legs(sd)
	if this.acked != nil && req.CSeq() != nil && req.CSeq().SeqNo == this.ackedSeq {
		close(this.acked)
		this.acked = nil
		if this.resend2xx != nil {
			this.resend2xx.Stop()
			this.resend2xx = nil
		}
	}
	ack := other.pendingACK
	other.pendingACK = nil
	if ack != nil && isSDP(req) {
		if out, err := c.anchor(c.idxOf(sd), req.Body()); err == nil {
			ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			ack.SetBody(out)
		}
	}
	c.mu.Unlock()
	if ack != nil {
		other.sd.write(ack)
	}
}
