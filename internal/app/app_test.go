package app

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/portico-edge/portico/internal/store/sqlite"
)

// TestFirstStartAdmin: with no password given, a random one is printed once
// and works; a second start creates nothing and prints nothing.
func TestFirstStartAdmin(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out bytes.Buffer
	if err := ensureAdmin(ctx, st, "", &out, "--data /var/lib/portico"); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`created user "admin" with password (\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no password printed: %q", out.String())
	}
	if !strings.Contains(out.String(), "portico user passwd admin --data /var/lib/portico") {
		t.Fatalf("the reset command does not name the store's data directory: %q", out.String())
	}
	u, err := st.User(ctx, "admin")
	if err != nil || bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(m[1])) != nil {
		t.Fatalf("printed password does not log in: %v", err)
	}
	out.Reset()
	if err := ensureAdmin(ctx, st, "", &out, "--data /var/lib/portico"); err != nil || out.Len() != 0 {
		t.Fatalf("second start: %v %q", err, out.String())
	}
	if err := ensureAdmin(ctx, st, "short", &out, "--data /var/lib/portico"); err != nil {
		t.Fatalf("an existing admin makes the env password irrelevant: %v", err)
	}
}

func TestWeakAdminPasswordRefused(t *testing.T) {
	ctx := context.Background()
	st, _ := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), nil)
	defer st.Close()
	if err := ensureAdmin(ctx, st, "short", &bytes.Buffer{}, "--data /var/lib/portico"); err == nil {
		t.Fatal("a 5-character PORTICO_ADMIN_PASSWORD was accepted")
	}
}
