package api

import (
	"errors"
	"net/http"

	"github.com/portico-edge/portico/internal/sipedge"
)

// bindingForgetter is a SIP edge that can drop live bindings.
type bindingForgetter interface {
	Forget(aor, contact string) (int, error)
}

func (s *Server) forgetRoutes() {
	s.mux.HandleFunc("DELETE /api/v1/registrations", s.auth(true, s.forgetBinding))
}

// forgetBinding drops the live bindings of ?aor= (only the one at
// ?contact= when given): Portico stops routing to them at once.
func (s *Server) forgetBinding(w http.ResponseWriter, r *http.Request, p Principal) {
	svc := s.sipService(w)
	if svc == nil {
		return
	}
	f, ok := svc.(bindingForgetter)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this SIP edge cannot forget bindings")
		return
	}
	aor, contact := r.URL.Query().Get("aor"), r.URL.Query().Get("contact")
	if aor == "" {
		writeError(w, http.StatusBadRequest, "aor is required")
		return
	}
	n, err := f.Forget(aor, contact)
	if errors.Is(err, sipedge.ErrNoBinding) {
		writeError(w, http.StatusNotFound, "no live binding of "+aor)
		return
	}
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	s.auditWrite(r.Context(), p, "registration.forget", aor, contact)
	writeJSON(w, http.StatusOK, map[string]any{"forgotten": n})
}
