package sqlstore

import (
	"context"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// The cluster tables hold live state that each node publishes about
// itself (migration 00005): they are written in batches by the node that
// owns the rows and read by every node's API.

// publishChunk is the most rows one statement of PublishRegistrations
// writes: 8 parameters a row stays far below both backends' limits.
const publishChunk = 250

const clusterRegCols = "node, aor, contact, source, transport, registered_at, refreshed_at, expires_at"

func scanClusterReg(sc interface{ Scan(...any) error }) (store.ClusterRegistration, error) {
	var r store.ClusterRegistration
	var reg, ref, exp int64
	err := sc.Scan(&r.Node, &r.AOR, &r.Contact, &r.Source, &r.Transport, &reg, &ref, &exp)
	r.Registered, r.Refreshed, r.Expires = fromUS(reg), fromUS(ref), fromUS(exp)
	return r, err
}

// PublishRegistrations writes one batch of node's registrations in one
// transaction: node's heartbeat is set to now, the registrations of del
// (by AOR and Contact) are removed, those of put inserted or replaced, and
// every node's rows that expired before now are deleted. put names each
// registration once.
func (s *DB) PublishRegistrations(ctx context.Context, node string, now time.Time, put, del []store.ClusterRegistration) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("publish registrations", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.q("INSERT INTO cluster_nodes (node, heartbeat_at) VALUES (?, ?) "+
		"ON CONFLICT (node) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"), node, us(now)); err != nil {
		return s.wrap("publish registrations: heartbeat", err)
	}
	if len(del) > 0 {
		st, err := tx.PrepareContext(ctx, s.q("DELETE FROM cluster_registrations WHERE node = ? AND aor = ? AND contact = ?"))
		if err != nil {
			return s.wrap("publish registrations: delete", err)
		}
		defer st.Close()
		for _, r := range del {
			if _, err := st.ExecContext(ctx, node, r.AOR, r.Contact); err != nil {
				return s.wrap("publish registrations: delete", err)
			}
		}
	}
	// Rows go in multi-row statements of up to publishChunk rows: one
	// round trip per chunk instead of one per row.
	for len(put) > 0 {
		n := min(len(put), publishChunk)
		var q strings.Builder
		q.WriteString("INSERT INTO cluster_registrations (" + clusterRegCols + ") VALUES ")
		args := make([]any, 0, 8*n)
		for i, r := range put[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, node, r.AOR, r.Contact, r.Source, r.Transport, us(r.Registered), us(r.Refreshed), us(r.Expires))
		}
		q.WriteString(" ON CONFLICT (node, aor, contact) DO UPDATE SET source = excluded.source, transport = excluded.transport, " +
			"registered_at = excluded.registered_at, refreshed_at = excluded.refreshed_at, expires_at = excluded.expires_at")
		if _, err := tx.ExecContext(ctx, s.q(q.String()), args...); err != nil {
			return s.wrap("publish registrations: put", err)
		}
		put = put[n:]
	}
	if _, err := tx.ExecContext(ctx, s.q("DELETE FROM cluster_registrations WHERE expires_at < ?"), us(now)); err != nil {
		return s.wrap("publish registrations: expired", err)
	}
	return s.wrap("publish registrations: commit", tx.Commit())
}

// ClusterRegistrations lists the registrations every node published that
// have not expired at now, of the nodes whose heartbeat is not older than
// aliveSince, by AOR, node and contact.
func (s *DB) ClusterRegistrations(ctx context.Context, aliveSince, now time.Time) ([]store.ClusterRegistration, error) {
	return list(ctx, s, "cluster registrations", "SELECT r.node, r.aor, r.contact, r.source, r.transport, r.registered_at, r.refreshed_at, r.expires_at FROM cluster_registrations r JOIN cluster_nodes n ON n.node = r.node "+
		"WHERE n.heartbeat_at >= ? AND r.expires_at >= ? ORDER BY r.aor, r.node, r.contact", []any{us(aliveSince), us(now)}, scanClusterReg)
}

// LeaveCluster removes node's registrations and heartbeat (the node stops
// cleanly, or starts and republishes what it holds).
func (s *DB) LeaveCluster(ctx context.Context, node string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("leave cluster", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.q("DELETE FROM cluster_registrations WHERE node = ?"), node); err != nil {
		return s.wrap("leave cluster", err)
	}
	if _, err := tx.ExecContext(ctx, s.q("DELETE FROM cluster_nodes WHERE node = ?"), node); err != nil {
		return s.wrap("leave cluster", err)
	}
	return s.wrap("leave cluster: commit", tx.Commit())
}
