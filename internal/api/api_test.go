package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/sqlite"
)

type fixedConfig struct{ store.Store }

func (f fixedConfig) Active(ctx context.Context) (store.ConfigVersion, error) {
	return f.ActiveConfig(ctx)
}

func (f fixedConfig) Validate(ctx context.Context, doc []byte) error {
	_, err := config.Parse(doc)
	return err
}

func (f fixedConfig) Replace(ctx context.Context, doc []byte, author, comment string, expect int64) (store.ConfigVersion, []string, error) {
	v, err := f.PutConfig(ctx, doc, author, comment, expect)
	return v, nil, err
}

func newTestServer(t *testing.T, cfg Config) (*Server, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, _ := bcrypt.GenerateFromPassword([]byte("admin-password"), bcrypt.MinCost)
	st.CreateUser(context.Background(), store.User{Name: "admin", PasswordHash: hash, Role: store.RoleAdmin})
	s, err := New(cfg, Deps{Store: st, Config: fixedConfig{st}, Ready: func(context.Context) []Check { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func login(s *Server, addr, user, pw string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"`+user+`","password":"`+pw+`"}`))
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = addr
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// TestLoginRateLimitPerAddress: past the per-minute rate an address gets 429
// with Retry-After, while another address may still log in.
func TestLoginRateLimitPerAddress(t *testing.T) {
	s, _ := newTestServer(t, Config{LoginRatePerMinute: 3, MaxLoginFailures: 100})
	for i := 0; i < 3; i++ {
		if w := login(s, "192.0.2.1:1000", "admin", "wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, w.Code)
		}
	}
	w := login(s, "192.0.2.1:1001", "admin", "admin-password")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("4th attempt from one address: %d %q", w.Code, w.Header().Get("Retry-After"))
	}
	if w := login(s, "192.0.2.2:1000", "admin", "admin-password"); w.Code != http.StatusOK {
		t.Fatalf("another address: %d %s", w.Code, w.Body)
	}
}

// TestLockoutExpires: a locked account opens again after the lockout.
func TestLockoutExpires(t *testing.T) {
	s, _ := newTestServer(t, Config{MaxLoginFailures: 2, Lockout: time.Minute, LoginRatePerMinute: 100})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.deps.Now = func() time.Time { return now }
	login(s, "192.0.2.1:1", "admin", "x")
	login(s, "192.0.2.1:1", "admin", "y")
	if w := login(s, "192.0.2.1:1", "admin", "admin-password"); w.Code != http.StatusLocked {
		t.Fatalf("locked account: %d", w.Code)
	}
	now = now.Add(61 * time.Second)
	if w := login(s, "192.0.2.1:1", "admin", "admin-password"); w.Code != http.StatusOK {
		t.Fatalf("after lockout: %d %s", w.Code, w.Body)
	}
}

// TestSessionExpiry: a session past its TTL is refused, and the cookie is
// HttpOnly, Secure and SameSite=Strict.
func TestSessionExpiry(t *testing.T) {
	s, _ := newTestServer(t, Config{SessionTTL: time.Hour})
	now := time.Now()
	s.deps.Now = func() time.Time { return now }
	w := login(s, "192.0.2.1:1", "admin", "admin-password")
	c := w.Result().Cookies()[0]
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie flags %+v", c)
	}
	get := func() int {
		r := httptest.NewRequest("GET", "/api/v1/me", nil)
		r.AddCookie(c)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Code
	}
	if code := get(); code != 200 {
		t.Fatalf("fresh session: %d", code)
	}
	now = now.Add(2 * time.Hour)
	if code := get(); code != 401 {
		t.Fatalf("expired session: %d", code)
	}
}

func TestUnknownEndpointAndBadJSON(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/nothing", nil))
	if w.Code != 404 {
		t.Errorf("unknown endpoint: %d", w.Code)
	}
	w = httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/api/v1/login", bytes.NewReader([]byte(`{"username":1`)))
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = "192.0.2.9:1"
	s.ServeHTTP(w, r)
	if w.Code != 400 {
		t.Errorf("bad JSON: %d", w.Code)
	}
}
