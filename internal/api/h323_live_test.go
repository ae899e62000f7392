package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portico-edge/portico/internal/h323proxy"
	"github.com/portico-edge/portico/internal/sipedge"
)

// fakeH323Live stands in for the running H.323 edge with live calls and
// registrations to end (the whole daemon with simulated endpoints is in
// test/h323_live_test.go).
type fakeH323Live struct {
	regs  []h323proxy.Registration
	calls []h323proxy.Call
	ended []string
}

func (f *fakeH323Live) Registrations() []h323proxy.Registration { return f.regs }
func (f *fakeH323Live) LiveCalls() []h323proxy.Call             { return f.calls }
func (f *fakeH323Live) Unregister(alias string) (int, error) {
	for i, r := range f.regs {
		if len(r.Aliases) > 0 && r.Aliases[0] == alias {
			f.regs = append(f.regs[:i], f.regs[i+1:]...)
			return 1, nil
		}
	}
	return 0, fmt.Errorf("%w: %s", h323proxy.ErrNotRegistered, alias)
}
func (f *fakeH323Live) Hangup(id string) error {
	for _, c := range f.calls {
		if c.ID == id {
			f.ended = append(f.ended, id)
			return nil
		}
	}
	return fmt.Errorf("%w: %s", h323proxy.ErrNoCall, id)
}

type fakeSIP struct{ calls []sipedge.CallInfo }

func (f *fakeSIP) Registrations() []sipedge.RegistrationInfo { return nil }
func (f *fakeSIP) Calls() []sipedge.CallInfo                 { return f.calls }
func (f *fakeSIP) CallServers() []sipedge.CallServerInfo     { return nil }
func (f *fakeSIP) Hangup(id string) error {
	for _, c := range f.calls {
		if c.ID == id {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", sipedge.ErrNoCall, id)
}

// TestLiveCallsBothEdges: GET /api/v1/calls lists the calls of whichever
// edges run, each with its protocol, and DELETE ends a call of either;
// both are 404 with both edges off.
func TestLiveCallsBothEdges(t *testing.T) {
	s, _ := newTestServer(t, Config{LoginRatePerMinute: 100, MaxLoginFailures: 100})
	c := login(s, "192.0.2.1:1", "admin", "admin-password").Result().Cookies()[0]
	do := func(method, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		r.AddCookie(c)
		r.Header.Set("X-Requested-With", "test")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	if w := do("GET", "/api/v1/calls"); w.Code != http.StatusNotFound {
		t.Errorf("both off: GET %d %s", w.Code, w.Body)
	}
	if w := do("DELETE", "/api/v1/calls/x"); w.Code != http.StatusNotFound {
		t.Errorf("both off: DELETE %d %s", w.Code, w.Body)
	}
	h := &fakeH323Live{calls: []h323proxy.Call{{Protocol: "h323", ID: "00ff", State: "confirmed"}}}
	s.deps.H323 = func() H323Service { return h }
	list := func() []map[string]any {
		t.Helper()
		w := do("GET", "/api/v1/calls")
		var got []map[string]any
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &got) != nil {
			t.Fatalf("GET %d %s", w.Code, w.Body)
		}
		return got
	}
	if got := list(); len(got) != 1 || got[0]["protocol"] != "h323" || got[0]["id"] != "00ff" {
		t.Errorf("H.323 only: %v", got)
	}
	s.deps.SIP = func() SIPService { return &fakeSIP{calls: []sipedge.CallInfo{{ID: "sip-1", State: "confirmed"}}} }
	got := list()
	if len(got) != 2 || got[0]["protocol"] != "sip" || got[0]["id"] != "sip-1" || got[1]["protocol"] != "h323" {
		t.Errorf("both: %v", got)
	}
	if w := do("DELETE", "/api/v1/calls/00ff"); w.Code != http.StatusNoContent || len(h.ended) != 1 {
		t.Errorf("DELETE H.323 call: %d %s, ended %v", w.Code, w.Body, h.ended)
	}
	if w := do("DELETE", "/api/v1/calls/sip-1"); w.Code != http.StatusNoContent || len(h.ended) != 1 {
		t.Errorf("DELETE SIP call: %d %s, H.323 ended %v", w.Code, w.Body, h.ended)
	}
	if w := do("DELETE", "/api/v1/calls/nope"); w.Code != http.StatusNotFound {
		t.Errorf("DELETE unknown: %d %s", w.Code, w.Body)
	}
}

// TestH323Unregister: DELETE /api/v1/h323/registrations?alias= ends the
// registration holding the alias (admins only), 404 for one not held, 400
// without an alias.
func TestH323Unregister(t *testing.T) {
	s, _ := newTestServer(t, Config{LoginRatePerMinute: 100, MaxLoginFailures: 100})
	c := login(s, "192.0.2.1:1", "admin", "admin-password").Result().Cookies()[0]
	del := func(q string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("DELETE", "/api/v1/h323/registrations"+q, nil)
		r.AddCookie(c)
		r.Header.Set("X-Requested-With", "test")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	if w := del("?alias=alice"); w.Code != http.StatusNotFound {
		t.Errorf("edge off: %d %s", w.Code, w.Body)
	}
	h := &fakeH323Live{regs: []h323proxy.Registration{{Aliases: []string{"alice"}}}}
	s.deps.H323 = func() H323Service { return h }
	if w := del(""); w.Code != http.StatusBadRequest {
		t.Errorf("no alias: %d %s", w.Code, w.Body)
	}
	w := del("?alias=alice")
	var got map[string]int
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &got) != nil || got["unregistered"] != 1 || len(h.regs) != 0 {
		t.Errorf("alice: %d %q, left %v", w.Code, w.Body, h.regs)
	}
	if w := del("?alias=alice"); w.Code != http.StatusNotFound {
		t.Errorf("again: %d %s", w.Code, w.Body)
	}
}
