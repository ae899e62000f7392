package callsig

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/store"
)

// CallState is an answered call as the HA peer keeps it (package
// hasync): what the peer needs to write the call's one history row should
// the call's addresses move to it. The call's media is the relay session
// labelled with ID, replicated on its own.
type CallState struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Source   string    `json:"source"`
	Started  time.Time `json:"started"`
	Answered time.Time `json:"answered"`
	Codecs   string    `json:"codecs,omitempty"`
	// Legs are the call-signalling connections, outside first.
	Legs [2]StateLeg `json:"legs"`
	// Session is the call's relay session on the node that sent the
	// state; 0 when no logical channel allocated one.
	Session media.SessionID `json:"session,omitempty"`
}

// StateLeg is one call-signalling connection of a CallState: the party's
// address and Portico's own.
type StateLeg struct {
	Remote netip.AddrPort `json:"remote"`
	Local  netip.AddrPort `json:"local"`
}

// Who and why of a call whose signalling was lost with the HA peer that
// held it (history written by the node that took its addresses).
const (
	EndedByFailover     = "portico"
	DispositionFailover = "call signalling lost at failover"
)

// haWatch is how often the peer's calls are checked against the relay.
const haWatch = time.Second

// dormant is an answered call of the HA peer. The fields other than st
// are the watcher's (watchPeerCalls), under hamu.
type dormant struct {
	st CallState
	// taken is set once the relay adopted the call's session: its media
	// arrives here. last is the session as last seen.
	taken bool
	last  media.SessionStats
	// here is when the call's outside address was first seen on this
	// node (zero: not yet).
	here time.Time
}

// relayView is what the watcher reads of the relay; *media.Relay has it.
type relayView interface {
	// PeerSession finds the peer's session labelled with a call's ID: a
	// live session here once adopted (its statistics), or a standby copy.
	PeerSession(label string) (stats media.SessionStats, live, standby bool)
	// LocalAddrs is the node's interface addresses, shared with the
	// relay's own check and read at most once a second.
	LocalAddrs() (map[netip.Addr]bool, error)
}

var _ relayView = (*media.Relay)(nil)

// CallKeys lists the IDs of the answered calls in progress.
func (s *Server) CallKeys() []string {
	var out []string
	for _, c := range s.callList() {
		c.mu.Lock()
		if !c.ended && !c.answered.IsZero() {
			out = append(out, c.rec.ID)
		}
		c.mu.Unlock()
	}
	return out
}

func (s *Server) callList() []*call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*call, 0, len(s.calls))
	for c := range s.calls {
		out = append(out, c)
	}
	return out
}

// ExportCall returns the state of the answered call id in progress, false
// when there is none.
func (s *Server) ExportCall(id string) (CallState, bool) {
	for _, c := range s.callList() {
		if c.rec.ID != id {
			continue
		}
		c.mu.Lock()
		ended, answered, rec := c.ended, c.answered, c.rec
		c.mu.Unlock()
		if ended || answered.IsZero() {
			continue
		}
		st := CallState{ID: rec.ID, Type: rec.CallType, From: rec.From, To: rec.To, Source: rec.SourceAddr,
			Started: rec.StartedAt, Answered: answered, Session: c.media.ID()}
		for side, l := range c.legs {
			st.Legs[side] = StateLeg{Remote: l.remote, Local: l.local}
		}
		_, codecs := c.media.Live()
		st.Codecs = h245proxy.Codecs(codecs)
		return st, true
	}
	return CallState{}, false
}

// changed tells Deps.OnCall about the answered call c.
func (c *call) changed() {
	if f := c.srv.deps.OnCall; f != nil {
		f(c.rec.ID)
	}
}

// ImportCall keeps an answered call of the HA peer. It writes nothing
// while the peer holds the call; once the call's addresses are on this
// node, its one history row is written here when its media stops
// (watchPeerCalls).
func (s *Server) ImportCall(st CallState) error {
	if st.ID == "" {
		return fmt.Errorf("%w: call state without an ID", ErrMalformed)
	}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return ErrClosed
	}
	start := !s.watching
	if start {
		s.watching = true
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if start {
		go func() {
			defer s.wg.Done()
			s.watchPeerCalls()
		}()
	}
	s.hamu.Lock()
	defer s.hamu.Unlock()
	if s.peer == nil {
		s.peer = map[string]*dormant{}
	}
	if d := s.peer[st.ID]; d != nil {
		d.st = st
		return nil
	}
	s.peer[st.ID] = &dormant{st: st}
	return nil
}

