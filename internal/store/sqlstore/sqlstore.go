// Package sqlstore implements store.Store once, over database/sql, for both
// SQLite and PostgreSQL. The backends differ in how they open the database
// (package sqlite, package postgres), in placeholder syntax ($n), in how
// they classify driver errors, and in a few statements chosen per dialect
// (LOCK TABLE, ILIKE, sequence reset); queries, the goose migrations
// (package migrations), snapshot and restore are shared, which is what
// lets one backup move between them.
//
// Every time is stored as BIGINT microseconds since 1970 UTC (0 meaning
// unset) and read back in UTC, so values round-trip exactly; empty byte
// fields read back as nil on both backends.
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
	"sync"
	"time"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/migrations"
)

// DB is a store.Store over database/sql.
type DB struct {
	// w takes every write. On SQLite it is one connection, so writers queue
	// in Go instead of contending for the database lock (SQLITE_BUSY).
	w *sql.DB
	// r serves reads; on SQLite a separate pool of read-only connections
	// that WAL lets run beside the writer. On PostgreSQL r == w.
	r       *sql.DB
	dialect Dialect
	schema  int64 // the database's schema version after migrating
	name    string
	log     *slog.Logger
	// isDuplicate reports a unique-constraint violation of the driver.
	isDuplicate  func(error) bool
	isMissingRef func(error) bool
	// unavailable says whether err means the database cannot be reached.
	unavailable func(error) bool
	closeOnce   sync.Once
	closeErr    error
}

var _ store.Store = (*DB)(nil)

// Options are what a backend passes to New.
type Options struct {
	Dialect Dialect
	Name    string // "sqlite" or "postgres"
	Logger  *slog.Logger
	// Reader, when set, serves reads while the db given to New takes writes.
	Reader *sql.DB
	// IsDuplicate reports a unique-key violation.
	IsDuplicate func(error) bool
	// IsMissingRef reports a foreign-key violation (a token for a user that
	// does not exist); such writes fail with store.ErrNotFound.
	IsMissingRef func(error) bool
	// Unavailable reports that the database cannot be reached or cannot take
	// writes for now (disk full, locked, server down); such errors wrap
	// store.ErrUnavailable so the history spool retries them.
	Unavailable func(error) bool
}

// Dialect is the SQL flavour of a backend.
type Dialect = migrations.Dialect

// Dialects.
const (
	SQLite   = migrations.SQLite
	Postgres = migrations.Postgres
)

// SchemaVersion is the newest migration this build knows.
func SchemaVersion() int64 { return migrations.Latest() }

// New migrates db and returns the store. On error the caller still owns
// (and closes) the databases.
func New(ctx context.Context, db *sql.DB, o Options) (*DB, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.IsDuplicate == nil {
		o.IsDuplicate = func(error) bool { return false }
	}
	if o.IsMissingRef == nil {
		o.IsMissingRef = func(error) bool { return false }
	}
	if o.Unavailable == nil {
		o.Unavailable = func(error) bool { return false }
	}
	if o.Reader == nil {
		o.Reader = db
	}
	v, err := migrations.Up(ctx, db, o.Dialect, o.Logger)
	if err != nil {
		if o.Unavailable(err) {
			return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return nil, err
	}
	return &DB{w: db, r: o.Reader, dialect: o.Dialect, schema: v, name: o.Name, log: o.Logger,
		isDuplicate: o.IsDuplicate, isMissingRef: o.IsMissingRef, unavailable: o.Unavailable}, nil
}

// Backend names the implementation.
func (s *DB) Backend() string { return s.name }

// Ping reports whether the database answers a query.
func (s *DB) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping: %w: %w", store.ErrUnavailable, err)
	}
	return nil
}

