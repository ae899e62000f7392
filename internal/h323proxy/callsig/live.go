package callsig

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/store"
)

// LiveCall is a call in progress as the live-call API lists it. Its
// fields up to Codecs mean what they mean for a SIP call in the same
// list.
type LiveCall struct {
	// Protocol is "h323".
	Protocol string `json:"protocol"`
	// ID is the call identifier in hex (as in call history).
	ID string `json:"id"`
	// Type is registered, federated or guest for a call from outside,
	// inbound for a call from inside.
	Type   string `json:"type"`
	From   string `json:"from"`
	To     string `json:"to"`
	Source string `json:"source"`
	// State is early until the Connect, then confirmed.
	State    string    `json:"state"`
	Started  time.Time `json:"started"`
	Answered time.Time `json:"answered,omitzero"`
	// Codecs names the codecs of the call's channels, comma-separated.
	Codecs string `json:"codecs"`
	// Legs are the call-signalling connections, outside first.
	Legs []LiveLeg `json:"legs"`
	// Streams are the relay's streams with their counters now.
	Streams []LiveStream `json:"streams"`
}

// LiveLeg is one call-signalling connection of a live call.
type LiveLeg struct {
	// Side is outside or inside; Party caller or callee, with Alias its
	// first alias (the caller's source alias, the dialled alias).
	Side  string `json:"side"`
	Party string `json:"party"`
	Alias string `json:"alias"`
	// Remote is the party's address as Portico sees it on that side (the
	// NAT binding outside); Local is Portico's own address there.
	Remote string `json:"remote"`
	Local  string `json:"local"`
}

// LiveStream is one relay stream of a live call: the history counters
// (In what the outside sent, Out what the inside sent) plus its codec
// and addresses on each side.
type LiveStream struct {
	store.StreamStats
	Codec string `json:"codec,omitempty"`
	// RelayOutside and RelayInside are the relay's ports on each side;
	// PeerOutside and PeerInside where it sends (latched or signalled).
	RelayOutside string `json:"relay_outside"`
	RelayInside  string `json:"relay_inside"`
	PeerOutside  string `json:"peer_outside,omitempty"`
	PeerInside   string `json:"peer_inside,omitempty"`
}

// Live lists the calls in progress, with their relay streams' counters
// read now.
func (s *Server) Live() []LiveCall {
	calls := s.callList()
	out := make([]LiveCall, 0, len(calls))
	for _, c := range calls {
		if lc, ok := c.live(); ok {
			out = append(out, lc)
		}
	}
	return out
}

func (c *call) live() (LiveCall, bool) {
	c.mu.Lock()
	ended, answered, rec := c.ended, c.answered, c.rec
	c.mu.Unlock()
	if ended {
		return LiveCall{}, false
	}
	lc := LiveCall{Protocol: "h323", ID: rec.ID, Type: rec.CallType, From: rec.From, To: rec.To, Source: rec.SourceAddr,
		State: "early", Started: rec.StartedAt, Answered: answered}
	if !answered.IsZero() {
		lc.State = "confirmed"
	}
	for _, side := range []Side{Outside, Inside} {
		l := c.legs[side]
		if l == nil {
			continue
		}
		alias := rec.To
		if side == c.caller {
			alias = rec.From
		}
		lc.Legs = append(lc.Legs, LiveLeg{Side: side.String(), Party: c.party(side), Alias: alias,
			Remote: l.remote.String(), Local: l.local.String()})
	}
	sts, codecs := c.media.Live()
	for i, h := range streamStats(sts) {
		st := sts[i]
		ls := LiveStream{StreamStats: h, Codec: codecs[i],
			RelayOutside: st.Local[Outside].String(), RelayInside: st.Local[Inside].String()}
		if p := st.Legs[Outside].Peer; p.IsValid() {
			ls.PeerOutside = p.String()
		}
		if p := st.Legs[Inside].Peer; p.IsValid() {
			ls.PeerInside = p.String()
		}
		lc.Streams = append(lc.Streams, ls)
	}
	lc.Codecs = h245proxy.Codecs(codecs)
	if lc.Streams == nil {
		lc.Streams = []LiveStream{}
	}
	return lc, true
}

// Hangup ends the live call id: ReleaseComplete (normal clearing) to both
// sides, the relay released, and history records the administrator as
// who ended it. ErrNoCall when no live call has that id.
func (s *Server) Hangup(id string) error {
	var found []*call
	s.mu.Lock()
	for c := range s.calls {
		if id != "" && c.rec.ID == id {
			found = append(found, c)
		}
	}
	s.mu.Unlock()
	if len(found) == 0 {
		return fmt.Errorf("%w: %s", ErrNoCall, id)
	}
	for _, c := range found {
		c.releaseBoth(CauseNormal, EndedByAdmin, DispositionAdmin)
	}
	return nil
}

// Who and why of a call the administrator ended (as for SIP calls).
const (
	EndedByAdmin     = "admin"
	DispositionAdmin = "ended by administrator"
)

// localID names a call that brought no callIdentifier, for history and
// the live-call API: "local-" and 16 random hex digits.
func localID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "local-" + hex.EncodeToString(b[:])
}
