package api

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/portico-edge/portico/internal/ladder"
)

// LadderService keeps the signalling of recent calls (a *ladder.Store).
type LadderService interface {
	Ladder(id string) (ladder.Ladder, bool)
	Subscribe(f ladder.Filter) *ladder.Subscription
	Subscribers() int
}

func (s *Server) ladderRoutes() {
	m := s.mux
	m.HandleFunc("GET /api/v1/calls/{id}/ladder", s.auth(false, s.callLadder))
	m.HandleFunc("GET /api/v1/calls/{id}/ladder.svg", s.auth(false, s.callLadderSVG))
	m.HandleFunc("GET /api/v1/calls/{id}/ladder.pcap", s.auth(false, s.callLadderPcap))
}

// ladderOf finds call id's ladder or writes the error.
func (s *Server) ladderOf(w http.ResponseWriter, r *http.Request) (ladder.Ladder, bool) {
	var svc LadderService
	if s.deps.Ladder != nil {
		svc = s.deps.Ladder()
	}
	if svc == nil {
		writeError(w, http.StatusNotFound, "signalling capture is not running (sip.enabled, sip.capture.off)")
		return ladder.Ladder{}, false
	}
	id := r.PathValue("id")
	l, ok := svc.Ladder(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no signalling kept for call "+id)
		return ladder.Ladder{}, false
	}
	return l, true
}

func (s *Server) callLadder(w http.ResponseWriter, r *http.Request, p Principal) {
	if l, ok := s.ladderOf(w, r); ok {
		if l.Messages == nil {
			l.Messages = []ladder.Message{}
		}
		writeJSON(w, http.StatusOK, l)
	}
}

func (s *Server) callLadderSVG(w http.ResponseWriter, r *http.Request, p Principal) {
	// Opened on its own, the chart may run nothing.
	s.renderLadder(w, r, ladder.SVG, "Content-Type", "image/svg+xml",
		"Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'")
}

func (s *Server) callLadderPcap(w http.ResponseWriter, r *http.Request, p Principal) {
	s.renderLadder(w, r, ladder.Pcap, "Content-Type", "application/vnd.tcpdump.pcap",
		"Content-Disposition", `attachment; filename="call-`+fileSafe(r.PathValue("id"))+`.pcap"`)
}

// renderLadder writes the call's ladder rendered by render, with the
// header pairs given.
func (s *Server) renderLadder(w http.ResponseWriter, r *http.Request, render func(io.Writer, ladder.Ladder) error, hdr ...string) {
	l, ok := s.ladderOf(w, r)
	if !ok {
		return
	}
	var b bytes.Buffer
	render(&b, l) // a bytes.Buffer does not fail
	for i := 0; i+1 < len(hdr); i += 2 {
		w.Header().Set(hdr[i], hdr[i+1])
	}
	w.Write(b.Bytes())
}

// fileSafe keeps letters, digits, '-' and '_' of s.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return -1
	}, s)
}
