package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/portico-edge/portico/internal/store"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// allRows reads a whole table inside tx, oldest first.
func allRows[T any](ctx context.Context, s *DB, tx *sql.Tx, query string, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, s.wrap("snapshot", err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.wrap("snapshot", err)
		}
		out = append(out, v)
	}
	return out, s.wrap("snapshot", rows.Err())
}

// Snapshot reads every table in one read transaction.
func (s *DB) Snapshot(ctx context.Context) (*store.Snapshot, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.r.BeginTx(ctx, opts)
	if err != nil {
		return nil, s.wrap("snapshot", err)
	}
	defer tx.Rollback()
	snap := &store.Snapshot{SchemaVersion: s.schema}
	if snap.ConfigVersions, err = allRows(ctx, s, tx, "SELECT "+configCols+" FROM config_versions ORDER BY version", scanConfig); err != nil {
		return nil, err
	}
	if snap.Users, err = allRows(ctx, s, tx, "SELECT "+userCols+" FROM users ORDER BY name", scanUser); err != nil {
		return nil, err
	}
	if snap.Tokens, err = allRows(ctx, s, tx, "SELECT "+tokenCols+" FROM tokens ORDER BY id", scanToken); err != nil {
		return nil, err
	}
	if snap.Audit, err = allRows(ctx, s, tx, "SELECT "+auditCols+" FROM audit ORDER BY id", scanAudit); err != nil {
		return nil, err
	}
	if snap.Certificates, err = allRows(ctx, s, tx, "SELECT "+certCols+" FROM certificates ORDER BY name", scanCert); err != nil {
		return nil, err
	}
	if snap.TURNUsers, err = allRows(ctx, s, tx, "SELECT "+turnCols+" FROM turn_users ORDER BY realm, name", scanTURN); err != nil {
		return nil, err
	}
	if snap.GuardBlocks, err = allRows(ctx, s, tx, "SELECT "+guardCols+" FROM guard_blocks ORDER BY source", scanGuardBlock); err != nil {
		return nil, err
	}
	if snap.RegistrationEvents, err = allRows(ctx, s, tx, "SELECT "+regCols+" FROM registration_events ORDER BY id", scanReg); err != nil {
		return nil, err
	}
	if snap.Calls, err = allRows(ctx, s, tx, "SELECT "+callCols+" FROM calls ORDER BY ended_at, id", scanCall); err != nil {
		return nil, err
	}
	if snap.Events, err = allRows(ctx, s, tx, "SELECT "+eventCols+" FROM events ORDER BY id", scanEvent); err != nil {
		return nil, err
	}
	return snap, nil
}

// batchRows and maxParams bound one multi-row INSERT of a restore: SQLite
// allows 32,766 bound parameters, PostgreSQL 65,535.
const (
	batchRows = 500
	maxParams = 30000
)

// tables lists every table in an order that respects foreign keys when
// inserting (users before tokens); deletion runs it backwards.
var tables = []string{"config_versions", "users", "tokens", "audit", "certificates", "turn_users", "guard_blocks", "registration_events", "calls", "events"}

