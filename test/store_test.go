package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/backup"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/sqlite"
	"github.com/portico-edge/portico/internal/store/storetest"
)

func readArchive(t *testing.T, path string) (*store.Snapshot, backup.Manifest) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, m, err := backup.Read(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s, m
}

// TestBackupMovesToPostgres: backup on SQLite while Portico runs → restore
// into PostgreSQL → backup again gives the same config and history; Portico
// then runs on PostgreSQL, and losing PostgreSQL turns readiness false
// without a crash until it is back.
func TestBackupMovesToPostgres(t *testing.T) {
	pg := storetest.StartPostgres(t)
	if pg.Port == 0 {
		t.Skip("needs a PostgreSQL the test can stop; unset PORTICO_TEST_POSTGRES_DSN")
	}
	dir := t.TempDir()
	mgmt := freeAddr(t)
	d := startDaemon(t, dir, baseConfig(mgmt), mgmt, "PORTICO_ADMIN_PASSWORD="+adminPassword)
	c := newClient(t, d.url)
	c.csrf = true
	c.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	next := strings.Replace(baseConfig(mgmt), "level: info", "level: debug", 1)
	c.must(200, "PUT", "/api/v1/config", next, "If-Match", `"1"`)

	// Some history, written by a second process beside the running daemon.
	ctx := context.Background()
	side, err := sqlite.Open(ctx, filepath.Join(dir, "data", "portico.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := 0; i < 20; i++ {
		if err := side.AddCall(ctx, store.CallRecord{ID: fmt.Sprint("call-", i), Protocol: "sip", CallType: "guest", From: "a", To: "b", StartedAt: now, EndedAt: now.Add(time.Minute), Disposition: "normal",
			Streams: []store.StreamStats{{Kind: "audio", PacketsIn: uint64(i)}}}); err != nil {
			t.Fatal(err)
		}
		side.AddRegistrationEvent(ctx, store.RegistrationEvent{Time: now, Protocol: "sip", AOR: fmt.Sprint("sip:u", i, "@corp"), Kind: "registered"})
	}
	side.Close()

	a1 := filepath.Join(dir, "a1.tar.gz")
	if out, err := run(t, nil, "backup", "-o", a1, "--data", filepath.Join(dir, "data")); err != nil {
		t.Fatalf("backup while running: %v\n%s", err, out)
	}
	// An API backup gives the same contents.
	r := c.must(200, "GET", "/api/v1/backup", nil)
	api := filepath.Join(dir, "api.tar.gz")
	os.WriteFile(api, r.body, 0o600)
	s0, _ := readArchive(t, api)
	d.stop()

	dsn := pg.NewDatabase(t, "moved")
	pgCfg := strings.Replace(baseConfig(mgmt), "backend: sqlite", "backend: postgres", 1)
	pgFile := filepath.Join(dir, "pg.yaml")
	os.WriteFile(pgFile, []byte(pgCfg), 0o600)
	env := []string{"PORTICO_STORE_DSN=" + dsn}
	if out, err := run(t, env, "restore", a1, "--config", pgFile); err != nil || !strings.Contains(out, "into postgres") {
		t.Fatalf("restore into postgres: %v\n%s", err, out)
	}
	a2 := filepath.Join(dir, "a2.tar.gz")
	if out, err := run(t, env, "backup", "-o", a2, "--config", pgFile); err != nil {
		t.Fatalf("backup from postgres: %v\n%s", err, out)
	}
	s1, m1 := readArchive(t, a1)
	s2, m2 := readArchive(t, a2)
	if m1.SourceBackend != "sqlite" || m2.SourceBackend != "postgres" {
		t.Errorf("backends %s → %s", m1.SourceBackend, m2.SourceBackend)
	}
	if len(s1.Calls) != 20 || len(s1.ConfigVersions) != 2 {
		t.Fatalf("first archive holds %d calls, %d config versions", len(s1.Calls), len(s1.ConfigVersions))
	}
	for name, pair := range map[string][2]any{
		"config versions": {s1.ConfigVersions, s2.ConfigVersions},
		"users":           {s1.Users, s2.Users},
		"tokens":          {s1.Tokens, s2.Tokens},
		"certificates":    {s1.Certificates, s2.Certificates},
		"calls":           {s1.Calls, s2.Calls},
		"registrations":   {s1.RegistrationEvents, s2.RegistrationEvents},
		"events":          {s1.Events, s2.Events},
		"audit":           {s1.Audit, s2.Audit[:len(s1.Audit)]}, // the restore itself is audited after
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s differ after SQLite → PostgreSQL", name)
		}
	}
	if !reflect.DeepEqual(s0.Calls, s1.Calls) || !reflect.DeepEqual(s0.ConfigVersions, s1.ConfigVersions) {
		t.Error("API backup and CLI backup differ")
	}

	// A corrupt archive is refused and nothing is replaced.
	bad := filepath.Join(dir, "bad.tar.gz")
	raw, _ := os.ReadFile(a1)
	os.WriteFile(bad, raw[:len(raw)-100], 0o600)
	if out, err := run(t, env, "restore", bad, "--config", pgFile); err == nil || !strings.Contains(out, "nothing replaced") {
		t.Errorf("corrupt archive: %v\n%s", err, out)
	}

	// Portico on the moved store: same admin, same config history.
	d2 := startDaemon(t, dir, pgCfg, mgmt, env...)
	c2 := newClient(t, d2.url)
	c2.csrf = true
	c2.must(200, "POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword})
	var vs []struct{ Version int64 }
	c2.must(200, "GET", "/api/v1/config/versions", nil).json(t, &vs)
	// Two restored; pg.yaml is not imported over the restored API edit
	// (version 2), which stays the active version.
	if len(vs) != 2 {
		t.Errorf("config versions on postgres: %+v", vs)
	}
	var calls []store.CallRecord
	c2.must(200, "GET", "/api/v1/history/calls?limit=100", nil).json(t, &calls)
	if len(calls) != 20 {
		t.Errorf("%d calls in history on postgres", len(calls))
	}
	// A restore through the API with a foreign file is refused.
	c2.must(422, "POST", "/api/v1/restore", []byte("PK\x03\x04 not ours"))

	// The store lost while running: not ready, no crash; back: ready.
	pg.Stop()
	waitFor(t, 20*time.Second, func() bool { return c2.do("GET", "/readyz", nil).code == 503 })
	c2.must(200, "GET", "/healthz", nil)
	pg.Start()
	waitFor(t, 30*time.Second, func() bool { return c2.do("GET", "/readyz", nil).code == 200 })
	c2.must(200, "GET", "/api/v1/status", nil)
	if err := d2.stop(); err != nil {
		t.Errorf("stop: %v\n%s", err, d2.out.String())
	}
}
