package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/portico-edge/portico/internal/h323proxy"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/store"
)

// SIPService is the running SIP edge, when enabled.
type SIPService interface {
	Registrations() []sipedge.RegistrationInfo
	Calls() []sipedge.CallInfo
	Hangup(id string) error
	CallServers() []sipedge.CallServerInfo
}

func (s *Server) sipRoutes() {
	m := s.mux
	m.HandleFunc("GET /api/v1/registrations", s.auth(false, s.liveRegistrations))
	m.HandleFunc("GET /api/v1/calls", s.auth(false, s.liveCalls))
	m.HandleFunc("DELETE /api/v1/calls/{id}", s.auth(true, s.hangup))
	m.HandleFunc("GET /api/v1/sip/call-servers", s.auth(false, s.callServers))
}

func (s *Server) sipService(w http.ResponseWriter) SIPService {
	var svc SIPService
	if s.deps.SIP != nil {
		svc = s.deps.SIP()
	}
	if svc == nil {
		writeError(w, http.StatusNotFound, "the SIP edge is not enabled (sip.enabled)")
	}
	return svc
}

// ClusterService lists the registrations the nodes of a cluster hold, as
// each published them to the shared store.
type ClusterService interface {
	ClusterRegistrations(ctx context.Context) ([]store.ClusterRegistration, error)
}

// liveRegistrations lists this node's registrations, or with scope=cluster
// those of every node whose heartbeat is current, each with its node.
func (s *Server) liveRegistrations(w http.ResponseWriter, r *http.Request, p Principal) {
	switch r.URL.Query().Get("scope") {
	case "", "node":
		if svc := s.sipService(w); svc != nil {
			writeJSON(w, http.StatusOK, nonNilSlice(svc.Registrations()))
		}
	case "cluster":
		if s.deps.Cluster == nil {
			writeError(w, http.StatusNotFound, "the store keeps no cluster registrations")
			return
		}
		regs, err := s.deps.Cluster.ClusterRegistrations(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "cluster registrations: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, nonNilSlice(regs))
	default:
		writeError(w, http.StatusBadRequest, "scope: want node or cluster")
	}
}

// sipCall is a live SIP call in the live-call list, beside H.323 ones.
type sipCall struct {
	Protocol string `json:"protocol"`
	sipedge.CallInfo
	// Streams are the relay's streams with their counters now, as an
	// H.323 call's.
	Streams []sipStream `json:"streams"`
}

// sipStreams is a SIP edge that reads a live call's relay streams;
// *sipedge.Server is one.
type sipStreams interface {
	LiveStreams(id string) (sipedge.CallStreams, bool)
}

var _ sipStreams = (*sipedge.Server)(nil)

// sipStream is one relay stream of a live SIP call, in the form of an
// H.323 call's (LiveCallStream): In counts what the outside party sent,
// Out what the inside party sent.
type sipStream struct {
	store.StreamStats
	RelayOutside string `json:"relay_outside"`
	RelayInside  string `json:"relay_inside"`
	PeerOutside  string `json:"peer_outside,omitempty"`
	PeerInside   string `json:"peer_inside,omitempty"`
}

// sipCallStreams reads call id's relay streams now; empty when the edge
// tells none.
func sipCallStreams(svc SIPService, id string) []sipStream {
	out := []sipStream{}
	ls, ok := svc.(sipStreams)
	if !ok {
		return out
	}
	cs, ok := ls.LiveStreams(id)
	if !ok {
		return out
	}
	o, i := cs.Outside&1, 1-cs.Outside&1
	for _, st := range cs.Streams {
		lo, li := st.Legs[o], st.Legs[i]
		ss := sipStream{
			StreamStats: store.StreamStats{Kind: string(st.Kind), PacketsIn: lo.Packets, PacketsOut: li.Packets,
				BytesIn: lo.Bytes, BytesOut: li.Bytes, PacketsLost: lo.Lost + li.Lost,
				JitterMs: max(lo.JitterMs, li.JitterMs), RTTMs: max(lo.RTTMs, li.RTTMs)},
			RelayOutside: st.Local[o].String(), RelayInside: st.Local[i].String(),
			PeerOutside: peerString(lo), PeerInside: peerString(li),
		}
		out = append(out, ss)
	}
	return out
}

func peerString(l media.LegStats) string {
	if l.Peer.IsValid() {
		return l.Peer.String()
	}
	return ""
}

// sip returns the running SIP edge, or nil when it is off.
func (s *Server) sip() SIPService {
	if s.deps.SIP == nil {
		return nil
	}
	return s.deps.SIP()
}

// liveCalls lists the live calls of both edges, each with its protocol.
func (s *Server) liveCalls(w http.ResponseWriter, r *http.Request, p Principal) {
	sip, h323 := s.sip(), s.h323CallList()
	if sip == nil && h323 == nil {
		writeError(w, http.StatusNotFound, "neither the SIP edge (sip.enabled) nor the H.323 edge (h323.enabled) is enabled")
		return
	}
	out := []any{}
	if sip != nil {
		for _, c := range sip.Calls() {
			out = append(out, sipCall{Protocol: "sip", CallInfo: c, Streams: sipCallStreams(sip, c.ID)})
		}
	}
	if h323 != nil {
		for _, c := range h323.LiveCalls() {
			out = append(out, c)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) callServers(w http.ResponseWriter, r *http.Request, p Principal) {
	if svc := s.sipService(w); svc != nil {
		writeJSON(w, http.StatusOK, nonNilSlice(svc.CallServers()))
	}
}

// hangup ends a live call of either edge: BYE to both parties of a SIP
// call, ReleaseComplete to both of an H.323 call; the call lands in
// history with the admin as who ended it.
func (s *Server) hangup(w http.ResponseWriter, r *http.Request, p Principal) {
	sip, h323 := s.sip(), s.h323CallList()
	if sip == nil && h323 == nil {
		writeError(w, http.StatusNotFound, "neither the SIP edge (sip.enabled) nor the H.323 edge (h323.enabled) is enabled")
		return
	}
	id := r.PathValue("id")
	err := error(sipedge.ErrNoCall)
	if sip != nil {
		err = sip.Hangup(id)
	}
	if errors.Is(err, sipedge.ErrNoCall) && h323 != nil {
		if err = h323.Hangup(id); errors.Is(err, h323proxy.ErrNoCall) {
			err = sipedge.ErrNoCall
		}
	}
	switch {
	case errors.Is(err, sipedge.ErrNoCall):
		writeError(w, http.StatusNotFound, "no live call "+id)
		return
	case err != nil:
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	s.auditWrite(r.Context(), p, "call.hangup", id, "")
	w.WriteHeader(http.StatusNoContent)
}

func nonNilSlice[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}