// ForgetCall drops the peer's call id: the peer ended it and wrote its
// history row.
func (s *Server) ForgetCall(id string) {
	s.hamu.Lock()
	delete(s.peer, id)
	s.hamu.Unlock()
}

// LoseCall handles a call the restarted peer no longer holds. A call whose
// addresses came to this node or whose media this node relays is kept: its
// row is this node's to write. Any other is dropped without a row: the
// peer ended it while the link was down, or it was lost where nothing
// relayed it.
func (s *Server) LoseCall(id string) {
	s.hamu.Lock()
	defer s.hamu.Unlock()
	if d := s.peer[id]; d != nil && !d.taken && d.here.IsZero() {
		delete(s.peer, id)
	}
}

// PeerCalls counts the HA peer's calls this node keeps.
func (s *Server) PeerCalls() int {
	s.hamu.Lock()
	defer s.hamu.Unlock()
	return len(s.peer)
}

// watchPeerCalls checks the peer's calls every haWatch until Close.
func (s *Server) watchPeerCalls() {
	t := time.NewTicker(haWatch)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			local := media.LocalAddrs
			if rv, ok := s.deps.Media.(relayView); ok {
				local = rv.LocalAddrs
			}
			s.checkPeerCalls(now, local)
		}
	}
}

// checkPeerCalls writes the history row of each peer's call that ended
// here: its media, adopted by the relay, stopped (the session is gone), or
// its addresses are here and its media never reached this node (no copy
// of its session is left). H.225.0 call signalling runs over TCP
// connections that ended with the peer, so the row is the only thing this
// node does for such a call besides relaying its media.
func (s *Server) checkPeerCalls(now time.Time, local func() (map[netip.Addr]bool, error)) {
	s.hamu.Lock()
	ids := make([]string, 0, len(s.peer))
	for id := range s.peer {
		ids = append(ids, id)
	}
	s.hamu.Unlock()
	if len(ids) == 0 {
		return
	}
	// Only the peer's calls' sessions are looked up; a call imported
	// meanwhile waits for the next check.
	live, standby := map[string]media.SessionStats{}, map[string]bool{}
	if rv, ok := s.deps.Media.(relayView); ok {
		for _, id := range ids {
			st, isLive, isCopy := rv.PeerSession(id)
			if isLive {
				live[id] = st
			}
			standby[id] = isCopy
		}
	}
	addrs, err := local()
	if err != nil {
		s.log.Warn("peer calls not checked: interface addresses unreadable", "err", err)
		return
	}
	var rows []store.CallRecord
	s.hamu.Lock()
	for _, id := range ids {
		d := s.peer[id]
		if d == nil {
			continue // forgotten meanwhile
		}
		if st, ok := live[id]; ok {
			d.taken, d.last = true, st
			continue
		}
		if d.here.IsZero() && addrs[d.st.Legs[Outside].Local.Addr().Unmap()] {
			d.here = now
		}
		switch {
		case d.taken:
			// The adopted session ended: its media stopped.
			end := d.last.LastPacket()
			if end.IsZero() {
				end = now
			}
			rows = append(rows, d.row(end))
		case d.here.IsZero() || standby[id]:
			// The peer holds the call, or its media may yet arrive.
			continue
		default:
			rows = append(rows, d.row(d.here))
		}
		delete(s.peer, id)
	}
	s.hamu.Unlock()
	for _, r := range rows {
		s.log.Info("peer's call ended here after failover", "call", r.ID, "duration_ms", r.DurationMs)
		s.record(r)
	}
}

// row is the history record of a peer's call that ended at end.
func (d *dormant) row(end time.Time) store.CallRecord {
	st := &d.st
	if end.Before(st.Answered) {
		end = st.Answered
	}
	return store.CallRecord{ID: st.ID, Protocol: "h323", CallType: st.Type, From: st.From, To: st.To, SourceAddr: st.Source,
		StartedAt: st.Started, AnsweredAt: st.Answered, EndedAt: end, DurationMs: end.Sub(st.Answered).Milliseconds(),
		EndedBy: EndedByFailover, Status: CauseTemporary, Disposition: DispositionFailover, Codecs: st.Codecs,
		Streams: streamStats(d.last.Streams)}
}
