// Package sqlite opens Portico's embedded store: a SQLite database
// (modernc.org/sqlite, pure Go, no cgo) in WAL mode under the data directory.
//
// Writes go through one connection, so Portico's own writers queue in Go
// instead of racing for SQLite's write lock; reads use a separate pool of
// read-only connections that WAL lets run beside the writer. Every write
// transaction starts with BEGIN IMMEDIATE, and a busy timeout covers another
// process (portico backup, a CLI command) holding the lock for a moment.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/portico-edge/portico/internal/store/sqlstore"
)

// Store is the SQLite-backed store.Store.
type Store = sqlstore.DB

// Readers is the size of the read pool.
const Readers = 4

// busyTimeout is how long a connection waits for another process's lock.
const busyTimeout = 10 * time.Second

// Open opens (creating it with mode 0600, in a directory created 0700) and
// migrates the database at path. The WAL and shared-memory files SQLite adds
// beside it take the same mode.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: no database path")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	f.Close()

	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	r.SetMaxOpenConns(Readers)
	r.SetMaxIdleConns(Readers)
	st, err := sqlstore.New(ctx, w, sqlstore.Options{
		Dialect: sqlstore.SQLite, Name: "sqlite", Logger: log, Reader: r,
		IsDuplicate: isDuplicate, IsMissingRef: isMissingRef, Unavailable: unavailable,
	})
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return st, nil
}

// dsn is the modernc.org/sqlite data source for path. Pragmas in the DSN
// apply to every connection the pool opens.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		// A reader never writes; query_only makes a stray write an error
		// instead of a second writer.
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

func code(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	return 0, false
}

func isDuplicate(err error) bool {
	c, ok := code(err)
	return ok && (c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

func isMissingRef(err error) bool {
	c, ok := code(err)
	return ok && c == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// unavailable: the database file cannot take the write now (locked past
// the busy timeout, disk full, I/O error, cannot open), as opposed to a
// write that is wrong in itself.
func unavailable(err error) bool {
	c, ok := code(err)
	if !ok {
		return false
	}
	switch c & 0xff { // primary result code
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL:
		return true
	}
	return false
}