// Close closes the database; safe to call twice and concurrently.
func (s *DB) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.w.Close()
		if s.r != s.w {
			s.closeErr = errors.Join(s.closeErr, s.r.Close())
		}
	})
	return s.closeErr
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
	case s.isMissingRef(err):
		return fmt.Errorf("%s: referenced row: %w", op, store.ErrNotFound)
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%s: %w", op, err)
	case s.unavailable(err), errors.Is(err, context.DeadlineExceeded):
		// A database that does not answer in time is, for the caller, away.
		return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
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
	res, err := s.w.ExecContext(ctx, s.q(query), args...)
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
	v.CreatedAt, v.Document = fromUS(created), nilIfEmpty(v.Document)
	return v, err
}

// ActiveConfig returns the newest version.
func (s *DB) ActiveConfig(ctx context.Context) (store.ConfigVersion, error) {
	v, err := scanConfig(s.r.QueryRowContext(ctx, "SELECT "+configCols+" FROM config_versions ORDER BY version DESC LIMIT 1"))
	return v, s.wrap("active config", err)
}

// ConfigVersion returns one version.
func (s *DB) ConfigVersion(ctx context.Context, version int64) (store.ConfigVersion, error) {
	v, err := scanConfig(s.r.QueryRowContext(ctx, s.q("SELECT "+configCols+" FROM config_versions WHERE version = ?"), version))
	return v, s.wrap(fmt.Sprintf("config version %d", version), err)
}

// ConfigVersions lists versions newest first, without documents.
func (s *DB) ConfigVersions(ctx context.Context, limit int) ([]store.ConfigVersion, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, maxLimit)
	rows, err := s.r.QueryContext(ctx, s.q("SELECT "+configCols+" FROM config_versions ORDER BY version DESC LIMIT ?"), limit)
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

// PutConfig stores doc as the next version if the active one is still
// expect. Reading the active version and inserting the next happen in one
// transaction that holds the table's write lock (SQLite: BEGIN IMMEDIATE on
// the single writer; PostgreSQL: LOCK TABLE), so two writers from the same
// base cannot both succeed, and a writer with expect -1 never loses a race.
func (s *DB) PutConfig(ctx context.Context, doc []byte, author, comment string, expect int64) (store.ConfigVersion, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.ConfigVersion{}, s.wrap("put config", err)
	}
	defer tx.Rollback()
	if s.dialect == Postgres {
		// SHARE ROW EXCLUSIVE conflicts with itself but not with readers.
		if _, err := tx.ExecContext(ctx, "LOCK TABLE config_versions IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return store.ConfigVersion{}, s.wrap("put config: lock", err)
		}
	}
	var cur int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM config_versions").Scan(&cur); err != nil {
		return store.ConfigVersion{}, s.wrap("put config", err)
	}
	if expect >= 0 && cur != expect {
		return store.ConfigVersion{}, fmt.Errorf("put config: active version is %d, not %d: %w", cur, expect, store.ErrConflict)
	}
	v := store.ConfigVersion{Version: cur + 1, Document: nonNilBytes(doc), SHA256: sha(doc), Author: author, Comment: comment, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if _, err := tx.ExecContext(ctx, s.q("INSERT INTO config_versions ("+configCols+") VALUES (?, ?, ?, ?, ?, ?)"),
		v.Version, v.Document, v.SHA256, v.Author, v.Comment, us(v.CreatedAt)); err != nil {
		if s.isDuplicate(err) { // another node without the lock (cannot happen with it; kept as a guard)
			return store.ConfigVersion{}, fmt.Errorf("put config: version %d taken: %w", v.Version, store.ErrConflict)
		}
		return store.ConfigVersion{}, s.wrap("put config", err)
	}
	if err := tx.Commit(); err != nil {
		return store.ConfigVersion{}, s.wrap("put config: commit", err)
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
	u.PasswordHash = nilIfEmpty(u.PasswordHash)
	return u, err
}

// CreateUser adds a user.
func (s *DB) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.exec(ctx, fmt.Sprintf("create user %q", u.Name), "INSERT INTO users ("+userCols+") VALUES (?, ?, ?, ?, ?, ?)",
		u.Name, nonNilBytes(u.PasswordHash), string(u.Role), b2i(u.Disabled), us(u.CreatedAt), us(u.UpdatedAt))
	return err
}

