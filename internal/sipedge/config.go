package sipedge

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/policy"
	"github.com/portico-edge/portico/internal/udpbuf"
)

// Interface names.
const (
	External = "external"
	Internal = "internal"
)

// Defaults applied by New for zero fields.
const (
	DefaultProbeInterval      = 10 * time.Second
	DefaultProbeTimeout       = 2 * time.Second
	DefaultNATBindingExpiry   = 120 * time.Second
	DefaultMaxRegistrations   = 20000
	DefaultMaxCalls           = 5000
	DefaultRetryAfter         = 30 * time.Second
	DefaultNoAnswerTimeout    = 120 * time.Second
	DefaultTransactionTimeout = 32 * time.Second
)

// Config is the SIP edge's configuration (the "sip" section of the document).
type Config struct {
	// Listeners are the sockets to bind. Each names its interface
	// ("external" or "internal"); at least one of each is required.
	Listeners []Listener
	// CallServers are the inside registrars/proxies, tried by Priority
	// (lower first), then by Weight among equal priorities. At least one.
	CallServers []CallServer
	// Domain is the SIP domain of the inside call server: the host part put
	// in Request-URIs sent inside for calls from guests and federated
	// domains. Default: the host of the first call server.
	Domain string
	// ExternalHost is the host name or address put in Contact, Via and
	// Record-Route towards the outside (e.g. the public IP in front of a
	// NAT'd DMZ). Default: the external listener's address.
	ExternalHost string
	// ProbeInterval is how often each call server is sent OPTIONS.
	// Default 10s; negative disables probing (servers are assumed up).
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe. Default 2s.
	ProbeTimeout time.Duration
	// NATBindingExpiry caps the registration expiry granted to outside
	// endpoints, so they refresh often enough to keep their NAT open.
	// Default 120s.
	NATBindingExpiry time.Duration
	// UDPKeepalive is the interval of OPTIONS keepalives sent to UDP flows
	// of registered endpoints. Default 0 (off; endpoints keep their own NAT
	// open by re-registering).
	UDPKeepalive time.Duration
	// FailoverTimeout is how long a call server may stay silent before the
	// request is tried on the next one. Default 4s.
	FailoverTimeout time.Duration
	// NoAnswerTimeout bounds how long an INVITE may ring. Default 120s.
	NoAnswerTimeout time.Duration
	// FollowRedirects makes Portico follow a 3xx from the callee's side to
	// its first Contact (up to three times) instead of relaying the 3xx,
	// whose Contact would name hosts of that side. Default false: the 3xx
	// is relayed without Contact.
	FollowRedirects bool
	Guest           GuestPolicy
	// Rules are the call policy rules (the policy section), evaluated
	// before the guest policy's; each rejected call's history names the
	// rule.
	Rules          []policy.Rule
	Federation     Federation
	Limits         Limits
	TopologyHiding TopologyHiding
	// Streams bound the connections of the stream listeners (streams.go).
	Streams StreamLimits
	// Overload bounds the new INVITEs and REGISTERs taken on (overload.go).
	Overload Overload
	// UDPReceiveBuffer is the kernel receive buffer of each UDP listener,
	// in bytes, so that a burst of requests, or a moment in which the
	// edge's reader is not scheduled, waits in the kernel instead of being
	// dropped there (each drop costs the sender a retransmission 500 ms
	// later, and the edge a request it then handles late). Default: the
	// kernel's (net.core.rmem_default, often 212,992 bytes: about a
	// hundred datagrams as the kernel counts them); 4 MiB
	// (udpbuf.DefaultSize) suits an edge taking thousands of REGISTERs a
	// second. Without CAP_NET_ADMIN the kernel caps it at
	// net.core.rmem_max; what it granted is logged and exported
	// (portico_sip_udp_receive_buffer_bytes).
	UDPReceiveBuffer int
}

// Listener is one bound socket.
type Listener struct {
	Interface string `yaml:"interface" json:"interface"` // "external" or "internal"
	Transport string `yaml:"transport" json:"transport"` // udp, tcp, tls, ws or wss
	Address   string `yaml:"address" json:"address"`     // ip:port
}

