// Package sqlstore implements store.Store once, over database/sql, for both
// SQLite and PostgreSQL. The backends differ only in how they open the
// database, in placeholder syntax, and in how they report a duplicate key;
// everything else — queries, migrations, snapshot and restore — is shared,
// which is what lets one backup move between them.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// DB is a store.Store over database/sql.
type DB struct {
	db      *sql.DB
	dialect Dialect
	name    string
	log     *slog.Logger
	// isDuplicate reports a unique-constraint violation of the driver.
	isDuplicate func(error) bool
	// unavailable says whether err means the database cannot be reached.
	unavailable func(error) bool
	closed      bool
}

var _ store.Store = (*DB)(nil)

// Options are what a backend passes to New.
type Options struct {
	Dialect     Dialect
	Name        string // "sqlite" or "postgres"
	Logger      *slog.Logger
	IsDuplicate func(error) bool
	Unavailable func(error) bool
}

// New migrates db and returns the store.
func New(ctx context.Context, db *sql.DB, o Options) (*DB, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.IsDuplicate == nil {
		o.IsDuplicate = func(error) bool { return false }
	}
	if o.Unavailable == nil {
		o.Unavailable = func(error) bool { return false }
	}
	if err := migrate(ctx, db, o.Dialect); err != nil {
		return nil, err
	}
	return &DB{db: db, dialect: o.Dialect, name: o.Name, log: o.Logger, isDuplicate: o.IsDuplicate, unavailable: o.Unavailable}, nil
}

// Backend names the implementation.
func (s *DB) Backend() string { return s.name }

// Ping reports whether the database answers.
func (s *DB) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return nil
}

// Close closes the database; safe to call twice.
func (s *DB) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// q rewrites ? placeholders into the dialect's syntax.
func (s *DB) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// wrap turns driver errors into the store's sentinels.
func (s *DB) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%s: %w", op, err)
	case s.isDuplicate(err):
		return fmt.Errorf("%s: %w", op, store.ErrExists)
	case s.unavailable(err):
		return fmt.Errorf("%s: %w: %v", op, store.ErrUnavailable, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

func us(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromUS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (s *DB) exec(ctx context.Context, op string, query string, args ...any) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return 0, s.wrap(op, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (s *DB) mustAffect(ctx context.Context, op string, query string, args ...any) error {
	n, err := s.exec(ctx, op, query, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}

// ---- configuration versions

const configCols = "version, document, sha256, author, comment, created_at"

func scanConfig(sc interface{ Scan(...any) error }) (store.ConfigVersion, error) {
	var v store.ConfigVersion
	var created int64
	err := sc.Scan(&v.Version, &v.Document, &v.SHA256, &v.Author, &v.Comment, &created)
	v.CreatedAt = fromUS(created)
	return v, err
}

// ActiveConfig returns the newest version.
func (s *DB) ActiveConfig(ctx context.Context) (store.ConfigVersion, error) {
	v, err := scanConfig(s.db.QueryRowContext(ctx, "SELECT "+configCols+" FROM config_versions ORDER BY version DESC LIMIT 1"))
	return v, s.wrap("active config", err)
}

// ConfigVersion returns one version.
func (s *DB) ConfigVersion(ctx context.Context, version int64) (store.ConfigVersion, error) {
	v, err := scanConfig(s.db.QueryRowContext(ctx, s.q("SELECT "+configCols+" FROM config_versions WHERE version = ?"), version))
	return v, s.wrap("config version", err)
}

// ConfigVersions lists versions newest first, without documents.
func (s *DB) ConfigVersions(ctx context.Context, limit int) ([]store.ConfigVersion, error) {
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+configCols+" FROM config_versions ORDER BY version DESC LIMIT ?"), limit)
	if err != nil {
		return nil, s.wrap("config versions", err)
	}
	defer rows.Close()
	var out []store.ConfigVersion
	for rows.Next() {
		v, err := scanConfig(rows)
		if err != nil {
			return nil, s.wrap("config versions", err)
		}
		v.Document = nil
		out = append(out, v)
	}
	return out, s.wrap("config versions", rows.Err())
}

// PutConfig stores doc as the next version if the active one is still expect.
func (s *DB) PutConfig(ctx context.Context, doc []byte, author, comment string, expect int64) (store.ConfigVersion, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return store.ConfigVersion{}, s.wrap("put config", err)
	}
	defer tx.Rollback()
	var cur int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM config_versions").Scan(&cur); err != nil {
		return store.ConfigVersion{}, s.wrap("put config", err)
	}
	if expect >= 0 && cur != expect {
		return store.ConfigVersion{}, fmt.Errorf("put config: active is %d, not %d: %w", cur, expect, store.ErrConflict)
	}
	v := store.ConfigVersion{Version: cur + 1, Document: doc, SHA256: sha(doc), Author: author, Comment: comment, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	_, err = tx.ExecContext(ctx, s.q("INSERT INTO config_versions ("+configCols+") VALUES (?, ?, ?, ?, ?, ?)"), v.Version, v.Document, v.SHA256, v.Author, v.Comment, us(v.CreatedAt))
	if err != nil {
		if s.isDuplicate(err) { // a concurrent writer took the number
			return store.ConfigVersion{}, fmt.Errorf("put config: %w", store.ErrConflict)
		}
		return store.ConfigVersion{}, s.wrap("put config", err)
	}
	if err := tx.Commit(); err != nil {
		if s.isDuplicate(err) {
			return store.ConfigVersion{}, fmt.Errorf("put config: %w", store.ErrConflict)
		}
		return store.ConfigVersion{}, s.wrap("put config", err)
	}
	return v, nil
}

// ---- users

const userCols = "name, password_hash, role, disabled, created_at, updated_at"

func scanUser(sc interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var role string
	var disabled, c, up int64
	err := sc.Scan(&u.Name, &u.PasswordHash, &role, &disabled, &c, &up)
	u.Role, u.Disabled, u.CreatedAt, u.UpdatedAt = store.Role(role), disabled != 0, fromUS(c), fromUS(up)
	return u, err
}

// CreateUser adds a user.
func (s *DB) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.exec(ctx, "create user", "INSERT INTO users ("+userCols+") VALUES (?, ?, ?, ?, ?, ?)",
		u.Name, u.PasswordHash, string(u.Role), b2i(u.Disabled), us(u.CreatedAt), us(u.UpdatedAt))
	return err
}

