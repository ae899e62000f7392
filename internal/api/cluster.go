package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/portico-edge/portico/internal/ha"
)

// HAService is the node's VRRP speaker.
type HAService interface {
	Status() ha.Status
	Handback(ctx context.Context) ([]int, error)
}

// Cluster is GET /api/v1/cluster: this node and its VIP groups.
type Cluster struct {
	// HA is false when ha.enabled is off: the node holds no VIP.
	HA bool `json:"ha"`
	ha.Status
}

func (s *Server) clusterRoutes() {
	s.mux.HandleFunc("GET /api/v1/cluster", s.auth(false, s.cluster))
	s.mux.HandleFunc("POST /api/v1/cluster/handback", s.auth(true, s.handback))
}

func (s *Server) haService() HAService {
	if s.deps.HA == nil {
		return nil
	}
	return s.deps.HA()
}

func (s *Server) cluster(w http.ResponseWriter, r *http.Request, p Principal) {
	c := Cluster{Status: ha.Status{Groups: []ha.GroupStatus{}}}
	if h := s.haService(); h != nil {
		c.HA, c.Status = true, h.Status()
	} else if s.deps.Status != nil {
		c.Node, _ = s.deps.Status(r.Context())["node"].(string)
	}
	writeJSON(w, http.StatusOK, c)
}

// handback yields the VIP groups this node took over but does not own
// (after a failover without preemption) to their owner.
func (s *Server) handback(w http.ResponseWriter, r *http.Request, p Principal) {
	h := s.haService()
	if h == nil {
		writeError(w, http.StatusNotFound, "ha is not enabled (ha.enabled)")
		return
	}
	ids, err := h.Handback(r.Context())
	if errors.Is(err, ha.ErrNotRunning) {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "hand-back: "+err.Error())
		return
	}
	if ids == nil {
		ids = []int{}
	}
	s.auditWrite(r.Context(), p, "cluster.handback", "", fmt.Sprintf("groups yielded: %v", ids))
	writeJSON(w, http.StatusOK, map[string]any{"yielded": ids})
}
