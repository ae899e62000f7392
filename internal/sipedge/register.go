package sipedge

import (
	"container/heap"
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/store"
)

// RegistrationInfo is one live registration, for GET /api/v1/registrations.
type RegistrationInfo struct {
	AOR        string    `json:"aor"`
	Contact    string    `json:"contact"`
	Source     string    `json:"source"`
	Transport  string    `json:"transport"`
	FlowToken  string    `json:"flow_token"`
	UserAgent  string    `json:"user_agent"`
	Registered time.Time `json:"registered"`
	Refreshed  time.Time `json:"refreshed"`
	Expires    time.Time `json:"expires"`
}

type binding struct {
	RegistrationInfo
	flow Flow
	// contact is the endpoint's Contact as it registered it (without
	// expires): what the 2xx of its next REGISTER lists back to it.
	contact sip.ContactHeader
	// imported marks a binding the HA peer registered (replicate.go).
	imported bool
	// key is the binding's key in registrar.b, and at its index in
	// registrar.due while stored (under the registrar's mu).
	key string
	at  int
}

// expiryHeap orders the stored bindings by expiry, soonest first, so that
// the expiry sweep looks only at those due instead of at every binding.
type expiryHeap []*binding

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].Expires.Before(h[j].Expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].at, h[j].at = i, j
}
func (h *expiryHeap) Push(x any) {
	b := x.(*binding)
	b.at = len(*h)
	*h = append(*h, b)
}
func (h *expiryHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}

// registrar is the edge's view of the registrations it relayed: only those
// the inside accepted, until they expire or are removed.
type registrar struct {
	s  *Server
	mu sync.Mutex
	b  map[string]*binding // aor + "\x00" + contact
	// byAOR indexes b by AOR (then by b's key): a REGISTER's answer and
	// a call's routing look at one AOR's bindings, not at all of them.
	byAOR map[string]map[string]*binding
	// importing is set (under mu) while a binding from the HA peer is
	// stored, so that it is not reported back (replicate.go).
	importing bool
	// due holds every binding of b, soonest expiry first.
	due expiryHeap
}

func newRegistrar(s *Server) *registrar {
	return &registrar{s: s, b: map[string]*binding{}, byAOR: map[string]map[string]*binding{}}
}

// put stores a binding under key; the caller holds mu.
func (r *registrar) put(key string, b *binding) {
	if old := r.b[key]; old != nil {
		if old.AOR != b.AOR {
			r.del(key)
		} else {
			heap.Remove(&r.due, old.at)
		}
	}
	b.key = key
	heap.Push(&r.due, b)
	r.b[key] = b
	m := r.byAOR[b.AOR]
	if m == nil {
		m = map[string]*binding{}
		r.byAOR[b.AOR] = m
	}
	m[key] = b
	r.changed(key)
}

// del removes the binding under key; the caller holds mu.
func (r *registrar) del(key string) {
	b := r.b[key]
	if b == nil {
		return
	}
	delete(r.b, key)
	r.changed(key)
	heap.Remove(&r.due, b.at)
	if m := r.byAOR[b.AOR]; m != nil {
		delete(m, key)
		if len(m) == 0 {
			delete(r.byAOR, b.AOR)
		}
	}
}

func bindingKey(aor, contact string) string { return aor + "\x00" + contact }

// Registrations lists the live registrations, sorted by AOR.
func (s *Server) Registrations() []RegistrationInfo {
	s.regs.mu.Lock()
	out := make([]RegistrationInfo, 0, len(s.regs.b))
	for _, b := range s.regs.b {
		out = append(out, b.RegistrationInfo)
	}
	s.regs.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].AOR != out[j].AOR {
			return out[i].AOR < out[j].AOR
		}
		return out[i].Contact < out[j].Contact
	})
	return out
}

// registered reports whether aor holds a binding reached over flow f.
func (r *registrar) registered(aor string, f Flow) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.byAOR[aor] {
		if b.flow == f {
			return true
		}
	}
	return false
}

func (r *registrar) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.b)
}

func (r *registrar) sweepLoop(done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			r.sweep(now)
		}
	}
}