// User reads one user.
func (s *DB) User(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, s.q("SELECT "+userCols+" FROM users WHERE name = ?"), name))
	return u, s.wrap("user", err)
}

// Users lists users by name.
func (s *DB) Users(ctx context.Context) ([]store.User, error) {
	return list(ctx, s, "users", "SELECT "+userCols+" FROM users ORDER BY name", nil, scanUser)
}

// UpdateUser replaces a user's fields.
func (s *DB) UpdateUser(ctx context.Context, u store.User) error {
	return s.mustAffect(ctx, "update user", "UPDATE users SET password_hash = ?, role = ?, disabled = ?, updated_at = ? WHERE name = ?",
		u.PasswordHash, string(u.Role), b2i(u.Disabled), us(u.UpdatedAt), u.Name)
}

// DeleteUser removes a user and its tokens.
func (s *DB) DeleteUser(ctx context.Context, name string) error {
	if _, err := s.exec(ctx, "delete user", "DELETE FROM tokens WHERE username = ?", name); err != nil {
		return err
	}
	return s.mustAffect(ctx, "delete user", "DELETE FROM users WHERE name = ?", name)
}

// ---- tokens

const tokenCols = "id, hash, username, kind, name, created_at, expires_at"

func scanToken(sc interface{ Scan(...any) error }) (store.Token, error) {
	var t store.Token
	var kind string
	var c, e int64
	err := sc.Scan(&t.ID, &t.Hash, &t.User, &kind, &t.Name, &c, &e)
	t.Kind, t.CreatedAt, t.ExpiresAt = store.TokenKind(kind), fromUS(c), fromUS(e)
	return t, err
}

// CreateToken stores a token hash.
func (s *DB) CreateToken(ctx context.Context, t store.Token) error {
	_, err := s.exec(ctx, "create token", "INSERT INTO tokens ("+tokenCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		t.ID, t.Hash, t.User, string(t.Kind), t.Name, us(t.CreatedAt), us(t.ExpiresAt))
	return err
}

// TokenByHash finds a token by its hash.
func (s *DB) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q("SELECT "+tokenCols+" FROM tokens WHERE hash = ?"), hash))
	return t, s.wrap("token", err)
}

// Tokens lists a user's tokens.
func (s *DB) Tokens(ctx context.Context, user string) ([]store.Token, error) {
	return list(ctx, s, "tokens", "SELECT "+tokenCols+" FROM tokens WHERE username = ? ORDER BY created_at, id", []any{user}, scanToken)
}

// DeleteToken revokes a token.
func (s *DB) DeleteToken(ctx context.Context, id string) error {
	return s.mustAffect(ctx, "delete token", "DELETE FROM tokens WHERE id = ?", id)
}

// DeleteExpiredTokens removes tokens whose expiry passed.
func (s *DB) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	return s.exec(ctx, "delete expired tokens", "DELETE FROM tokens WHERE expires_at <> 0 AND expires_at <= ?", us(now))
}

// ---- certificates and TURN users

