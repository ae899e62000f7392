package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/storetest"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestSecondNodeOnOneStoreRefused: a second node started on the store a
// running node uses is refused with an error naming that node, instead of
// both writing one configuration history; with Force it takes over, and the
// first node then reports itself not ready.
func TestSecondNodeOnOneStoreRefused(t *testing.T) {
	pg := storetest.StartPostgres(t)
	env := map[string]string{"PORTICO_STORE_DSN": pg.NewDatabase(t, "two_nodes")}
	t.Setenv("PORTICO_STORE_DSN", env["PORTICO_STORE_DSN"]) // config validation reads it too
	const pgStore = "store:\n  backend: postgres\n"
	first, err := startTestApp(t, pgStore, env, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = startTestApp(t, pgStore, env, false)
	if !errors.Is(err, store.ErrLeaseHeld) || !strings.Contains(err.Error(), "app-test") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second node on one store: %v; want a refusal naming the running node and --force", err)
	}
	second, err := startTestApp(t, pgStore, env, true)
	if err != nil {
		t.Fatalf("second node with --force: %v", err)
	}
	first.renewLease(context.Background())
	w := apiClient(t, first)("GET", "/readyz", "", "")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "lease") {
		t.Errorf("the node whose store was taken over: readyz %d %s", w.Code, w.Body)
	}
	second.renewLease(context.Background())
	w = apiClient(t, second)("GET", "/readyz", "", "")
	if f := failingChecks(t, w.Body.Bytes()); w.Code != http.StatusOK || len(f) > 0 {
		t.Errorf("the node that took over: readyz %d, failing checks %v: %s", w.Code, f, w.Body)
	}
}

// failingChecks lists the names of the failed checks in a /readyz body.
func failingChecks(t *testing.T, body []byte) []string {
	t.Helper()
	var ready struct {
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(body, &ready); err != nil {
		t.Fatalf("readyz: %v: %s", err, body)
	}
	var out []string
	for _, c := range ready.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

// TestNoFileStoreFromEnvironment: started without a configuration file,
// a node with PORTICO_STORE_DSN goes to that PostgreSQL (here unreachable,
// so the start fails naming it) instead of starting a new, empty SQLite
// store with a new admin beside it.
func TestNoFileStoreFromEnvironment(t *testing.T) {
	dsn := fmt.Sprintf("postgres://portico@127.0.0.1:%d/portico?connect_timeout=2", testpeer.FreePort(t))
	t.Setenv("PORTICO_STORE_DSN", dsn)
	data := filepath.Join(t.TempDir(), "data")
	a, err := New(context.Background(), Options{DataDir: data, Console: io.Discard, Getenv: func(k string) string {
		if k == "PORTICO_STORE_DSN" {
			return dsn
		}
		return ""
	}})
	if err == nil {
		a.Close()
		t.Fatal("started without its PostgreSQL store")
	}
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "postgres") {
		t.Errorf("start error %v; want the PostgreSQL store unreachable", err)
	}
	if _, err := os.Stat(filepath.Join(data, "portico.db")); err == nil {
		t.Error("a SQLite store was made in the data directory")
	}
}
