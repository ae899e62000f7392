package api

import (
	"net/http"

	"github.com/portico-edge/portico/internal/h323proxy"
)

// H323Service is the running H.323 edge, when enabled.
type H323Service interface {
	Registrations() []h323proxy.Registration
}

func (s *Server) h323Routes() {
	s.mux.HandleFunc("GET /api/v1/h323/registrations", s.auth(false, s.h323Registrations))
}

func (s *Server) h323Registrations(w http.ResponseWriter, r *http.Request, p Principal) {
	var svc H323Service
	if s.deps.H323 != nil {
		svc = s.deps.H323()
	}
	if svc == nil {
		writeError(w, http.StatusNotFound, "the H.323 edge is not enabled (h323.enabled)")
		return
	}
	writeJSON(w, http.StatusOK, nonNilSlice(svc.Registrations()))
}
