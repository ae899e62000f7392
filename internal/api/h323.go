package api

import (
	"errors"
	"net/http"

	"github.com/portico-edge/portico/internal/h323proxy"
)

// H323Service is the running H.323 edge, when enabled.
type H323Service interface {
	Registrations() []h323proxy.Registration
	// LiveCalls lists the calls in progress; Hangup ends one
	// (h323proxy.ErrNoCall for an unknown id).
	LiveCalls() []h323proxy.Call
	Hangup(id string) error
	// Unregister ends the registration holding an alias
	// (h323proxy.ErrNotRegistered when none does).
	Unregister(alias string) (int, error)
}

func (s *Server) h323Routes() {
	s.mux.HandleFunc("GET /api/v1/h323/registrations", s.auth(false, s.h323Registrations))
	s.mux.HandleFunc("DELETE /api/v1/h323/registrations", s.auth(true, s.h323Unregister))
}

// h323 returns the running H.323 edge, or nil when it is off.
func (s *Server) h323() H323Service {
	if s.deps.H323 == nil {
		return nil
	}
	return s.deps.H323()
}

// h323Edge returns the running H.323 edge, or answers 404 and returns nil.
func (s *Server) h323Edge(w http.ResponseWriter) H323Service {
	svc := s.h323()
	if svc == nil {
		writeError(w, http.StatusNotFound, "the H.323 edge is not enabled (h323.enabled)")
	}
	return svc
}

func (s *Server) h323Registrations(w http.ResponseWriter, r *http.Request, p Principal) {
	if svc := s.h323Edge(w); svc != nil {
		writeJSON(w, http.StatusOK, nonNilSlice(svc.Registrations()))
	}
}

// h323Unregister ends the registration holding ?alias=: URQ to the inside
// gatekeeper and to the endpoint, recorded as unregistered.
func (s *Server) h323Unregister(w http.ResponseWriter, r *http.Request, p Principal) {
	svc := s.h323Edge(w)
	if svc == nil {
		return
	}
	alias := r.URL.Query().Get("alias")
	if alias == "" {
		writeError(w, http.StatusBadRequest, "alias is required")
		return
	}
	n, err := svc.Unregister(alias)
	if errors.Is(err, h323proxy.ErrNotRegistered) {
		writeError(w, http.StatusNotFound, "no H.323 registration holds "+alias)
		return
	}
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	s.auditWrite(r.Context(), p, "registration.unregister", alias, "h323")
	writeJSON(w, http.StatusOK, map[string]int{"unregistered": n})
}
