// Package store keeps Portico's records: configuration versions, users, API
// tokens and sessions, the audit log, certificates, TURN users, registration
// and call history and events.
//
// One interface, Store, has two implementations behind it: SQLite
// (modernc.org/sqlite, WAL, the embedded default under the data directory) and
// PostgreSQL (pgx/v5, for HA pairs and scale-out). Both apply the same goose
// migrations at open and pass the same test suite.
package store

import (
	"context"
	"time"
)

// Store is every record Portico keeps. Implementations are safe for
// concurrent use. Errors wrap the sentinels in errors.go so callers can test
// them with errors.Is.
type Store interface {
	// Backend names the implementation: "sqlite" or "postgres".
	Backend() string
	// Ping reports whether the database answers; readiness uses it.
	Ping(ctx context.Context) error
	Close() error

	// ActiveConfig returns the newest configuration version, or ErrNotFound.
	ActiveConfig(ctx context.Context) (ConfigVersion, error)
	// PutConfig stores doc as a new version if the active version is still
	// expect (0 means "no version yet"; -1 skips the check); otherwise it
	// returns ErrConflict and stores nothing.
	PutConfig(ctx context.Context, doc []byte, author, comment string, expect int64) (ConfigVersion, error)
	ConfigVersion(ctx context.Context, version int64) (ConfigVersion, error)
	// ConfigVersions lists versions newest first, without their documents.
	ConfigVersions(ctx context.Context, limit int) ([]ConfigVersion, error)

	CreateUser(ctx context.Context, u User) error // ErrExists if the name is taken
	User(ctx context.Context, name string) (User, error)
	Users(ctx context.Context) ([]User, error)
	UpdateUser(ctx context.Context, u User) error // by Name; ErrNotFound
	DeleteUser(ctx context.Context, name string) error

	// CreateToken stores a token; only its hash is kept.
	CreateToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	Tokens(ctx context.Context, user string) ([]Token, error)
	DeleteToken(ctx context.Context, id string) error
	// DeleteExpiredTokens removes tokens and sessions whose expiry passed.
	DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error)

	AppendAudit(ctx context.Context, e AuditEntry) error
	Audit(ctx context.Context, q Query) ([]AuditEntry, error)

	PutCertificate(ctx context.Context, c Certificate) error // upsert by Name
	Certificates(ctx context.Context) ([]Certificate, error)
	DeleteCertificate(ctx context.Context, name string) error

	PutTURNUser(ctx context.Context, u TURNUser) error // upsert by Realm+Name
	TURNUser(ctx context.Context, realm, name string) (TURNUser, error)
	TURNUsers(ctx context.Context) ([]TURNUser, error)
	DeleteTURNUser(ctx context.Context, realm, name string) error

	// PutGuardBlock stores a manual guard block, replacing one of the same
	// Source; GuardBlocks lists them by source; DeleteGuardBlock removes
	// one (ErrNotFound if absent); DeleteExpiredGuardBlocks removes those
	// that ended before now.
	PutGuardBlock(ctx context.Context, b GuardBlock) error
	GuardBlocks(ctx context.Context) ([]GuardBlock, error)
	DeleteGuardBlock(ctx context.Context, source string) error
	DeleteExpiredGuardBlocks(ctx context.Context, now time.Time) (int64, error)

	AddRegistrationEvent(ctx context.Context, r RegistrationEvent) error
	RegistrationEvents(ctx context.Context, q Query) ([]RegistrationEvent, error)
	AddCall(ctx context.Context, c CallRecord) error
	Calls(ctx context.Context, q Query) ([]CallRecord, error)
	AddEvent(ctx context.Context, e Event) error
	Events(ctx context.Context, q Query) ([]Event, error)

	// PruneHistory deletes call, registration and event history older than
	// before (zero: none by age) and, past maxRows rows in a table (0: no
	// cap), its oldest rows. It deletes in bounded batches so that writers
	// are not held up, and returns how many rows went.
	PruneHistory(ctx context.Context, before time.Time, maxRows int) (int64, error)

	// AcquireLease makes l the node that runs on this store, unless another
	// node holds a lease renewed within ttl and force is false: then it
	// returns that node's lease and an error wrapping ErrLeaseHeld. Until
	// nodes of a cluster get their own parts of the store, two nodes on one
	// store would overwrite each other's configuration history.
	AcquireLease(ctx context.Context, l NodeLease, ttl time.Duration, force bool) (NodeLease, error)
	// RenewLease marks node's lease alive at now; ErrLeaseHeld when another
	// node has taken it over.
	RenewLease(ctx context.Context, node string, now time.Time) error
	// ReleaseLease gives node's lease up (clean shutdown); releasing a lease
	// node does not hold is not an error.
	ReleaseLease(ctx context.Context, node string) error

	// Snapshot reads every table in one read transaction: a consistent copy
	// taken while Portico runs.
	Snapshot(ctx context.Context) (*Snapshot, error)
	// Restore replaces every table's contents with s in one transaction:
	// on error nothing is replaced.
	Restore(ctx context.Context, s *Snapshot) error
}

