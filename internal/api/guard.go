package api

import (
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/portico-edge/portico/internal/guard"
)

// GuardService is the node's guard: automatic and manual blocks.
type GuardService interface {
	Blocks(query string) []guard.BlockInfo
	Block(p netip.Prefix, d time.Duration, reason string) error
	Unblock(p netip.Prefix) error
	Blocked(src netip.Addr) bool
	Observe(src netip.Addr, k guard.Kind) bool
}

func (s *Server) guardRoutes() {
	m := s.mux
	m.HandleFunc("GET /api/v1/guard/blocks", s.auth(false, s.listBlocks))
	m.HandleFunc("POST /api/v1/guard/blocks", s.auth(true, s.addBlock))
	m.HandleFunc("DELETE /api/v1/guard/blocks/{source...}", s.auth(true, s.removeBlock))
}

func (s *Server) guardService(w http.ResponseWriter) GuardService {
	var g GuardService
	if s.deps.Guard != nil {
		g = s.deps.Guard()
	}
	if g == nil {
		writeError(w, http.StatusNotFound, "the guard is not running")
	}
	return g
}

// loginFailed tells the guard of a failed management login.
func (s *Server) loginFailed(src netip.Addr) {
	if s.deps.Guard != nil {
		if g := s.deps.Guard(); g != nil {
			g.Observe(src, guard.LoginFailure)
		}
	}
}

// listBlocks lists the blocks in force; ?q= keeps those whose source
// contains the text or the address, or whose reason contains the text.
func (s *Server) listBlocks(w http.ResponseWriter, r *http.Request, p Principal) {
	if g := s.guardService(w); g != nil {
		writeJSON(w, http.StatusOK, nonNilSlice(g.Blocks(r.URL.Query().Get("q"))))
	}
}

func (s *Server) addBlock(w http.ResponseWriter, r *http.Request, p Principal) {
	g := s.guardService(w)
	if g == nil {
		return
	}
	var req struct {
		Source   string `json:"source"`
		Duration string `json:"duration"`
		Reason   string `json:"reason"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	pfx, err := guard.ParsePrefix(req.Source)
	if err != nil {
		writeError(w, http.StatusBadRequest, "source: "+req.Source+" is not an address or network")
		return
	}
	var d time.Duration
	if req.Duration != "" {
		if d, err = time.ParseDuration(req.Duration); err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "duration: "+req.Duration+" is not a positive duration like 1h")
			return
		}
	}
	if err := g.Block(pfx, d, req.Reason); err != nil {
		if errors.Is(err, guard.ErrAllowed) {
			writeError(w, http.StatusConflict, "source "+pfx.String()+" is on the guard's allow list")
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.auditWrite(r.Context(), p, "guard.block", pfx.String(), req.Reason)
	for _, b := range g.Blocks(pfx.String()) {
		if p2, err := guard.ParsePrefix(b.Source); err == nil && p2 == pfx {
			writeJSON(w, http.StatusCreated, b)
			return
		}
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) removeBlock(w http.ResponseWriter, r *http.Request, p Principal) {
	g := s.guardService(w)
	if g == nil {
		return
	}
	src := r.PathValue("source")
	pfx, err := guard.ParsePrefix(src)
	if err != nil {
		writeError(w, http.StatusBadRequest, src+" is not an address or network")
		return
	}
	if err := g.Unblock(pfx); err != nil {
		if errors.Is(err, guard.ErrNotBlocked) {
			writeError(w, http.StatusNotFound, pfx.String()+" is not blocked")
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.auditWrite(r.Context(), p, "guard.unblock", pfx.String(), "")
	w.WriteHeader(http.StatusNoContent)
}