// User reads one user.
func (s *DB) User(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, s.q("SELECT "+userCols+" FROM users WHERE name = ?"), name))
	return u, s.wrap(fmt.Sprintf("user %q", name), err)
}

// Users lists users by name.
func (s *DB) Users(ctx context.Context) ([]store.User, error) {
	return list(ctx, s, "users", "SELECT "+userCols+" FROM users ORDER BY name", nil, scanUser)
}

// UpdateUser replaces a user's fields.
func (s *DB) UpdateUser(ctx context.Context, u store.User) error {
	return s.mustAffect(ctx, fmt.Sprintf("update user %q", u.Name), "UPDATE users SET password_hash = ?, role = ?, disabled = ?, updated_at = ? WHERE name = ?",
		nonNilBytes(u.PasswordHash), string(u.Role), b2i(u.Disabled), us(u.UpdatedAt), u.Name)
}

// DeleteUser removes a user; its tokens and sessions go with it (the
// foreign key cascades).
func (s *DB) DeleteUser(ctx context.Context, name string) error {
	return s.mustAffect(ctx, fmt.Sprintf("delete user %q", name), "DELETE FROM users WHERE name = ?", name)
}

// ---- tokens

const tokenCols = "id, hash, username, kind, name, created_at, expires_at"

func scanToken(sc interface{ Scan(...any) error }) (store.Token, error) {
	var t store.Token
	var kind string
	var c, e int64
	err := sc.Scan(&t.ID, &t.Hash, &t.User, &kind, &t.Name, &c, &e)
	t.Kind, t.CreatedAt, t.ExpiresAt, t.Hash = store.TokenKind(kind), fromUS(c), fromUS(e), nilIfEmpty(t.Hash)
	return t, err
}

// CreateToken stores a token hash; ErrNotFound if its user does not exist.
func (s *DB) CreateToken(ctx context.Context, t store.Token) error {
	if len(t.Hash) == 0 {
		return errors.New("create token: empty hash")
	}
	_, err := s.exec(ctx, fmt.Sprintf("create token %s of user %q", t.ID, t.User), "INSERT INTO tokens ("+tokenCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		t.ID, nonNilBytes(t.Hash), t.User, string(t.Kind), t.Name, us(t.CreatedAt), us(t.ExpiresAt))
	return err
}

// TokenByHash finds a token by its hash.
func (s *DB) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, s.q("SELECT "+tokenCols+" FROM tokens WHERE hash = ?"), hash))
	return t, s.wrap("token", err)
}

// Tokens lists a user's tokens.
func (s *DB) Tokens(ctx context.Context, user string) ([]store.Token, error) {
	return list(ctx, s, "tokens", "SELECT "+tokenCols+" FROM tokens WHERE username = ? ORDER BY created_at, id", []any{user}, scanToken)
}

// DeleteToken revokes a token.
func (s *DB) DeleteToken(ctx context.Context, id string) error {
	return s.mustAffect(ctx, fmt.Sprintf("delete token %q", id), "DELETE FROM tokens WHERE id = ?", id)
}

// DeleteExpiredTokens removes tokens whose expiry passed.
func (s *DB) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	return s.exec(ctx, "delete expired tokens", "DELETE FROM tokens WHERE expires_at <> 0 AND expires_at <= ?", us(now))
}

// ---- certificates and TURN users

const certCols = "name, cert_pem, key_pem, created_at"

func scanCert(sc interface{ Scan(...any) error }) (store.Certificate, error) {
	var c store.Certificate
	var t int64
	err := sc.Scan(&c.Name, &c.CertPEM, &c.KeyPEM, &t)
	c.CreatedAt, c.CertPEM, c.KeyPEM = fromUS(t), nilIfEmpty(c.CertPEM), nilIfEmpty(c.KeyPEM)
	return c, err
}

