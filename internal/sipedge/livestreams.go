package sipedge

import "github.com/portico-edge/portico/internal/media"

// liveStats is the part of the relay that tells a session's statistics
// while it runs; *media.Relay has it.
type liveStats interface {
	Session(id media.SessionID) (media.SessionStats, error)
}

var _ liveStats = (*media.Relay)(nil)

// CallStreams are a live call's relay streams as the relay counts them now.
type CallStreams struct {
	// Streams are the relay's statistics, one per stream of the call.
	Streams []media.StreamStats
	// Outside is the media leg (0 the caller's side, 1 the callee's)
	// that faces the external interface.
	Outside int
}

// LiveStreams reads the relay's statistics of live call id's streams now.
// ok is false when no live call has that id, the call has no relay
// session yet or any more, or the Media cannot tell statistics.
func (s *Server) LiveStreams(id string) (cs CallStreams, ok bool) {
	s.calls.mu.Lock()
	c := s.calls.byID[id]
	s.calls.mu.Unlock()
	if c == nil {
		return CallStreams{}, false
	}
	ls, isLive := s.deps.Media.(liveStats)
	c.mu.Lock()
	mid, has, ended := c.mediaID, c.hasMedia, c.state == stateEnded
	cs.Outside = 1
	for _, l := range []*leg{c.a, c.b} {
		if l != nil && l.sd != nil && l.sd.name == External {
			cs.Outside = l.idx
			break
		}
	}
	c.mu.Unlock()
	if !isLive || !has || ended {
		return CallStreams{}, false
	}
	st, err := ls.Session(mid)
	if err != nil {
		return CallStreams{}, false
	}
	cs.Streams = st.Streams
	return cs, true
}
