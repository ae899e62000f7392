package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/storetest"
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
	// The test runs no services, so the guard is honestly "not running";
	// every other check, the lease's included, must pass.
	w = apiClient(t, second)("GET", "/readyz", "", "")
	if f := failingChecks(t, w.Body.Bytes()); !slices.Equal(f, []string{"guard"}) {
		t.Errorf("the node that took over: failing checks %v: %s", f, w.Body)
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
