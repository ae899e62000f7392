package app

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// TestManualBlocksSurviveRestart: blocks an administrator adds through the
// API are in force again after a restart, until their original end; one
// lifted before the restart stays lifted.
func TestManualBlocksSurviveRestart(t *testing.T) {
	n := newNode(t)
	n.write(n.doc("warn"))
	env := Options{Getenv: func(k string) string {
		if k == "PORTICO_ADMIN_PASSWORD" {
			return testAdminPassword
		}
		return ""
	}}
	start := func() *App {
		t.Helper()
		a, err := New(t.Context(), Options{ConfigFile: n.file, DataDir: n.dir + "/data", Console: env.Console, Getenv: env.Getenv})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := start()
	do := apiClient(t, a)
	for _, body := range []string{
		`{"source":"203.0.113.0/24","duration":"2h","reason":"abuse desk"}`,
		`{"source":"198.51.100.7","duration":"1h"}`,
	} {
		if w := do("POST", "/api/v1/guard/blocks", "application/json", body); w.Code != http.StatusCreated {
			t.Fatalf("block %s: %d %s", body, w.Code, w.Body)
		}
	}
	if w := do("DELETE", "/api/v1/guard/blocks/198.51.100.7", "", ""); w.Code != http.StatusNoContent {
		t.Fatalf("unblock: %d %s", w.Code, w.Body)
	}
	before := a.built.guard.Blocks("203.0.113.0/24")
	a.Close()

	a = start()
	defer a.Close()
	g := a.built.guard
	if !g.Blocked(netip.MustParseAddr("203.0.113.9")) {
		t.Fatal("manual block lost at restart")
	}
	if g.Blocked(netip.MustParseAddr("198.51.100.7")) {
		t.Error("a block lifted before the restart is back")
	}
	// The store keeps microseconds.
	after := g.Blocks("203.0.113.0/24")
	if len(after) != 1 || len(before) != 1 || !after[0].Manual || after[0].Reason != "abuse desk" || !after[0].Until.Equal(before[0].Until.Truncate(time.Microsecond)) {
		got, _ := json.Marshal(after)
		want, _ := json.Marshal(before)
		t.Errorf("restored block = %s, want %s", got, want)
	}
}
