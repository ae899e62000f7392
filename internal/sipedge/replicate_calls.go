package sipedge

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/media"
)

// CallState is an answered call's replicable state: both dialogs, the
// media session and what its history row needs. The HA peer keeps it as a
// dormant call and takes the call over when a request within one of its
// dialogs reaches the peer (after the VIPs moved).
type CallState struct {
	ID       string
	Type     string
	From     string
	To       string
	Source   string
	Started  time.Time
	Answered time.Time
	Codecs   string
	Hold     bool
	// MediaID is the relay session on the node that holds the call; the
	// session's label is the call ID.
	MediaID media.SessionID
	Streams []media.StreamConfig
	// Legs are the caller's dialog (Portico is UAS) and the callee's
	// (Portico is UAC).
	Legs [2]LegState
}

// LegState is one dialog of a call as Portico sees it.
type LegState struct {
	Side       string // External or Internal
	CallID     string
	LocalTag   string
	RemoteTag  string
	Local      string // From URI of requests Portico sends on the leg
	Remote     string // To URI
	LocalName  string
	RemoteName string
	CSeq       uint32 // the last CSeq Portico sent
	Target     string // remote target (Contact)
	Routes     []string
	Transport  string
	// Fixed is the next hop of every request: an outside endpoint's NAT
	// flow, or the call server chosen for the call.
	Fixed string
}

// cseqGap is added to each leg's CSeq when a node takes a call over: the
// peer may have sent requests whose CSeq had not been replicated yet, and
// a request with a lower CSeq than the far end saw is refused (RFC 3261
// section 12.2.1.1 allows any increase).
const cseqGap = 1000

// dormantCalls holds the calls the HA peer replicated, by call ID and by
// each of their dialog keys (callTable.lookup's).
type dormantCalls struct {
	mu       sync.Mutex
	byID     map[string]*CallState
	byDialog map[string]*CallState
	// yielded are the relay sessions of calls handed back to the peer,
	// released when the peer ends the call (ForgetCall).
	yielded map[string]media.SessionID
}

func (d *dormantCalls) put(st *CallState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byID == nil {
		d.byID, d.byDialog = map[string]*CallState{}, map[string]*CallState{}
	}
	d.delLocked(st.ID)
	d.byID[st.ID] = st
	for _, l := range st.Legs {
		d.byDialog[dialogKey(l.Side, l.CallID, l.LocalTag)] = st
	}
}

func (d *dormantCalls) delLocked(id string) {
	old := d.byID[id]
	if old == nil {
		return
	}
	delete(d.byID, id)
	for _, l := range old.Legs {
		delete(d.byDialog, dialogKey(l.Side, l.CallID, l.LocalTag))
	}
}

// take removes and returns the dormant call a request within one of its
// dialogs on side belongs to.
func (d *dormantCalls) take(side string, req *sip.Request) *CallState {
	cid, to := req.CallID(), req.To()
	if cid == nil || to == nil {
		return nil
	}
	tag, _ := to.Params.Get("tag")
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.byDialog[dialogKey(side, string(*cid), tag)]
	if st != nil {
		d.delLocked(st.ID)
	}
	return st
}

// callChanged reports a call to Deps.OnCall.
func (s *Server) callChanged(c *call) {
	if f := s.deps.OnCall; f != nil {
		f(c.id)
	}
}

// CallKeys lists the IDs of the answered calls this node holds (not the
// dormant ones replicated by the HA peer).
func (s *Server) CallKeys() []string {
	var out []string
	for _, c := range s.calls.all() {
		c.mu.Lock()
		if c.state == stateConfirmed {
			out = append(out, c.id)
		}
		c.mu.Unlock()
	}
	return out
}

