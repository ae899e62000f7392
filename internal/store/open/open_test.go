package open

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/store"
)

func TestOpen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	tests := []struct {
		name        string
		cfg         Config
		backend     string // on success
		errHas      string
		unavailable bool
	}{
		{name: "sqlite", cfg: Config{Backend: "sqlite", Path: filepath.Join(t.TempDir(), "p.db")}, backend: "sqlite"},
		{name: "default is sqlite", cfg: Config{Path: filepath.Join(t.TempDir(), "p.db")}, backend: "sqlite"},
		{name: "sqlite without path", cfg: Config{Backend: "sqlite"}, errHas: "store: sqlite backend needs a database path"},
		{name: "postgres without dsn", cfg: Config{Backend: "postgres"}, errHas: "store: postgres backend needs a DSN"},
		{name: "unknown backend", cfg: Config{Backend: "mysql"}, errHas: `store: unknown backend "mysql"`},
		{name: "postgres unreachable", cfg: Config{Backend: "postgres", DSN: fmt.Sprintf("postgres://portico:s3cret-pw@127.0.0.1:%d/portico?connect_timeout=2", port)},
			errHas: fmt.Sprintf("store: postgres at 127.0.0.1:%d unreachable: ", port), unavailable: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Open(context.Background(), tc.cfg, nil)
			if tc.errHas == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				if st.Backend() != tc.backend {
					t.Errorf("Backend() = %q, want %q", st.Backend(), tc.backend)
				}
				return
			}
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), tc.errHas) {
				t.Errorf("Open = %q, want prefix %q", err, tc.errHas)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
			if errors.Is(err, store.ErrUnavailable) != tc.unavailable {
				t.Errorf("errors.Is(ErrUnavailable) = %v, want %v", !tc.unavailable, tc.unavailable)
			}
		})
	}
}

// TestResolve: PORTICO_STORE_DSN fills an empty DSN, and without a file it
// also selects PostgreSQL; a file's backend stands.
func TestResolve(t *testing.T) {
	env := func(dsn string) func(string) string {
		return func(k string) string {
			if k == EnvDSN {
				return dsn
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name     string
		in       Config
		fromFile bool
		env      string
		want     Config
	}{
		{"no file, no env", Config{Backend: "sqlite"}, false, "", Config{Backend: "sqlite"}},
		{"no file, env", Config{Backend: "sqlite"}, false, "postgres://h/db", Config{Backend: "postgres", DSN: "postgres://h/db"}},
		{"file says sqlite", Config{Backend: "sqlite"}, true, "postgres://h/db", Config{Backend: "sqlite", DSN: "postgres://h/db"}},
		{"file has a DSN", Config{Backend: "postgres", DSN: "postgres://file/db"}, true, "postgres://env/db", Config{Backend: "postgres", DSN: "postgres://file/db"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Resolve(tc.in, tc.fromFile, env(tc.env)); got != tc.want {
				t.Errorf("Resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}
