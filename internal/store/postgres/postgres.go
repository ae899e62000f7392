// Package postgres opens Portico's cluster store: PostgreSQL through
// github.com/jackc/pgx/v5, shared by the nodes of an HA pair or a scale-out
// group.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/portico-edge/portico/internal/store/sqlstore"
)

// Open connects to dsn, checks the server answers, and migrates. Errors
// name the host and port, never the password.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*sqlstore.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("postgres: store.dsn is not a valid connection string")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	where := net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres at %s unreachable: %s", where, redact(err, cfg.Password))
	}
	st, err := sqlstore.New(ctx, db, sqlstore.Options{
		Dialect: sqlstore.Postgres, Name: "postgres", Logger: log,
		IsDuplicate: isDuplicate, Unavailable: unavailable,
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres at %s: %s", where, redact(err, cfg.Password))
	}
	return st, nil
}

func redact(err error, password string) string {
	if password == "" {
		return err.Error()
	}
	return strings.ReplaceAll(err.Error(), password, "xxxxx")
}

func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code[:2] == "08" || pe.Code[:2] == "57" // connection exception, operator intervention
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, sql.ErrConnDone) || pgconn.SafeToRetry(err)
}
