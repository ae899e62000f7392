// Package backup writes and reads Portico's backup archive: a gzip'd tar
// holding manifest.json and snapshot.json (every row of every table, taken as
// one consistent snapshot). An archive is checked whole — format, checksum,
// schema, every record — before anything is replaced, so a corrupt or foreign
// file never costs the running node its data. Because the snapshot is
// backend-neutral JSON, a backup taken on SQLite restores into PostgreSQL and
// back.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/store"
)

// Format identifies Portico archives; FormatVersion is this build's layout.
const (
	Format        = "portico-backup"
	FormatVersion = 1
	maxManifest   = 64 << 10
)

// ErrInvalid wraps every reason an archive is refused; ErrTooLarge also
// wraps those past a size limit.
var (
	ErrInvalid  = errors.New("backup: invalid archive")
	ErrTooLarge = errors.New("too large")
)

// Manifest describes an archive.
type Manifest struct {
	Format         string         `json:"format"`
	FormatVersion  int            `json:"format_version"`
	CreatedAt      time.Time      `json:"created_at"`
	PorticoVersion string         `json:"portico_version"`
	SourceBackend  string         `json:"source_backend"`
	SnapshotSHA256 string         `json:"snapshot_sha256"`
	Counts         map[string]int `json:"counts"`
}

// Write takes a snapshot of st and writes the archive to w.
func Write(ctx context.Context, st store.Store, w io.Writer, version string) (Manifest, error) {
	snap, err := st.Snapshot(ctx)
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: snapshot: %w", err)
	}
	body, err := json.Marshal(snap)
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: encode snapshot: %w", err)
	}
	sum := sha256.Sum256(body)
	m := Manifest{
		Format: Format, FormatVersion: FormatVersion, CreatedAt: time.Now().UTC(),
		PorticoVersion: version, SourceBackend: st.Backend(), SnapshotSHA256: hex.EncodeToString(sum[:]),
		Counts: counts(snap),
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name string
		data []byte
	}{{"manifest.json", mb}, {"snapshot.json", body}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.data)), ModTime: m.CreatedAt, Typeflag: tar.TypeReg}); err != nil {
			return Manifest{}, fmt.Errorf("backup: write: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return Manifest{}, fmt.Errorf("backup: write: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return Manifest{}, fmt.Errorf("backup: write: %w", err)
	}
	if err := gz.Close(); err != nil {
		return Manifest{}, fmt.Errorf("backup: write: %w", err)
	}
	return m, nil
}

