package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/testpeer"
)

const testAdminPassword = "test-admin-password"

// testConfig is a node with no services; %d is the management port.
const testConfig = `version: 1
node:
  name: app-test
interfaces:
  external: {address: 127.0.0.1}
  internal: {address: 127.0.0.1}
management:
  listen: 127.0.0.1:%d
log:
  level: warn
`

// newTestApp starts an App on a fresh data directory and returns it with a
// logged-in session to its API (served in process).
func newTestApp(t *testing.T) (*App, func(method, path, ctype, body string, hdr ...string) *httptest.ResponseRecorder) {
	t.Helper()
	a, err := startTestApp(t, "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	return a, apiClient(t, a)
}

// startTestApp starts an App on a fresh data directory with testConfig
// plus extra and the environment env.
func startTestApp(t *testing.T, extra string, env map[string]string, force bool) (*App, error) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "portico.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, testConfig+extra, testpeer.FreePort(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	e := map[string]string{"PORTICO_ADMIN_PASSWORD": testAdminPassword}
	for k, v := range env {
		e[k] = v
	}
	a, err := New(context.Background(), Options{ConfigFile: file, DataDir: filepath.Join(dir, "data"), Console: io.Discard, Getenv: func(k string) string { return e[k] }, Force: force})
	if err != nil {
		return nil, err
	}
	t.Cleanup(a.Close)
	// The services count as running, as in a node that Run started, so
	// readiness shows only what a test changes.
	for _, s := range a.svcs {
		s.running.Store(true)
	}
	return a, nil
}

// apiClient logs in to a's API (served in process) and returns a function
// that sends requests with that session.
func apiClient(t *testing.T, a *App) func(method, path, ctype, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var cookie *http.Cookie
	do := func(method, path, ctype, body string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.RemoteAddr = "127.0.0.1:40000"
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		r.Header.Set("X-Requested-With", "test")
		if cookie != nil {
			r.AddCookie(cookie)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		a.api.ServeHTTP(w, r)
		return w
	}
	w := do("POST", "/api/v1/login", "application/json", `{"username":"admin","password":"`+testAdminPassword+`"}`)
	if w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	cookie = w.Result().Cookies()[0]
	return do
}

// TestRestoreRefreshesETag: after POST /api/v1/restore the config ETag is
// the restored active version, so a GET-then-PUT succeeds instead of
// answering 412 for ever.
func TestRestoreRefreshesETag(t *testing.T) {
	a, do := newTestApp(t)
	w := do("GET", "/api/v1/backup", "", "")
	if w.Code != http.StatusOK {
		t.Fatalf("backup: %d %s", w.Code, w.Body)
	}
	archive := w.Body.String()
	for i, level := range []string{"info", "debug"} {
		doc := strings.Replace(string(a.cur.Load().version.Document), "level: warn", "level: "+level, 1)
		if w := do("PUT", "/api/v1/config", "application/yaml", doc, "If-Match", `"`+string(rune('1'+i))+`"`); w.Code != http.StatusOK {
			t.Fatalf("PUT %d: %d %s", i, w.Code, w.Body)
		}
	}
	if w := do("POST", "/api/v1/restore", "application/gzip", archive); w.Code != http.StatusOK {
		t.Fatalf("restore: %d %s", w.Code, w.Body)
	}
	w = do("GET", "/api/v1/config", "", "")
	var got struct{ Version int64 }
	json.Unmarshal(w.Body.Bytes(), &got)
	if etag := w.Header().Get("ETag"); etag != `"1"` || got.Version != 1 {
		t.Fatalf("after restoring version 1: ETag %s, version %d", etag, got.Version)
	}
	doc := strings.Replace(string(a.cur.Load().version.Document), "level: warn", "level: error", 1)
	if w := do("PUT", "/api/v1/config", "application/yaml", doc, "If-Match", w.Header().Get("ETag")); w.Code != http.StatusOK {
		t.Fatalf("PUT with the ETag read after restore: %d %s", w.Code, w.Body)
	}
}

// slowStore's history writes time out until released: a store whose
// writer is busy behind a backlog, while it still answers reads.
type slowStore struct {
	store.Store
	release chan struct{}
}

func (s slowStore) AddRegistrationEvent(ctx context.Context, r store.RegistrationEvent) error {
	select {
	case <-s.release:
		return s.Store.AddRegistrationEvent(ctx, r)
	default:
		return context.DeadlineExceeded
	}
}

// TestReadinessIgnoresSpoolBacklog: history waiting in the spool (the store
// slow under a flood of rejected requests) does not make the node unready
// while the store answers; the backlog is shown, not failed.
func TestReadinessIgnoresSpoolBacklog(t *testing.T) {
	a, do := newTestApp(t)
	slow := slowStore{Store: a.st, release: make(chan struct{})}
	a.spool = store.NewSpool(slow, nil, 1000)
	for range 40000 {
		a.spool.AddRegistrationEvent(context.Background(), store.RegistrationEvent{Protocol: "sip", AOR: "sip:nobody@corp", Source: "192.0.2.7:5060", Kind: "rejected", Reason: "404 Not Found"})
	}
	if a.spool.Pending() == 0 {
		t.Fatal("the flood left nothing waiting; the test does not test anything")
	}
	w := do("GET", "/readyz", "", "")
	if f := failingChecks(t, w.Body.Bytes()); w.Code != http.StatusOK || len(f) > 0 {
		t.Fatalf("readyz with %d records waiting: %d, failing checks %v: %s", a.spool.Pending(), w.Code, f, w.Body)
	}
	if !strings.Contains(w.Body.String(), "waiting") {
		t.Errorf("readyz does not show the backlog: %s", w.Body)
	}
	close(slow.release)
}
