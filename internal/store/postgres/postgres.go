// Package postgres opens Portico's cluster store: PostgreSQL through
// github.com/jackc/pgx/v5 (its database/sql driver, which goose needs for
// migrations), shared by the nodes of an HA pair or a scale-out group.
package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/sqlstore"
)

// Store is the PostgreSQL-backed store.Store.
type Store = sqlstore.DB

// MaxConns bounds the connections one node opens.
const MaxConns = 16

// Open connects to dsn, checks the server answers, and migrates (goose takes
// an advisory lock, so nodes starting together migrate once). Errors name the
// host and port, never the password:
//
//	store: postgres at 10.0.0.5:5432 unreachable: ...
//
// and wrap store.ErrUnavailable when the server cannot be reached.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("store: postgres: the DSN is not a valid connection string")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	where := net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, &unreachableError{fmt.Sprintf("store: postgres at %s unreachable: %s", where, redact(err, cfg.Password))}
	}
	st, err := sqlstore.New(ctx, db, sqlstore.Options{
		Dialect: sqlstore.Postgres, Name: "postgres", Logger: log,
		IsDuplicate: isDuplicate, IsMissingRef: isMissingRef, Unavailable: unavailable,
	})
	if err != nil {
		db.Close()
		if errors.Is(err, store.ErrUnavailable) {
			return nil, &unreachableError{fmt.Sprintf("store: postgres at %s unreachable: %s", where, redact(err, cfg.Password))}
		}
		return nil, fmt.Errorf("store: postgres at %s: %s", where, redact(err, cfg.Password))
	}
	return st, nil
}

// unreachableError is a redacted message that still satisfies
// errors.Is(err, store.ErrUnavailable).
type unreachableError struct{ msg string }

func (e *unreachableError) Error() string { return e.msg }
func (e *unreachableError) Unwrap() error { return store.ErrUnavailable }

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

func isMissingRef(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// unavailable: the server cannot be reached or cannot take work now, as
// opposed to a statement that is wrong in itself.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:min(2, len(pe.Code))] {
		case "08", // connection exception
			"53", // insufficient resources: disk full, too many connections
			"57", // operator intervention: admin shutdown, cannot connect now
			"58": // system error (I/O)
			return true
		}
		return pe.Code == "40001" || pe.Code == "40P01" // serialization failure, deadlock: retry
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}