// PutCertificate inserts or replaces a certificate by name.
func (s *DB) PutCertificate(ctx context.Context, c store.Certificate) error {
	c.CertPEM, c.KeyPEM = nonNilBytes(c.CertPEM), nonNilBytes(c.KeyPEM)
	_, err := s.exec(ctx, "put certificate", "INSERT INTO certificates ("+certCols+") VALUES (?, ?, ?, ?) "+
		"ON CONFLICT (name) DO UPDATE SET cert_pem = excluded.cert_pem, key_pem = excluded.key_pem, created_at = excluded.created_at",
		c.Name, c.CertPEM, c.KeyPEM, us(c.CreatedAt))
	return err
}

// Certificates lists certificates by name.
func (s *DB) Certificates(ctx context.Context) ([]store.Certificate, error) {
	return list(ctx, s, "certificates", "SELECT "+certCols+" FROM certificates ORDER BY name", nil, scanCert)
}

// DeleteCertificate removes a certificate.
func (s *DB) DeleteCertificate(ctx context.Context, name string) error {
	return s.mustAffect(ctx, fmt.Sprintf("delete certificate %q", name), "DELETE FROM certificates WHERE name = ?", name)
}

const turnCols = "realm, name, key, created_at"

func scanTURN(sc interface{ Scan(...any) error }) (store.TURNUser, error) {
	var u store.TURNUser
	var t int64
	err := sc.Scan(&u.Realm, &u.Name, &u.Key, &t)
	u.CreatedAt, u.Key = fromUS(t), nilIfEmpty(u.Key)
	return u, err
}

// PutTURNUser inserts or replaces a TURN credential.
func (s *DB) PutTURNUser(ctx context.Context, u store.TURNUser) error {
	_, err := s.exec(ctx, "put turn user", "INSERT INTO turn_users ("+turnCols+") VALUES (?, ?, ?, ?) "+
		"ON CONFLICT (realm, name) DO UPDATE SET key = excluded.key, created_at = excluded.created_at",
		u.Realm, u.Name, nonNilBytes(u.Key), us(u.CreatedAt))
	return err
}

// TURNUser reads one TURN credential.
func (s *DB) TURNUser(ctx context.Context, realm, name string) (store.TURNUser, error) {
	u, err := scanTURN(s.r.QueryRowContext(ctx, s.q("SELECT "+turnCols+" FROM turn_users WHERE realm = ? AND name = ?"), realm, name))
	return u, s.wrap(fmt.Sprintf("turn user %q in realm %q", name, realm), err)
}

// TURNUsers lists TURN credentials.
func (s *DB) TURNUsers(ctx context.Context) ([]store.TURNUser, error) {
	return list(ctx, s, "turn users", "SELECT "+turnCols+" FROM turn_users ORDER BY realm, name", nil, scanTURN)
}

// DeleteTURNUser removes a TURN credential.
func (s *DB) DeleteTURNUser(ctx context.Context, realm, name string) error {
	return s.mustAffect(ctx, fmt.Sprintf("delete turn user %q in realm %q", name, realm), "DELETE FROM turn_users WHERE realm = ? AND name = ?", realm, name)
}

const guardCols = "source, reason, created_at, expires_at"

func scanGuardBlock(sc interface{ Scan(...any) error }) (store.GuardBlock, error) {
	var b store.GuardBlock
	var created, expires int64
	err := sc.Scan(&b.Source, &b.Reason, &created, &expires)
	b.CreatedAt, b.ExpiresAt = fromUS(created), fromUS(expires)
	return b, err
}

// PutGuardBlock inserts or replaces a manual guard block by source.
func (s *DB) PutGuardBlock(ctx context.Context, b store.GuardBlock) error {
	_, err := s.exec(ctx, "put guard block", "INSERT INTO guard_blocks ("+guardCols+") VALUES (?, ?, ?, ?) "+
		"ON CONFLICT (source) DO UPDATE SET reason = excluded.reason, created_at = excluded.created_at, expires_at = excluded.expires_at",
		b.Source, b.Reason, us(b.CreatedAt), us(b.ExpiresAt))
	return err
}

