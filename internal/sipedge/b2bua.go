package sipedge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/sdp"
	"github.com/portico-edge/portico/internal/store"
)

// Call types recorded in history.
const (
	CallRegistered = "registered" // a registered outside endpoint calls in
	CallInbound    = "inbound"    // the inside calls a registered outside endpoint
	CallGuest      = "guest"
	CallFederation = "federation"
)

// Who ended a call.
const (
	endedByCaller  = "caller"
	endedByCallee  = "callee"
	endedByPortico = "portico"
	endedByAdmin   = "admin"
)

// CallInfo is one live call, for GET /api/v1/calls.
type CallInfo struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Source   string    `json:"source"`
	State    string    `json:"state"` // early, confirmed
	Started  time.Time `json:"started"`
	Answered time.Time `json:"answered,omitempty"`
	Codecs   string    `json:"codecs"`
	Hold     bool      `json:"hold"`
}

type callState int

const (
	stateEarly callState = iota
	stateConfirmed
	stateEnded
)

// leg is one of a call's two dialogs, as Portico sees it.
type leg struct {
	sd                  *side
	idx                 int // media leg: 0 caller's side, 1 callee's side
	callID              string
	localTag, remoteTag string
	local, remote       sip.Uri // From and To of requests Portico sends on this leg
	localName           string
	remoteName          string
	cseq                uint32
	target              sip.Uri
	routes              []sip.Uri
	transport           string
	fixed               string // next hop for every request (an outside NAT flow)
	invite              *sip.Request
	inviteHadBody       bool
	pendingACK          *sip.Request  // late offer: ACK waits for the other side's answer
	ack                 *sip.Request  // the ACK Portico sent for the last 2xx, re-sent on retransmissions
	acked               chan struct{} // closed when the 2xx Portico sent as UAS is acknowledged
	ackedSeq            uint32
}

func (l *leg) nextHop() string {
	if l.fixed != "" {
		return l.fixed
	}
	u := l.target
	if len(l.routes) > 0 {
		u = l.routes[0]
	}
	port := u.Port
	if port == 0 {
		port = 5060
		if l.transport == "tls" || strings.EqualFold(u.Scheme, "sips") {
			port = 5061
		}
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(port))
}

// newRequest builds an in-dialog (or, on a fresh leg, initial) request.
func (l *leg) newRequest(method sip.RequestMethod) *sip.Request {
	if method != sip.ACK && method != sip.CANCEL {
		l.cseq++
	}
	req := sip.NewRequest(method, l.target)
	for _, r := range l.routes {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	from := &sip.FromHeader{DisplayName: l.localName, Address: l.local, Params: sip.NewParams()}
	from.Params.Add("tag", l.localTag)
	to := &sip.ToHeader{DisplayName: l.remoteName, Address: l.remote, Params: sip.NewParams()}
	if l.remoteTag != "" {
		to.Params.Add("tag", l.remoteTag)
	}
	cid := sip.CallIDHeader(l.callID)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: l.cseq, MethodName: method})
	req.AppendHeader(&mf)
	switch method {
	case sip.INVITE, sip.UPDATE, sip.SUBSCRIBE, sip.NOTIFY, sip.REFER:
		req.AppendHeader(&sip.ContactHeader{Address: l.sd.contact(l.transport, "")})
	}
	l.sd.prepare(req, l.transport, l.nextHop())
	return req
}

// learn takes the remote tag, target and route set from a response that
// establishes (or confirms) the dialog on a UAC leg (RFC 3261 section 12.1.2).
func (l *leg) learn(res *sip.Response) {
	if to := res.To(); to != nil {
		if t, ok := to.Params.Get("tag"); ok {
			l.remoteTag = t
		}
	}
	if c := res.Contact(); c != nil {
		l.target = c.Address
	}
	rr := res.GetHeaders("Record-Route")
	if len(rr) > 0 {
		l.routes = l.routes[:0]
		for i := len(rr) - 1; i >= 0; i-- {
			if r, ok := rr[i].(*sip.RecordRouteHeader); ok {
				l.routes = append(l.routes, r.Address)
			}
		}
	} else if l.fixed == "" {
		l.routes = nil
	}
}

