package turn

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
)

// Config configures the STUN/TURN service. The zero value of a field means
// its default, stated in the field comment. New validates it; errors name the
// field path, e.g. "turn.relay.port_min: 0 is not a port".
type Config struct {
	// Listen holds the addresses served. At least one listener, or sockets
	// handed to Serve/HandleConn, is needed for the service to be useful.
	Listen Listen

	// Realm is the long-term credential realm (RFC 8489 §9.2). Default
	// "portico".
	Realm string

	// Relay configures the relayed transport addresses handed to clients.
	Relay Relay

	// Lifetime bounds allocation lifetimes.
	Lifetime Lifetime

	// Quota bounds the number of allocations.
	Quota Quota

	// RateLimit bounds authenticated allocation attempts per client IP.
	RateLimit RateLimit

	// Peers is the peer address policy applied to CreatePermission,
	// ChannelBind and Connect (RFC 8656 §21.3).
	Peers PeerPolicy

	// Auth configures the TURN REST API ephemeral credentials.
	Auth Auth

	// Own names the node's other listening sockets and addresses, which no
	// client may reach through a relay.
	Own Own

	// Software is sent in the SOFTWARE attribute. Default: none.
	Software string
}

// Listen lists the listener addresses ("host:port"). Standard ports are
// 3478 for UDP and TCP, 5349 for TLS and DTLS. Default: none of each.
type Listen struct {
	// UDP addresses; each is served by Sockets SO_REUSEPORT sockets.
	UDP []string
	// TCP addresses (plain STUN/TURN over TCP, RFC 8656 §3.1).
	TCP []string
	// TLS addresses. Needs Deps.GetCertificate. ALPN "stun.turn" and
	// "stun.nat-discovery" are offered (RFC 7443).
	TLS []string
	// DTLS addresses (UDP). Needs Deps.GetCertificate.
	DTLS []string
	// Sockets is how many SO_REUSEPORT sockets serve each UDP address with a
	// fixed port, spreading clients over cores by the kernel's 4-tuple hash.
	// Default 1. With more, an EVEN-PORT reservation (RFC 8656 §14.6) is
	// only honoured when the client's second Allocate reaches the same
	// socket as its first: clients that pair RTP/RTCP relays that way (not
	// browsers) may get 508.
	Sockets int
	// SocketBufferKB sets the receive and send buffers of listener and relay
	// UDP sockets (capped by net.core.rmem_max/wmem_max). Default 4096.
	SocketBufferKB int
	// MaxConns bounds open stream connections (TCP, TLS, DTLS and handed
	// over); past it new ones are closed at once. Default 10000.
	MaxConns int
	// IdleTimeout closes a stream connection on which no Allocate or
	// ConnectionBind succeeded within this time (STUN binding only, or
	// nothing at all), so idle connections cannot hold listen.max_conns.
	// Default 30s. Negative: never. A connection that carries an
	// allocation is never idle, however quiet.
	IdleTimeout time.Duration
	// MaxConnsPerSource bounds the TCP and TLS connections open at once
	// from one client IPv4 address or IPv6 /64; past it new ones are reset
	// at once. Default 100. Negative: no limit.
	MaxConnsPerSource int
	// HandshakeTimeout is how long a new TCP or TLS connection has to
	// finish its TLS handshake and send its first STUN message before it
	// is closed. Default 10s. Negative: no limit.
	HandshakeTimeout time.Duration
}

// Relay configures the relay side.
type Relay struct {
	// Address is the IP given to clients in XOR-RELAYED-ADDRESS: the
	// external address of the node. Required.
	Address string
	// Bind is the local IP relay sockets bind to, when it differs from
	// Address (1:1 NAT in front of the node). Default: Address.
	Bind string
	// PortMin and PortMax bound the relay ports, inclusive. Keep this range
	// apart from the SIP/H.323 media ranges. Defaults 61000 and 64999.
	PortMin int
	PortMax int
}

// Lifetime bounds allocations.
type Lifetime struct {
	// Default is granted when a client asks for no LIFETIME, and the
	// permission and channel lifetimes are derived from it. Default 10m
	// (RFC 8656 §7.2). Clients may ask for up to one hour per refresh.
	Default time.Duration
	// MaxAge closes an allocation this long after its creation however often
	// it is refreshed. Default 12h. Negative: no cap.
	MaxAge time.Duration
}

// Quota bounds allocations; exceeding it yields 486 Allocation Quota Reached.
type Quota struct {
	// PerUser is the most allocations one user (the user part of REST
	// credentials) may hold at once. Default 20. Negative: no limit.
	PerUser int
	// Total is the most allocations at once. Default 2000. Negative: no limit
	// (the relay port range still bounds UDP allocations).
	Total int
}

// RateLimit is a token bucket per client IP on authenticated Allocate
// requests; a request over the limit gets 486.
type RateLimit struct {
	// PerSecond is the refill rate. Default 5. Negative: no limit.
	PerSecond float64
	// Burst is the bucket size. Default 20.
	Burst int
}

