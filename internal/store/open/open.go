// Package open opens the store backend a configuration names.
package open

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/postgres"
	"github.com/portico-edge/portico/internal/store/sqlite"
)

// Config names a backend and where it is.
type Config struct {
	Backend string // "sqlite" or "postgres"
	Path    string // SQLite file
	DSN     string // PostgreSQL connection string
}

// Open opens and migrates the backend.
func Open(ctx context.Context, c Config, log *slog.Logger) (store.Store, error) {
	switch c.Backend {
	case "sqlite", "":
		return sqlite.Open(ctx, c.Path, log)
	case "postgres":
		return postgres.Open(ctx, c.DSN, log)
	}
	return nil, fmt.Errorf("store: unknown backend %q", c.Backend)
}