// GuardBlocks lists the manual guard blocks by source.
func (s *DB) GuardBlocks(ctx context.Context) ([]store.GuardBlock, error) {
	return list(ctx, s, "guard blocks", "SELECT "+guardCols+" FROM guard_blocks ORDER BY source", nil, scanGuardBlock)
}

// DeleteGuardBlock removes a manual guard block.
func (s *DB) DeleteGuardBlock(ctx context.Context, source string) error {
	return s.mustAffect(ctx, fmt.Sprintf("delete guard block %q", source), "DELETE FROM guard_blocks WHERE source = ?", source)
}

// DeleteExpiredGuardBlocks removes the manual guard blocks that ended
// before now.
func (s *DB) DeleteExpiredGuardBlocks(ctx context.Context, now time.Time) (int64, error) {
	return s.exec(ctx, "delete expired guard blocks", "DELETE FROM guard_blocks WHERE expires_at < ?", us(now))
}

// ---- history

// maxLimit caps every list query.
const maxLimit = 10000

// likeEscaper makes a search string match literally inside LIKE '%...%'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)

// where builds the time/search filter of a history query, newest first with
// idCol breaking ties so that pages never overlap. Search is a substring
// match that ignores ASCII case on both backends (SQLite's LIKE does;
// PostgreSQL needs ILIKE, which also folds non-ASCII letters).
func (s *DB) where(q store.Query, timeCol, idCol string, searchCols ...string) (string, []any) {
	var conds []string
	var args []any
	if !q.Since.IsZero() {
		conds, args = append(conds, timeCol+" >= ?"), append(args, us(q.Since))
	}
	if !q.Until.IsZero() {
		conds, args = append(conds, timeCol+" <= ?"), append(args, us(q.Until))
	}
	if q.Search != "" {
		like := "LIKE"
		if s.dialect == Postgres {
			like = "ILIKE"
		}
		pat := "%" + likeEscaper.Replace(q.Search) + "%"
		var ors []string
		for _, c := range searchCols {
			ors = append(ors, c+" "+like+` ? ESCAPE '\'`)
			args = append(args, pat)
		}
		conds = append(conds, "("+strings.Join(ors, " OR ")+")")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, maxLimit)
	w := ""
	if len(conds) > 0 {
		w = " WHERE " + strings.Join(conds, " AND ")
	}
	return w + " ORDER BY " + timeCol + " DESC, " + idCol + " DESC LIMIT ? OFFSET ?", append(args, limit, max(q.Offset, 0))
}

func list[T any](ctx context.Context, s *DB, op, query string, args []any, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
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
	w, args := s.where(q, "time", "id", "username", "action", "target", "detail")
	return list(ctx, s, "audit", "SELECT "+auditCols+" FROM audit"+w, args, scanAudit)
}

const regCols = "id, time, protocol, aor, contact, source, transport, kind, expires, reason, count"

func scanReg(sc interface{ Scan(...any) error }) (store.RegistrationEvent, error) {
	var r store.RegistrationEvent
	var t, exp int64
	err := sc.Scan(&r.ID, &t, &r.Protocol, &r.AOR, &r.Contact, &r.Source, &r.Transport, &r.Kind, &exp, &r.Reason, &r.Count)
	r.Time, r.Expires = fromUS(t), int(exp)
	return r, err
}

