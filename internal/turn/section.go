package turn

import (
	"slices"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
)

// Section is the turn section of Portico's configuration document
// (docs/config.md, docs/turn.md): its YAML shape, defaults and validation.
// The service runs from the Config that Section.Config derives from it
// with the rest of the node (Env).
type Section struct {
	// Enabled turns the service on. Default false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// UDP, TCP and TLS list listener addresses (host:port). Standard ports:
	// 3478 (UDP, TCP) and 5349 (TLS). TLS on 443 comes through the access
	// proxy's demultiplexer (ALPN stun.turn). Default: none.
	UDP []string `yaml:"udp,omitempty" json:"udp,omitempty"`
	TCP []string `yaml:"tcp,omitempty" json:"tcp,omitempty"`
	TLS []string `yaml:"tls,omitempty" json:"tls,omitempty"`
	// Certificate names the certificate (see /api/v1/certificates) for TLS;
	// default: the management certificate.
	Certificate string `yaml:"certificate" json:"certificate"`
	// Realm of long-term credentials. Default "portico".
	Realm string `yaml:"realm" json:"realm"`
	// RelayAddress is given to clients as their relayed address. Default:
	// interfaces.external.public_address, else interfaces.external.address.
	RelayAddress string `yaml:"relay_address" json:"relay_address"`
	// Relay is the relay port range, apart from the media ranges.
	// Default 61000-64999.
	Relay field.PortRange `yaml:"relay" json:"relay"`
	// DefaultLifetime of an allocation (10m) and MaxAge, the cap however
	// often it is refreshed (12h).
	DefaultLifetime field.Duration `yaml:"default_lifetime" json:"default_lifetime"`
	MaxAge          field.Duration `yaml:"max_age" json:"max_age"`
	// QuotaPerUser (20) and QuotaTotal (2000) bound allocations at once.
	QuotaPerUser int `yaml:"quota_per_user" json:"quota_per_user"`
	QuotaTotal   int `yaml:"quota_total" json:"quota_total"`
	// MaxConns (10000) bounds the TCP and TLS connections open at once;
	// MaxConnsPerSource (100; negative: none) those from one IPv4 address
	// or IPv6 /64. HandshakeTimeout (10s) is how long a new connection has
	// for its TLS handshake and first STUN message.
	MaxConns          int            `yaml:"max_conns" json:"max_conns"`
	MaxConnsPerSource int            `yaml:"max_conns_per_source" json:"max_conns_per_source"`
	HandshakeTimeout  field.Duration `yaml:"handshake_timeout" json:"handshake_timeout"`
	// RatePerSecond (5) and RateBurst (20) limit allocation attempts per client IP.
	RatePerSecond float64 `yaml:"rate_per_second" json:"rate_per_second"`
	RateBurst     int     `yaml:"rate_burst" json:"rate_burst"`
	// AllowPeers are CIDRs clients may relay to despite a denial (loopback,
	// private and interfaces.internal.networks are denied by default).
	AllowPeers []string `yaml:"allow_peers,omitempty" json:"allow_peers,omitempty"`
	// DenyPeers are further denied CIDRs.
	DenyPeers []string `yaml:"deny_peers,omitempty" json:"deny_peers,omitempty"`
	// RelayToRelay lets clients relay to other allocations of this node
	// (two relay-only clients talking to each other). Default false: the
	// relay range is denied like the node's own listeners, which no
	// allow_peers entry opens.
	RelayToRelay bool `yaml:"relay_to_relay" json:"relay_to_relay"`
	// RESTSecret enables TURN REST API ephemeral credentials (coturn's
	// use-auth-secret). May come from PORTICO_TURN_SECRET instead, which
	// keeps it out of the document. Empty: only long-term users.
	RESTSecret string `yaml:"rest_secret" json:"rest_secret"`
	// RESTMaxTTL caps minted credentials. Default 24h.
	RESTMaxTTL field.Duration `yaml:"rest_max_ttl" json:"rest_max_ttl"`
}

// DefaultSection is the section with every default filled in.
func DefaultSection() Section {
	return Section{
		Realm: "portico", Relay: field.PortRange{Min: 61000, Max: 64999},
		DefaultLifetime: field.Duration(10 * time.Minute), MaxAge: field.Duration(12 * time.Hour),
		QuotaPerUser: 20, QuotaTotal: 2000, RatePerSecond: 5, RateBurst: 20,
		MaxConns: DefaultMaxConns, MaxConnsPerSource: DefaultMaxConnsPerSource, HandshakeTimeout: field.Duration(DefaultHandshakeTimeout),
		RESTMaxTTL: field.Duration(24 * time.Hour),
	}
}

// Validate checks the section on its own and returns field.Errors naming
// each bad field. What depends on other sections (a relay range over a
// media range, a listener on another service's port) is the document's
// check; what only the built service finds is reported by New, with the
// document's paths when built through NewFromSection.
func (s Section) Validate() error {
	var es field.Errors
	for _, l := range []struct {
		name  string
		addrs []string
	}{{"turn.udp", s.UDP}, {"turn.tcp", s.TCP}, {"turn.tls", s.TLS}} {
		for i, a := range l.addrs {
			es.HostPort(field.Join(l.name, i), a)
		}
	}
	if s.RelayAddress != "" {
		es.IP("turn.relay_address", s.RelayAddress)
	}
	es.PortRange("turn.relay", s.Relay)
	for i, p := range s.AllowPeers {
		es.CIDR(field.Join("turn.allow_peers", i), p)
	}
	for i, p := range s.DenyPeers {
		es.CIDR(field.Join("turn.deny_peers", i), p)
	}
	if s.Enabled && len(s.UDP)+len(s.TCP)+len(s.TLS) == 0 {
		es.Add("turn", "enabled but lists no udp, tcp or tls listener")
	}
	return es.Err()
}

