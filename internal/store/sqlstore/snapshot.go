package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"

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
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, s.wrap("snapshot", err)
	}
	defer tx.Rollback()
	snap := &store.Snapshot{SchemaVersion: SchemaVersion()}
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
	if snap.Certificates, err = allRows(ctx, s, tx, "SELECT name, cert_pem, key_pem, created_at FROM certificates ORDER BY name", scanCert); err != nil {
		return nil, err
	}
	if snap.TURNUsers, err = allRows(ctx, s, tx, "SELECT realm, name, key, created_at FROM turn_users ORDER BY realm, name", scanTURN); err != nil {
		return nil, err
	}
	if snap.RegistrationEvents, err = allRows(ctx, s, tx, "SELECT "+regCols+" FROM registration_events ORDER BY id", scanReg); err != nil {
		return nil, err
	}
	if snap.Calls, err = allRows(ctx, s, tx, "SELECT "+callCols+" FROM calls ORDER BY ended_at, id", scanCall); err != nil {
		return nil, err
	}
	if snap.Events, err = allRows(ctx, s, tx, "SELECT id, time, severity, component, message FROM events ORDER BY id", scanEvent); err != nil {
		return nil, err
	}
	return snap, nil
}

// Restore replaces every table with the snapshot's rows in one transaction.
func (s *DB) Restore(ctx context.Context, snap *store.Snapshot) error {
	if snap.SchemaVersion > SchemaVersion() {
		return fmt.Errorf("restore: snapshot schema %d is newer than this build's %d", snap.SchemaVersion, SchemaVersion())
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("restore", err)
	}
	defer tx.Rollback()
	ex := func(query string, args ...any) error {
		_, err := tx.ExecContext(ctx, s.q(query), args...)
		return err
	}
	for _, t := range []string{"tokens", "users", "config_versions", "audit", "certificates", "turn_users", "registration_events", "calls", "events"} {
		if err := ex("DELETE FROM " + t); err != nil {
			return s.wrap("restore: clear "+t, err)
		}
	}
	for _, v := range snap.ConfigVersions {
		if err := ex("INSERT INTO config_versions ("+configCols+") VALUES (?, ?, ?, ?, ?, ?)", v.Version, v.Document, v.SHA256, v.Author, v.Comment, us(v.CreatedAt)); err != nil {
			return s.wrap(fmt.Sprintf("restore config version %d", v.Version), err)
		}
	}
	for _, u := range snap.Users {
		if err := ex("INSERT INTO users ("+userCols+") VALUES (?, ?, ?, ?, ?, ?)", u.Name, u.PasswordHash, string(u.Role), b2i(u.Disabled), us(u.CreatedAt), us(u.UpdatedAt)); err != nil {
			return s.wrap("restore user "+u.Name, err)
		}
	}
	for _, t := range snap.Tokens {
		if err := ex("INSERT INTO tokens ("+tokenCols+") VALUES (?, ?, ?, ?, ?, ?, ?)", t.ID, t.Hash, t.User, string(t.Kind), t.Name, us(t.CreatedAt), us(t.ExpiresAt)); err != nil {
			return s.wrap("restore token "+t.ID, err)
		}
	}
	for _, e := range snap.Audit {
		if err := ex("INSERT INTO audit ("+auditCols+") VALUES (?, ?, ?, ?, ?, ?, ?)", e.ID, us(e.Time), e.User, e.Source, e.Action, e.Target, e.Detail); err != nil {
			return s.wrap("restore audit", err)
		}
	}
	for _, c := range snap.Certificates {
		if err := ex("INSERT INTO certificates (name, cert_pem, key_pem, created_at) VALUES (?, ?, ?, ?)", c.Name, c.CertPEM, c.KeyPEM, us(c.CreatedAt)); err != nil {
			return s.wrap("restore certificate "+c.Name, err)
		}
	}
	for _, u := range snap.TURNUsers {
		if err := ex("INSERT INTO turn_users (realm, name, key, created_at) VALUES (?, ?, ?, ?)", u.Realm, u.Name, u.Key, us(u.CreatedAt)); err != nil {
			return s.wrap("restore turn user "+u.Name, err)
		}
	}
	for _, r := range snap.RegistrationEvents {
		if err := ex("INSERT INTO registration_events ("+regCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", r.ID, us(r.Time), r.Protocol, r.AOR, r.Contact, r.Source, r.Transport, r.Kind, int64(r.Expires), r.Reason); err != nil {
			return s.wrap("restore registration event", err)
		}
	}
	for _, c := range snap.Calls {
		streams, _ := json.Marshal(c.Streams)
		if err := ex("INSERT INTO calls ("+callCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			c.ID, c.Protocol, c.CallType, c.From, c.To, c.SourceAddr, us(c.StartedAt), us(c.AnsweredAt), us(c.EndedAt), c.DurationMs, c.EndedBy, int64(c.Status), c.Disposition, c.Codecs, string(streams)); err != nil {
			return s.wrap("restore call "+c.ID, err)
		}
	}
	for _, e := range snap.Events {
		if err := ex("INSERT INTO events (id, time, severity, component, message) VALUES (?, ?, ?, ?, ?)", e.ID, us(e.Time), e.Severity, e.Component, e.Message); err != nil {
			return s.wrap("restore event", err)
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