// keepaliveLoop sends OPTIONS to every UDP flow of a live registration
// each Config.UDPKeepalive, keeping NAT bindings open for endpoints that do
// not send keepalives themselves (RFC 5626 section 4.4.2 leaves UDP
// keepalive to the client; this covers those that do not).
func (r *registrar) keepaliveLoop(done <-chan struct{}) {
	if r.s.cfg.UDPKeepalive <= 0 {
		return
	}
	t := time.NewTicker(r.s.cfg.UDPKeepalive)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		r.mu.Lock()
		seen := map[Flow]string{}
		for _, b := range r.b {
			if b.flow.Transport == "udp" {
				seen[b.flow] = b.Contact
			}
		}
		r.mu.Unlock()
		var wg sync.WaitGroup
		for f, contact := range seen {
			var u sip.Uri
			if sip.ParseUri(contact, &u) != nil {
				continue
			}
			req := sip.NewRequest(sip.OPTIONS, u)
			from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "portico", Host: r.s.ext.host}, Params: sip.NewParams()}
			from.Params.Add("tag", sip.GenerateTagN(10))
			cid := sip.CallIDHeader(sip.GenerateTagN(20))
			mf := sip.MaxForwardsHeader(70)
			req.AppendHeader(from)
			req.AppendHeader(&sip.ToHeader{Address: u})
			req.AppendHeader(&cid)
			req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
			req.AppendHeader(&mf)
			r.s.ext.prepare(req, "udp", f.Source.String())
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(r.s.ctx, 5*time.Second)
				defer cancel()
				r.s.ext.do(ctx, req)
			}()
		}
		wg.Wait()
	}
}

func (r *registrar) sweep(now time.Time) {
	var gone []*binding
	r.mu.Lock()
	for len(r.due) > 0 && now.After(r.due[0].Expires) {
		b := r.due[0]
		r.del(b.key)
		gone = append(gone, b)
	}
	n := len(r.b)
	r.mu.Unlock()
	r.s.m.registrations.Set(float64(n))
	for _, b := range gone {
		r.event(b.RegistrationInfo, "expired", 0, "binding expired without refresh")
	}
}

func (r *registrar) event(b RegistrationInfo, kind string, expires int, reason string) {
	r.s.m.regEvents.WithLabelValues(kind).Inc()
	r.s.recordReg(store.RegistrationEvent{Time: time.Now(), Protocol: "sip", AOR: b.AOR, Contact: b.Contact,
		Source: b.Source, Transport: b.Transport, Kind: kind, Expires: expires, Reason: reason})
}

func aorOf(u sip.Uri) string {
	if u.User != "" {
		return "sip:" + u.User + "@" + strings.ToLower(u.Host)
	}
	return "sip:" + strings.ToLower(u.Host)
}

func flowOf(req *sip.Request) (Flow, error) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return Flow{}, fmt.Errorf("source %q: %w", req.Source(), err)
	}
	return Flow{Transport: strings.ToLower(req.Transport()), Source: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}

