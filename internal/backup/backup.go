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
	"bytes"
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
	maxSnapshot   = 1 << 30
	maxManifest   = 64 << 10
)

// ErrInvalid wraps every reason an archive is refused.
var ErrInvalid = errors.New("backup: invalid archive")

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
		"registration_events": len(s.RegistrationEvents), "calls": len(s.Calls), "events": len(s.Events),
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Read reads and checks a whole archive. It returns ErrInvalid (wrapped with
// the reason) for anything that is not a sound Portico archive.
func Read(r io.Reader) (*store.Snapshot, Manifest, error) {
	var m Manifest
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, m, invalid("not a gzip file: %v", err)
	}
	tr := tar.NewReader(gz)
	var manifest, snapshot []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, m, invalid("broken tar stream: %v", err)
		}
		var dst *[]byte
		limit := int64(maxManifest)
		switch h.Name {
		case "manifest.json":
			dst = &manifest
		case "snapshot.json":
			dst, limit = &snapshot, maxSnapshot
		default:
			return nil, m, invalid("unexpected entry %q", h.Name)
		}
		if *dst != nil {
			return nil, m, invalid("entry %q appears twice", h.Name)
		}
		if h.Typeflag != tar.TypeReg || h.Size > limit {
			return nil, m, invalid("entry %q is not a regular file within %d bytes", h.Name, limit)
		}
		b, err := io.ReadAll(io.LimitReader(tr, limit+1))
		if err != nil {
			return nil, m, invalid("read %q: %v", h.Name, err)
		}
		*dst = b
	}
	if manifest == nil || snapshot == nil {
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
	sum := sha256.Sum256(snapshot)
	if hex.EncodeToString(sum[:]) != m.SnapshotSHA256 {
		return nil, m, invalid("snapshot checksum does not match the manifest (corrupt or edited)")
	}
	var snap store.Snapshot
	dec := json.NewDecoder(bytes.NewReader(snapshot))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&snap); err != nil {
		return nil, m, invalid("snapshot: %v", err)
	}
	if err := Check(&snap); err != nil {
		return nil, m, err
	}
	return &snap, m, nil
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
		if _, err := config.Parse(newest.Document); err != nil {
			return invalid("config version %d is not valid for this build: %v", newest.Version, err)
		}
	}
	return nil
}