// PeerPolicy decides which peer addresses a client may relay to. A peer is
// judged by the most specific matching prefix among Allow and the denied
// prefixes (built-in, Inside, Deny); between equal prefixes Allow beats a
// built-in one and Inside/Deny beat Allow; no match allows.
// Built-in denied prefixes: unspecified, loopback, link-local, RFC 1918,
// RFC 6598 shared, benchmarking, documentation (RFC 5737, RFC 3849),
// multicast, broadcast, IPv6 ULA, link-local, site-local and multicast, and
// IPv4-mapped or NAT64 forms of all of them.
type PeerPolicy struct {
	// Inside lists the enterprise's networks (CIDR); always denied unless a
	// more specific Allow prefix names them.
	Inside []string
	// Deny lists further denied prefixes (CIDR).
	Deny []string
	// Allow lists prefixes (CIDR) that may be relayed to despite a less
	// specific denial, e.g. "127.0.0.0/8" for loopback tests. It never
	// opens the node's own listeners (see Own).
	Allow []string
	// RelayToRelay lets a client relay to the relay port range of this
	// node, i.e. to another allocation (two relay-only clients of this
	// node talking to each other). Default false: denied like the node's
	// own listeners, so that allocations cannot be chained or looped.
	RelayToRelay bool
}

// Own lists what the node itself listens on besides this service. A
// client may never relay to any of it, nor to this service's own listeners
// and relay port range (which are added automatically), whatever
// PeerPolicy.Allow says: RFC 8656 §21.3. The check is by transport address
// (IP and port): the node's addresses stay valid peers on other ports, as
// its media relay must be reachable from TURN clients.
type Own struct {
	// Listeners are "ip:port" of every socket other Portico services listen
	// on (SIP, management, access proxy, media control, ...). An
	// unspecified IP ("0.0.0.0:5060", "[::]:443") stands for that port on
	// every address of the node, loopback included.
	Listeners []string
	// Addresses are further IPs of the node (virtual IPs, NAT addresses)
	// on which unspecified listeners are reached; interface addresses are
	// read at start and on Reload.
	Addresses []string
}

// Auth configures ephemeral credentials (TURN REST API): the username is
// "expiry-unix-seconds:user" and the password base64(HMAC-SHA1(secret,
// username)). Users without the prefix are long-term users from Deps.Users.
type Auth struct {
	// Secret is the shared secret. Empty (default): REST credentials off.
	Secret string
	// OldSecrets are still accepted (not used to mint) during rotation.
	OldSecrets []string
	// MaxTTL refuses credentials whose expiry lies further ahead, and caps
	// MintCredentials. Default 24h.
	MaxTTL time.Duration
}

