package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/guard"
)

// newGuardedServer is an API server with a guard, and a session cookie.
func newGuardedServer(t *testing.T) (*Server, *guard.Guard, *http.Cookie) {
	t.Helper()
	s, _ := newTestServer(t, Config{MaxLoginFailures: 100, LoginRatePerMinute: 1000})
	g, err := guard.New(guard.Config{Allow: []string{"10.0.0.0/8"}, Limits: map[string]guard.Limit{"login_failure": {Count: 3, Window: 3600e9}}},
		guard.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.deps.Guard = func() GuardService { return g }
	w := login(s, "192.0.2.1:1", "admin", "admin-password")
	if w.Code != http.StatusOK {
		t.Fatalf("login: %d", w.Code)
	}
	return s, g, w.Result().Cookies()[0]
}

func cookieCall(s *Server, c *http.Cookie, method, path, body string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	r.AddCookie(c)
	r.Header.Set("X-Requested-With", "test")
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestGuardBlocksAPI(t *testing.T) {
	s, g, c := newGuardedServer(t)
	g.Observe(netip.MustParseAddr("203.0.113.5"), guard.ScannerAgent)
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string // in the body
	}{
		{"list", "GET", "/api/v1/guard/blocks", "", 200, `"reason": "scanner_agent"`},
		{"add network", "POST", "/api/v1/guard/blocks", `{"source":"198.51.100.0/24","duration":"1h","reason":"abuse report"}`, 201, `"source": "198.51.100.0/24"`},
		{"add allow-listed", "POST", "/api/v1/guard/blocks", `{"source":"10.1.1.1"}`, 409, "allow list"},
		{"add bad source", "POST", "/api/v1/guard/blocks", `{"source":"example"}`, 400, "source"},
		{"add bad duration", "POST", "/api/v1/guard/blocks", `{"source":"192.0.2.9","duration":"soon"}`, 400, "duration"},
		{"search by address inside", "GET", "/api/v1/guard/blocks?q=198.51.100.77", "", 200, `"reason": "abuse report"`},
		{"search by reason", "GET", "/api/v1/guard/blocks?q=scanner", "", 200, `203.0.113.5`},
		{"remove network", "DELETE", "/api/v1/guard/blocks/198.51.100.0/24", "", 204, ""},
		{"remove again", "DELETE", "/api/v1/guard/blocks/198.51.100.0/24", "", 404, "not blocked"},
		{"remove address", "DELETE", "/api/v1/guard/blocks/203.0.113.5", "", 204, ""},
		{"list empty", "GET", "/api/v1/guard/blocks", "", 200, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := cookieCall(s, c, tt.method, tt.path, tt.body)
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.want) {
				t.Fatalf("%s %s: %d %s, want %d with %s", tt.method, tt.path, w.Code, w.Body, tt.code, tt.want)
			}
		})
	}
	if g.Blocked(netip.MustParseAddr("198.51.100.77")) || g.Blocked(netip.MustParseAddr("203.0.113.5")) {
		t.Fatal("removed blocks still drop")
	}
	var got []guard.BlockInfo
	w := cookieCall(s, c, "GET", "/api/v1/guard/blocks?q=198.51", "")
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || len(got) != 0 {
		t.Fatalf("search after removal: %s", w.Body)
	}
}

// TestLoginFailuresBlock: failed management logins from one address are
// reported to the guard, which blocks it.
func TestLoginFailuresBlock(t *testing.T) {
	s, g, _ := newGuardedServer(t)
	for range 3 {
		login(s, "192.0.2.50:1", "admin", "guess")
	}
	if !g.Blocked(netip.MustParseAddr("192.0.2.50")) {
		t.Fatal("three failed logins did not block the address")
	}
	if g.Blocked(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("the address that logged in is blocked")
	}
}

func TestGuardAPIAuditorMayNotBlock(t *testing.T) {
	s, _, _ := newGuardedServer(t)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("POST", "/api/v1/guard/blocks", strings.NewReader(`{"source":"192.0.2.9"}`)))
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated block: %d", w.Code)
	}
}
