package app

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/config"
)

// TestSyncService: ha.sync builds the live state link as a service, with
// its secret inline or from a file; a missing or short secret is refused
// with its field.
func TestSyncService(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "sync.key")
	os.WriteFile(good, []byte("0123456789abcdef0123456789abcdef0123\n"), 0o600)
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("short\n"), 0o600)
	for _, tc := range []struct {
		name, sync string
		want       string // error substring; empty: built with the service
	}{
		{"inline", "{listen: 127.0.0.1:7946, peer: 127.0.0.2:7946, secret: 0123456789abcdef0123456789abcdef}", ""},
		{"file", "{peer: 127.0.0.2:7946, secret_file: " + good + "}", ""},
		{"short file", "{peer: 127.0.0.2:7946, secret_file: " + short + "}", "ha.sync.secret_file"},
		{"missing file", "{peer: 127.0.0.2:7946, secret_file: " + filepath.Join(dir, "none") + "}", "ha.sync.secret_file"},
		{"no secret", "{peer: 127.0.0.2:7946}", "ha.sync.secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte("version: 1\ninterfaces:\n  external: {address: 127.0.0.1}\n  internal: {address: 127.0.0.1}\nmedia:\n  enabled: true\nha:\n  sync: " + tc.sync + "\n"))
			if err == nil {
				var b *built
				b, err = buildServices(cfg, serviceDeps{log: slog.New(slog.NewTextHandler(io.Discard, nil)), reg: prometheus.NewRegistry()})
				if err == nil {
					defer b.close()
					found := false
					for _, s := range b.list {
						found = found || s.name == "ha-sync"
					}
					if !found {
						t.Fatal("no ha-sync service")
					}
				}
			}
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}
