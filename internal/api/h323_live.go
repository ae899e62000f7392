package api

import (
	"errors"
	"net/http"

	"github.com/portico-edge/portico/internal/h323proxy"
)

// h323Calls is an H.323 edge that lists and ends live calls.
type h323Calls interface {
	LiveCalls() []h323proxy.Call
	// Hangup ends a call (h323proxy.ErrNoCall for an unknown id).
	Hangup(id string) error
}

// h323Unregisterer is an H.323 edge that ends registrations.
type h323Unregisterer interface {
	// Unregister ends the registration holding an alias
	// (h323proxy.ErrNotRegistered when none does).
	Unregister(alias string) (int, error)
}

func (s *Server) h323LiveRoutes() {
	s.mux.HandleFunc("DELETE /api/v1/h323/registrations", s.auth(true, s.h323Unregister))
}

// h323 returns the running H.323 edge, or nil when it is off.
func (s *Server) h323() H323Service {
	if s.deps.H323 == nil {
		return nil
	}
	return s.deps.H323()
}

// h323CallList returns the edge's live-call side, nil when the edge is
// off or lists no calls.
func (s *Server) h323CallList() h323Calls {
	c, _ := s.h323().(h323Calls)
	return c
}

// h323Unregister ends the registration holding ?alias=: URQ to the inside
// gatekeeper and to the endpoint, recorded as unregistered.
func (s *Server) h323Unregister(w http.ResponseWriter, r *http.Request, p Principal) {
	svc, ok := s.h323().(h323Unregisterer)
	if !ok {
		writeError(w, http.StatusNotFound, "the H.323 edge is not enabled (h323.enabled)")
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
