package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/pressly/goose/v3"
)

// Dialect is the SQL flavour of a backend.
type Dialect int

// Dialects.
const (
	SQLite Dialect = iota
	Postgres
)

// migrations is the one set of schema changes, written once with a few
// type words that each dialect spells its own way:
// {{id}} an auto-increment primary key, {{blob}} bytes.
// Times are BIGINT microseconds since 1970 UTC in both, so they round-trip exactly.
var migrations = []struct {
	version int64
	up      string
}{
	{1, `
CREATE TABLE config_versions (
	version    BIGINT PRIMARY KEY,
	document   {{blob}} NOT NULL,
	sha256     TEXT NOT NULL,
	author     TEXT NOT NULL,
	comment    TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	password_hash {{blob}} NOT NULL,
	role          TEXT NOT NULL,
	disabled      BIGINT NOT NULL,
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);
CREATE TABLE tokens (
	id         TEXT PRIMARY KEY,
	hash       {{blob}} NOT NULL UNIQUE,
	username   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE TABLE audit (
	id     {{id}},
	time   BIGINT NOT NULL,
	username TEXT NOT NULL,
	source TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL,
	detail TEXT NOT NULL
);
CREATE INDEX audit_time ON audit(time);
CREATE TABLE certificates (
	name       TEXT PRIMARY KEY,
	cert_pem   {{blob}} NOT NULL,
	key_pem    {{blob}} NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE turn_users (
	realm      TEXT NOT NULL,
	name       TEXT NOT NULL,
	key        {{blob}} NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (realm, name)
);
CREATE TABLE registration_events (
	id        {{id}},
	time      BIGINT NOT NULL,
	protocol  TEXT NOT NULL,
	aor       TEXT NOT NULL,
	contact   TEXT NOT NULL,
	source    TEXT NOT NULL,
	transport TEXT NOT NULL,
	kind      TEXT NOT NULL,
	expires   BIGINT NOT NULL,
	reason    TEXT NOT NULL
);
CREATE INDEX registration_events_time ON registration_events(time);
CREATE TABLE calls (
	id          TEXT PRIMARY KEY,
	protocol    TEXT NOT NULL,
	call_type   TEXT NOT NULL,
	caller      TEXT NOT NULL,
	callee      TEXT NOT NULL,
	source_addr TEXT NOT NULL,
	started_at  BIGINT NOT NULL,
	answered_at BIGINT NOT NULL,
	ended_at    BIGINT NOT NULL,
	duration_ms BIGINT NOT NULL,
	ended_by    TEXT NOT NULL,
	status      BIGINT NOT NULL,
	disposition TEXT NOT NULL,
	codecs      TEXT NOT NULL,
	streams     TEXT NOT NULL
);
CREATE INDEX calls_ended_at ON calls(ended_at);
CREATE TABLE events (
	id        {{id}},
	time      BIGINT NOT NULL,
	severity  TEXT NOT NULL,
	component TEXT NOT NULL,
	message   TEXT NOT NULL
);
CREATE INDEX events_time ON events(time);
`},
}

func (d Dialect) expand(q string) string {
	r := strings.NewReplacer("{{id}}", "INTEGER PRIMARY KEY AUTOINCREMENT", "{{blob}}", "BLOB")
	if d == Postgres {
		r = strings.NewReplacer("{{id}}", "BIGSERIAL PRIMARY KEY", "{{blob}}", "BYTEA")
	}
	return r.Replace(q)
}

func (d Dialect) goose() goose.Dialect {
	if d == Postgres {
		return goose.DialectPostgres
	}
	return goose.DialectSQLite3
}

// SchemaVersion is the newest migration.
func SchemaVersion() int64 { return migrations[len(migrations)-1].version }

// migrate applies every pending migration with goose.
func migrate(ctx context.Context, db *sql.DB, d Dialect) error {
	var gms []*goose.Migration
	for _, m := range migrations {
		ddl := d.expand(m.up)
		gms = append(gms, goose.NewGoMigration(m.version, &goose.GoFunc{
			RunTx: func(ctx context.Context, tx *sql.Tx) error {
				for _, stmt := range strings.Split(ddl, ";") {
					if strings.TrimSpace(stmt) == "" {
						continue
					}
					if _, err := tx.ExecContext(ctx, stmt); err != nil {
						return fmt.Errorf("%s: %w", strings.TrimSpace(stmt)[:min(40, len(strings.TrimSpace(stmt)))], err)
					}
				}
				return nil
			},
		}, nil))
	}
	p, err := goose.NewProvider(d.goose(), db, nil, goose.WithGoMigrations(gms...), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
