package backup

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/postgres"
	"github.com/portico-edge/portico/internal/store/sqlite"
	"github.com/portico-edge/portico/internal/store/storetest"
)

// pgNodeConfig is what a node on PostgreSQL stores: the DSN came from
// PORTICO_STORE_DSN, so the document has none.
const pgNodeConfig = "version: 1\nstore:\n  backend: postgres\n"

// TestPostgresBackupRestoresIntoSQLite: an archive taken on PostgreSQL
// restores into SQLite on a machine where PORTICO_STORE_DSN is not set,
// with every record as it was.
func TestPostgresBackupRestoresIntoSQLite(t *testing.T) {
	pg := storetest.StartPostgres(t)
	ctx := context.Background()
	src, err := postgres.Open(ctx, pg.NewDatabase(t, "backup_src"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("0123456789"), bcrypt.MinCost)
	now := time.Now().UTC().Truncate(time.Microsecond)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(src.CreateUser(ctx, store.User{Name: "admin", PasswordHash: hash, Role: store.RoleAdmin, CreatedAt: now, UpdatedAt: now}))
	_, err = src.PutConfig(ctx, []byte(pgNodeConfig), "file:pg.yaml", "imported at start", 0)
	must(err)
	must(src.AddCall(ctx, store.CallRecord{ID: "c1", Protocol: "sip", From: "a", To: "b", StartedAt: now, EndedAt: now, Disposition: "normal",
		Streams: []store.StreamStats{{Kind: "audio", PacketsIn: 5}}}))
	must(src.AddRegistrationEvent(ctx, store.RegistrationEvent{Time: now, Protocol: "sip", AOR: "sip:u@corp", Kind: "registered"}))
	must(src.AddEvent(ctx, store.Event{Time: now, Severity: "info", Component: "app", Message: "up"}))
	must(src.PutTURNUser(ctx, store.TURNUser{Realm: "corp", Name: "t", Key: []byte{1, 2, 3}, CreatedAt: now}))
	must(src.PutCertificate(ctx, store.Certificate{Name: "pending-csr", CertPEM: nil, KeyPEM: []byte("key"), CreatedAt: now}))

	var a bytes.Buffer
	if _, err := Write(ctx, src, &a, "test"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PORTICO_STORE_DSN", "") // the SQLite machine has none
	snap, m, err := Read(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatalf("reading a PostgreSQL archive without PORTICO_STORE_DSN: %v", err)
	}
	if m.SourceBackend != "postgres" {
		t.Errorf("source backend %q", m.SourceBackend)
	}
	dst, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := dst.Restore(ctx, snap); err != nil {
		t.Fatalf("restore into SQLite: %v", err)
	}
	want, _ := src.Snapshot(ctx)
	got, err := dst.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got.SchemaVersion = want.SchemaVersion
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SQLite after restore differs from the PostgreSQL source:\n got %+v\nwant %+v", got, want)
	}
}
