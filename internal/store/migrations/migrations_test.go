package migrations

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// The sources stay in the SQL both databases share: only the two
// placeholders may stand for the types they spell differently.
func TestSourcesArePortable(t *testing.T) {
	dialectWords := regexp.MustCompile(`(?i)\b(AUTOINCREMENT|SERIAL|BIGSERIAL|BYTEA|BLOB|BOOLEAN|TIMESTAMPT?Z?|JSONB?|UUID|IDENTITY|DATETIME|REAL|DOUBLE|VARCHAR|INTEGER)\b`)
	names, err := fs.Glob(Sources(), "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	for _, n := range names {
		b, _ := fs.ReadFile(Sources(), n)
		for i, line := range strings.Split(string(b), "\n") {
			code, _, _ := strings.Cut(line, "--")
			code = strings.NewReplacer("{{id}}", "", "{{blob}}", "").Replace(code)
			if w := dialectWords.FindString(code); w != "" {
				t.Errorf("%s:%d: dialect-specific %q; use {{id}}, {{blob}}, BIGINT or TEXT", n, i+1, w)
			}
		}
		if !strings.Contains(string(b), "-- +goose Up") || !strings.Contains(string(b), "-- +goose Down") {
			t.Errorf("%s: needs -- +goose Up and -- +goose Down sections", n)
		}
	}
}

func TestFSSpellsDialects(t *testing.T) {
	tests := []struct {
		d         Dialect
		want, not string
		wantErr   bool
	}{
		{d: SQLite, want: "INTEGER PRIMARY KEY AUTOINCREMENT", not: "BYTEA"},
		{d: Postgres, want: "BIGSERIAL PRIMARY KEY", not: "BLOB"},
		{d: "mysql", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(string(tc.d), func(t *testing.T) {
			fsys, err := FS(tc.d)
			if tc.wantErr {
				if err == nil {
					t.Fatal("unknown dialect accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := fs.ReadFile(fsys, "00001_initial.sql")
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if !strings.Contains(s, tc.want) || strings.Contains(s, tc.not) || strings.Contains(s, "{{") {
				t.Errorf("%s spelling wrong:\n%s", tc.d, s)
			}
		})
	}
}

func TestUpDownUpSQLite(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := Up(ctx, db, SQLite, nil)
	if err != nil || v != Latest() || v < 2 {
		t.Fatalf("Up = %d, %v; Latest %d", v, err, Latest())
	}
	if v, err := Up(ctx, db, SQLite, nil); err != nil || v != Latest() {
		t.Fatalf("second Up = %d, %v", v, err)
	}
	tables := func() int {
		var n int
		db.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('config_versions','users','tokens','audit','certificates','turn_users','registration_events','calls','events','cluster_nodes','cluster_registrations')").Scan(&n)
		return n
	}
	if n := tables(); n != 11 {
		t.Fatalf("%d of 11 tables after Up", n)
	}
	p, err := provider(db, SQLite, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	if n := tables(); n != 0 {
		t.Fatalf("%d tables left after migrating down", n)
	}
	if _, err := Up(ctx, db, SQLite, nil); err != nil {
		t.Fatalf("Up after Down: %v", err)
	}
	// A database from a newer build is refused rather than used.
	if _, err := db.Exec("INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, 1)", Latest()+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Up(ctx, db, SQLite, nil); err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Errorf("Up on a newer schema = %v", err)
	}
}
