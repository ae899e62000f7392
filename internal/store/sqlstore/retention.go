package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// pruneBatch bounds one DELETE, so that pruning a large backlog never holds
// the (SQLite: only) writer for long.
const pruneBatch = 5000

// historyTables are the tables PruneHistory bounds, with the column their
// age is read from and their key.
var historyTables = []struct{ table, timeCol, key string }{
	{"calls", "ended_at", "id"},
	{"registration_events", "time", "id"},
	{"events", "time", "id"},
}

// PruneHistory deletes history older than before and, past maxRows rows in
// a table, its oldest rows, pruneBatch rows per statement.
func (s *DB) PruneHistory(ctx context.Context, before time.Time, maxRows int) (int64, error) {
	var total int64
	for _, h := range historyTables {
		cutoff := us(before)
		if maxRows > 0 {
			// The time of the newest row past the cap: it and everything
			// older go (rows sharing that time with kept ones go too).
			var t int64
			err := s.r.QueryRowContext(ctx, s.q("SELECT "+h.timeCol+" FROM "+h.table+" ORDER BY "+h.timeCol+" DESC LIMIT 1 OFFSET ?"), maxRows).Scan(&t)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return total, s.wrap("prune "+h.table, err)
			case t+1 > cutoff:
				cutoff = t + 1
			}
		}
		if cutoff <= 0 {
			continue
		}
		for {
			n, err := s.exec(ctx, "prune "+h.table, "DELETE FROM "+h.table+" WHERE "+h.key+" IN (SELECT "+h.key+" FROM "+h.table+
				" WHERE "+h.timeCol+" < ? ORDER BY "+h.timeCol+" LIMIT ?)", cutoff, pruneBatch)
			total += n
			if err != nil {
				return total, err
			}
			if n < pruneBatch {
				break
			}
		}
	}
	return total, nil
}

// leaseID is the one row of node_lease.
const leaseID = 1

const leaseCols = "node, name, host, started_at, renewed_at"

// AcquireLease takes the store for l.Node; see store.Store. The read and the
// write happen in one transaction holding the table's write lock (SQLite:
// BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE), so of two nodes starting at
// once exactly one wins.
func (s *DB) AcquireLease(ctx context.Context, l store.NodeLease, ttl time.Duration, force bool) (store.NodeLease, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.NodeLease{}, s.wrap("acquire lease", err)
	}
	defer tx.Rollback()
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, "LOCK TABLE node_lease IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return store.NodeLease{}, s.wrap("acquire lease: lock", err)
		}
	}
	var cur store.NodeLease
	var started, renewed int64
	err = tx.QueryRowContext(ctx, s.q("SELECT "+leaseCols+" FROM node_lease WHERE id = ?"), leaseID).Scan(&cur.Node, &cur.Name, &cur.Host, &started, &renewed)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return store.NodeLease{}, s.wrap("acquire lease", err)
	}
	cur.StartedAt, cur.RenewedAt = fromUS(started), fromUS(renewed)
	if err == nil && cur.Node != l.Node && !force && l.RenewedAt.Sub(cur.RenewedAt) < ttl {
		return cur, fmt.Errorf("acquire lease: node %q (%s on %s) holds it: %w", cur.Name, cur.Node, cur.Host, store.ErrLeaseHeld)
	}
	if _, err := tx.ExecContext(ctx, s.q("INSERT INTO node_lease (id, "+leaseCols+") VALUES (?, ?, ?, ?, ?, ?) "+
		"ON CONFLICT (id) DO UPDATE SET node = excluded.node, name = excluded.name, host = excluded.host, started_at = excluded.started_at, renewed_at = excluded.renewed_at"),
		leaseID, l.Node, l.Name, l.Host, us(l.StartedAt), us(l.RenewedAt)); err != nil {
		return store.NodeLease{}, s.wrap("acquire lease", err)
	}
	if err := tx.Commit(); err != nil {
		return store.NodeLease{}, s.wrap("acquire lease: commit", err)
	}
	return l, nil
}

// RenewLease marks node's lease alive.
func (s *DB) RenewLease(ctx context.Context, node string, now time.Time) error {
	n, err := s.exec(ctx, "renew lease", "UPDATE node_lease SET renewed_at = ? WHERE id = ? AND node = ?", us(now), leaseID, node)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("renew lease of node %s: %w", node, store.ErrLeaseHeld)
	}
	return nil
}

// ReleaseLease gives node's lease up.
func (s *DB) ReleaseLease(ctx context.Context, node string) error {
	_, err := s.exec(ctx, "release lease", "DELETE FROM node_lease WHERE id = ? AND node = ?", leaseID, node)
	return err
}