func counts(s *store.Snapshot) map[string]int {
	return map[string]int{
		"config_versions": len(s.ConfigVersions), "users": len(s.Users), "tokens": len(s.Tokens),
		"audit": len(s.Audit), "certificates": len(s.Certificates), "turn_users": len(s.TURNUsers),
		"guard_blocks":        len(s.GuardBlocks),
		"registration_events": len(s.RegistrationEvents), "calls": len(s.Calls), "events": len(s.Events),
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Limits bound what Read takes from an archive, decompressed. The archive
// is read as a stream: the snapshot's records are decoded one at a time
// while its checksum is computed, so reading costs about the decoded
// records, and an entry or a stream past its limit is refused as soon as
// its header (or the running count) shows it.
type Limits struct {
	// MaxSnapshot caps snapshot.json. Default DefaultMaxSnapshot.
	MaxSnapshot int64
	// MaxTotal caps the whole decompressed tar stream. Default MaxSnapshot
	// plus 1 MiB (the manifest and the tar framing).
	MaxTotal int64
}

// DefaultMaxSnapshot is the default cap of a decompressed snapshot: several
// hundred thousand history rows. `portico restore --max-snapshot-mb` raises it.
const DefaultMaxSnapshot = 256 << 20

func (l Limits) withDefaults() Limits {
	if l.MaxSnapshot <= 0 {
		l.MaxSnapshot = DefaultMaxSnapshot
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = l.MaxSnapshot + 1<<20
	}
	return l
}

// cappedReader fails once more than max bytes have come through.
type cappedReader struct {
	r        io.Reader
	n, max   int64
	exceeded bool
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n >= c.max+1 {
		c.exceeded = true
		return 0, fmt.Errorf("%w: the archive decompresses to more than the limit of %d bytes", ErrTooLarge, c.max)
	}
	p = p[:min(int64(len(p)), c.max+1-c.n)]
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Read reads and checks a whole archive within the default Limits.
func Read(r io.Reader) (*store.Snapshot, Manifest, error) { return ReadLimited(r, Limits{}) }

// ReadLimited reads and checks a whole archive. It returns ErrInvalid
// (wrapped with the reason) for anything that is not a sound Portico
// archive, and also ErrTooLarge for one past l.
func ReadLimited(r io.Reader, l Limits) (*store.Snapshot, Manifest, error) {
	l = l.withDefaults()
	var m Manifest
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, m, invalid("not a gzip file: %v", err)
	}
	total := &cappedReader{r: gz, max: l.MaxTotal}
	tr := tar.NewReader(total)
	var manifest []byte
	var snap *store.Snapshot
	var sum []byte
	var decodeErr error
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if total.exceeded {
				return nil, m, fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			return nil, m, invalid("broken tar stream: %v", err)
		}
		limit := int64(maxManifest)
		switch h.Name {
		case "manifest.json":
			if manifest != nil {
				return nil, m, invalid("entry %q appears twice", h.Name)
			}
		case "snapshot.json":
			if snap != nil {
				return nil, m, invalid("entry %q appears twice", h.Name)
			}
			limit = l.MaxSnapshot
		default:
			return nil, m, invalid("unexpected entry %q", h.Name)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, m, invalid("entry %q is not a regular file", h.Name)
		}
		if h.Size > limit {
			return nil, m, fmt.Errorf("%w: %w: entry %q is %d bytes decompressed, past the limit of %d bytes", ErrInvalid, ErrTooLarge, h.Name, h.Size, limit)
		}
		if h.Name == "manifest.json" {
			if manifest, err = io.ReadAll(tr); err != nil {
				return nil, m, readErr(h.Name, err, total)
			}
			continue
		}
		// The snapshot is decoded as it streams past the hash, never held
		// as raw bytes.
		hash := sha256.New()
		in := io.TeeReader(tr, hash)
		snap = &store.Snapshot{}
		var counts map[string]int
		if manifest != nil { // written first: its counts size the slices
			var pre Manifest
			if json.Unmarshal(manifest, &pre) == nil {
				counts = pre.Counts
			}
		}
		decodeErr = decodeSnapshot(json.NewDecoder(in), snap, counts, h.Size)
		if _, err := io.Copy(io.Discard, in); err != nil {
			return nil, m, readErr(h.Name, err, total)
		}
		sum = hash.Sum(nil)
	}
	if manifest == nil || snap == nil {
		return nil, m, invalid("manifest.json or snapshot.json missing")
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, m, invalid("manifest: %v", err)
	}
	if m.Format != Format {
		return nil, m, invalid("format %q is not %q", m.Format, Format)
	}
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		return nil, m, invalid("format version %d is not readable by this build (reads 1..%d)", m.FormatVersion, FormatVersion)
	}
	if hex.EncodeToString(sum) != m.SnapshotSHA256 {
		return nil, m, invalid("snapshot checksum does not match the manifest (corrupt or edited)")
	}
	if decodeErr != nil {
		return nil, m, invalid("snapshot: %v", decodeErr)
	}
	if err := Check(snap); err != nil {
		return nil, m, err
	}
	return snap, m, nil
}

func readErr(name string, err error, total *cappedReader) error {
	if total.exceeded {
		return fmt.Errorf("%w: read %q: %w", ErrInvalid, name, err)
	}
	return invalid("read %q: %v", name, err)
}