// handleRegister relays an outside REGISTER to the call server with a Path
// carrying the flow token, and keeps the binding only if the inside accepts.
func (s *Server) handleRegister(sd *side, req *sip.Request, tx sip.ServerTransaction) {
	if sd.name != External {
		s.respond(sd, tx, req, 403, "Forbidden")
		return
	}
	to, from := req.To(), req.From()
	if to == nil || from == nil || req.CallID() == nil || req.CSeq() == nil {
		s.respond(sd, tx, req, 400, "Bad Request")
		return
	}
	flow, err := flowOf(req)
	if err != nil {
		s.respond(sd, tx, req, 400, "Bad Request")
		return
	}
	aor := aorOf(to.Address)
	contacts := allHeaders(req, "Contact")
	lc := s.lc()
	capped := int(lc.cfg.NATBindingExpiry / time.Second)

	// Capacity: a new binding beyond the limit is refused before relaying.
	if len(contacts) > 0 {
		s.regs.mu.Lock()
		n := len(s.regs.b)
		_, exists := s.regs.b[bindingKey(aor, contactURI(contacts[0]))]
		s.regs.mu.Unlock()
		if !exists && n >= lc.cfg.Limits.MaxRegistrations {
			s.m.rejected.WithLabelValues("max_registrations").Inc()
			s.respond(sd, tx, req, 503, "Service Unavailable", s.retryAfter())
			return
		}
	}

	token := s.flows.encode(flow)
	out := sip.NewRequest(sip.REGISTER, req.Recipient)
	// From, To, Call-ID and CSeq cross as the endpoint sent them: out
	// holds req's parsed headers themselves instead of copies rebuilt
	// from their text (about a dozen allocations per REGISTER). Neither
	// request changes them afterwards: sipgo clones them into responses,
	// and a failover sends a deep copy of out.
	out.AppendHeader(from)
	out.AppendHeader(to)
	out.AppendHeader(req.CallID())
	out.AppendHeader(req.CSeq())
	copyHeaders(out, req, "Authorization", "Proxy-Authorization",
		"Expires", "Supported", "Require", "Allow", "Accept", "Content-Type", "Event")
	// Contacts are copied parsed, so that capExpires can cap their expires
	// parameters.
	for _, h := range contacts {
		if c, ok := h.(*sip.ContactHeader); ok {
			out.AppendHeader(c.Clone())
		} else {
			copyHeaders(out, req, "Contact")
			break
		}
	}
	if !lc.cfg.TopologyHiding.StripServer {
		copyHeaders(out, req, "User-Agent")
	}
	capExpires(out, capped)
	mf := sip.MaxForwardsHeader(70)
	if m := req.MaxForwards(); m != nil {
		if *m == 0 {
			s.respond(sd, tx, req, 483, "Too Many Hops")
			return
		}
		mf = *m - 1
	}
	out.AppendHeader(&mf)
	// The Path names this node's internal UDP listener (the call servers'
	// usual transport) and the node; the token carries the outside flow.
	// A registrar that keeps the Path (RFC 3327) sends calls to the user
	// to the node holding its flow.
	pathURI := s.int.contact("udp", token)
	pathURI.UriParams = sip.NewParams()
	pathURI.UriParams.Add("lr", "")
	pathURI.UriParams.Add("ob", "")
	if n := pathNode(s.deps.Node); n != "" {
		pathURI.UriParams.Add("node", n)
	}
	out.AppendHeader(sip.NewHeader("Path", "<"+pathURI.String()+">"))
	if !hasOption(req, "Supported", "path") {
		out.AppendHeader(sip.NewHeader("Supported", "path"))
	}
	out.SetBody(req.Body())

	res, _, err := s.sendToCallServer(time.Now().Add(relayBudget(lc.cfg.Overload)), out)
	if err != nil {
		s.log.Warn("register relay failed", "aor", aor, "err", err)
		s.respond(sd, tx, req, 503, "Service Unavailable", s.retryAfter())
		s.regs.event(RegistrationInfo{AOR: aor, Source: flow.Source.String(), Transport: flow.Transport}, "rejected", 0, "no call server: "+err.Error())
		return
	}
	s.applyRegisterResult(req, res, aor, flow, token, capped)
	back := s.registerResponse(lc, req, res, aor, flow, capped)
	if gtx, ok := tx.(truthResponder); ok {
		err = gtx.respondFor(back, res) // the guard scores what the inside said
	} else {
		err = tx.Respond(back)
	}
	if err != nil {
		s.log.Debug("register response", "err", err)
	}
}

// registerResponse builds the answer to an outside REGISTER from the
// inside's: the standard reason phrase, the headers of the crossing allow
// list, and in a 2xx only the bindings of the endpoint's own flow
// (RFC 3261 section 10.3 step 8 lists every binding of the AOR; those of
// the user's other devices, inside ones included, are not the outside's
// business). A refusal of an unauthenticated REGISTER is answered as a
// digest challenge unless TopologyHiding.RevealUnknownUsers is set.
func (s *Server) registerResponse(lc *liveConfig, req *sip.Request, res *sip.Response, aor string, flow Flow, capped int) *sip.Response {
	if res.StatusCode == 401 {
		if h := firstHeader(res, "WWW-Authenticate"); h != nil {
			v := h.Value()
			s.challenge.Store(&v)
		}
	}
	if !lc.cfg.TopologyHiding.RevealUnknownUsers && refusesUser(res.StatusCode) &&
		firstHeader(req, "Authorization") == nil && firstHeader(req, "Proxy-Authorization") == nil {
		s.m.rejected.WithLabelValues("register_refusal_hidden").Inc()
		tmpl := ""
		if p := s.challenge.Load(); p != nil {
			tmpl = *p
		}
		back := sip.NewResponseFromRequest(req, 401, reasonPhrase(401), nil)
		back.AppendHeader(sip.NewHeader("WWW-Authenticate", fakeChallenge(tmpl, lc.cfg.Domain)))
		return back
	}
	back := sip.NewResponseFromRequest(req, res.StatusCode, reasonPhrase(res.StatusCode), nil)
	copyHeaders(back, res, "WWW-Authenticate", "Proxy-Authenticate", "Date", "Min-Expires", "Retry-After", "Supported", "Require", "Allow")
	if res.StatusCode < 200 || res.StatusCode >= 300 {
		return back
	}
	if h := firstHeader(res, "Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			back.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(min(max(n, 0), capped))))
		}
	}
	for _, c := range s.regs.flowContacts(aor, flow, time.Now()) {
		back.AppendHeader(c)
	}
	return back
}

