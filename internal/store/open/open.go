// Package open opens the store backend a configuration names. It lives
// apart from package store so that store (the interface) does not import
// its own implementations.
package open

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/postgres"
	"github.com/portico-edge/portico/internal/store/sqlite"
)

// Config names a backend and where it is.
type Config struct {
	Backend string // "sqlite" (the default when empty) or "postgres"
	Path    string // SQLite database file
	DSN     string // PostgreSQL connection string (URL or key=value)
}

// EnvDSN is the environment variable that carries the PostgreSQL DSN, so
// that its password stays out of configuration documents.
const EnvDSN = "PORTICO_STORE_DSN"

// Resolve completes c from the environment, the one rule for the daemon
// and every CLI command: an empty DSN comes from PORTICO_STORE_DSN, and
// when no configuration file named the store (fromFile false), a set
// PORTICO_STORE_DSN selects PostgreSQL instead of the default SQLite file.
func Resolve(c Config, fromFile bool, getenv func(string) string) Config {
	env := getenv(EnvDSN)
	if c.DSN == "" {
		c.DSN = env
	}
	if !fromFile && env != "" {
		c.Backend = "postgres"
	}
	return c
}

// Open opens and migrates the backend. A PostgreSQL server that cannot be
// reached fails with "store: postgres at host:port unreachable: ..." (the
// password never appears) wrapping store.ErrUnavailable.
func Open(ctx context.Context, c Config, log *slog.Logger) (store.Store, error) {
	switch c.Backend {
	case "sqlite", "":
		if c.Path == "" {
			return nil, errors.New("store: sqlite backend needs a database path")
		}
		st, err := sqlite.Open(ctx, c.Path, log)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return st, nil
	case "postgres":
		if c.DSN == "" {
			return nil, errors.New("store: postgres backend needs a DSN")
		}
		st, err := postgres.Open(ctx, c.DSN, log)
		if err != nil {
			return nil, err // already "store: postgres at ...", redacted
		}
		return st, nil
	}
	return nil, fmt.Errorf("store: unknown backend %q (want sqlite or postgres)", c.Backend)
}