// AddRegistrationEvent records a registration step.
func (s *DB) AddRegistrationEvent(ctx context.Context, r store.RegistrationEvent) error {
	_, err := s.exec(ctx, "add registration event", "INSERT INTO registration_events (time, protocol, aor, contact, source, transport, kind, expires, reason, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		us(r.Time), r.Protocol, r.AOR, r.Contact, r.Source, r.Transport, r.Kind, int64(r.Expires), r.Reason, r.Count)
	return err
}

// RegistrationEvents lists registration history newest first.
func (s *DB) RegistrationEvents(ctx context.Context, q store.Query) ([]store.RegistrationEvent, error) {
	w, args := s.where(q, "time", "id", "aor", "contact", "source", "kind", "reason")
	return list(ctx, s, "registration events", "SELECT "+regCols+" FROM registration_events"+w, args, scanReg)
}

const callCols = "id, protocol, call_type, caller, callee, source_addr, started_at, answered_at, ended_at, duration_ms, ended_by, status, disposition, codecs, streams, count"

func scanCall(sc interface{ Scan(...any) error }) (store.CallRecord, error) {
	var c store.CallRecord
	var st, an, en, status int64
	var streams string
	err := sc.Scan(&c.ID, &c.Protocol, &c.CallType, &c.From, &c.To, &c.SourceAddr, &st, &an, &en, &c.DurationMs, &c.EndedBy, &status, &c.Disposition, &c.Codecs, &streams, &c.Count)
	if err != nil {
		return c, err
	}
	c.StartedAt, c.AnsweredAt, c.EndedAt, c.Status = fromUS(st), fromUS(an), fromUS(en), int(status)
	if streams != "" && streams != "null" && streams != "[]" {
		if err := json.Unmarshal([]byte(streams), &c.Streams); err != nil {
			return c, fmt.Errorf("call %s streams: %w", c.ID, err)
		}
	}
	return c, nil
}

// callArgs are a call's column values in callCols order; streams are JSON.
func callArgs(c store.CallRecord) []any {
	streams := []byte("[]")
	if len(c.Streams) > 0 {
		streams, _ = json.Marshal(c.Streams) // plain numbers and strings: cannot fail
	}
	return []any{c.ID, c.Protocol, c.CallType, c.From, c.To, c.SourceAddr, us(c.StartedAt), us(c.AnsweredAt), us(c.EndedAt),
		c.DurationMs, c.EndedBy, int64(c.Status), c.Disposition, c.Codecs, string(streams), c.Count}
}

// AddCall records an ended call; ErrExists if its ID is already recorded.
func (s *DB) AddCall(ctx context.Context, c store.CallRecord) error {
	_, err := s.exec(ctx, "add call", "INSERT INTO calls ("+callCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", callArgs(c)...)
	return err
}

// AddCalls records ended calls in one transaction, which costs the store
// far less per call than one AddCall each. When any of them fails (one
// already recorded, ErrExists, or any other error) none is recorded and
// the error is returned: the caller then records them one by one.
func (s *DB) AddCalls(ctx context.Context, cs []store.CallRecord) error {
	if len(cs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("add calls", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, s.q("INSERT INTO calls ("+callCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
	if err != nil {
		return s.wrap("add calls", err)
	}
	defer st.Close()
	for _, c := range cs {
		if _, err := st.ExecContext(ctx, callArgs(c)...); err != nil {
			return s.wrap("add calls: "+c.ID, err)
		}
	}
	return s.wrap("add calls: commit", tx.Commit())
}

// Calls lists call history newest first (by end time).
func (s *DB) Calls(ctx context.Context, q store.Query) ([]store.CallRecord, error) {
	w, args := s.where(q, "ended_at", "id", "caller", "callee", "disposition", "source_addr", "id")
	return list(ctx, s, "calls", "SELECT "+callCols+" FROM calls"+w, args, scanCall)
}

const eventCols = "id, time, severity, component, message"

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
	w, args := s.where(q, "time", "id", "component", "message", "severity")
	return list(ctx, s, "events", "SELECT "+eventCols+" FROM events"+w, args, scanEvent)
}

// nilIfEmpty reads an empty byte column as nil on both backends (drivers
// differ), so snapshots compare equal across them.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// nonNilBytes keeps NOT NULL columns happy for empty values.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