type call struct {
	s  *Server
	lc *liveConfig // the configuration in force when the call arrived
	// ctx ends when the call does (finish) or the server closes: every
	// wait within the dialog (re-INVITE, relayed requests, PRACK) uses it,
	// so nothing the call started outlives it, as with sipgo's dialogs.
	ctx    context.Context
	end    context.CancelFunc
	id     string
	typ    string
	from   string
	to     string
	source string

	mu         sync.Mutex
	a, b       *leg // a: the caller's dialog (Portico is UAS), b: the callee's (Portico is UAC)
	state      callState
	started    time.Time
	answered   time.Time
	mediaID    media.SessionID
	hasMedia   bool
	streams    []media.StreamConfig
	codecs     string
	hold       bool
	cancel     context.CancelCauseFunc
	endOnce    sync.Once
	endedBy    string
	done       chan struct{}
	cancelled  string   // who cancelled the ringing call
	redirectTo *sip.Uri // a 3xx Contact to follow (Config.FollowRedirects)

	sessionTimer *time.Timer // RFC 4028 watch, see sessiontimer.go
	sessionGen   uint64      // bumped on every re-arm and stop
}

// Dispositions of calls Portico ends itself.
const (
	dispNoACK        = "no ACK"        // the caller never acknowledged the 2xx (RFC 3261 section 13.3.1.4)
	dispMediaTimeout = "media timeout" // the relay saw no media
)

var errCallerCancel = errors.New("caller cancelled")

// newCall makes a call arriving now with the configuration lc.
func (s *Server) newCall(lc *liveConfig, typ string, req *sip.Request) *call {
	c := &call{s: s, lc: lc, id: newID(8), typ: typ, from: req.From().Address.Addr(), to: req.To().Address.Addr(),
		source: req.Source(), started: time.Now(), done: make(chan struct{})}
	c.ctx, c.end = context.WithCancel(s.ctx)
	return c
}

type callTable struct {
	mu       sync.Mutex
	byID     map[string]*call
	byDialog map[string]*call // side name | Call-ID
}

func newCallTable() *callTable {
	return &callTable{byID: map[string]*call{}, byDialog: map[string]*call{}}
}

// dialogKey names one of Portico's dialogs: requests within it carry
// Portico's own tag in To, which also tells apart the forks of one call
// (same Call-ID and From tag).
func dialogKey(side, callID, localTag string) string { return side + "|" + callID + "|" + localTag }

func (t *callTable) add(c *call) {
	t.mu.Lock()
	t.byID[c.id] = c
	t.mu.Unlock()
}

func (t *callTable) bind(l *leg, c *call) {
	t.mu.Lock()
	t.byDialog[dialogKey(l.sd.name, l.callID, l.localTag)] = c
	t.mu.Unlock()
}

func (t *callTable) remove(c *call) {
	t.mu.Lock()
	delete(t.byID, c.id)
	if c.a != nil {
		delete(t.byDialog, dialogKey(c.a.sd.name, c.a.callID, c.a.localTag))
	}
	if c.b != nil {
		delete(t.byDialog, dialogKey(c.b.sd.name, c.b.callID, c.b.localTag))
	}
	t.mu.Unlock()
}

// lookup finds the call an in-dialog request belongs to.
func (t *callTable) lookup(side string, req *sip.Request) *call {
	cid, to := req.CallID(), req.To()
	if cid == nil || to == nil {
		return nil
	}
	tag, _ := to.Params.Get("tag")
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byDialog[dialogKey(side, string(*cid), tag)]
}

func (t *callTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

func (t *callTable) all() []*call {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*call, 0, len(t.byID))
	for _, c := range t.byID {
		out = append(out, c)
	}
	return out
}

