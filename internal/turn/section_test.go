package turn

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
)

func TestSection(t *testing.T) {
	def := DefaultSection()
	if err := def.Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Section)
		path string
	}{
		{"bad listener", func(s *Section) { s.UDP = []string{"127.0.0.1:3478", "nowhere"} }, "turn.udp[1]"},
		{"bad relay address", func(s *Section) { s.RelayAddress = "relay" }, "turn.relay_address"},
		{"privileged relay range", func(s *Section) { s.Relay.Min = 80 }, "turn.relay.port_min"},
		{"bad allow", func(s *Section) { s.AllowPeers = []string{"10.0.0.1/8"} }, "turn.allow_peers[0]"},
		{"enabled without listeners", func(s *Section) { s.Enabled = true }, "turn"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultSection()
			tc.edit(&s)
			es, ok := field.As(s.Validate())
			if !ok || es[0].Path != tc.path {
				t.Errorf("Validate = %v, want an error at %s", es, tc.path)
			}
		})
	}
}

// TestSectionConfig: the relay address falls back to the public, then the
// external address, the secret to the environment's; and errors New finds
// are named as in the document.
func TestSectionConfig(t *testing.T) {
	s := DefaultSection()
	s.UDP = []string{"127.0.0.1:3478"}
	env := Env{ExternalAddress: "192.0.2.10", Secret: "from-the-environment"}
	c := s.Config(env)
	if c.Relay.Address != "192.0.2.10" || c.Relay.Bind != "192.0.2.10" || c.Auth.Secret != "from-the-environment" {
		t.Errorf("Config = relay %s bind %s secret %q", c.Relay.Address, c.Relay.Bind, c.Auth.Secret)
	}
	env.PublicAddress = "198.51.100.7"
	s.RESTSecret = "in-the-document-1"
	if c := s.Config(env); c.Relay.Address != "198.51.100.7" || c.Auth.Secret != "in-the-document-1" {
		t.Errorf("Config = relay %s secret %q", c.Relay.Address, c.Auth.Secret)
	}
	s.TLS = []string{"127.0.0.1:5349"} // no certificate source in Deps
	_, err := NewFromSection(s, env, Deps{})
	if es, ok := field.As(err); !ok || es[0].Path != "turn.tls" {
		t.Errorf("NewFromSection = %v, want an error at turn.tls", err)
	}
}

// TestSectionStreamLimits: the stream limits reach the listeners' Config,
// are checked under their document names and, being the listeners', need
// a restart, named as in the document.
func TestSectionStreamLimits(t *testing.T) {
	s := DefaultSection()
	s.TCP = []string{"127.0.0.1:0"}
	env := Env{ExternalAddress: "127.0.0.1"}
	if l := s.Config(env).Listen; l.MaxConns != DefaultMaxConns || l.MaxConnsPerSource != DefaultMaxConnsPerSource || l.HandshakeTimeout != DefaultHandshakeTimeout {
		t.Errorf("default limits = %d, %d, %v", l.MaxConns, l.MaxConnsPerSource, l.HandshakeTimeout)
	}
	bad := s
	bad.MaxConns = -1
	if _, err := NewFromSection(bad, env, Deps{}); err == nil || !strings.Contains(err.Error(), "turn.max_conns") {
		t.Errorf("max_conns -1: %v, want an error at turn.max_conns", err)
	}
	srv, err := NewFromSection(s, env, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	next := s
	next.MaxConnsPerSource, next.HandshakeTimeout, next.MaxConns = 5, field.Duration(time.Second), 7
	restart, err := srv.ReloadSection(next, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"turn.max_conns", "turn.max_conns_per_source", "turn.handshake_timeout"} {
		if !slices.Contains(restart, want) {
			t.Errorf("restart = %v, want %s", restart, want)
		}
	}
}
