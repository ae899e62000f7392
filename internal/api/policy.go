package api

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/portico-edge/portico/internal/policy"
)

// PolicyService evaluates the call policy of the running configuration.
type PolicyService interface {
	// DryRun decides c as a call would be decided now and returns c as
	// decided: an empty c.Caller is inferred (federated for an allowed
	// domain, else guest).
	DryRun(c policy.Call) (policy.Call, policy.Decision, error)
}

func (s *Server) policyRoutes() {
	s.mux.HandleFunc("POST /api/v1/policy/dry-run", s.auth(false, s.dryRun))
}

// dryRunRequest is the body of POST /api/v1/policy/dry-run.
type dryRunRequest struct {
	From     string `json:"from"`     // sip:alice@example.com, alice@example.com or a domain
	To       string `json:"to"`       // sip:1234@portico.example or 1234
	Source   string `json:"source"`   // the caller's address
	Protocol string `json:"protocol"` // sip (default) or h323
	Caller   string `json:"caller"`   // registered, guest, federated, inside; default inferred
}

func (s *Server) dryRun(w http.ResponseWriter, r *http.Request, p Principal) {
	if s.deps.Policy == nil {
		writeError(w, http.StatusNotFound, "no call policy on this node")
		return
	}
	var req dryRunRequest
	if !readJSON(w, r, &req) {
		return
	}
	c := policy.Call{Caller: strings.ToLower(req.Caller), Protocol: strings.ToLower(req.Protocol), To: uriUser(req.To)}
	if c.Protocol == "" {
		c.Protocol = "sip"
	}
	if u := stripScheme(req.From); strings.Contains(u, "@") {
		_, c.Domain, _ = strings.Cut(u, "@")
	} else {
		c.Domain = u
	}
	if req.Source != "" {
		a, err := netip.ParseAddr(req.Source)
		if err != nil {
			writeError(w, http.StatusBadRequest, "source: "+req.Source+" is not an address")
			return
		}
		c.Source = a
	}
	c, d, err := s.deps.Policy().DryRun(c)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		policy.Decision
		Caller string `json:"caller"`
	}{d, c.Caller})
}

func stripScheme(u string) string {
	u = strings.TrimSpace(u)
	u = strings.TrimPrefix(strings.TrimSuffix(u, ">"), "<")
	for _, p := range []string{"sip:", "sips:", "tel:", "h323:"} {
		if len(u) >= len(p) && strings.EqualFold(u[:len(p)], p) {
			u = u[len(p):]
			break
		}
	}
	if i := strings.IndexAny(u, ";?"); i >= 0 {
		u = u[:i]
	}
	return u
}

// uriUser returns the user part of a SIP URI or the text as given.
func uriUser(u string) string {
	u = stripScheme(u)
	if user, _, ok := strings.Cut(u, "@"); ok {
		return user
	}
	return u
}