// Calls lists the calls in progress.
func (s *Server) Calls() []CallInfo {
	cs := s.calls.all()
	out := make([]CallInfo, 0, len(cs))
	for _, c := range cs {
		c.mu.Lock()
		st := "early"
		if c.state == stateConfirmed {
			st = "confirmed"
		}
		out = append(out, CallInfo{ID: c.id, Type: c.typ, From: c.from, To: c.to, Source: c.source, State: st,
			Started: c.started, Answered: c.answered, Codecs: c.codecs, Hold: c.hold})
		c.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// Hangup ends a live call: BYE on both dialogs, or CANCEL while ringing.
func (s *Server) Hangup(id string) error {
	s.calls.mu.Lock()
	c := s.calls.byID[id]
	s.calls.mu.Unlock()
	if c == nil {
		return fmt.Errorf("%w: %s", ErrNoCall, id)
	}
	c.hangup(endedByAdmin, "ended by administrator")
	return nil
}

// MediaTimeout ends a call whose media stopped, recording the disposition
// "media timeout". Wire media.Deps.OnTimeout to it: the relay session's
// label is the call ID. It returns at once: the hang-up (BYE both ways) is
// queued to the server's hang-up workers, so the relay's goroutine never
// waits for a far end, and the calls of an outage end side by side.
func (s *Server) MediaTimeout(id string) error {
	s.calls.mu.Lock()
	c := s.calls.byID[id]
	s.calls.mu.Unlock()
	if c == nil {
		return fmt.Errorf("%w: %s", ErrNoCall, id)
	}
	s.queueHangup(c, dispMediaTimeout)
	return nil
}

// defaultHangupWorkers bounds the hang-ups the server runs at once for
// MediaTimeout. A hang-up frees the call's media and slot at once, then
// holds its worker while it waits up to byeTimeout for the two BYEs to be
// answered: 1,000 calls of an outage whose far ends are gone all end
// within about 40 s, no more than 256 BYE transactions at a time.
const defaultHangupWorkers = 128

// byeTimeout bounds the wait for the answer to a BYE Portico sends.
const byeTimeout = 5 * time.Second

// hangupQueue holds the calls waiting to be hung up by Portico and counts
// the workers doing it (at most max; a worker exits when the queue is
// empty, so none idles).
type hangupQueue struct {
	mu      sync.Mutex
	pending []hangupJob
	workers int
	max     int
}

type hangupJob struct {
	c           *call
	disposition string
}

// queueHangup has c hung up by a hang-up worker, starting one if fewer
// than the maximum run.
func (s *Server) queueHangup(c *call, disposition string) {
	q := &s.hangups
	q.mu.Lock()
	q.pending = append(q.pending, hangupJob{c, disposition})
	start := q.workers < q.max
	if start {
		q.workers++
	}
	q.mu.Unlock()
	if start && !s.spawn(s.hangupWorker) {
		q.mu.Lock()
		q.workers-- // closing: Close hangs up every call itself
		q.mu.Unlock()
	}
}

func (s *Server) hangupWorker() {
	q := &s.hangups
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.workers--
			q.mu.Unlock()
			return
		}
		j := q.pending[0]
		q.pending[0] = hangupJob{}
		q.pending = q.pending[1:]
		q.mu.Unlock()
		j.c.hangup(endedByPortico, j.disposition)
	}
}

