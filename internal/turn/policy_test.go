package turn

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestPeerPolicy(t *testing.T) {
	tests := []struct {
		name   string
		policy PeerPolicy
		peer   string
		want   bool
	}{
		{"public v4", PeerPolicy{}, "9.9.9.9", true},
		{"documentation 192.0.2", PeerPolicy{}, "192.0.2.1", false},
		{"documentation 198.51.100", PeerPolicy{}, "198.51.100.7", false},
		{"documentation 203.0.113", PeerPolicy{}, "203.0.113.9", false},
		{"documentation v6", PeerPolicy{}, "2001:db8::1", false},
		{"mapped documentation", PeerPolicy{}, "::ffff:203.0.113.9", false},
		{"public v6", PeerPolicy{}, "2a00:1450::1", true},
		{"rfc1918 10", PeerPolicy{}, "10.1.2.3", false},
		{"rfc1918 172", PeerPolicy{}, "172.31.255.255", false},
		{"172.32 is public", PeerPolicy{}, "172.32.0.1", true},
		{"rfc1918 192.168", PeerPolicy{}, "192.168.0.1", false},
		{"loopback", PeerPolicy{}, "127.0.0.1", false},
		{"loopback v6", PeerPolicy{}, "::1", false},
		{"mapped loopback", PeerPolicy{}, "::ffff:127.0.0.1", false},
		{"mapped private", PeerPolicy{}, "::ffff:10.0.0.1", false},
		{"nat64 private", PeerPolicy{}, "64:ff9b::a00:1", false},
		{"nat64 public", PeerPolicy{}, "64:ff9b::909:909", true},
		{"nat64 documentation", PeerPolicy{}, "64:ff9b::c633:6407", false},
		{"link-local", PeerPolicy{}, "169.254.169.254", false},
		{"link-local v6", PeerPolicy{}, "fe80::1", false},
		{"ula", PeerPolicy{}, "fd00::1", false},
		{"cgnat", PeerPolicy{}, "100.64.0.1", false},
		{"multicast", PeerPolicy{}, "239.1.1.1", false},
		{"broadcast", PeerPolicy{}, "255.255.255.255", false},
		{"unspecified", PeerPolicy{}, "0.0.0.0", false},
		{"inside public range", PeerPolicy{Inside: []string{"198.51.100.0/24"}}, "198.51.100.7", false},
		{"deny single address", PeerPolicy{Deny: []string{"198.51.100.7"}}, "198.51.100.7", false},
		{"allow loopback", PeerPolicy{Allow: []string{"127.0.0.0/8"}}, "127.0.0.1", true},
		{"allow more specific than builtin", PeerPolicy{Allow: []string{"10.9.0.0/16"}}, "10.9.1.1", true},
		{"allow does not widen", PeerPolicy{Allow: []string{"10.9.0.0/16"}}, "10.8.1.1", false},
		{"inside beats equal allow", PeerPolicy{Inside: []string{"10.9.0.0/16"}, Allow: []string{"10.9.0.0/16"}}, "10.9.1.1", false},
		{"more specific inside beats allow", PeerPolicy{Inside: []string{"10.9.1.0/24"}, Allow: []string{"10.0.0.0/8"}}, "10.9.1.1", false},
		{"allow hole in inside", PeerPolicy{Inside: []string{"10.0.0.0/8"}, Allow: []string{"10.9.1.0/24"}}, "10.9.1.1", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, errs := newPeerPolicy(tc.policy)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if got := p.permits(netip.MustParseAddr(tc.peer)); got != tc.want {
				t.Errorf("permits(%s) = %v, want %v", tc.peer, got, tc.want)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Config{Relay: Relay{Address: "192.0.2.10"}}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no relay address", func(c *Config) { c.Relay.Address = "" }, "turn.relay.address: required"},
		{"bad relay address", func(c *Config) { c.Relay.Address = "host" }, "turn.relay.address:"},
		{"bind family", func(c *Config) { c.Relay.Bind = "::1" }, "turn.relay.bind:"},
		{"port min", func(c *Config) { c.Relay.PortMin, c.Relay.PortMax = 0, 10 }, "turn.relay.port_min: 0 is not a port"},
		{"port order", func(c *Config) { c.Relay.PortMin, c.Relay.PortMax = 5000, 4000 }, "turn.relay.port_max: 4000 is below"},
		{"listen", func(c *Config) { c.Listen.TCP = []string{"127.0.0.1:1", "nope"} }, "turn.listen.tcp[1]:"},
		{"lifetime", func(c *Config) { c.Lifetime.Default = 2 * time.Hour }, "turn.lifetime.default:"},
		{"short secret", func(c *Config) { c.Auth.Secret = "short" }, "turn.auth.secret:"},
		{"peer cidr", func(c *Config) { c.Peers.Allow = []string{"10.0.0.0/33"} }, "turn.peers.allow[0]:"},
		{"sockets", func(c *Config) { c.Listen.Sockets = 1000 }, "turn.listen.sockets:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			_, err := New(c, Deps{})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			var fe Errors
			if err != nil && !errors.As(err, &fe) {
				t.Errorf("error %T is not Errors", err)
			}
		})
	}
	if _, err := New(Config{Relay: Relay{Address: "192.0.2.1"}, Listen: Listen{TLS: []string{"127.0.0.1:5349"}}}, Deps{}); err == nil ||
		!strings.Contains(err.Error(), "turn.listen.tls:") {
		t.Errorf("TLS without certificate: %v", err)
	}
}

func TestRESTCredentials(t *testing.T) {
	// Vector computed independently: printf '1700000000:bob' |
	// openssl dgst -sha1 -hmac 'north' -binary | base64
	user, pass := RESTCredentials("north", "bob", time.Unix(1700000000, 0))
	if user != "1700000000:bob" || pass != restVector {
		t.Errorf("got %q %q", user, pass)
	}
	s, err := New(Config{Relay: Relay{Address: "192.0.2.1"}, Auth: Auth{Secret: "0123456789abcdef", MaxTTL: time.Hour}},
		Deps{Now: func() time.Time { return time.Unix(1000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	u, p, exp := s.MintCredentials("x", 48*time.Hour)
	if u != "4600:x" || exp.Unix() != 4600 || p != RESTPassword("0123456789abcdef", u) {
		t.Errorf("MintCredentials capped = %q %q %v", u, p, exp.Unix())
	}
	s2, _ := New(Config{Relay: Relay{Address: "192.0.2.1"}}, Deps{})
	if u, _, _ := s2.MintCredentials("x", time.Hour); u != "" {
		t.Errorf("minted %q without a secret", u)
	}
}

const restVector = "7tNSWpJ3gOxGfEgOjt+kaWhBC20="