// CallServer is one inside registrar/proxy.
type CallServer struct {
	Address   string `yaml:"address" json:"address"`     // host:port (port default 5060, 5061 for tls)
	Transport string `yaml:"transport" json:"transport"` // udp (default), tcp or tls
	Priority  int    `yaml:"priority" json:"priority"`   // lower is preferred; default 0
	Weight    int    `yaml:"weight" json:"weight"`       // share among equal priorities; default 1
}

// GuestPolicy says where unregistered outside callers may call.
type GuestPolicy struct {
	// Enabled admits guests at all. Default false: guests get 403.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// VMRRanges are numeric ranges of allowed destinations ("1000-1999").
	VMRRanges []string `yaml:"vmr_ranges,omitempty" json:"vmr_ranges,omitempty"`
	// Aliases are allowed destination user parts ("sales", "meet").
	Aliases []string `yaml:"aliases,omitempty" json:"aliases,omitempty"`
	// DefaultDestination, when set, is called instead of a destination that
	// is not allowed; otherwise such a call gets 403.
	DefaultDestination string `yaml:"default_destination" json:"default_destination"`
}

// Federation admits calls between this and other SIP domains.
type Federation struct {
	// AllowedDomains may call in (From host) and be called (Request-URI host).
	AllowedDomains []string `yaml:"allowed_domains,omitempty" json:"allowed_domains,omitempty"`
	// OpenB2B admits calls from, and to, any outside domain.
	OpenB2B bool `yaml:"open_b2b" json:"open_b2b"`
	// DNSServer is the resolver (ip:port) for RFC 3263 NAPTR/SRV/A lookups
	// of outbound federated calls. Default: the system resolver's first
	// nameserver from /etc/resolv.conf.
	DNSServer string `yaml:"dns_server" json:"dns_server"`
}

// Limits bound what the edge holds.
type Limits struct {
	MaxRegistrations int           // default 20,000
	MaxCalls         int           // concurrent calls; default 5,000
	RetryAfter       time.Duration // in 503 answers; default 30s
}

// TopologyHiding options beyond what the edge always does (headers.go:
// only the headers of an allow list cross; the inside's Server and Warning
// never do).
type TopologyHiding struct {
	// StripServer removes the outside endpoint's User-Agent from requests
	// relayed inside. Default false: it is copied (call servers provision
	// by it). Requests from known scanners are dropped either way.
	StripServer bool
	// RevealUnknownUsers relays the inside's refusal (403, 404, 480, 604
	// ...) of an unauthenticated outside REGISTER as it is. Default false:
	// it is answered with a digest challenge shaped like the registrar's,
	// so the outside cannot tell a missing user from an existing one.
	RevealUnknownUsers bool
}

var transports = map[string]bool{"udp": true, "tcp": true, "tls": true, "ws": true, "wss": true}

