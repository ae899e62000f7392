package api

import (
	"net/http"
)

// InterfaceRoutes is what the operating system routes for one side of the
// node (interfaces.external, internal, management): the link that holds
// the side's address, the routes over that link, and for each of the
// side's networks the route the kernel picks. Portico reads routes; it
// never changes them (addresses and routes belong to the OS).
type InterfaceRoutes struct {
	Interface string         `json:"interface"`
	Address   string         `json:"address"`
	Link      string         `json:"link,omitempty"`
	Routes    []Route        `json:"routes"`
	Networks  []NetworkRoute `json:"networks"`
	Error     string         `json:"error,omitempty"`
}

// Route is one kernel route.
type Route struct {
	Destination string `json:"destination"`
	Gateway     string `json:"gateway,omitempty"`
	Source      string `json:"source,omitempty"`
	Device      string `json:"device"`
	Metric      int    `json:"metric"`
	Table       string `json:"table"`
	Protocol    string `json:"protocol,omitempty"`
}

// NetworkRoute is the route the kernel chooses for one configured network.
// SameLink is false when traffic for it leaves over another link than the
// side's own: a sign of a missing or wrong route.
type NetworkRoute struct {
	Network  string `json:"network"`
	Device   string `json:"device,omitempty"`
	Gateway  string `json:"gateway,omitempty"`
	Source   string `json:"source,omitempty"`
	SameLink bool   `json:"same_link"`
	Error    string `json:"error,omitempty"`
}

func (s *Server) systemRoutes(w http.ResponseWriter, r *http.Request, _ Principal) {
	if s.deps.Routes == nil {
		writeError(w, http.StatusNotFound, "routes are not available on this system")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"interfaces": s.deps.Routes(r.Context())})
}
