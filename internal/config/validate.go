package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/accessproxy"
	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/snmp"
	"github.com/portico-edge/portico/internal/turn"
)

// Default returns a document with every default filled in.
func Default() *Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "portico"
	}
	return &Config{
		Version: CurrentVersion,
		Node:    Node{Name: host, DrainTimeout: Duration(30 * time.Second)},
		Interfaces: Interfaces{
			External:   Interface{Address: "127.0.0.1"},
			Internal:   Interface{Address: "127.0.0.1"},
			Management: Interface{Address: "127.0.0.1"},
		},
		Store: Store{Backend: "sqlite", Path: "portico.db"},
		Management: Management{
			Listen:             "127.0.0.1:9443",
			SessionTTL:         Duration(12 * time.Hour),
			MaxLoginFailures:   5,
			Lockout:            Duration(15 * time.Minute),
			LoginRatePerMinute: 20,
		},
		Log:         Log{Level: "info", Format: "text", MaxSizeMB: 50, MaxFiles: 5},
		History:     History{MaxAge: Duration(90 * 24 * time.Hour), MaxRows: 1000000, FoldWindow: Duration(10 * time.Second)},
		TURN:        turn.DefaultSection(),
		AccessProxy: accessproxy.DefaultSection(),
		Media:       media.DefaultSection(),
		SNMP:        snmp.DefaultSection(),
	}
}

