package web

import (
	"encoding/json"
	"net/http"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/sipedge"
)

// diagView is the diagnostics page: the last ping or lookup asked for and
// its answer.
type diagView struct {
	Target string
	Ping   *sipedge.PingResult
	Name   string
	Type   string
	Lookup *lookupAnswer
	// Routes are what the OS routes for each side of the node
	// (GET /api/v1/system/routes); RoutesError says why they are missing.
	Routes      []api.InterfaceRoutes
	RoutesError string
}

// lookupAnswer is the API's DNS answer; Error is NXDOMAIN, a timeout...
type lookupAnswer struct {
	sipedge.LookupResult
	Error string `json:"error"`
}

// lookupTypes are the record types the DNS form offers.
var lookupTypes = []string{"SIP", "NAPTR", "SRV", "A", "AAAA"}

func (s *Server) diagnosticsRoutes() {
	s.mux.Handle("GET /diagnostics", s.page(s.diagnosticsPage))
	s.mux.Handle("POST /diagnostics/sip-options", s.page(s.diagPing))
	s.mux.Handle("POST /diagnostics/dns", s.page(s.diagDNS))
}

func (s *Server) renderDiagnostics(w http.ResponseWriter, r *http.Request, u user, code int, v diagView, f *flash) {
	if v.Type == "" {
		v.Type = "SIP"
	}
	v.Routes, v.RoutesError = s.systemRoutes(r)
	s.render(w, code, "diagnostics", view{Title: "Diagnostics", Nav: "diagnostics", User: u, Flash: f,
		Data: struct {
			diagView
			Types []string
		}{v, lookupTypes}})
}

// diagnosticsPage is for admins: the API refuses diagnostics to others.
func (s *Server) diagnosticsPage(w http.ResponseWriter, r *http.Request, u user) {
	if !u.Admin {
		s.refused(w, u, "diagnostics", "/", result{code: http.StatusForbidden, body: []byte(`{"error":"diagnostics are for admins"}`)})
		return
	}
	s.renderDiagnostics(w, r, u, http.StatusOK, diagView{}, flashOf(r))
}

// diagAsk posts req to the API's diagnostics endpoint path and decodes the
// answer into out; a refusal is the page's flash and status.
func (s *Server) diagAsk(r *http.Request, path string, req, out any) (int, *flash) {
	res := s.call(r, http.MethodPost, path, req, "application/json")
	if !res.ok() {
		return failCode(res), outcome(res, "")
	}
	if err := json.Unmarshal(res.body, out); err != nil {
		return http.StatusBadGateway, &flash{Text: err.Error()}
	}
	return http.StatusOK, nil
}

// diagPing sends a SIP OPTIONS through the edge (POST /api/v1/diagnostics/sip-options).
func (s *Server) diagPing(w http.ResponseWriter, r *http.Request, u user) {
	v := diagView{Target: r.PostFormValue("target")}
	var p sipedge.PingResult
	code, f := s.diagAsk(r, "/api/v1/diagnostics/sip-options", map[string]string{"target": v.Target}, &p)
	if f == nil {
		v.Ping = &p
	}
	s.renderDiagnostics(w, r, u, code, v, f)
}

// diagDNS asks the edge's resolver (POST /api/v1/diagnostics/dns).
func (s *Server) diagDNS(w http.ResponseWriter, r *http.Request, u user) {
	v := diagView{Name: r.PostFormValue("name"), Type: r.PostFormValue("type")}
	var a lookupAnswer
	code, f := s.diagAsk(r, "/api/v1/diagnostics/dns", map[string]string{"name": v.Name, "type": v.Type}, &a)
	if f == nil {
		v.Lookup = &a
	}
	s.renderDiagnostics(w, r, u, code, v, f)
}

// systemRoutes reads the routes each side of the node uses from the API.
func (s *Server) systemRoutes(r *http.Request) ([]api.InterfaceRoutes, string) {
	res := s.call(r, http.MethodGet, "/api/v1/system/routes", nil, "")
	if !res.ok() {
		if f := outcome(res, ""); f != nil {
			return nil, f.Text
		}
		return nil, "routes are not available"
	}
	var out struct {
		Interfaces []api.InterfaceRoutes `json:"interfaces"`
	}
	if err := json.Unmarshal(res.body, &out); err != nil {
		return nil, err.Error()
	}
	return out.Interfaces, ""
}