func scanCert(sc interface{ Scan(...any) error }) (store.Certificate, error) {
	var c store.Certificate
	var t int64
	err := sc.Scan(&c.Name, &c.CertPEM, &c.KeyPEM, &t)
	c.CreatedAt = fromUS(t)
	return c, err
}

// PutCertificate inserts or replaces a certificate by name.
func (s *DB) PutCertificate(ctx context.Context, c store.Certificate) error {
	c.CertPEM, c.KeyPEM = nonNilBytes(c.CertPEM), nonNilBytes(c.KeyPEM)
	_, err := s.exec(ctx, "put certificate", "INSERT INTO certificates (name, cert_pem, key_pem, created_at) VALUES (?, ?, ?, ?) "+
		"ON CONFLICT (name) DO UPDATE SET cert_pem = excluded.cert_pem, key_pem = excluded.key_pem, created_at = excluded.created_at",
		c.Name, c.CertPEM, c.KeyPEM, us(c.CreatedAt))
	return err
}

// Certificates lists certificates by name.
func (s *DB) Certificates(ctx context.Context) ([]store.Certificate, error) {
	return list(ctx, s, "certificates", "SELECT name, cert_pem, key_pem, created_at FROM certificates ORDER BY name", nil, scanCert)
}

// DeleteCertificate removes a certificate.
func (s *DB) DeleteCertificate(ctx context.Context, name string) error {
	return s.mustAffect(ctx, "delete certificate", "DELETE FROM certificates WHERE name = ?", name)
}

func scanTURN(sc interface{ Scan(...any) error }) (store.TURNUser, error) {
	var u store.TURNUser
	var t int64
	err := sc.Scan(&u.Realm, &u.Name, &u.Key, &t)
	u.CreatedAt = fromUS(t)
	return u, err
}

// PutTURNUser inserts or replaces a TURN credential.
func (s *DB) PutTURNUser(ctx context.Context, u store.TURNUser) error {
	_, err := s.exec(ctx, "put turn user", "INSERT INTO turn_users (realm, name, key, created_at) VALUES (?, ?, ?, ?) "+
		"ON CONFLICT (realm, name) DO UPDATE SET key = excluded.key, created_at = excluded.created_at",
		u.Realm, u.Name, u.Key, us(u.CreatedAt))
	return err
}

// TURNUser reads one TURN credential.
func (s *DB) TURNUser(ctx context.Context, realm, name string) (store.TURNUser, error) {
	u, err := scanTURN(s.db.QueryRowContext(ctx, s.q("SELECT realm, name, key, created_at FROM turn_users WHERE realm = ? AND name = ?"), realm, name))
	return u, s.wrap("turn user", err)
}

// TURNUsers lists TURN credentials.
func (s *DB) TURNUsers(ctx context.Context) ([]store.TURNUser, error) {
	return list(ctx, s, "turn users", "SELECT realm, name, key, created_at FROM turn_users ORDER BY realm, name", nil, scanTURN)
}

// DeleteTURNUser removes a TURN credential.
func (s *DB) DeleteTURNUser(ctx context.Context, realm, name string) error {
	return s.mustAffect(ctx, "delete turn user", "DELETE FROM turn_users WHERE realm = ? AND name = ?", realm, name)
}

// ---- history

// where builds the time/search filter of a history query.
func where(q store.Query, timeCol string, searchCols ...string) (string, []any) {
	var conds []string
	var args []any
	if !q.Since.IsZero() {
		conds, args = append(conds, timeCol+" >= ?"), append(args, us(q.Since))
	}
	if !q.Until.IsZero() {
		conds, args = append(conds, timeCol+" <= ?"), append(args, us(q.Until))
	}
	if q.Search != "" {
		var ors []string
		for _, c := range searchCols {
			ors = append(ors, c+" LIKE ?")
			args = append(args, "%"+strings.NewReplacer("%", "", "_", "").Replace(q.Search)+"%")
		}
		conds = append(conds, "("+strings.Join(ors, " OR ")+")")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10000)
	w := ""
	if len(conds) > 0 {
		w = " WHERE " + strings.Join(conds, " AND ")
	}
	return w + " ORDER BY " + timeCol + " DESC LIMIT ? OFFSET ?", append(args, limit, max(q.Offset, 0))
}

func list[T any](ctx context.Context, s *DB, op, query string, args []any, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, v)
	}
	return out, s.wrap(op, rows.Err())
}

const auditCols = "id, time, username, source, action, target, detail"

func scanAudit(sc interface{ Scan(...any) error }) (store.AuditEntry, error) {
	var e store.AuditEntry
	var t int64
	err := sc.Scan(&e.ID, &t, &e.User, &e.Source, &e.Action, &e.Target, &e.Detail)
	e.Time = fromUS(t)
	return e, err
}

