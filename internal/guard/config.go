package guard

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Kind is one thing a source did that the guard counts.
type Kind uint8

// Kinds of observation. Their names are the keys of Config.Limits.
const (
	ScannerAgent    Kind = iota // a SIP request whose User-Agent names a known scanner
	Register                    // a REGISTER received (flood)
	Invite                      // an INVITE received (flood)
	Options                     // an OPTIONS received (flood, probing)
	Challenge                   // a 401/407 answered to a request without credentials
	Forbidden                   // a 403 answered
	NotFound                    // a 404 answered (extension guessing)
	DigestFailure               // credentials sent and refused (per source)
	TURNAuthFailure             // a TURN request whose credentials were refused
	LoginFailure                // a failed management login
	Malformed                   // a packet that does not parse
	numKinds
)

var kindNames = [numKinds]string{"scanner_agent", "register", "invite", "options", "challenge", "forbidden",
	"not_found", "digest_failure", "turn_auth_failure", "login_failure", "malformed"}

// String returns the kind's configuration key.
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind returns the kind named by its configuration key.
func ParseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), true
		}
	}
	return 0, false
}

// Limit is one leaky bucket: Count events within Window block the source.
type Limit struct {
	// Count is the bucket's capacity; 0 leaves the kind unscored.
	Count int `yaml:"count" json:"count"`
	// Window is how long the bucket takes to drain completely.
	Window time.Duration `yaml:"window" json:"window"`
}

// DefaultLimits are the buckets used for kinds Config.Limits does not name.
// The flood limits sit well above the rate limits (RateLimits), so that a
// site of many phones behind one NAT address is slowed with 503s after a
// power cut rather than blocked; a source that keeps on regardless is.
var DefaultLimits = map[string]Limit{
	"scanner_agent":     {Count: 1, Window: time.Minute},
	"register":          {Count: 300, Window: 10 * time.Second},
	"invite":            {Count: 100, Window: 10 * time.Second},
	"options":           {Count: 300, Window: 10 * time.Second},
	"challenge":         {Count: 120, Window: time.Minute},
	"forbidden":         {Count: 10, Window: time.Minute},
	"not_found":         {Count: 10, Window: time.Minute},
	"digest_failure":    {Count: 5, Window: 5 * time.Minute},
	"turn_auth_failure": {Count: 10, Window: 5 * time.Minute},
	"login_failure":     {Count: 10, Window: 5 * time.Minute},
	"malformed":         {Count: 20, Window: time.Minute},
}

// DefaultScannerAgents are User-Agent substrings (case-insensitive) of SIP
// scanners and war-diallers.
var DefaultScannerAgents = []string{"friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sipscan",
	"iwar", "sundayddr", "vaxsipuseragent", "vaxipuseragent", "sivus", "pplsip", "smap", "nmap"}

// Defaults for zero Config fields.
const (
	DefaultBlockTime    = 10 * time.Minute
	DefaultMaxBlockTime = 24 * time.Hour
	DefaultMaxSources   = 100000
	DefaultMaxUsers     = 10000
	DefaultIPv6Prefix   = 64
)

// Config is the guard's configuration (the `guard` section).
type Config struct {
	// Disabled turns automatic blocking off: nothing is scored, manual
	// blocks still apply. Default false (on).
	Disabled bool `yaml:"disabled" json:"disabled"`
	// BlockTime is how long a source is blocked the first time. Default 10m.
	BlockTime time.Duration `yaml:"block_time" json:"block_time"`
	// MaxBlockTime caps the block time, which doubles with each repeat
	// offence while the source is still remembered. Default 24h.
	MaxBlockTime time.Duration `yaml:"max_block_time" json:"max_block_time"`
	// MaxSources bounds the sources scored at once. Default 100000.
	MaxSources int `yaml:"max_sources" json:"max_sources"`
	// MaxUsers bounds the users whose digest failures are counted. Default 10000.
	MaxUsers int `yaml:"max_users" json:"max_users"`
	// IPv6Prefix is the prefix length an IPv6 source is scored and blocked
	// by. Default 64 (one subscriber's network); 128 is per address.
	IPv6Prefix int `yaml:"ipv6_prefix" json:"ipv6_prefix"`
	// Allow lists networks (CIDR or address) never scored or blocked:
	// inside networks, monitoring. The internal interface's networks are
	// added by the node.
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	// ScannerAgents replaces DefaultScannerAgents when set.
	ScannerAgents []string `yaml:"scanner_agents,omitempty" json:"scanner_agents,omitempty"`
	// Limits overrides DefaultLimits per kind (register, digest_failure, ...).
	Limits map[string]Limit `yaml:"limits,omitempty" json:"limits,omitempty"`
	// UserDigestFailures is the per-user bucket: once full, every source
	// failing against that user is blocked at once. Default 10 in 10m.
	UserDigestFailures Limit `yaml:"user_digest_failures" json:"user_digest_failures"`
	// RateLimits bound REGISTER, INVITE and OPTIONS per source.
	RateLimits RateLimits `yaml:"rate_limits" json:"rate_limits"`
	// Kernel mirrors blocks into an nftables set when the node has
	// CAP_NET_ADMIN: "auto" (default), "off", or "on" (refuse to start
	// without it).
	Kernel string `yaml:"kernel" json:"kernel"`
}

