package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/portico-edge/portico/internal/tunnel"
)

// TunnelService is the running tunnel end.
type TunnelService interface {
	Stats() tunnel.Stats
}

// TunnelTokens issues enrollment tokens; only the server end does.
type TunnelTokens interface {
	CreateToken() (string, time.Time, error)
}

// TunnelRotator rolls a tunnel end to a new certificate; both ends do.
type TunnelRotator interface {
	Rotate(ctx context.Context) (string, error)
}

// TunnelEnroller presents an enrollment token to the tunnel server; the
// client end does.
type TunnelEnroller interface {
	Enroll(ctx context.Context, token string) error
}

func (s *Server) tunnelRoutes() {
	s.mux.HandleFunc("GET /api/v1/tunnel", s.auth(false, s.tunnelStatus))
	s.mux.HandleFunc("POST /api/v1/tunnel/tokens", s.auth(true, s.tunnelToken))
	s.mux.HandleFunc("POST /api/v1/tunnel/rotate", s.auth(true, s.tunnelRotate))
	s.mux.HandleFunc("POST /api/v1/tunnel/enroll", s.auth(true, s.tunnelEnroll))
}

// tunnelEnroll presents a one-time token to the tunnel server from the
// client end, keeping the client's identity: the first enrollment, or a
// new one after the server's certificate changed while this client was
// away. Only admins may.
func (s *Server) tunnelEnroll(w http.ResponseWriter, r *http.Request, p Principal) {
	t := s.tunnelService(w)
	if t == nil {
		return
	}
	te, ok := t.(TunnelEnroller)
	if !ok {
		writeError(w, http.StatusConflict, "a tunnel client enrolls (tunnel.role: client); the server issues tokens")
		return
	}
	var req struct {
		Token string `json:"token"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	err := te.Enroll(r.Context(), req.Token)
	switch {
	case errors.Is(err, tunnel.ErrToken) || errors.Is(err, tunnel.ErrRefused):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	case err != nil:
		s.log.Warn("tunnel enrollment failed", "err", err)
		writeError(w, http.StatusBadGateway, "the tunnel server could not be reached: "+err.Error())
		return
	}
	s.auditWrite(r.Context(), p, "tunnel.enroll", "", "")
	writeJSON(w, http.StatusOK, t.Stats())
}

func (s *Server) tunnelService(w http.ResponseWriter) TunnelService {
	var t TunnelService
	if s.deps.Tunnel != nil {
		t = s.deps.Tunnel()
	}
	if t == nil {
		writeError(w, http.StatusNotFound, "the tunnel is not enabled (tunnel.enabled)")
	}
	return t
}

func (s *Server) tunnelStatus(w http.ResponseWriter, r *http.Request, p Principal) {
	if t := s.tunnelService(w); t != nil {
		writeJSON(w, http.StatusOK, t.Stats())
	}
}

// tunnelToken issues a one-time enrollment token for an inside node. Only
// admins may: the token admits a client to the tunnel.
func (s *Server) tunnelToken(w http.ResponseWriter, r *http.Request, p Principal) {
	t := s.tunnelService(w)
	if t == nil {
		return
	}
	tt, ok := t.(TunnelTokens)
	if !ok {
		writeError(w, http.StatusConflict, "enrollment tokens are issued by the tunnel server (tunnel.role: server)")
		return
	}
	tok, exp, err := tt.CreateToken()
	if err != nil {
		s.log.Error("tunnel token not issued", "err", err)
		writeError(w, http.StatusInternalServerError, "the token could not be stored")
		return
	}
	s.auditWrite(r.Context(), p, "tunnel.token", "", "expires "+exp.Format(time.RFC3339))
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": exp})
}

// tunnelRotate rolls this end to a new key pair and certificate: the peer
// pins the new certificate over the tunnel before the old one is retired.
// Only admins may.
func (s *Server) tunnelRotate(w http.ResponseWriter, r *http.Request, p Principal) {
	t := s.tunnelService(w)
	if t == nil {
		return
	}
	tr, ok := t.(TunnelRotator)
	if !ok {
		writeError(w, http.StatusConflict, "this tunnel end cannot rotate its certificate")
		return
	}
	fp, err := tr.Rotate(r.Context())
	switch {
	case errors.Is(err, tunnel.ErrNoPeer):
		writeError(w, http.StatusConflict, "the tunnel is down: the peer must be connected to pin the new certificate")
		return
	case err != nil && fp == "":
		s.log.Warn("tunnel certificate not rotated", "err", err)
		writeError(w, http.StatusBadGateway, "the peer did not pin the new certificate; the old one stays in use: "+err.Error())
		return
	case err != nil:
		// In use, pinned by the peer; the old one is retired when the new
		// one first connects.
		s.log.Warn("tunnel certificate rotated; the peer did not confirm retiring the old one", "err", err)
	}
	s.auditWrite(r.Context(), p, "tunnel.rotate", "", "fingerprint "+fp)
	writeJSON(w, http.StatusOK, map[string]any{"fingerprint": fp})
}