// spawn runs f on a goroutine Close waits for. It reports false, and does
// not run f, once Close has begun stopping the server.
func (s *Server) spawn(f func()) bool {
	if !s.enter() {
		return false
	}
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// enter counts one more piece of work Close must wait for (the caller
// calls s.wg.Done when it ends); false once Close is stopping the server.
func (s *Server) enter() bool {
	s.goMu.Lock()
	defer s.goMu.Unlock()
	if s.stopping {
		return false
	}
	s.wg.Add(1)
	return true
}

func newID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// hop is a next hop candidate for a call's outgoing leg.
type hop struct {
	transport  string
	addr       string
	callServer *CallServer
}

// plan is where a new call goes.
type plan struct {
	typ      string
	out      *side
	ruri     sip.Uri
	from, to sip.Uri
	fromName string
	hops     []hop
	fixed    bool   // hops[0] is an outside flow used for the whole dialog
	rule     string // the policy rule that refused the call
}

// handleInvite takes initial and in-dialog INVITEs on either side.
func (s *Server) handleInvite(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	to, from, cid := req.To(), req.From(), req.CallID()
	if to == nil || from == nil || cid == nil || req.CSeq() == nil || req.Contact() == nil {
		s.respond(sd, tx, req, 400, "Bad Request")
		return
	}
	if to.Params.Has("tag") {
		c := s.calls.lookup(sd.name, req)
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
	if ct := req.ContentType(); len(req.Body()) > 0 && (ct == nil || !strings.EqualFold(strings.TrimSpace(strings.Split(ct.Value(), ";")[0]), "application/sdp")) {
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

// classify decides a new call's type and destination, or refuses it.
func (s *Server) classify(sd *side, req *sip.Request, lc *liveConfig) (plan, int, string) {
	from, to := req.From(), req.To()
	if sd.name == External {
		flow, err := flowOf(req)
		if err != nil {
			return plan{}, 400, "Bad Request"
		}
		p := plan{out: s.int, from: from.Address, fromName: from.DisplayName}
		p.from.UriParams = nil
		user := req.Recipient.User
		switch {
		case s.regs.registered(aorOf(from.Address), flow):
			p.typ = CallRegistered
		case lc.federated(from.Address.Host):
			p.typ = CallFederation
		default:
			p.typ = CallGuest
		}
		d := lc.decide(p.typ, req, flow.Source.Addr(), user)
		if !d.Allowed() {
			s.m.rejected.WithLabelValues("policy").Inc()
			p.rule = d.Rule
			return p, d.Code, d.Reason
		}
		user = d.Destination
		p.ruri = sip.Uri{Scheme: "sip", User: user, Host: s.cfg.Domain}
		p.to = sip.Uri{Scheme: "sip", User: user, Host: s.cfg.Domain}
		for _, cs := range lc.cs.order() {
			cs := cs
			p.hops = append(p.hops, hop{transport: cs.Transport, addr: cs.Address, callServer: &cs})
		}
		p.hops = routeTo(p.hops, d.CallServer)
		return p, 0, ""
	}
	// From the inside: to a registered endpoint (our Path came back as
	// Route), or out to a federated domain.
	p := plan{out: s.ext, fromName: from.DisplayName}
	p.from = sip.Uri{Scheme: "sip", User: from.Address.User, Host: s.ext.host}
	for _, h := range req.GetHeaders("Route") {
		r, ok := h.(*sip.RouteHeader)
		if !ok || r.Address.User == "" {
			continue
		}
		f, err := s.flows.decode(r.Address.User)
		if err != nil {
			continue
		}
		p.typ = CallInbound
		p.ruri = req.Recipient
		p.to = sip.Uri{Scheme: "sip", User: to.Address.User, Host: s.ext.host}
		p.hops = []hop{{transport: f.Transport, addr: f.Source.String()}}
		p.fixed = true
		return p, 0, ""
	}
	host := strings.ToLower(req.Recipient.Host)
	if host != "" && host != strings.ToLower(s.cfg.Domain) && host != s.int.host && lc.federated(host) {
		p.typ = CallFederation
		p.ruri = sip.Uri{Scheme: "sip", User: req.Recipient.User, Host: req.Recipient.Host, Port: req.Recipient.Port}
		p.to = sip.Uri{Scheme: "sip", User: to.Address.User, Host: to.Address.Host}
		if s.cfg.Domain != "" {
			p.from.Host = s.cfg.Domain
		}
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		targets, err := resolveSIP(ctx, s.res, req.Recipient)
		cancel()
		if err != nil || len(targets) == 0 {
			return p, 404, "Not Found"
		}
		for _, t := range targets {
			p.hops = append(p.hops, hop{transport: t.Transport, addr: t.Addr})
		}
		return p, 0, ""
	}
	return plan{typ: CallInbound}, 404, "Not Found"
}

// federated reports whether calls with domain are allowed by federation.
func (lc *liveConfig) federated(domain string) bool {
	if lc.cfg.Federation.OpenB2B {
		return true
	}
	domain = strings.ToLower(domain)
	for _, d := range lc.cfg.Federation.AllowedDomains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
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
	for _, h := range req.GetHeaders("Record-Route") {
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
		inv := b.newRequest(sip.INVITE)
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
	for _, h := range inv.GetHeaders("Route") {
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
		if rs := res.GetHeader("RSeq"); rs != nil {
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
func (c *call) retransmit2xx(sd *side, l *leg, acked chan struct{}, res *sip.Response) {
	udp := strings.EqualFold(res.Transport(), "udp")
	c.s.spawn(func() {
		t1 := c.s.t1
		interval := t1
		deadline := time.NewTimer(64 * t1)
		defer deadline.Stop()
		resend := time.NewTimer(interval)
		defer resend.Stop()
		for {
			select {
			case <-acked:
				return
			case <-c.done:
				return
			case <-c.s.ctx.Done():
				return
			case <-deadline.C:
				c.mu.Lock()
				pending := l.acked == acked // not acknowledged, nor superseded by a later 2xx
				c.mu.Unlock()
				if pending {
					c.s.log.Info("2xx not acknowledged", "call", c.id, "after", 64*t1)
					c.hangup(endedByPortico, dispNoACK)
				}
				return
			case <-resend.C:
				if udp {
					sd.srv.WriteResponse(res)
				}
				interval = min(2*interval, sip.T2)
				resend.Reset(interval)
			}
		}
	})
}

// strayResponse handles responses no transaction waits for: 2xx
// retransmissions whose ACK was lost get the ACK again.
func (s *Server) strayResponse(sd *side, r *sip.Response) {
	if r.StatusCode < 200 || r.StatusCode >= 300 || r.CSeq() == nil || r.CSeq().MethodName != sip.INVITE || r.CallID() == nil || r.From() == nil {
		return
	}
	tag, _ := r.From().Params.Get("tag")
	s.calls.mu.Lock()
	c := s.calls.byDialog[dialogKey(sd.name, string(*r.CallID()), tag)]
	s.calls.mu.Unlock()
	if c == nil {
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

func (c *call) idxOf(sd *side) int {
	if c.a.sd == sd {
		return c.a.idx
	}
	return c.b.idx
}

// reinvite relays an in-dialog INVITE (hold, resume, streams added or
// removed) to the other leg, anchoring the new description.
func (c *call) reinvite(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	s := c.s
	s.respond(sd, tx, req, 100, "Trying")
	c.mu.Lock()
	if c.state != stateConfirmed {
		c.mu.Unlock()
		s.respond(sd, tx, req, 491, "Request Pending")
		return
	}
	this, other := c.legs(sd)
	var body []byte
	if isSDP(req) {
		out, err := c.anchor(this.idx, req.Body())
		if err != nil {
			c.mu.Unlock()
			s.respond(sd, tx, req, 488, "Not Acceptable Here")
			return
		}
		body = out
	}
	inv := other.newRequest(sip.INVITE)
	copyHeaders(inv, req, "Supported", "Allow", "Session-Expires", "x", "Min-SE")
	if body != nil {
		inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		inv.SetBody(body)
	}
	other.invite = inv
	other.inviteHadBody = body != nil
	c.mu.Unlock()

	res, err := c.relay(other, inv)
	if err != nil {
		c.failRelayed(sd, tx, req)
		return
	}
	c.mu.Lock()
	if c.state == stateEnded {
		// The call ended while the re-INVITE was out (a BYE crossed it):
		// acknowledge a 2xx, anchor nothing.
		var ack *sip.Request
		if res.StatusCode < 300 {
			ack = other.newRequest(sip.ACK)
			ack.CSeq().SeqNo = res.CSeq().SeqNo
		}
		c.mu.Unlock()
		if ack != nil {
			other.sd.write(ack)
		}
		s.respond(sd, tx, req, 487, "Request Terminated")
		return
	}
	var back []byte
	if res.StatusCode < 300 {
		other.learn(res)
		c.watchSession(res) // a re-INVITE refreshes the session
		if isSDP(res) {
			if out, err := c.anchor(other.idx, res.Body()); err == nil {
				back = out
			}
		}
		ack := other.newRequest(sip.ACK)
		ack.CSeq().SeqNo = res.CSeq().SeqNo
		if other.inviteHadBody {
			other.ack = ack
		} else {
			other.pendingACK = ack
		}
		c.mu.Unlock()
		if other.inviteHadBody {
			other.sd.write(ack)
		}
	} else {
		c.mu.Unlock()
	}
	r := sip.NewResponseFromRequest(req, res.StatusCode, reasonPhrase(res.StatusCode), back)
	r.AppendHeader(&sip.ContactHeader{Address: sd.contact(this.transport, "")})
	copySessionHeaders(r, res)
	if back != nil {
		r.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	if res.StatusCode < 300 {
		acked := c.expectACK(this, r)
		tx.Respond(r)
		c.retransmit2xx(sd, this, acked, r)
	} else {
		tx.Respond(r)
	}
}

// relay sends an in-dialog request on leg l and waits for its final
// response, no longer than DefaultTransactionTimeout or the call.
func (c *call) relay(l *leg, req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(c.ctx, DefaultTransactionTimeout)
	defer cancel()
	return l.sd.do(ctx, req)
}

// failRelayed answers a request whose relayed copy got no final response:
// 487 when the call ended meanwhile (RFC 3261 section 15.1.2), else 408.
func (c *call) failRelayed(sd *side, tx sip.ServerTransaction, req *sip.Request) {
	if c.ctx.Err() != nil {
		c.s.respond(sd, tx, req, 487, "Request Terminated")
		return
	}
	c.s.respond(sd, tx, req, 408, "Request Timeout")
}

// handlePrack answers PRACK locally: reliable provisionals are terminated
// per leg.
func (s *Server) handlePrack(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	s.respond(sd, tx, req, 200, "OK")
}

// handleInDialog relays BYE, INFO, UPDATE, MESSAGE, NOTIFY ... within a call.
func (s *Server) handleInDialog(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	cid := req.CallID()
	to := req.To()
	if cid == nil || to == nil || req.CSeq() == nil {
		s.respond(sd, tx, req, 400, "Bad Request")
		return
	}
	c := s.calls.lookup(sd.name, req)
	if c == nil || !to.Params.Has("tag") {
		s.respond(sd, tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	if req.Method == sip.BYE {
		s.respond(sd, tx, req, 200, "OK")
		by := endedByCallee
		if sd == c.a.sd {
			by = endedByCaller
		}
		c.bye(by, sd)
		return
	}
	c.mu.Lock()
	this, other := c.legs(sd)
	if other.remoteTag == "" {
		c.mu.Unlock()
		s.respond(sd, tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	out := other.newRequest(req.Method)
	copyHeaders(out, req, "Content-Type", "Content-Disposition", "Event", "Subscription-State", "Info-Package", "Recv-Info", "Session-Expires", "x", "Min-SE", "Supported")
	body := req.Body()
	if isSDP(req) {
		b, err := c.anchor(this.idx, body)
		if err != nil {
			c.mu.Unlock()
			s.respond(sd, tx, req, 488, "Not Acceptable Here")
			return
		}
		body = b
	}
	out.SetBody(body)
	c.mu.Unlock()
	res, err := c.relay(other, out)
	if err != nil {
		c.failRelayed(sd, tx, req)
		return
	}
	if req.Method == sip.UPDATE && res.StatusCode >= 200 && res.StatusCode < 300 {
		c.mu.Lock()
		c.watchSession(res) // an UPDATE refreshes the session
		c.mu.Unlock()
	}
	var back []byte
	if isSDP(res) {
		c.mu.Lock()
		if b, err := c.anchor(other.idx, res.Body()); err == nil {
			back = b
		}
		c.mu.Unlock()
	} else if len(res.Body()) > 0 && !isSDP(res) {
		back = res.Body()
	}
	r := sip.NewResponseFromRequest(req, res.StatusCode, reasonPhrase(res.StatusCode), back)
	if back != nil {
		copyHeaders(r, res, "Content-Type")
	}
	copySessionHeaders(r, res)
	tx.Respond(r)
}

// bye ends a confirmed call that one side hung up: BYE to the other side.
func (c *call) bye(by string, from *side) {
	c.mu.Lock()
	if c.state == stateEnded {
		c.mu.Unlock()
		return
	}
	c.state = stateEnded
	_, other := c.legs(from)
	req := other.newRequest(sip.BYE)
	c.mu.Unlock()
	c.sendBye(other.sd, req, nil)
	c.finish(by, 200, "normal", nil)
}

// hangup ends the call from Portico's side: BYE both ways once answered,
// CANCEL while ringing.
func (c *call) hangup(by, disposition string) {
	c.mu.Lock()
	switch c.state {
	case stateEnded:
		c.mu.Unlock()
		return
	case stateEarly:
		if c.cancelled == "" {
			c.cancelled = by
		}
		cancel := c.cancel
		c.mu.Unlock()
		if cancel != nil {
			cancel(errors.New(disposition))
		}
		return
	}
	c.state = stateEnded
	r1 := c.a.newRequest(sip.BYE)
	r2 := c.b.newRequest(sip.BYE)
	c.mu.Unlock()
	var wg sync.WaitGroup
	c.sendBye(c.a.sd, r1, &wg)
	c.sendBye(c.b.sd, r2, &wg)
	// The session is over once the BYEs are out (RFC 3261 section
	// 15.1.1): the media and the call's slot are freed now, not after a
	// dead far end's transaction timed out.
	c.finish(by, 200, disposition, nil)
	wg.Wait()
}

// sendBye sends a BYE on a tracked goroutine and waits up to byeTimeout
// for its answer (the server's context: the call itself has ended). wg,
// if not nil, is done when the wait is over.
func (c *call) sendBye(sd *side, req *sip.Request, wg *sync.WaitGroup) {
	if wg != nil {
		wg.Add(1)
	}
	ok := c.s.spawn(func() {
		if wg != nil {
			defer wg.Done()
		}
		ctx, cancel := context.WithTimeout(c.s.ctx, byeTimeout)
		defer cancel()
		if _, err := sd.do(ctx, req); err != nil {
			c.s.log.Debug("bye", "call", c.id, "err", err)
		}
	})
	if !ok && wg != nil {
		wg.Done()
	}
}

// dispositionOf names why a call ended from its final status.
func dispositionOf(code int, reason string) string {
	switch code {
	case 200:
		return "normal"
	case 403:
		return "policy: destination not allowed"
	case 404:
		return "callee not found"
	case 408:
		return "no answer"
	case 480:
		return "callee unavailable"
	case 486, 600:
		return "callee busy"
	case 487:
		return "caller cancelled"
	case 488, 606:
		return "media not acceptable"
	case 503:
		return "service unavailable"
	case 603:
		return "callee declined"
	}
	return strings.ToLower(reason)
}

// finish releases the call's media and writes its history record (once).
func (c *call) finish(by string, code int, reason string, _ error) {
	c.endOnce.Do(func() {
		s := c.s
		c.mu.Lock()
		c.state = stateEnded
		c.endedBy = by
		c.stopSessionTimer()
		hasMedia, id := c.hasMedia, c.mediaID
		c.hasMedia = false
		codecs, answered := c.codecs, c.answered
		c.mu.Unlock()
		c.end() // stops the call's waits; nothing anchors media any more
		var streams []store.StreamStats
		if hasMedia {
			if st, err := s.deps.Media.Release(id); err == nil {
				streams = streamStats(st)
			}
		}
		if c.a != nil {
			s.calls.remove(c)
			s.m.callsActive.Dec()
		}
		now := time.Now()
		disp := dispositionOf(code, reason)
		if code == 200 && reason != "" && reason != "normal" {
			disp = reason
		}
		if code == 403 && c.typ != CallGuest {
			disp = "forbidden"
		}
		if strings.HasPrefix(reason, "media: ") || strings.HasPrefix(reason, "capacity: ") || strings.HasPrefix(reason, "policy: ") {
			disp = reason
		}
		rec := store.CallRecord{ID: c.id, Protocol: "sip", CallType: c.typ, From: c.from, To: c.to, SourceAddr: c.source,
			StartedAt: c.started, AnsweredAt: answered, EndedAt: now, EndedBy: by, Status: code, Disposition: disp,
			Codecs: codecs, Streams: streams}
		if !answered.IsZero() {
			rec.DurationMs = now.Sub(answered).Milliseconds()
		}
		s.m.calls.WithLabelValues(c.typ, strconv.FormatBool(!answered.IsZero())).Inc()
		s.recordCall(rec)
		close(c.done)
	})
}