// Defaults.
const (
	DefaultRealm             = "portico"
	DefaultPortMin           = 61000
	DefaultPortMax           = 64999
	DefaultLifetime          = 10 * time.Minute
	DefaultMaxAge            = 12 * time.Hour
	DefaultQuotaUser         = 20
	DefaultQuotaTotal        = 2000
	DefaultRatePerSec        = 5
	DefaultRateBurst         = 20
	DefaultMaxTTL            = 24 * time.Hour
	DefaultSocketBufferKB    = 4096
	DefaultMaxConns          = 10000
	DefaultIdleTimeout       = 30 * time.Second
	DefaultMaxConnsPerSource = 100
	DefaultHandshakeTimeout  = 10 * time.Second
	maxClientLifetime        = time.Hour
	maxListenSockets         = 64
	minRequestLifetime       = time.Minute
)

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.Listen.Sockets == 0 {
		c.Listen.Sockets = 1
	}
	if c.Listen.SocketBufferKB == 0 {
		c.Listen.SocketBufferKB = DefaultSocketBufferKB
	}
	if c.Listen.MaxConns == 0 {
		c.Listen.MaxConns = DefaultMaxConns
	}
	if c.Listen.IdleTimeout == 0 {
		c.Listen.IdleTimeout = DefaultIdleTimeout
	}
	if c.Listen.MaxConnsPerSource == 0 {
		c.Listen.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if c.Listen.HandshakeTimeout == 0 {
		c.Listen.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.Relay.Bind == "" {
		c.Relay.Bind = c.Relay.Address
	}
	if c.Relay.PortMin == 0 && c.Relay.PortMax == 0 {
		c.Relay.PortMin, c.Relay.PortMax = DefaultPortMin, DefaultPortMax
	}
	if c.Lifetime.Default == 0 {
		c.Lifetime.Default = DefaultLifetime
	}
	if c.Lifetime.MaxAge == 0 {
		c.Lifetime.MaxAge = DefaultMaxAge
	}
	if c.Quota.PerUser == 0 {
		c.Quota.PerUser = DefaultQuotaUser
	}
	if c.Quota.Total == 0 {
		c.Quota.Total = DefaultQuotaTotal
	}
	if c.RateLimit.PerSecond == 0 {
		c.RateLimit.PerSecond = DefaultRatePerSec
	}
	if c.RateLimit.Burst == 0 {
		c.RateLimit.Burst = DefaultRateBurst
	}
	if c.Auth.MaxTTL == 0 {
		c.Auth.MaxTTL = DefaultMaxTTL
	}
	return c
}

// FieldError is a validation error naming the field path (the shared
// configuration field error).
type FieldError = field.Error

// Errors is the list of validation errors New returns.
type Errors = field.Errors

// validated is the checked, parsed form of Config used at run time.
type validated struct {
	Config
	relayIP netip.Addr
	bindIP  netip.Addr
	policy  *peerPolicy
	own     *ownAddrs // without the sockets handed to Serve
}

func (c Config) validate() (*validated, error) {
	c = c.withDefaults()
	var errs Errors
	bad := func(path, format string, a ...any) {
		errs = append(errs, FieldError{Path: "turn." + path, Reason: fmt.Sprintf(format, a...)})
	}
	for _, l := range []struct {
		kind  string
		addrs []string
	}{{"udp", c.Listen.UDP}, {"tcp", c.Listen.TCP}, {"tls", c.Listen.TLS}, {"dtls", c.Listen.DTLS}} {
		kind := l.kind
		for i, a := range l.addrs {
			if _, err := netip.ParseAddrPort(a); err != nil {
				bad(fmt.Sprintf("listen.%s[%d]", kind, i), "%q is not an IP:port address", a)
			}
		}
	}
	if c.Listen.Sockets < 1 || c.Listen.Sockets > maxListenSockets {
		bad("listen.sockets", "%d is not between 1 and %d", c.Listen.Sockets, maxListenSockets)
	}
	if c.Listen.SocketBufferKB < 0 || c.Listen.SocketBufferKB > 1<<20 {
		bad("listen.socket_buffer_kb", "%d is not between 0 and %d", c.Listen.SocketBufferKB, 1<<20)
	}
	if c.Listen.MaxConns < 1 {
		bad("listen.max_conns", "%d is below 1", c.Listen.MaxConns)
	}
	if strings.ContainsAny(c.Realm, "\"\r\n") || len(c.Realm) > 127 {
		bad("realm", "%q is not a valid realm (at most 127 characters, no quotes)", c.Realm)
	}
	v := &validated{Config: c}
	var err error
	if c.Relay.Address == "" {
		bad("relay.address", "required: the external IP given to clients")
	} else if v.relayIP, err = netip.ParseAddr(c.Relay.Address); err != nil || v.relayIP.Zone() != "" {
		bad("relay.address", "%q is not an IP address", c.Relay.Address)
	} else if v.relayIP.IsUnspecified() || v.relayIP.IsMulticast() {
		bad("relay.address", "%s cannot be given to clients", v.relayIP)
	}
	if c.Relay.Bind != "" {
		if v.bindIP, err = netip.ParseAddr(c.Relay.Bind); err != nil {
			bad("relay.bind", "%q is not an IP address", c.Relay.Bind)
		} else if v.relayIP.IsValid() && v.relayIP.Is4() != v.bindIP.Is4() {
			bad("relay.bind", "%s is not of the same family as relay.address %s", v.bindIP, v.relayIP)
		}
	}
	if c.Relay.PortMin < 1 || c.Relay.PortMin > 65535 {
		bad("relay.port_min", "%d is not a port", c.Relay.PortMin)
	}
	if c.Relay.PortMax < 1 || c.Relay.PortMax > 65535 {
		bad("relay.port_max", "%d is not a port", c.Relay.PortMax)
	} else if c.Relay.PortMax < c.Relay.PortMin {
		bad("relay.port_max", "%d is below relay.port_min %d", c.Relay.PortMax, c.Relay.PortMin)
	}
	if c.Lifetime.Default < minRequestLifetime || c.Lifetime.Default > maxClientLifetime {
		bad("lifetime.default", "%s is not between %s and %s", c.Lifetime.Default, minRequestLifetime, maxClientLifetime)
	}
	if c.Lifetime.MaxAge > 0 && c.Lifetime.MaxAge < minRequestLifetime {
		bad("lifetime.max_age", "%s is shorter than %s", c.Lifetime.MaxAge, minRequestLifetime)
	}
	if c.RateLimit.PerSecond > 0 && c.RateLimit.Burst < 1 {
		bad("rate_limit.burst", "%d is below 1", c.RateLimit.Burst)
	}
	if c.Auth.MaxTTL < time.Minute {
		bad("auth.max_ttl", "%s is shorter than 1m", c.Auth.MaxTTL)
	}
	if c.Auth.Secret == "" && len(c.Auth.OldSecrets) > 0 {
		bad("auth.old_secrets", "set without auth.secret")
	}
	if c.Auth.Secret != "" && len(c.Auth.Secret) < 16 {
		bad("auth.secret", "shorter than 16 characters")
	}
	pp, perrs := newPeerPolicy(c.Peers)
	for _, e := range perrs {
		bad(e.Path, "%s", e.Reason)
	}
	v.policy = pp
	own, oerrs := newOwnAddrs(v, interfaceAddrs(), nil)
	for _, e := range oerrs {
		bad(e.Path, "%s", e.Reason)
	}
	v.own = own
	if len(errs) > 0 {
		return nil, errs
	}
	return v, nil
}
