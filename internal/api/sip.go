package api

import (
	"errors"
	"net/http"

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

func (s *Server) liveCalls(w http.ResponseWriter, r *http.Request, p Principal) {
	if svc := s.sipService(w); svc != nil {
		writeJSON(w, http.StatusOK, nonNilSlice(svc.Calls()))
	}
}

func (s *Server) callServers(w http.ResponseWriter, r *http.Request, p Principal) {
	if svc := s.sipService(w); svc != nil {
		writeJSON(w, http.StatusOK, nonNilSlice(svc.CallServers()))
	}
}

// hangup ends a live call: BYE to both parties; the call lands in history
// with the admin as who ended it.
func (s *Server) hangup(w http.ResponseWriter, r *http.Request, p Principal) {
	svc := s.sipService(w)
	if svc == nil {
		return
	}
	id := r.PathValue("id")
	if err := svc.Hangup(id); err != nil {
		if errors.Is(err, sipedge.ErrNoCall) {
			writeError(w, http.StatusNotFound, "no live call "+id)
			return
		}
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
