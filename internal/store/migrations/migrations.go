// Package migrations holds Portico's database schema: one set of goose SQL
// migrations (github.com/pressly/goose/v3), embedded in the binary and applied
// when a store opens, for SQLite and PostgreSQL alike.
//
// The files are written once in the SQL both databases share. The two
// column types they cannot agree on are written as words that Up spells for
// the dialect before goose reads the files:
//
//	{{id}}   an auto-increment BIGINT primary key:
//	         SQLite "INTEGER PRIMARY KEY AUTOINCREMENT", PostgreSQL "BIGSERIAL PRIMARY KEY"
//	{{blob}} bytes: SQLite "BLOB", PostgreSQL "BYTEA"
//
// Everything else (BIGINT, TEXT, indexes, foreign keys) is portable, and
// times are BIGINT microseconds since 1970 UTC, so a backup moves between the
// backends unchanged. A test checks that no other dialect-specific word
// creeps into the files.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing/fstest"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// Dialect is the database a migration set is spelled for.
type Dialect string

// Dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

func (d Dialect) replacer() (*strings.Replacer, goose.Dialect, error) {
	switch d {
	case SQLite:
		return strings.NewReplacer("{{id}}", "INTEGER PRIMARY KEY AUTOINCREMENT", "{{blob}}", "BLOB"), goose.DialectSQLite3, nil
	case Postgres:
		return strings.NewReplacer("{{id}}", "BIGSERIAL PRIMARY KEY", "{{blob}}", "BYTEA"), goose.DialectPostgres, nil
	}
	return nil, "", fmt.Errorf("migrations: unknown dialect %q", d)
}

// FS returns the migration files spelled for d.
func FS(d Dialect) (fs.FS, error) {
	r, _, err := d.replacer()
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	out := fstest.MapFS{}
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out[n] = &fstest.MapFile{Data: []byte(r.Replace(string(b))), Mode: 0o444}
	}
	return out, nil
}

// Sources returns the raw (unspelled) migration files, for tests.
func Sources() fs.FS { return files }

func provider(db *sql.DB, d Dialect, log *slog.Logger) (*goose.Provider, error) {
	_, gd, err := d.replacer()
	if err != nil {
		return nil, err
	}
	fsys, err := FS(d)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithSlog(log)}
	if d == Postgres {
		// Nodes of a cluster starting together: one migrates, the others wait
		// on a session advisory lock and then find nothing to do.
		l, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300)) // poll each second, up to 5 minutes
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(l))
	}
	return goose.NewProvider(gd, db, fsys, opts...)
}

// Up applies every pending migration and returns the schema version reached.
func Up(ctx context.Context, db *sql.DB, d Dialect, log *slog.Logger) (int64, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := provider(db, d, log)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	for _, r := range res {
		log.Info("schema migrated", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: read version: %w", err)
	}
	if v > Latest() {
		return v, fmt.Errorf("migrations: database schema %d is newer than this build's %d; run a newer portico", v, Latest())
	}
	return v, nil
}

// Latest is the newest migration this build knows.
func Latest() int64 {
	names, _ := fs.Glob(files, "*.sql")
	var v int64
	for _, n := range names {
		if n, err := goose.NumericComponent(n); err == nil && n > v {
			v = n
		}
	}
	return v
}
