package sipedge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/media"
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
	resend2xx           *time.Timer // re-sends that 2xx (retransmit2xx); stopped by its ACK
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
	req := l.buildRequest(method)
	l.sd.prepare(req, l.transport, l.nextHop())
	return req
}

// buildRequest is newRequest without the Via, transport and destination,
// for a caller that prepares the request for a hop of its own.
func (l *leg) buildRequest(method sip.RequestMethod) *sip.Request {
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
	rr := allHeaders(res, "Record-Route")
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
	peerMedia  media.SessionID // taken over from the HA peer: its session, until found here (replicate_calls.go)
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
	if s.deps.Capture != nil {
		if cid := req.CallID(); cid != nil {
			s.deps.Capture.Link(c.id, string(*cid))
		}
	}
	return c
}

type callTable struct {
	mu       sync.Mutex
	byID     map[string]*call
	byDialog map[dialogID]*call
}

func newCallTable() *callTable {
	return &callTable{byID: map[string]*call{}, byDialog: map[dialogID]*call{}}
}

// dialogKey names one of Portico's dialogs: requests within it carry
// Portico's own tag in To, which also tells apart the forks of one call
// (same Call-ID and From tag).
func dialogKey(side, callID, localTag string) string { return side + "|" + callID + "|" + localTag }

// dialogID is dialogKey as a map key of the call table, which a lookup
// does not have to allocate.
type dialogID struct{ side, callID, localTag string }

func (t *callTable) add(c *call) {
	t.mu.Lock()
	t.byID[c.id] = c
	t.mu.Unlock()
}

func (t *callTable) bind(l *leg, c *call) {
	t.mu.Lock()
	t.byDialog[dialogID{l.sd.name, l.callID, l.localTag}] = c
	t.mu.Unlock()
}

func (t *callTable) remove(c *call) {
	t.mu.Lock()
	delete(t.byID, c.id)
	if c.a != nil {
		delete(t.byDialog, dialogID{c.a.sd.name, c.a.callID, c.a.localTag})
	}
	if c.b != nil {
		delete(t.byDialog, dialogID{c.b.sd.name, c.b.callID, c.b.localTag})
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
	return t.byDialog[dialogID{side, string(*cid), tag}]
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

func newID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
