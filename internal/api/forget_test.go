package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/store"
)

// forgetSIP stands in for the SIP edge (whose Forget the whole-daemon
// console test drives with sipp and Kamailio): it holds one binding.
type forgetSIP struct {
	SIPService
	aor, contact string
	left         int
}

func (f *forgetSIP) Forget(aor, contact string) (int, error) {
	if f.left == 0 || aor != f.aor || (contact != "" && contact != f.contact) {
		return 0, sipedge.ErrNoBinding
	}
	f.left--
	return 1, nil
}

func TestForgetBinding(t *testing.T) {
	s, st := newTestServer(t, Config{})
	sip := &forgetSIP{aor: "sip:alice@x", contact: "sip:alice@192.0.2.1:5060", left: 1}
	s.deps.SIP = func() SIPService { return sip }
	tok := tokenFor(t, st, "admin", store.RoleAdmin)
	aud := tokenFor(t, st, "audrey", store.RoleAuditor)
	for _, tc := range []struct {
		name, query string
		want        int
		auditor     bool
	}{
		{"auditor", "?aor=sip:alice@x", http.StatusForbidden, true},
		{"no aor", "", http.StatusBadRequest, false},
		{"other contact", "?aor=sip:alice@x&contact=sip:alice@192.0.2.9", http.StatusNotFound, false},
		{"forgotten", "?aor=sip:alice@x", http.StatusOK, false},
		{"gone", "?aor=sip:alice@x", http.StatusNotFound, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("DELETE", "/api/v1/registrations"+tc.query, nil)
			if tc.auditor {
				r.Header.Set("Authorization", "Bearer "+aud)
			} else {
				r.Header.Set("Authorization", "Bearer "+tok)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
		})
	}
}
