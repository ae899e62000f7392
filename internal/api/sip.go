package api

import (
	"errors"
	"net/http"

	"github.com/portico-edge/portico/internal/h323proxy"
	"github.com/portico-edge/portico/internal/sipedge"
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

func (s *Server) liveRegistrations(w http.ResponseWriter, r *http.Request, p Principal) {
	if svc := s.sipService(w); svc != nil {
		writeJSON(w, http.StatusOK, nonNilSlice(svc.Registrations()))
	}
}

// sipCall is a live SIP call in the live-call list, beside H.323 ones.
type sipCall struct {
	Protocol string `json:"protocol"`
	sipedge.CallInfo
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
			out = append(out, sipCall{Protocol: "sip", CallInfo: c})
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
