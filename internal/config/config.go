// Package config defines Portico's configuration document: one YAML document
// with a section per concern, its defaults, its validation and how two
// versions differ.
//
// Parsing is strict: an unknown field is refused with its path, line and
// column, and every validation error names the field path and the reason, so
// an administrator can fix a document without guessing. Defaults are applied
// before validation; docs/config.md lists them field by field.
//
// The node-wide sections (node, interfaces, store, management, log) are
// defined here. Each service section is defined by its service package
// (sipedge.Section, h323proxy.Section, turn.Section, media.Section, accessproxy.Section,
// snmp.Section, guard.Config) with its YAML shape, defaults and validation, reporting
// with the shared config/field errors; this package composes them and adds
// the checks that span sections (a port two services would bind, SIP
// without the relay).
package config

import (
	"github.com/portico-edge/portico/internal/accessproxy"
	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323proxy"
	"github.com/portico-edge/portico/internal/ha"
	"github.com/portico-edge/portico/internal/logging"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/policy"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/snmp"
	"github.com/portico-edge/portico/internal/tunnel"
	"github.com/portico-edge/portico/internal/turn"
)

// CurrentVersion is the document format this build reads.
const CurrentVersion = 1

// Config is the whole configuration document.
type Config struct {
	// Version is the document format; 1 is the only one so far.
	Version int  `yaml:"version" json:"version"`
	Node    Node `yaml:"node" json:"node"`
	// Nodes are the per-node parts of a cluster's shared document
	// (nodes.go). Empty: a single node.
	Nodes      []NodePart `yaml:"nodes,omitempty" json:"nodes,omitempty"`
	Interfaces Interfaces `yaml:"interfaces" json:"interfaces"`
	Store      Store      `yaml:"store" json:"store"`
	Management Management `yaml:"management" json:"management"`
	Log        Log        `yaml:"log" json:"log"`
	// Guard blocks scanners, guessers and floods on every service
	// (docs/security.md). On by default.
	Guard   guard.Config `yaml:"guard" json:"guard"`
	History History      `yaml:"history" json:"history"`

	// Services added by later work. Each is off until enabled.
	SIP         SIP          `yaml:"sip" json:"sip"`
	Media       Media        `yaml:"media" json:"media"`
	TURN        turn.Section `yaml:"turn" json:"turn"`
	H323        H323         `yaml:"h323" json:"h323"`
	AccessProxy AccessProxy  `yaml:"access_proxy" json:"access_proxy"`
	Tunnel      Tunnel       `yaml:"tunnel" json:"tunnel"`
	Policy      Policy       `yaml:"policy" json:"policy"`
	// HA holds the VIP groups elected by VRRPv3 (docs/ha.md).
	HA HA `yaml:"ha" json:"ha"`
	// SNMP is the SNMP agent and its notification receivers (docs/snmp.md).
	SNMP SNMP `yaml:"snmp" json:"snmp"`
}

// Node identifies this Portico instance.
type Node struct {
	// Name appears in logs, metrics and the API and picks this node's part
	// of nodes. On a node it is --node-name, else the node's own
	// configuration file's node.name, else the stored document's.
	// Default: the host name.
	Name string `yaml:"name" json:"name"`
	// DrainTimeout bounds a graceful shutdown (SIGTERM). Default 30s.
	DrainTimeout Duration `yaml:"drain_timeout" json:"drain_timeout"`
	// FDReserve is how many file descriptors outside listeners leave free
	// for management (SIP stream listeners stop accepting below it, the
	// access proxy and inside SIP listeners below half of it; at most a
	// quarter of the process limit). Default 0: 256.
	FDReserve int `yaml:"fd_reserve,omitempty" json:"fd_reserve,omitempty"`
}

// Interfaces names the node's network sides. Split interfaces are normal:
// external faces the Internet, internal the enterprise, management the admins.
type Interfaces struct {
	External   Interface `yaml:"external" json:"external"`
	Internal   Interface `yaml:"internal" json:"internal"`
	Management Interface `yaml:"management" json:"management"`
}

// Interface is one side's addresses.
type Interface struct {
	// Address is the local IP services on this side bind to. Required for
	// external and internal; management defaults to 127.0.0.1.
	Address string `yaml:"address" json:"address"`
	// PublicAddress is the address outside parties see when the node sits
	// behind static NAT (external side only). Default: Address.
	PublicAddress string `yaml:"public_address" json:"public_address"`
	// Networks lists the CIDRs reachable on this side (internal side: the
	// enterprise networks that must never leak or be relayed into).
	Networks []string `yaml:"networks,omitempty" json:"networks,omitempty"`
}

