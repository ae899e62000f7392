package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/store/sqlite"
)

func seeded(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, _ := bcrypt.GenerateFromPassword([]byte("0123456789"), bcrypt.MinCost)
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := st.CreateUser(ctx, store.User{Name: "admin", PasswordHash: hash, Role: store.RoleAdmin, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutConfig(ctx, []byte("version: 1\n"), "test", "", 0); err != nil {
		t.Fatal(err)
	}
	if err := st.PutGuardBlock(ctx, store.GuardBlock{Source: "203.0.113.0/24", Reason: "abuse", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddCall(ctx, store.CallRecord{ID: "c1", Protocol: "sip", From: "a", To: "b", StartedAt: now, EndedAt: now, Disposition: "normal"}); err != nil {
		t.Fatal(err)
	}
	return st
}

func archive(t *testing.T, st store.Store) []byte {
	var b bytes.Buffer
	if _, err := Write(context.Background(), st, &b, "test"); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// rewrite rebuilds an archive with edit applied to each entry's bytes.
func rewrite(t *testing.T, a []byte, edit func(name string, b []byte) (string, []byte)) []byte {
	gz, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	tw := tar.NewWriter(gw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		b, _ := io.ReadAll(tr)
		name, nb := edit(h.Name, b)
		if nb == nil {
			continue
		}
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(nb)), Typeflag: tar.TypeReg})
		tw.Write(nb)
	}
	tw.Close()
	gw.Close()
	return out.Bytes()
}

func TestRoundTrip(t *testing.T) {
	a := archive(t, seeded(t))
	snap, m, err := Read(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if m.SourceBackend != "sqlite" || len(snap.Users) != 1 || len(snap.Calls) != 1 || len(snap.ConfigVersions) != 1 || len(snap.GuardBlocks) != 1 {
		t.Errorf("manifest %+v snapshot counts %v", m, m.Counts)
	}
	dst, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "q.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := dst.Restore(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	calls, err := dst.Calls(context.Background(), store.Query{})
	if err != nil || len(calls) != 1 || calls[0].ID != "c1" {
		t.Errorf("restored calls %+v, %v", calls, err)
	}
	if bs, err := dst.GuardBlocks(context.Background()); err != nil || len(bs) != 1 {
		t.Errorf("restored guard blocks %+v, %v", bs, err)
	}
}

func TestRefusesBadArchives(t *testing.T) {
	good := archive(t, seeded(t))
	tests := []struct {
		name    string
		archive []byte
		want    string
	}{
		{"not gzip", []byte("hello"), "not a gzip"},
		{"truncated", good[:len(good)/2], ""},
		{"foreign tar", rewrite(t, good, func(n string, b []byte) (string, []byte) { return "etc/" + n, b }), "unexpected entry"},
		{"edited snapshot", rewrite(t, good, func(n string, b []byte) (string, []byte) {
			if n == "snapshot.json" {
				return n, bytes.Replace(b, []byte(`"c1"`), []byte(`"c2"`), 1)
			}
			return n, b
		}), "checksum"},
		{"missing snapshot", rewrite(t, good, func(n string, b []byte) (string, []byte) {
			if n == "snapshot.json" {
				return n, nil
			}
			return n, b
		}), "missing"},
		{"other format", rewrite(t, good, func(n string, b []byte) (string, []byte) {
			if n == "manifest.json" {
				return n, bytes.Replace(b, []byte(`"portico-backup"`), []byte(`"other-backup"`), 1)
			}
			return n, b
		}), "format"},
		{"future version", rewrite(t, good, func(n string, b []byte) (string, []byte) {
			if n == "manifest.json" {
				return n, bytes.Replace(b, []byte(`"format_version": 1`), []byte(`"format_version": 9`), 1)
			}
			return n, b
		}), "not readable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Read(bytes.NewReader(tc.archive))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Read = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("0123456789"), bcrypt.MinCost)
	base := func() *store.Snapshot {
		return &store.Snapshot{Users: []store.User{{Name: "admin", PasswordHash: hash, Role: store.RoleAdmin}}}
	}
	tests := []struct {
		name string
		edit func(s *store.Snapshot)
		want string
	}{
		{"no admin", func(s *store.Snapshot) { s.Users[0].Role = store.RoleAuditor }, "no enabled admin"},
		{"bad role", func(s *store.Snapshot) { s.Users[0].Role = "root" }, "unknown role"},
		{"plain password", func(s *store.Snapshot) { s.Users[0].PasswordHash = []byte("secret") }, "not bcrypt"},
		{"orphan token", func(s *store.Snapshot) { s.Tokens = []store.Token{{User: "ghost", Hash: make([]byte, 32)}} }, "does not exist"},
		{"bad config", func(s *store.Snapshot) {
			s.ConfigVersions = []store.ConfigVersion{{Version: 1, Document: []byte("version: 1\nbogus: 1\n"), SHA256: "f1bc1d7d5f2d0ac07b0a1d5cb3c3bcf2f05d4e9c2b2c1f7e1d7c2f0a6e0b4a9d"}}
		}, "checksum"},
	}
	if err := Check(base()); err != nil {
		t.Fatalf("sound snapshot refused: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(s)
			err := Check(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add([]byte("not an archive"))
	f.Fuzz(func(t *testing.T, b []byte) {
		snap, _, err := Read(bytes.NewReader(b))
		if err == nil && snap == nil {
			t.Fatal("nil snapshot without error")
		}
	})
}