func (c Config) withDefaults() (Config, error) {
	// The caller's slices are not shared with the running server.
	c.Listeners = slices.Clone(c.Listeners)
	c.CallServers = slices.Clone(c.CallServers)
	var errs ConfigError
	add := func(path, format string, a ...any) {
		errs = append(errs, FieldError{Path: "sip." + path, Reason: fmt.Sprintf(format, a...)})
	}
	seen := map[string]int{}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if l.Interface != External && l.Interface != Internal {
			add(p+".interface", "%q is not external or internal", l.Interface)
		}
		l.Transport = strings.ToLower(l.Transport)
		if !transports[l.Transport] {
			add(p+".transport", "%q is not udp, tcp, tls, ws or wss", l.Transport)
		}
		if ap, err := netip.ParseAddrPort(l.Address); err != nil {
			add(p+".address", "%q is not ip:port", l.Address)
		} else {
			seen[l.Interface]++
			_ = ap
		}
		c.Listeners[i] = l
	}
	if seen[External] == 0 {
		add("listeners", "no external listener")
	}
	if seen[Internal] == 0 {
		add("listeners", "no internal listener")
	}
	if len(c.CallServers) == 0 {
		add("call_servers", "at least one call server is required")
	}
	for i, s := range c.CallServers {
		p := fmt.Sprintf("call_servers[%d]", i)
		if s.Transport == "" {
			s.Transport = "udp"
		}
		s.Transport = strings.ToLower(s.Transport)
		if s.Transport != "udp" && s.Transport != "tcp" && s.Transport != "tls" {
			add(p+".transport", "%q is not udp, tcp or tls", s.Transport)
		}
		host, port, err := net.SplitHostPort(s.Address)
		if err != nil {
			host, port = s.Address, "5060"
			if s.Transport == "tls" {
				port = "5061"
			}
		}
		if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
			add(p+".address", "%q is not host:port", s.Address)
		}
		s.Address = net.JoinHostPort(host, port)
		if s.Weight < 0 {
			add(p+".weight", "%d is negative", s.Weight)
		}
		if s.Weight == 0 {
			s.Weight = 1
		}
		c.CallServers[i] = s
	}
	if c.Domain == "" && len(c.CallServers) > 0 {
		c.Domain, _, _ = net.SplitHostPort(c.CallServers[0].Address)
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.NATBindingExpiry == 0 {
		c.NATBindingExpiry = DefaultNATBindingExpiry
	}
	if c.NATBindingExpiry < 10*time.Second {
		add("nat_binding_expiry", "%v is below 10s", c.NATBindingExpiry)
	}
	if c.UDPKeepalive < 0 {
		add("udp_keepalive", "%v is negative", c.UDPKeepalive)
	}
	if c.FailoverTimeout <= 0 {
		c.FailoverTimeout = 4 * time.Second
	}
	if c.NoAnswerTimeout <= 0 {
		c.NoAnswerTimeout = DefaultNoAnswerTimeout
	}
	for i, r := range c.Guest.VMRRanges {
		if _, _, err := parseRange(r); err != nil {
			add(fmt.Sprintf("guest.vmr_ranges[%d]", i), "%v", err)
		}
	}
	validateRules(c.Rules, &errs)
	if c.Limits.MaxRegistrations < 0 {
		add("max_registrations", "%d is negative", c.Limits.MaxRegistrations)
	}
	if c.Limits.MaxCalls < 0 {
		add("max_calls", "%d is negative", c.Limits.MaxCalls)
	}
	if c.Limits.MaxRegistrations == 0 {
		c.Limits.MaxRegistrations = DefaultMaxRegistrations
	}
	if c.Limits.MaxCalls == 0 {
		c.Limits.MaxCalls = DefaultMaxCalls
	}
	if c.Limits.RetryAfter <= 0 {
		c.Limits.RetryAfter = DefaultRetryAfter
	}
	c.Streams = c.Streams.withDefaults(add)
	c.Overload = c.Overload.withDefaults(add)
	if c.UDPReceiveBuffer == 0 {
		c.UDPReceiveBuffer = -1 // the kernel's default
	} else if _, ok := udpbuf.Size(c.UDPReceiveBuffer); !ok {
		add("udp_receive_buffer", "%d bytes %s", c.UDPReceiveBuffer, udpbuf.Range)
	}
	if c.Federation.DNSServer != "" {
		if _, err := netip.ParseAddrPort(c.Federation.DNSServer); err != nil {
			add("federation.dns_server", "%q is not ip:port", c.Federation.DNSServer)
		}
	}
	if len(errs) > 0 {
		return c, errs
	}
	return c, nil
}

// parseRange parses "1000-1999" (or a single number) into bounds of equal
// length digit strings.
func parseRange(s string) (lo, hi string, err error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		hi = lo
	}
	lo, hi = strings.TrimSpace(lo), strings.TrimSpace(hi)
	if !digits(lo) || !digits(hi) || len(lo) != len(hi) || lo > hi {
		return "", "", fmt.Errorf("%q is not a number range like 1000-1999", s)
	}
	return lo, hi, nil
}

func digits(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