// Query selects history rows, newest first.
type Query struct {
	Since, Until time.Time // zero means unbounded
	Limit        int       // 0 means 100; capped at 10,000
	Offset       int
	Search       string // substring match on the main text columns; empty matches all
}

// ConfigVersion is one stored configuration document.
type ConfigVersion struct {
	Version   int64     `json:"version"`
	Document  []byte    `json:"document,omitempty"` // YAML
	SHA256    string    `json:"sha256"`             // hex of Document
	Author    string    `json:"author"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
}

// Role is what a user may do.
type Role string

// Roles: admins change things; auditors only read.
const (
	RoleAdmin   Role = "admin"
	RoleAuditor Role = "auditor"
)

// User is an administrator account.
type User struct {
	Name         string    `json:"name"`
	PasswordHash []byte    `json:"password_hash"` // bcrypt
	Role         Role      `json:"role"`
	Disabled     bool      `json:"disabled"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// TokenKind tells a bearer API token from a browser session.
type TokenKind string

// Token kinds.
const (
	TokenAPI     TokenKind = "api"
	TokenSession TokenKind = "session"
)

// Token is an API bearer token or a login session. The secret is never
// stored, only its SHA-256.
type Token struct {
	ID        string    `json:"id"`
	Hash      []byte    `json:"hash"`
	User      string    `json:"user"`
	Kind      TokenKind `json:"kind"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"` // zero: never
}

// AuditEntry records one change and who made it.
type AuditEntry struct {
	ID     int64     `json:"id"`
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Source string    `json:"source"` // client address or "cli"
	Action string    `json:"action"` // e.g. "config.replace", "user.create"
	Target string    `json:"target"`
	Detail string    `json:"detail"`
}

// Certificate is a named certificate chain and its private key (PEM).
type Certificate struct {
	Name      string    `json:"name"`
	CertPEM   []byte    `json:"cert_pem"`
	KeyPEM    []byte    `json:"key_pem"`
	CreatedAt time.Time `json:"created_at"`
}

// TURNUser is a long-term TURN credential: Key is MD5(name:realm:password)
// as RFC 8489 §9.2.2 defines it, so the password itself is not stored.
type TURNUser struct {
	Realm     string    `json:"realm"`
	Name      string    `json:"name"`
	Key       []byte    `json:"key"`
	CreatedAt time.Time `json:"created_at"`
}

// GuardBlock is a block an administrator placed by hand: Source (an
// address or a CIDR network) is refused until ExpiresAt.
type GuardBlock struct {
	Source    string    `json:"source"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// RegistrationEvent is one step in a registration's life.
type RegistrationEvent struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Protocol  string    `json:"protocol"` // "sip" or "h323"
	AOR       string    `json:"aor"`      // address of record / alias
	Contact   string    `json:"contact"`
	Source    string    `json:"source"`    // outside address:port the flow came from
	Transport string    `json:"transport"` // udp, tcp, tls, ws, wss
	Kind      string    `json:"kind"`      // registered, refreshed, expired, rejected, unregistered
	Expires   int       `json:"expires"`   // seconds granted
	Reason    string    `json:"reason"`
	// Count is how many occurrences this row stands for when repeated
	// rejections from one source were folded into it; 0 means one.
	Count int64 `json:"count,omitempty"`
}

// CallRecord is one ended call in call history.
type CallRecord struct {
	ID          string        `json:"id"`
	Protocol    string        `json:"protocol"`  // sip or h323
	CallType    string        `json:"call_type"` // registered, guest, federation, inbound
	From        string        `json:"from"`
	To          string        `json:"to"`
	SourceAddr  string        `json:"source_addr"`
	StartedAt   time.Time     `json:"started_at"`
	AnsweredAt  time.Time     `json:"answered_at"` // zero when never answered
	EndedAt     time.Time     `json:"ended_at"`
	DurationMs  int64         `json:"duration_ms"` // answered to ended
	EndedBy     string        `json:"ended_by"`    // caller, callee, portico, admin
	Status      int           `json:"status"`      // final SIP status or Q.931 cause
	Disposition string        `json:"disposition"` // e.g. "normal", "callee busy", "policy: destination not allowed"
	Codecs      string        `json:"codecs"`
	Streams     []StreamStats `json:"streams"`
	// Count is how many calls this row stands for when repeated rejections
	// from one source were folded into it; 0 means one.
	Count int64 `json:"count,omitempty"`
}

// NodeLease names the node that runs on a store.
type NodeLease struct {
	Node      string    `json:"node"` // the node's ID, kept in its data directory
	Name      string    `json:"name"` // node.name
	Host      string    `json:"host"` // host name
	StartedAt time.Time `json:"started_at"`
	RenewedAt time.Time `json:"renewed_at"`
}

// ClusterRegistration is a registration one node of a cluster holds, as
// the node publishes it to the shared store: the AOR, the Contact the
// inside registrar was given, the endpoint's outside address and
// transport, and its times. A removal names Node, AOR and Contact only.
type ClusterRegistration struct {
	Node       string    `json:"node"`
	AOR        string    `json:"aor"`
	Contact    string    `json:"contact"`
	Source     string    `json:"source"`
	Transport  string    `json:"transport"`
	Registered time.Time `json:"registered"`
	Refreshed  time.Time `json:"refreshed"`
	Expires    time.Time `json:"expires"`
}

// StreamStats is what the media relay measured for one stream of a call.
type StreamStats struct {
	Kind        string  `json:"kind"` // audio, video, content, bfcp, fecc
	PacketsIn   uint64  `json:"packets_in"`
	PacketsOut  uint64  `json:"packets_out"`
	BytesIn     uint64  `json:"bytes_in"`
	BytesOut    uint64  `json:"bytes_out"`
	PacketsLost int64   `json:"packets_lost"`
	JitterMs    float64 `json:"jitter_ms"`
	RTTMs       float64 `json:"rtt_ms"`
}

// Event is a notable thing that happened (service up/down, store lost, failover).
type Event struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Severity  string    `json:"severity"` // info, warning, error
	Component string    `json:"component"`
	Message   string    `json:"message"`
}

// Snapshot is every row of every table: what a backup archive holds.
type Snapshot struct {
	SchemaVersion      int64               `json:"schema_version"`
	ConfigVersions     []ConfigVersion     `json:"config_versions"`
	Users              []User              `json:"users"`
	Tokens             []Token             `json:"tokens"`
	Audit              []AuditEntry        `json:"audit"`
	Certificates       []Certificate       `json:"certificates"`
	TURNUsers          []TURNUser          `json:"turn_users"`
	GuardBlocks        []GuardBlock        `json:"guard_blocks,omitempty"`
	RegistrationEvents []RegistrationEvent `json:"registration_events"`
	Calls              []CallRecord        `json:"calls"`
	Events             []Event             `json:"events"`
}