// settings is a validated Config in the form the guard uses.
type settings struct {
	disabled   bool
	blockTime  time.Duration
	maxBlock   time.Duration
	maxSources int
	maxUsers   int
	v6bits     int
	allow      []netip.Prefix
	agents     []string // lower case
	limits     [numKinds]bucket
	user       bucket
	rates      [numKinds]bucket // indexed by Method
	rateDrop   bool
	kernel     string
}

// bucket is a Limit as capacity and drain per nanosecond.
type bucket struct {
	cap  float64
	rate float64
}

// full reports whether a bucket that just took an event at level has
// reached its capacity: the Count-th event arrived before one event's worth
// drained (an exact comparison would miss by the drain of the last
// microseconds).
func (b bucket) full(level float32) bool {
	return b.cap > 0 && float64(level) > b.cap-1
}

func (l Limit) bucket() bucket {
	if l.Count <= 0 || l.Window <= 0 {
		return bucket{}
	}
	return bucket{cap: float64(l.Count), rate: float64(l.Count) / float64(l.Window)}
}

// Validate checks c and returns the settings it describes.
func (c Config) settings() (*settings, error) {
	var errs ConfigError
	add := func(path, format string, a ...any) {
		errs = append(errs, FieldError{Path: "guard." + path, Reason: fmt.Sprintf(format, a...)})
	}
	s := &settings{disabled: c.Disabled, blockTime: c.BlockTime, maxBlock: c.MaxBlockTime,
		maxSources: c.MaxSources, maxUsers: c.MaxUsers, v6bits: c.IPv6Prefix, kernel: c.Kernel}
	if s.blockTime == 0 {
		s.blockTime = DefaultBlockTime
	}
	if s.maxBlock == 0 {
		s.maxBlock = DefaultMaxBlockTime
	}
	if s.blockTime < 0 {
		add("block_time", "%v is negative", c.BlockTime)
	}
	if s.maxBlock < s.blockTime {
		add("max_block_time", "%v is below block_time %v", s.maxBlock, s.blockTime)
	}
	if s.maxSources == 0 {
		s.maxSources = DefaultMaxSources
	}
	if s.maxSources < 0 {
		add("max_sources", "%d is negative", c.MaxSources)
	}
	if s.maxUsers == 0 {
		s.maxUsers = DefaultMaxUsers
	}
	if s.maxUsers < 0 {
		add("max_users", "%d is negative", c.MaxUsers)
	}
	if s.v6bits == 0 {
		s.v6bits = DefaultIPv6Prefix
	}
	if s.v6bits < 16 || s.v6bits > 128 {
		add("ipv6_prefix", "%d is not between 16 and 128", c.IPv6Prefix)
	}
	for i, a := range c.Allow {
		p, err := ParsePrefix(a)
		if err != nil {
			add(fmt.Sprintf("allow[%d]", i), "%q is not a network or address", a)
			continue
		}
		s.allow = append(s.allow, p)
	}
	agents := c.ScannerAgents
	if agents == nil {
		agents = DefaultScannerAgents
	}
	for i, a := range agents {
		if strings.TrimSpace(a) == "" {
			add(fmt.Sprintf("scanner_agents[%d]", i), "is empty")
			continue
		}
		s.agents = append(s.agents, strings.ToLower(strings.TrimSpace(a)))
	}
	for k := range numKinds {
		l := DefaultLimits[k.String()]
		if o, ok := c.Limits[k.String()]; ok {
			l = o
		}
		s.limits[k] = l.bucket()
	}
	for name, l := range c.Limits {
		if _, ok := ParseKind(name); !ok {
			add("limits."+name, "unknown kind (known: %s)", strings.Join(kindNames[:], ", "))
			continue
		}
		if l.Count < 0 {
			add("limits."+name+".count", "%d is negative", l.Count)
		}
		if l.Count > 0 && l.Window <= 0 {
			add("limits."+name+".window", "must be positive")
		}
	}
	u := c.UserDigestFailures
	if u == (Limit{}) {
		u = Limit{Count: 10, Window: 10 * time.Minute}
	}
	if u.Count < 0 || (u.Count > 0 && u.Window <= 0) {
		add("user_digest_failures", "count must be >= 0 and window positive")
	}
	s.user = u.bucket()
	s.rates, s.rateDrop = c.RateLimits.settings(add)
	switch s.kernel {
	case "":
		s.kernel = "auto"
	case "auto", "on", "off":
	default:
		add("kernel", "%q is not auto, on or off", c.Kernel)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// Validate checks c; errors name field paths (guard.limits.register.count).
func (c Config) Validate() error {
	_, err := c.settings()
	return err
}

// ParsePrefix reads a CIDR or a bare address (a /32 or /128), unmapped
// and masked.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}