// Env is what the service takes from the rest of the node.
type Env struct {
	// ExternalAddress is bound for relays; PublicAddress (static NAT) is
	// given to clients instead when the section names no RelayAddress.
	ExternalAddress, PublicAddress string
	// InsideNetworks are denied as peers (interfaces.internal.networks).
	InsideNetworks []string
	// SocketBufferKB of listener and relay sockets (media.socket_buffer_kb).
	SocketBufferKB int
	// Secret is the REST secret when the section has none
	// (PORTICO_TURN_SECRET).
	Secret string
	// Own are the node's other listeners and addresses, never relayed to.
	Own Own
}

// Config derives the service's Config from the section and env.
func (s Section) Config(env Env) Config {
	relay := s.RelayAddress
	if relay == "" {
		relay = env.PublicAddress
	}
	if relay == "" {
		relay = env.ExternalAddress
	}
	secret := s.RESTSecret
	if secret == "" {
		secret = env.Secret
	}
	return Config{
		Listen: Listen{UDP: s.UDP, TCP: s.TCP, TLS: s.TLS, SocketBufferKB: env.SocketBufferKB,
			MaxConns: s.MaxConns, MaxConnsPerSource: s.MaxConnsPerSource, HandshakeTimeout: s.HandshakeTimeout.D()},
		Realm:     s.Realm,
		Relay:     Relay{Address: relay, Bind: env.ExternalAddress, PortMin: s.Relay.Min, PortMax: s.Relay.Max},
		Lifetime:  Lifetime{Default: s.DefaultLifetime.D(), MaxAge: s.MaxAge.D()},
		Quota:     Quota{PerUser: s.QuotaPerUser, Total: s.QuotaTotal},
		RateLimit: RateLimit{PerSecond: s.RatePerSecond, Burst: s.RateBurst},
		Peers:     PeerPolicy{Inside: env.InsideNetworks, Deny: s.DenyPeers, Allow: s.AllowPeers, RelayToRelay: s.RelayToRelay},
		Auth:      Auth{Secret: secret, MaxTTL: s.RESTMaxTTL.D()},
		Own:       env.Own,
	}
}

// documentPath names, for a Config path this package reports (validation
// errors, Reload), the document field Section.Config fills it from.
var documentPath = map[string]string{
	"turn.listen.udp": "turn.udp", "turn.listen.tcp": "turn.tcp", "turn.listen.tls": "turn.tls",
	"turn.listen.socket_buffer_kb": "media.socket_buffer_kb",
	"turn.listen.max_conns":        "turn.max_conns", "turn.listen.max_conns_per_source": "turn.max_conns_per_source",
	"turn.listen.handshake_timeout": "turn.handshake_timeout",
	"turn.relay.address":            "turn.relay_address", "turn.relay.bind": "interfaces.external.address",
	"turn.lifetime.default": "turn.default_lifetime", "turn.lifetime.max_age": "turn.max_age",
	"turn.quota.per_user": "turn.quota_per_user", "turn.quota.total": "turn.quota_total",
	"turn.rate_limit.per_second": "turn.rate_per_second", "turn.rate_limit.burst": "turn.rate_burst",
	"turn.peers.allow": "turn.allow_peers", "turn.peers.deny": "turn.deny_peers", "turn.peers.inside": "interfaces.internal.networks",
	"turn.auth.secret": "turn.rest_secret", "turn.auth.max_ttl": "turn.rest_max_ttl",
}

// toDocument maps one Config path (an index suffix kept) to the document.
func toDocument(p string) string {
	base, idx, found := strings.Cut(p, "[")
	if d, ok := documentPath[base]; ok {
		if found {
			return d + "[" + idx
		}
		return d
	}
	return p
}

// NewFromSection is New for the document's section: its errors name the
// document's fields (turn.udp[0], not turn.listen.udp[0]).
func NewFromSection(s Section, env Env, deps Deps) (*Server, error) {
	srv, err := New(s.Config(env), deps)
	if err != nil {
		return nil, documentErrors(err)
	}
	return srv, nil
}

// ReloadSection is Reload for the document's section: the fields only a
// restart applies are named as in the document (turn.realm, turn.udp).
func (s *Server) ReloadSection(sec Section, env Env) (restart []string, err error) {
	restart, err = s.Reload(sec.Config(env))
	if err != nil {
		return nil, documentErrors(err)
	}
	out := make([]string, 0, len(restart))
	for _, p := range restart {
		if d := toDocument(p); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

func documentErrors(err error) error {
	es, ok := field.As(err)
	if !ok {
		return err
	}
	out := make(field.Errors, len(es))
	for i, e := range es {
		e.Path = toDocument(e.Path)
		out[i] = e
	}
	return out
}