// Store selects where records live.
type Store struct {
	// Backend is "sqlite" (default, embedded, under the data directory) or
	// "postgres" (HA pairs and scale-out).
	Backend string `yaml:"backend" json:"backend"`
	// Path is the SQLite file, relative to the data directory. Default portico.db.
	Path string `yaml:"path" json:"path"`
	// DSN is the PostgreSQL connection string (postgres://user:pass@host:port/db).
	// It may also come from the PORTICO_STORE_DSN environment variable, which
	// keeps the password out of the document.
	DSN string `yaml:"dsn" json:"dsn"`
}

// Management is the HTTPS listener for the REST API, UI, health and metrics.
type Management struct {
	// Listen is host:port. Default 127.0.0.1:9443.
	Listen string `yaml:"listen" json:"listen"`
	// CertFile and KeyFile name a PEM certificate and key. Empty (default):
	// a self-signed ECDSA P-256 certificate made at first start and kept in the store.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
	// SessionTTL is how long a login session lasts. Default 12h.
	SessionTTL Duration `yaml:"session_ttl" json:"session_ttl"`
	// MaxLoginFailures before an account is locked. Default 5.
	MaxLoginFailures int `yaml:"max_login_failures" json:"max_login_failures"`
	// Lockout is how long a locked account stays locked. Default 15m.
	Lockout Duration `yaml:"lockout" json:"lockout"`
	// LoginRatePerMinute caps login attempts per client address. Default 20.
	LoginRatePerMinute int `yaml:"login_rate_per_minute" json:"login_rate_per_minute"`
	// AllowedNetworks restricts which client networks may reach the listener.
	// Default: any.
	AllowedNetworks []string `yaml:"allowed_networks,omitempty" json:"allowed_networks,omitempty"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level" json:"level"`
	// Format is text (default) or json.
	Format string `yaml:"format" json:"format"`
	// File is the log file, relative to the data directory. Empty (default):
	// standard error.
	File string `yaml:"file" json:"file"`
	// MaxSizeMB is the size at which the file rotates. Default 50.
	MaxSizeMB int `yaml:"max_size_mb" json:"max_size_mb"`
	// MaxFiles is how many rotated files are kept besides the live one.
	// Default 5. The directory never holds more than (MaxFiles+1)*MaxSizeMB.
	MaxFiles int `yaml:"max_files" json:"max_files"`
	// Syslog sends the log and the audit trail to a remote collector
	// (RFC 5424), besides the local output; defined by package logging.
	Syslog logging.SyslogSection `yaml:"syslog" json:"syslog"`
}

// Policy holds the call policy rules, ACLs and rate limits
// (docs/security.md).
type Policy struct {
	policy.Config `yaml:",inline" json:",inline"`
}

// History bounds call, registration and event history (the audit log is
// kept whole).
type History struct {
	// MaxAge: older rows are deleted. Default 2160h (90 days); 0 keeps
	// rows however old.
	MaxAge Duration `yaml:"max_age" json:"max_age"`
	// MaxRows caps each history table; the oldest rows go. Default
	// 1000000; 0: no cap.
	MaxRows int `yaml:"max_rows" json:"max_rows"`
	// FoldWindow: repeated rejections (REGISTER, guest calls) from one source
	// address with the same reason within it are one row with a count.
	// Default 10s; 0: every rejection is its own row.
	FoldWindow Duration `yaml:"fold_window" json:"fold_window"`
}

// SNMP is the snmp section, defined by package snmp.
type SNMP = snmp.Section

// Tunnel is the tunnel section, defined by package tunnel.
type Tunnel = tunnel.Section

// Media is the media section, defined by package media.
type Media = media.Section

// PortRange is an inclusive UDP/TCP port range.
type PortRange = field.PortRange

// Duration is a time.Duration written as "30s" or "15m".
type Duration = field.Duration

// AccessProxy is the access_proxy section, defined by package accessproxy.
type AccessProxy = accessproxy.Section

// SIP is the sip section, defined by package sipedge.
type SIP = sipedge.Section

// HA is the ha section, defined by package ha.
type HA = ha.Section

// H323 is the h323 section, defined by package h323proxy.
type H323 = h323proxy.Section

// H323Interfaces returns the node addresses (and the sip setting) the h323
// section defaults to.
func (c *Config) H323Interfaces() h323proxy.Interfaces {
	return h323proxy.Interfaces{External: c.Interfaces.External.Address, Public: c.Interfaces.External.PublicAddress,
		Internal: c.Interfaces.Internal.Address, SIPOpenB2B: c.SIP.Federation.OpenB2B}
}