// refusesUser reports whether a REGISTER answered code tells an unknown
// user from a known one (a known one is challenged with 401 first).
func refusesUser(code int) bool {
	switch code {
	case 403, 404, 410, 480, 484, 603, 604:
		return true
	}
	return false
}

// flowContacts returns the Contacts of aor's bindings held over flow, each
// with the seconds it has left as its expires parameter.
func (r *registrar) flowContacts(aor string, f Flow, now time.Time) []sip.Header {
	r.mu.Lock()
	var bs []*binding
	for _, b := range r.byAOR[aor] {
		if b.flow == f {
			bs = append(bs, b)
		}
	}
	r.mu.Unlock()
	sort.Slice(bs, func(i, j int) bool { return bs[i].Contact < bs[j].Contact })
	out := make([]sip.Header, 0, len(bs))
	for _, b := range bs {
		c := &sip.ContactHeader{DisplayName: b.contact.DisplayName, Address: b.contact.Address, Params: b.contact.Params.Clone()}
		left := int((b.Expires.Sub(now) + time.Second - 1) / time.Second)
		c.Params.Add("expires", strconv.Itoa(max(left, 0)))
		out = append(out, c)
	}
	return out
}

// applyRegisterResult updates the bindings from the inside's answer; a
// binding lasts what the inside granted, at most capped seconds.
func (s *Server) applyRegisterResult(req *sip.Request, res *sip.Response, aor string, flow Flow, token string, capped int) {
	ua := ""
	if h := firstHeader(req, "User-Agent"); h != nil {
		ua = h.Value()
	}
	base := RegistrationInfo{AOR: aor, Source: flow.Source.String(), Transport: flow.Transport, FlowToken: token, UserAgent: ua}
	reqContacts := allHeaders(req, "Contact")
	if res.StatusCode < 200 {
		return
	}
	if res.StatusCode >= 300 {
		if res.StatusCode == 401 || res.StatusCode == 407 {
			return // a digest challenge, not a refusal
		}
		reason := fmt.Sprintf("%d %s", res.StatusCode, res.Reason)
		for _, c := range reqContacts {
			info := base
			info.Contact = contactURI(c)
			s.regs.mu.Lock()
			s.regs.del(bindingKey(aor, info.Contact))
			s.regs.mu.Unlock()
			s.regs.event(info, "rejected", 0, reason)
		}
		if len(reqContacts) == 0 {
			s.regs.event(base, "rejected", 0, reason)
		}
		s.m.registrations.Set(float64(s.regs.count()))
		return
	}
	now := time.Now()
	// The granted expiry of each contact we sent is in the 2xx's Contact
	// list (RFC 3261 section 10.3 step 8), else in Expires.
	granted := map[string]int{}
	for _, h := range allHeaders(res, "Contact") {
		uri := contactURI(h)
		if e, ok := contactExpires(h); ok {
			granted[uri] = e
		}
	}
	defExp := -1
	if h := firstHeader(res, "Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			defExp = n
		}
	}
	for _, c := range reqContacts {
		if strings.TrimSpace(c.Value()) == "*" {
			s.regs.mu.Lock()
			for k, b := range s.regs.byAOR[aor] {
				s.regs.del(k)
				defer s.regs.event(b.RegistrationInfo, "unregistered", 0, "wildcard removal")
			}
			s.regs.mu.Unlock()
			continue
		}
		uri := contactURI(c)
		exp, ok := granted[uri]
		if !ok {
			exp = defExp
		}
		if !ok && exp < 0 {
			// Not in the 2xx: the registrar did not keep it (or removed it).
			if requestedExpires(req, c) == 0 {
				exp = 0
			} else {
				continue
			}
		}
		exp = min(exp, capped)
		info := base
		info.Contact = uri
		key := bindingKey(aor, uri)
		s.regs.mu.Lock()
		old := s.regs.b[key]
		if exp == 0 {
			s.regs.del(key)
		} else {
			info.Registered = now
			if old != nil {
				info.Registered = old.Registered
			}
			info.Refreshed = now
			info.Expires = now.Add(time.Duration(exp) * time.Second)
			s.regs.put(key, &binding{RegistrationInfo: info, flow: flow, contact: ownContact(c)})
		}
		s.regs.mu.Unlock()
		switch {
		case exp == 0:
			s.regs.event(info, "unregistered", 0, "")
		case old == nil:
			s.regs.event(info, "registered", exp, "")
		default:
			s.regs.event(info, "refreshed", exp, "")
		}
	}
	s.m.registrations.Set(float64(s.regs.count()))
}

