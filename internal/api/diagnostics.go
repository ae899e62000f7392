package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/portico-edge/portico/internal/ladder"
	"github.com/portico-edge/portico/internal/sipedge"
)

// SIPDiagnostics is what the running SIP edge offers administrators
// (*sipedge.Server has it).
type SIPDiagnostics interface {
	Ping(ctx context.Context, target string) (sipedge.PingResult, error)
	Lookup(ctx context.Context, name, typ string) (sipedge.LookupResult, error)
}

// Bounds of the diagnostics.
const (
	diagTimeout      = 10 * time.Second // an OPTIONS ping or a DNS lookup
	traceDefault     = 60 * time.Second
	traceMax         = 10 * time.Minute
	traceMaxRunning  = 4  // live traces at once
	tracePerSecond   = 50 // messages a trace delivers per second
	traceHeartbeat   = 15 * time.Second
	traceFilterBytes = 256
)

func (s *Server) diagnosticsRoutes() {
	m := s.mux
	m.HandleFunc("POST /api/v1/diagnostics/sip-options", s.auth(true, s.diagOptions))
	m.HandleFunc("POST /api/v1/diagnostics/dns", s.auth(true, s.diagDNS))
	m.HandleFunc("GET /api/v1/diagnostics/sip-trace", s.auth(true, s.diagTrace))
}

func (s *Server) sipDiagnostics(w http.ResponseWriter) SIPDiagnostics {
	svc := s.sipService(w)
	if svc == nil {
		return nil
	}
	d, ok := svc.(SIPDiagnostics)
	if !ok {
		writeError(w, http.StatusNotImplemented, "the SIP edge offers no diagnostics")
		return nil
	}
	return d
}

// diagRequest reads a diagnostic's JSON body into req and finds the SIP
// edge; d is nil when it wrote an error. ctx bounds the diagnostic.
func (s *Server) diagRequest(w http.ResponseWriter, r *http.Request, req any) (d SIPDiagnostics, ctx context.Context, cancel context.CancelFunc) {
	if !readJSON(w, r, req) {
		return nil, nil, nil
	}
	if d = s.sipDiagnostics(w); d == nil {
		return nil, nil, nil
	}
	ctx, cancel = context.WithTimeout(r.Context(), diagTimeout)
	return d, ctx, cancel
}

func (s *Server) diagOptions(w http.ResponseWriter, r *http.Request, p Principal) {
	var req struct {
		Target string `json:"target"` // a SIP URI, a call server's address, or "" for the first call server
	}
	d, ctx, cancel := s.diagRequest(w, r, &req)
	if d == nil {
		return
	}
	defer cancel()
	res, err := d.Ping(ctx, req.Target)
	if err != nil {
		writeDiagError(w, err)
		return
	}
	s.auditWrite(r.Context(), p, "diagnostics.sip-options", res.Target, res.StatusLine)
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) diagDNS(w http.ResponseWriter, r *http.Request, p Principal) {
	var req struct {
		Name string `json:"name"`
		Type string `json:"type"` // NAPTR, SRV, A, AAAA or SIP
	}
	d, ctx, cancel := s.diagRequest(w, r, &req)
	if d == nil {
		return
	}
	defer cancel()
	res, err := d.Lookup(ctx, req.Name, req.Type)
	if errors.Is(err, sipedge.ErrBadTarget) {
		writeDiagError(w, err)
		return
	}
	out := struct {
		sipedge.LookupResult
		Error string `json:"error,omitempty"`
	}{LookupResult: res}
	if err != nil {
		out.Error = err.Error() // NXDOMAIN, timeout: an answer, not a failure of the API
	}
	writeJSON(w, http.StatusOK, out)
}

func writeDiagError(w http.ResponseWriter, err error) {
	if errors.Is(err, sipedge.ErrBadTarget) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeError(w, http.StatusBadGateway, err.Error())
}

// diagTrace streams every SIP message matching ?user= and ?address= as
// server-sent events ("message" events, JSON ladder.Message; a final
// "end" event with the count dropped) for ?seconds= (default 60, at most
// 600), at most tracePerSecond messages a second.
func (s *Server) diagTrace(w http.ResponseWriter, r *http.Request, p Principal) {
	var svc LadderService
	if s.deps.Ladder != nil {
		svc = s.deps.Ladder()
	}
	if svc == nil {
		writeError(w, http.StatusNotFound, "signalling capture is not running (sip.enabled, sip.capture.off)")
		return
	}
	q := r.URL.Query()
	dur := traceDefault
	if v := q.Get("seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || time.Duration(n)*time.Second > traceMax {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("seconds must be 1 to %d", int(traceMax/time.Second)))
			return
		}
		dur = time.Duration(n) * time.Second
	}
	user, addr := q.Get("user"), q.Get("address")
	if len(user) > traceFilterBytes || len(addr) > traceFilterBytes {
		writeError(w, http.StatusBadRequest, "user and address filters are at most 256 bytes")
		return
	}
	if svc.Subscribers() >= traceMaxRunning {
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%d traces run already", traceMaxRunning))
		return
	}
	rc := http.NewResponseController(w)
	// The management server's read timeout would cut a long trace.
	rc.SetReadDeadline(time.Now().Add(dur + time.Minute))
	rc.SetWriteDeadline(time.Now().Add(dur + time.Minute))
	sub := svc.Subscribe(ladder.Filter{User: user, Address: addr, PerSecond: tracePerSecond})
	defer sub.Cancel()
	s.auditWrite(r.Context(), p, "diagnostics.sip-trace", "user="+user+" address="+addr, dur.String())
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": trace for %s\n\n", dur)
	rc.Flush()
	end := time.NewTimer(dur)
	defer end.Stop()
	beat := time.NewTicker(traceHeartbeat)
	defer beat.Stop()
	for {
		select {
		case m := <-sub.C:
			b, _ := json.Marshal(m)
			fmt.Fprintf(w, "event: message\ndata: %s\n\n", b)
		case <-beat.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case <-end.C:
			fmt.Fprintf(w, "event: end\ndata: {\"dropped\":%d}\n\n", sub.Dropped())
			rc.Flush()
			return
		case <-r.Context().Done():
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