// AppendAudit records a change.
func (s *DB) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	_, err := s.exec(ctx, "append audit", "INSERT INTO audit (time, username, source, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
		us(e.Time), e.User, e.Source, e.Action, e.Target, e.Detail)
	return err
}

// Audit lists audit entries newest first.
func (s *DB) Audit(ctx context.Context, q store.Query) ([]store.AuditEntry, error) {
	w, args := where(q, "time", "username", "action", "target", "detail")
	return list(ctx, s, "audit", "SELECT "+auditCols+" FROM audit"+w, args, scanAudit)
}

const regCols = "id, time, protocol, aor, contact, source, transport, kind, expires, reason"

func scanReg(sc interface{ Scan(...any) error }) (store.RegistrationEvent, error) {
	var r store.RegistrationEvent
	var t, exp int64
	err := sc.Scan(&r.ID, &t, &r.Protocol, &r.AOR, &r.Contact, &r.Source, &r.Transport, &r.Kind, &exp, &r.Reason)
	r.Time, r.Expires = fromUS(t), int(exp)
	return r, err
}

// AddRegistrationEvent records a registration step.
func (s *DB) AddRegistrationEvent(ctx context.Context, r store.RegistrationEvent) error {
	_, err := s.exec(ctx, "add registration event", "INSERT INTO registration_events (time, protocol, aor, contact, source, transport, kind, expires, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		us(r.Time), r.Protocol, r.AOR, r.Contact, r.Source, r.Transport, r.Kind, int64(r.Expires), r.Reason)
	return err
}

// RegistrationEvents lists registration history newest first.
func (s *DB) RegistrationEvents(ctx context.Context, q store.Query) ([]store.RegistrationEvent, error) {
	w, args := where(q, "time", "aor", "contact", "source", "kind", "reason")
	return list(ctx, s, "registration events", "SELECT "+regCols+" FROM registration_events"+w, args, scanReg)
}

const callCols = "id, protocol, call_type, caller, callee, source_addr, started_at, answered_at, ended_at, duration_ms, ended_by, status, disposition, codecs, streams"

func scanCall(sc interface{ Scan(...any) error }) (store.CallRecord, error) {
	var c store.CallRecord
	var st, an, en, status int64
	var streams string
	err := sc.Scan(&c.ID, &c.Protocol, &c.CallType, &c.From, &c.To, &c.SourceAddr, &st, &an, &en, &c.DurationMs, &c.EndedBy, &status, &c.Disposition, &c.Codecs, &streams)
	if err != nil {
		return c, err
	}
	c.StartedAt, c.AnsweredAt, c.EndedAt, c.Status = fromUS(st), fromUS(an), fromUS(en), int(status)
	if streams != "" && streams != "null" {
		if err := json.Unmarshal([]byte(streams), &c.Streams); err != nil {
			return c, fmt.Errorf("call %s streams: %w", c.ID, err)
		}
	}
	return c, nil
}

// AddCall records an ended call.
func (s *DB) AddCall(ctx context.Context, c store.CallRecord) error {
	streams, _ := json.Marshal(c.Streams)
	_, err := s.exec(ctx, "add call", "INSERT INTO calls ("+callCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		c.ID, c.Protocol, c.CallType, c.From, c.To, c.SourceAddr, us(c.StartedAt), us(c.AnsweredAt), us(c.EndedAt), c.DurationMs, c.EndedBy, int64(c.Status), c.Disposition, c.Codecs, string(streams))
	return err
}

// Calls lists call history newest first (by end time).
func (s *DB) Calls(ctx context.Context, q store.Query) ([]store.CallRecord, error) {
	w, args := where(q, "ended_at", "caller", "callee", "disposition", "source_addr", "id")
	return list(ctx, s, "calls", "SELECT "+callCols+" FROM calls"+w, args, scanCall)
}

func scanEvent(sc interface{ Scan(...any) error }) (store.Event, error) {
	var e store.Event
	var t int64
	err := sc.Scan(&e.ID, &t, &e.Severity, &e.Component, &e.Message)
	e.Time = fromUS(t)
	return e, err
}

// AddEvent records an event.
func (s *DB) AddEvent(ctx context.Context, e store.Event) error {
	_, err := s.exec(ctx, "add event", "INSERT INTO events (time, severity, component, message) VALUES (?, ?, ?, ?)", us(e.Time), e.Severity, e.Component, e.Message)
	return err
}

// Events lists events newest first.
func (s *DB) Events(ctx context.Context, q store.Query) ([]store.Event, error) {
	w, args := where(q, "time", "component", "message", "severity")
	return list(ctx, s, "events", "SELECT id, time, severity, component, message FROM events"+w, args, scanEvent)
}

// nonNilBytes keeps NOT NULL columns happy for empty values.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
