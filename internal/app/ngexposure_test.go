package app

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-edge/portico/internal/config"
)

// TestNGListenExposure checks that a configuration opening the
// unauthenticated ng control port on a wildcard address is refused unless
// media.ng_allow or media.ng_secret restricts it.
func TestNGListenExposure(t *testing.T) {
	for _, tc := range []struct {
		name, media string
		want        string // error substring; empty: accepted
	}{
		{"wildcard alone", "ng_listen: 0.0.0.0:22222", "media.ng_allow or media.ng_secret"},
		{"wildcard with allow list", "ng_listen: 0.0.0.0:22222\n  ng_allow: [192.0.2.0/24]", ""},
		{"wildcard with secret", "ng_listen: 0.0.0.0:22222\n  ng_secret: long-shared-secret", ""},
		{"loopback", "ng_listen: 127.0.0.1:22222", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte("version: 1\ninterfaces:\n  external: {address: 127.0.0.1}\n  internal: {address: 127.0.0.1}\nmedia:\n  enabled: true\n  " + tc.media + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = buildServices(cfg, serviceDeps{log: slog.New(slog.NewTextHandler(io.Discard, nil)), reg: prometheus.NewRegistry()})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("buildServices error = %v, want %q", err, tc.want)
			}
		})
	}
}
