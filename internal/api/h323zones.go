package api

import (
	"net/http"

	"github.com/portico-edge/portico/internal/h323proxy"
)

// h323Zones is the H.323 edge's traversal zones, when it has them.
type h323Zones interface {
	Zones() []h323proxy.ZoneStatus
}

// h323ZoneList serves GET /api/v1/h323/zones: each traversal zone's
// state and counters (an edge without zones: an empty list).
func (s *Server) h323ZoneList(w http.ResponseWriter, r *http.Request, p Principal) {
	svc := s.h323Service(w)
	if svc == nil {
		return
	}
	var out []h323proxy.ZoneStatus
	if z, ok := svc.(h323Zones); ok {
		out = z.Zones()
	}
	writeJSON(w, http.StatusOK, nonNilSlice(out))
}