type validator struct{ errs Errors }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// Validate checks every field and returns Errors naming each bad one.
func (c *Config) Validate() error {
	v := &validator{}
	if c.Version != CurrentVersion {
		v.add("version", "%d is not a document version this build reads (want %d)", c.Version, CurrentVersion)
	}
	if strings.TrimSpace(c.Node.Name) == "" {
		v.add("node.name", "must not be empty")
	}
	v.nodes(c)
	v.positive("node.drain_timeout", c.Node.DrainTimeout)
	if c.Node.FDReserve < 0 {
		v.add("node.fd_reserve", "%d is negative", c.Node.FDReserve)
	}

	v.iface("interfaces.external", c.Interfaces.External, true)
	v.iface("interfaces.internal", c.Interfaces.Internal, false)
	v.iface("interfaces.management", c.Interfaces.Management, false)

	switch c.Store.Backend {
	case "sqlite":
		if c.Store.Path == "" {
			v.add("store.path", "must name the SQLite file")
		} else if filepath.IsAbs(c.Store.Path) || strings.Contains(filepath.ToSlash(filepath.Clean(c.Store.Path)), "..") {
			v.add("store.path", "%q must be a path inside the data directory", c.Store.Path)
		}
	case "postgres":
		if c.Store.DSN == "" && os.Getenv("PORTICO_STORE_DSN") == "" {
			v.add("store.dsn", "required when store.backend is postgres (or set PORTICO_STORE_DSN)")
		}
	default:
		v.add("store.backend", "%q is not a store backend (sqlite or postgres)", c.Store.Backend)
	}

	v.hostPort("management.listen", c.Management.Listen)
	if (c.Management.CertFile == "") != (c.Management.KeyFile == "") {
		v.add("management.cert_file", "cert_file and key_file must be given together")
	}
	v.positive("management.session_ttl", c.Management.SessionTTL)
	v.positive("management.lockout", c.Management.Lockout)
	if c.Management.MaxLoginFailures < 1 {
		v.add("management.max_login_failures", "%d must be at least 1", c.Management.MaxLoginFailures)
	}
	if c.Management.LoginRatePerMinute < 1 {
		v.add("management.login_rate_per_minute", "%d must be at least 1", c.Management.LoginRatePerMinute)
	}
	for i, n := range c.Management.AllowedNetworks {
		v.cidr(fmt.Sprintf("management.allowed_networks[%d]", i), n)
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "%q is not a level (debug, info, warn, error)", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.add("log.format", "%q is not a format (text or json)", c.Log.Format)
	}
	if c.Log.File != "" && (filepath.IsAbs(c.Log.File) || strings.Contains(filepath.ToSlash(filepath.Clean(c.Log.File)), "..")) {
		v.add("log.file", "%q must be a path inside the data directory", c.Log.File)
	}
	if c.Log.MaxSizeMB < 1 || c.Log.MaxSizeMB > 10240 {
		v.add("log.max_size_mb", "%d is outside 1..10240", c.Log.MaxSizeMB)
	}
	if c.Log.MaxFiles < 0 || c.Log.MaxFiles > 1000 {
		v.add("log.max_files", "%d is outside 0..1000", c.Log.MaxFiles)
	}

	if c.History.MaxAge < 0 {
		v.add("history.max_age", "%s must not be negative (0 keeps history however old)", c.History.MaxAge.D())
	}
	if c.History.MaxRows < 0 {
		v.add("history.max_rows", "%d must not be negative (0: no cap)", c.History.MaxRows)
	}
	if w := c.History.FoldWindow.D(); w < 0 || w > time.Hour {
		v.add("history.fold_window", "%s is outside 0..1h", w)
	}
	v.section(c.Log.Syslog.Validate())
	v.section(c.Media.Validate())
	v.section(c.Guard.Validate())
	v.section(c.Policy.Validate())
	v.section(c.TURN.Validate())
	v.sip(c)
	v.section(c.H323.Validate(c.H323Interfaces()))
	v.section(c.AccessProxy.Validate())
	v.section(c.HA.Validate(c.nodeNames()))
	v.section(c.HA.Sync.Validate("ha.sync"))
	v.section(c.Tunnel.Validate())
	v.h245Tunnel(c)
	v.section(c.SNMP.Validate())
	v.ports(c)
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

// section takes in the errors of a section its service validates.
func (v *validator) section(err error) {
	if err == nil {
		return
	}
	if es, ok := field.As(err); ok {
		v.errs = append(v.errs, es...)
	} else {
		v.add("", "%v", err)
	}
}

func (v *validator) positive(path string, d Duration) { v.errs.Positive(path, d) }

func (v *validator) iface(path string, i Interface, public bool) {
	if i.Address == "" {
		v.add(path+".address", "must be an IP address")
	} else if _, err := netip.ParseAddr(i.Address); err != nil {
		v.add(path+".address", "%q is not an IP address", i.Address)
	}
	if i.PublicAddress != "" {
		if !public {
			v.add(path+".public_address", "only the external interface has a public address")
		} else if _, err := netip.ParseAddr(i.PublicAddress); err != nil {
			v.add(path+".public_address", "%q is not an IP address", i.PublicAddress)
		}
	}
	for k, n := range i.Networks {
		v.cidr(fmt.Sprintf("%s.networks[%d]", path, k), n)
	}
}

func (v *validator) cidr(path, s string)     { v.errs.CIDR(path, s) }
func (v *validator) hostPort(path, s string) { v.errs.HostPort(path, s) }

func (v *validator) sip(c *Config) {
	if c.SIP.Enabled && !c.Media.Enabled {
		v.add("sip.enabled", "the SIP edge relays every call's media: enable media too")
	}
	v.section(c.SIP.Validate())
}

// h245Tunnel checks that h323.h245_tunnel_service names a dial service
// toward the inside node: a TCP service of an enabled tunnel server with
// neither listen, target nor networks.
func (v *validator) h245Tunnel(c *Config) {
	name := c.H323.H245TunnelService
	if name == "" || !c.H323.Enabled {
		return
	}
	if !c.Tunnel.Enabled || c.Tunnel.Role != "server" {
		v.add("h323.h245_tunnel_service", "needs an enabled tunnel with role server")
		return
	}
	for _, s := range c.Tunnel.Services {
		if s.Name != name {
			continue
		}
		if s.Proto != "tcp" || s.Listen != "" || s.Target != "" || len(s.Networks) > 0 {
			v.add("h323.h245_tunnel_service", "tunnel service %q is not a dial service toward the inside (tcp, with neither listen, target nor networks)", name)
		}
		return
	}
	v.add("h323.h245_tunnel_service", "%q is not in tunnel.services", name)
}
