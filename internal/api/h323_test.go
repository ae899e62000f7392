package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portico-edge/portico/internal/h323proxy"
)

type fakeH323 []h323proxy.Registration

func (f fakeH323) Registrations() []h323proxy.Registration { return f }

// TestH323Registrations: GET /api/v1/h323/registrations lists the running
// H.323 edge's registrations, and is 404 with the edge off.
func TestH323Registrations(t *testing.T) {
	s, _ := newTestServer(t, Config{LoginRatePerMinute: 100, MaxLoginFailures: 100})
	c := login(s, "192.0.2.1:1", "admin", "admin-password").Result().Cookies()[0]
	get := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/api/v1/h323/registrations", nil)
		r.AddCookie(c)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	if w := get(); w.Code != http.StatusNotFound {
		t.Errorf("edge off: %d %s", w.Code, w.Body)
	}
	s.deps.H323 = func() H323Service {
		return fakeH323{{Aliases: []string{"alice", "4711"}, Source: "198.51.100.7:40000", H46018: true}}
	}
	w := get()
	var got []h323proxy.Registration
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &got) != nil || len(got) != 1 || got[0].Aliases[1] != "4711" || !got[0].H46018 {
		t.Errorf("edge on: %d %s", w.Code, w.Body)
	}
}