// ownContact is an endpoint's Contact header without its expires
// parameter.
func ownContact(h sip.Header) sip.ContactHeader {
	if c, ok := h.(*sip.ContactHeader); ok {
		cc := sip.ContactHeader{DisplayName: c.DisplayName, Address: c.Address, Params: c.Params.Clone()}
		cc.Params.Remove("expires")
		return cc
	}
	var u sip.Uri
	sip.ParseUri(contactURI(h), &u)
	return sip.ContactHeader{Address: u, Params: sip.NewParams()}
}

// capExpires limits the requested expiry to max seconds, in the Expires
// header and each Contact's expires parameter.
func capExpires(req *sip.Request, max int) {
	if h := firstHeader(req, "Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > max {
			req.RemoveHeader("Expires")
			req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(max)))
		}
	} else {
		req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(max)))
	}
	for _, h := range allHeaders(req, "Contact") {
		if c, ok := h.(*sip.ContactHeader); ok {
			if v, ok := c.Params.Get("expires"); ok {
				if n, err := strconv.Atoi(v); err == nil && n > max {
					c.Params.Add("expires", strconv.Itoa(max))
				}
			}
		}
	}
}

// requestedExpires is the expiry a REGISTER asked for one contact: its
// expires parameter, else the Expires header, else -1.
func requestedExpires(req *sip.Request, c sip.Header) int {
	if e, ok := contactExpires(c); ok {
		return e
	}
	if h := firstHeader(req, "Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			return n
		}
	}
	return -1
}

func contactURI(h sip.Header) string {
	if c, ok := h.(*sip.ContactHeader); ok {
		// Uri.String grows its builder from 8 bytes, four allocations
		// for a usual Contact; one buffer of the usual size is one.
		var b strings.Builder
		b.Grow(64)
		c.Address.StringWrite(&b)
		return b.String()
	}
	v := h.Value()
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return v[:i]
	}
	return v
}

func contactExpires(h sip.Header) (int, bool) {
	c, ok := h.(*sip.ContactHeader)
	if !ok {
		return 0, false
	}
	v, ok := c.Params.Get("expires")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

func hasOption(m headerList, name, opt string) bool {
	for _, h := range allHeaders(m, name) {
		for _, o := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(o), opt) {
				return true
			}
		}
	}
	return false
}

// sendToCallServer sends an out-of-dialog request to the best call server,
// failing over to the next on a transport error, a timeout or a 503, until
// deadline. The Route names the server actually chosen. Each attempt has
// one context, ending at its failover timeout or at deadline, whichever
// comes first (not one context for the whole and one per attempt: a
// context and a timer fewer per REGISTER).
func (s *Server) sendToCallServer(deadline time.Time, req *sip.Request) (*sip.Response, CallServer, error) {
	var lastErr error = ErrNoCallServer
	lc := s.lc()
	for i, cs := range lc.cs.order() {
		if i > 0 && !time.Now().Before(deadline) {
			break
		}
		// The first attempt sends req itself; a failover sends a copy,
		// as the transaction of the attempt before may still hold req.
		r := req
		if i > 0 {
			r = req.Clone()
		}
		r.RemoveHeader("Route")
		r.PrependHeader(&sip.RouteHeader{Address: routeURI(cs)})
		s.int.prepare(r, cs.Transport, cs.Address)
		end := time.Now().Add(lc.cfg.FailoverTimeout)
		if deadline.Before(end) {
			end = deadline
		}
		tctx, cancel := context.WithDeadline(s.ctx, end)
		res, err := s.int.do(tctx, r)
		cancel()
		if err != nil {
			lc.cs.mark(cs.Address, false)
			lastErr = fmt.Errorf("%s: %w", cs.Address, err)
			if s.ctx.Err() != nil {
				break // shutting down
			}
			continue
		}
		if res.StatusCode == 503 {
			lastErr = fmt.Errorf("%s: 503 %s", cs.Address, res.Reason)
			continue
		}
		lc.cs.mark(cs.Address, true)
		return res, cs, nil
	}
	return nil, CallServer{}, lastErr
}