// ExportCall returns the state of an answered call this node holds, false
// when there is none (ringing, ended, or never here).
func (s *Server) ExportCall(id string) (CallState, bool) {
	s.calls.mu.Lock()
	c := s.calls.byID[id]
	s.calls.mu.Unlock()
	if c == nil {
		return CallState{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateConfirmed || c.a == nil || c.b == nil {
		return CallState{}, false
	}
	st := CallState{ID: c.id, Type: c.typ, From: c.from, To: c.to, Source: c.source, Started: c.started,
		Answered: c.answered, Codecs: c.codecs, Hold: c.hold, Streams: append([]media.StreamConfig(nil), c.streams...)}
	if c.hasMedia {
		st.MediaID = c.mediaID
	}
	for i, l := range []*leg{c.a, c.b} {
		ls := LegState{Side: l.sd.name, CallID: l.callID, LocalTag: l.localTag, RemoteTag: l.remoteTag,
			Local: l.local.String(), Remote: l.remote.String(), LocalName: l.localName, RemoteName: l.remoteName,
			CSeq: l.cseq, Target: l.target.String(), Transport: l.transport, Fixed: l.fixed}
		for _, r := range l.routes {
			ls.Routes = append(ls.Routes, r.String())
		}
		st.Legs[i] = ls
	}
	return st, true
}

// ImportCall keeps a call the HA peer holds as a dormant call: nothing
// is listed or counted for it until a request within one of its dialogs
// reaches this node, which then takes the call over as its own (see
// resumeCall). The peer sends only calls it holds itself, so a call this
// node also holds was taken over by the peer (its VIP moved back): this
// node lets it go without a BYE or a history row, and keeps it dormant.
func (s *Server) ImportCall(st CallState) error {
	if err := s.checkCallState(st); err != nil {
		return fmt.Errorf("sipedge: import call %q: %w", st.ID, err)
	}
	s.calls.mu.Lock()
	own := s.calls.byID[st.ID]
	s.calls.mu.Unlock()
	if own != nil {
		own.yield()
	}
	s.dormant.put(&st)
	return nil
}

// yield ends c on this node only: the HA peer holds it now. No request is
// sent and no history row written. The media session is kept until the
// peer ends the call (ForgetCall): released now, it would make the peer
// drop its copy of the session if its relay had not adopted it yet.
func (c *call) yield() {
	c.endOnce.Do(func() {
		s := c.s
		c.mu.Lock()
		c.state = stateEnded
		c.endedBy = "peer"
		c.stopSessionTimer()
		if c.hasMedia {
			s.dormant.mu.Lock()
			if s.dormant.yielded == nil {
				s.dormant.yielded = map[string]media.SessionID{}
			}
			s.dormant.yielded[c.id] = c.mediaID
			s.dormant.mu.Unlock()
		}
		c.hasMedia, c.peerMedia = false, 0
		c.mu.Unlock()
		c.end()
		s.calls.remove(c)
		s.m.callsActive.Dec()
		s.log.Info("call handed to the HA peer", "call", c.id)
		close(c.done)
	})
}

// ForgetCall drops a dormant call (the peer ended it, and wrote its
// history row), and releases the relay session this node used for it
// before handing it back to the peer, if the relay has not ended it. A
// call this node holds itself is handed over first, without a BYE or a
// history row: the peer took it over and ended it before its record of
// the call was sent (a queued change is read when it is sent).
func (s *Server) ForgetCall(id string) {
	s.calls.mu.Lock()
	own := s.calls.byID[id]
	s.calls.mu.Unlock()
	if own != nil {
		own.yield()
	}
	s.dormant.mu.Lock()
	s.dormant.delLocked(id)
	sid, ok := s.dormant.yielded[id]
	delete(s.dormant.yielded, id)
	s.dormant.mu.Unlock()
	if ok {
		s.deps.Media.Release(sid)
	}
}

// LoseCall handles a call the peer no longer holds after it restarted (its
// snapshot does not name it): the call did not end, the peer lost it. A
// call this node holds itself stays. A dormant call whose media this
// node's relay carries (it adopted its copy of the peer's session, or
// kept its own session of a call it handed over: the addresses are here)
// is taken over, so that this node holds, replicates and ends it and it
// moves back with the addresses when the peer takes them again. Any other
// dormant call is dropped as ForgetCall does.
func (s *Server) LoseCall(id string) {
	s.dormant.mu.Lock()
	st := s.dormant.byID[id]
	s.dormant.mu.Unlock()
	if st == nil || !s.relaysCall(id) {
		s.calls.mu.Lock()
		own := s.calls.byID[id]
		s.calls.mu.Unlock()
		if own == nil {
			s.ForgetCall(id)
		}
		return
	}
	s.dormant.mu.Lock()
	s.dormant.delLocked(id)
	delete(s.dormant.yielded, id)
	s.dormant.mu.Unlock()
	s.resumeCall(st)
}

// relaysCall reports whether the relay holds a session of its own
// labelled with the call's ID: an adopted copy of the peer's session.
func (s *Server) relaysCall(id string) bool {
	ms, ok := s.deps.Media.(mediaSessions)
	if !ok {
		return false
	}
	for _, ss := range ms.Sessions() {
		if ss.Label == id {
			return true
		}
	}
	return false
}

// DormantCalls counts the calls held for the HA peer.
func (s *Server) DormantCalls() int {
	s.dormant.mu.Lock()
	defer s.dormant.mu.Unlock()
	return len(s.dormant.byID)
}

func (s *Server) checkCallState(st CallState) error {
	if st.ID == "" {
		return fmt.Errorf("no call ID: %w", ErrNotReplicable)
	}
	for i, l := range st.Legs {
		if s.sideNamed(l.Side) == nil || l.CallID == "" || l.LocalTag == "" || l.RemoteTag == "" {
			return fmt.Errorf("leg %d: side %q, dialog %q/%q/%q: %w", i, l.Side, l.CallID, l.LocalTag, l.RemoteTag, ErrNotReplicable)
		}
		for _, u := range append([]string{l.Local, l.Remote, l.Target}, l.Routes...) {
			var x sip.Uri
			if err := sip.ParseUri(u, &x); err != nil {
				return fmt.Errorf("leg %d: uri %q: %w", i, u, err)
			}
			if x.Host == "" {
				return fmt.Errorf("leg %d: uri %q names no host: %w", i, u, ErrNotReplicable)
			}
		}
	}
	return nil
}

func (s *Server) sideNamed(name string) *side {
	switch name {
	case s.ext.name:
		return s.ext
	case s.int.name:
		return s.int
	}
	return nil
}

// findCall is callTable.lookup, taking a dormant call over when the
// request belongs to one.
func (s *Server) findCall(sd *side, req *sip.Request) *call {
	if c := s.calls.lookup(sd.name, req); c != nil {
		return c
	}
	st := s.dormant.take(sd.name, req)
	if st == nil {
		return nil
	}
	c := s.resumeCall(st)
	if c == nil {
		return nil
	}
	return s.calls.lookup(sd.name, req)
}

// mediaSessions is what resumeCall asks of Deps.Media beyond Media: the
// relay's sessions (an adopted copy of the peer's session carries the
// call's ID as its label) and the removal of a copy not adopted.
type mediaSessions interface {
	Sessions() []media.SessionStats
	Forget(id media.SessionID)
}

// resumeCall makes a dormant call this node's own: from now on it is
// handled, listed, replicated and ended here, and this node writes its
// history row. Its media is the relay's adopted copy of the peer's
// session (see claimPeerMedia).
func (s *Server) resumeCall(st *CallState) *call {
	c := &call{s: s, lc: s.lc(), id: st.ID, typ: st.Type, from: st.From, to: st.To, source: st.Source,
		started: st.Started, answered: st.Answered, codecs: st.Codecs, hold: st.Hold,
		state: stateConfirmed, streams: st.Streams, done: make(chan struct{})}
	c.ctx, c.end = context.WithCancel(s.ctx)
	var legs [2]*leg
	for i, ls := range st.Legs {
		l := &leg{sd: s.sideNamed(ls.Side), idx: i, callID: ls.CallID, localTag: ls.LocalTag, remoteTag: ls.RemoteTag,
			localName: ls.LocalName, remoteName: ls.RemoteName, cseq: ls.CSeq + cseqGap, transport: ls.Transport, fixed: ls.Fixed}
		if l.sd == nil {
			return nil
		}
		// checkCallState parsed every URI when the call was imported.
		_ = sip.ParseUri(ls.Local, &l.local)
		_ = sip.ParseUri(ls.Remote, &l.remote)
		_ = sip.ParseUri(ls.Target, &l.target)
		for _, r := range ls.Routes {
			var u sip.Uri
			_ = sip.ParseUri(r, &u)
			l.routes = append(l.routes, u)
		}
		legs[i] = l
	}
	c.a, c.b = legs[0], legs[1]
	if s.deps.Capture != nil {
		s.deps.Capture.Link(c.id, c.a.callID)
		s.deps.Capture.Link(c.id, c.b.callID)
	}
	c.peerMedia = st.MediaID
	c.mu.Lock()
	c.claimPeerMedia(false)
	c.mu.Unlock()
	s.calls.add(c)
	s.calls.bind(c.a, c)
	s.calls.bind(c.b, c)
	s.m.callsActive.Inc()
	s.log.Info("call taken over from the HA peer", "call", c.id, "media", c.hasMedia)
	s.callChanged(c)
	return c
}

// claimPeerMedia makes the relay's adopted copy of the peer's session
// (labelled with the call's ID) the media of a call taken over from the
// peer. The relay adopts a copy once media reached it on the moved
// addresses, so the search is repeated at each offer or answer until it
// succeeds; an offer before then allocates a new session. When the call
// ends (final) without having found it, a copy still held is dropped.
// c.mu is held.
func (c *call) claimPeerMedia(final bool) {
	if c.peerMedia == 0 {
		return
	}
	ms, ok := c.s.deps.Media.(mediaSessions)
	if !ok {
		c.peerMedia = 0
		return
	}
	if !c.hasMedia {
		for _, ss := range ms.Sessions() {
			if ss.Label == c.id {
				c.mediaID, c.hasMedia, c.peerMedia = ss.ID, true, 0
				return
			}
		}
	}
	if final || c.hasMedia {
		ms.Forget(c.peerMedia)
		c.peerMedia = 0
	}
}