// decodeSnapshot decodes the snapshot object one record at a time, so the
// decoder never buffers more than one record. Unknown fields are refused.
// counts (the manifest's, untrusted) presize the slices, within what size
// bytes of JSON can hold.
func decodeSnapshot(dec *json.Decoder, s *store.Snapshot, counts map[string]int, size int64) error {
	dec.DisallowUnknownFields()
	hint := func(table string) int { return int(min(int64(max(counts[table], 0)), size/minRecord)) }
	fields := map[string]func() error{
		"schema_version":      func() error { return dec.Decode(&s.SchemaVersion) },
		"config_versions":     func() error { return decodeArray(dec, &s.ConfigVersions, hint("config_versions")) },
		"users":               func() error { return decodeArray(dec, &s.Users, hint("users")) },
		"tokens":              func() error { return decodeArray(dec, &s.Tokens, hint("tokens")) },
		"audit":               func() error { return decodeArray(dec, &s.Audit, hint("audit")) },
		"certificates":        func() error { return decodeArray(dec, &s.Certificates, hint("certificates")) },
		"turn_users":          func() error { return decodeArray(dec, &s.TURNUsers, hint("turn_users")) },
		"guard_blocks":        func() error { return decodeArray(dec, &s.GuardBlocks, hint("guard_blocks")) },
		"registration_events": func() error { return decodeArray(dec, &s.RegistrationEvents, hint("registration_events")) },
		"calls":               func() error { return decodeArray(dec, &s.Calls, hint("calls")) },
		"events":              func() error { return decodeArray(dec, &s.Events, hint("events")) },
	}
	if err := delim(dec, '{'); err != nil {
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		f := fields[key]
		if f == nil {
			return fmt.Errorf("unknown field %q", key)
		}
		if seen[key] {
			return fmt.Errorf("field %q appears twice", key)
		}
		seen[key] = true
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return delim(dec, '}')
}

// minRecord is fewer bytes of JSON than any record takes.
const minRecord = 64

func decodeArray[T any](dec *json.Decoder, dst *[]T, hint int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil { // null
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("want an array, not %v", tok)
	}
	*dst = make([]T, 0, hint)
	for dec.More() {
		var v T
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("[%d]: %w", len(*dst), err)
		}
		*dst = append(*dst, v)
	}
	return delim(dec, ']')
}

func delim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %v, not %v", want, tok)
	}
	return nil
}

// Check verifies that a snapshot's records are sound: unique keys, known
// roles, bcrypt hashes, and a newest configuration that this build accepts.
func Check(s *store.Snapshot) error {
	users := map[string]bool{}
	admins := 0
	for i, u := range s.Users {
		if u.Name == "" || users[u.Name] {
			return invalid("users[%d]: empty or duplicate name %q", i, u.Name)
		}
		users[u.Name] = true
		if u.Role != store.RoleAdmin && u.Role != store.RoleAuditor {
			return invalid("users[%d] %q: unknown role %q", i, u.Name, u.Role)
		}
		if len(u.PasswordHash) < 59 || u.PasswordHash[0] != '$' {
			return invalid("users[%d] %q: password hash is not bcrypt", i, u.Name)
		}
		if u.Role == store.RoleAdmin && !u.Disabled {
			admins++
		}
	}
	if admins == 0 {
		return invalid("no enabled admin user: restoring it would lock everyone out")
	}
	for i, t := range s.Tokens {
		if !users[t.User] {
			return invalid("tokens[%d]: user %q does not exist", i, t.User)
		}
		if len(t.Hash) != sha256.Size {
			return invalid("tokens[%d]: hash is not SHA-256", i)
		}
	}
	var newest *store.ConfigVersion
	seen := map[int64]bool{}
	for i := range s.ConfigVersions {
		v := &s.ConfigVersions[i]
		if v.Version <= 0 || seen[v.Version] {
			return invalid("config_versions[%d]: bad or duplicate version %d", i, v.Version)
		}
		seen[v.Version] = true
		sum := sha256.Sum256(v.Document)
		if hex.EncodeToString(sum[:]) != v.SHA256 {
			return invalid("config version %d: document does not match its checksum", v.Version)
		}
		if newest == nil || v.Version > newest.Version {
			newest = v
		}
	}
	if newest != nil {
		if err := checkConfig(newest.Document); err != nil {
			return invalid("config version %d is not valid for this build: %v", newest.Version, err)
		}
	}
	return nil
}

// checkConfig parses a restored configuration. A PostgreSQL node usually
// takes its DSN from PORTICO_STORE_DSN, so its documents name no DSN;
// whether one is needed depends on the node that restores, whose own file
// and environment choose its store, not on the archive. So a missing
// store.dsn is not held against the archive.
func checkConfig(doc []byte) error {
	_, err := config.Parse(doc)
	es, ok := config.AsErrors(err)
	if !ok {
		return err
	}
	var rest config.Errors
	for _, e := range es {
		if e.Path != "store.dsn" {
			rest = append(rest, e)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return rest
}