// Restore replaces every table with the snapshot's rows in one transaction:
// any failure rolls back and leaves the store as it was. On PostgreSQL the
// tables are locked for the duration so no concurrent write slips between
// the delete and the inserts, and the id sequences are moved past the
// restored rows.
func (s *DB) Restore(ctx context.Context, snap *store.Snapshot) error {
	if snap == nil {
		return errors.New("restore: no snapshot")
	}
	if snap.SchemaVersion > SchemaVersion() {
		return fmt.Errorf("restore: snapshot schema %d is newer than this build's %d", snap.SchemaVersion, SchemaVersion())
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("restore", err)
	}
	defer tx.Rollback()
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, "LOCK TABLE "+strings.Join(tables, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return s.wrap("restore: lock", err)
		}
	}
	for i := len(tables) - 1; i >= 0; i-- {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+tables[i]); err != nil {
			return s.wrap("restore: clear "+tables[i], err)
		}
	}
	// insert writes a table's rows in multi-row INSERTs of up to
	// batchRows rows (and under both databases' bound-parameter limits):
	// one round trip per batch instead of per row.
	insert := func(table, cols string, n int, row func(i int) (string, []any)) error {
		ncols := strings.Count(cols, ",") + 1
		per := max(1, min(batchRows, maxParams/ncols))
		one := "(" + strings.TrimSuffix(strings.Repeat("?, ", ncols), ", ") + ")"
		var st *sql.Stmt
		stmtRows := 0
		defer func() {
			if st != nil {
				st.Close()
			}
		}()
		args := make([]any, 0, per*ncols)
		for lo := 0; lo < n; lo += per {
			hi := min(n, lo+per)
			if hi-lo != stmtRows { // first batch, or the shorter last one
				if st != nil {
					st.Close()
				}
				q := "INSERT INTO " + table + " (" + cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(one+", ", hi-lo), ", ")
				var err error
				if st, err = tx.PrepareContext(ctx, s.q(q)); err != nil {
					return s.wrap("restore "+table, err)
				}
				stmtRows = hi - lo
			}
			args = args[:0]
			first := ""
			for i := lo; i < hi; i++ {
				what, a := row(i)
				if i == lo {
					first = what
				}
				args = append(args, a...)
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return s.wrap(fmt.Sprintf("restore %s (rows %d-%d, from %s)", table, lo+1, hi, first), err)
			}
		}
		return nil
	}
	steps := []func() error{
		func() error {
			return insert("config_versions", configCols, len(snap.ConfigVersions), func(i int) (string, []any) {
				v := snap.ConfigVersions[i]
				return strconv.FormatInt(v.Version, 10), []any{v.Version, nonNilBytes(v.Document), v.SHA256, v.Author, v.Comment, us(v.CreatedAt)}
			})
		},
		func() error {
			return insert("users", userCols, len(snap.Users), func(i int) (string, []any) {
				u := snap.Users[i]
				return u.Name, []any{u.Name, nonNilBytes(u.PasswordHash), string(u.Role), b2i(u.Disabled), us(u.CreatedAt), us(u.UpdatedAt)}
			})
		},
		func() error {
			return insert("tokens", tokenCols, len(snap.Tokens), func(i int) (string, []any) {
				t := snap.Tokens[i]
				return t.ID, []any{t.ID, nonNilBytes(t.Hash), t.User, string(t.Kind), t.Name, us(t.CreatedAt), us(t.ExpiresAt)}
			})
		},
		func() error {
			return insert("audit", auditCols, len(snap.Audit), func(i int) (string, []any) {
				e := snap.Audit[i]
				return strconv.FormatInt(e.ID, 10), []any{e.ID, us(e.Time), e.User, e.Source, e.Action, e.Target, e.Detail}
			})
		},
		func() error {
			return insert("certificates", certCols, len(snap.Certificates), func(i int) (string, []any) {
				c := snap.Certificates[i]
				return c.Name, []any{c.Name, nonNilBytes(c.CertPEM), nonNilBytes(c.KeyPEM), us(c.CreatedAt)}
			})
		},
		func() error {
			return insert("turn_users", turnCols, len(snap.TURNUsers), func(i int) (string, []any) {
				u := snap.TURNUsers[i]
				return u.Realm + "/" + u.Name, []any{u.Realm, u.Name, nonNilBytes(u.Key), us(u.CreatedAt)}
			})
		},
		func() error {
			return insert("guard_blocks", guardCols, len(snap.GuardBlocks), func(i int) (string, []any) {
				b := snap.GuardBlocks[i]
				return b.Source, []any{b.Source, b.Reason, us(b.CreatedAt), us(b.ExpiresAt)}
			})
		},
		func() error {
			return insert("registration_events", regCols, len(snap.RegistrationEvents), func(i int) (string, []any) {
				r := snap.RegistrationEvents[i]
				return strconv.FormatInt(r.ID, 10), []any{r.ID, us(r.Time), r.Protocol, r.AOR, r.Contact, r.Source, r.Transport, r.Kind, int64(r.Expires), r.Reason, r.Count}
			})
		},
		func() error {
			return insert("calls", callCols, len(snap.Calls), func(i int) (string, []any) {
				c := snap.Calls[i]
				return c.ID, callArgs(c)
			})
		},
		func() error {
			return insert("events", eventCols, len(snap.Events), func(i int) (string, []any) {
				e := snap.Events[i]
				return strconv.FormatInt(e.ID, 10), []any{e.ID, us(e.Time), e.Severity, e.Component, e.Message}
			})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	if s.dialect == Postgres {
		for _, t := range []string{"audit", "registration_events", "events"} {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'), COALESCE((SELECT MAX(id) FROM %s), 0) + 1, false)", t, t)); err != nil {
				return s.wrap("restore: reset sequence of "+t, err)
			}
		}
	}
	return s.wrap("restore: commit", tx.Commit())
}
