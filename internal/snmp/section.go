package snmp

import (
	"encoding/hex"
	"net"
	"slices"
	"strings"

	"github.com/portico-edge/portico/internal/config/field"
)

// Section is the snmp section of Portico's configuration document
// (docs/snmp.md): its YAML shape, defaults and validation.
type Section struct {
	// Enabled turns the agent on. Default false: nothing listens.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Listen lists UDP addresses (host:port) the agent answers on.
	// Default: interfaces.management.address port 161.
	Listen []string `yaml:"listen,omitempty" json:"listen,omitempty"`
	// Contact, Location and Description are sysContact, sysLocation and
	// sysDescr. Description defaults to "Portico <version>".
	Contact     string `yaml:"contact,omitempty" json:"contact,omitempty"`
	Location    string `yaml:"location,omitempty" json:"location,omitempty"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Communities are the SNMPv2c communities, each answered only from its
	// networks. Default: none (v2c is refused).
	Communities []Community `yaml:"communities,omitempty" json:"communities,omitempty"`
	// Users are the SNMPv3 USM users. Default: none.
	Users []User `yaml:"users,omitempty" json:"users,omitempty"`
	// AllowSHA1 admits auth_protocol sha1 (HMAC-96-SHA, RFC 3414) for
	// managers that know nothing newer. Default false: SHA-2 only.
	AllowSHA1 bool `yaml:"allow_sha1,omitempty" json:"allow_sha1,omitempty"`
	// EngineID is the agent's snmpEngineID in hex. Default: derived from
	// node.name, so it stays the same across restarts and reinstalls.
	EngineID string `yaml:"engine_id,omitempty" json:"engine_id,omitempty"`
	// RatePerSecond caps the requests answered per source address each
	// second; the rest are dropped and counted. Default 100.
	RatePerSecond int `yaml:"rate_per_second" json:"rate_per_second"`
	// Traps are the notification receivers. Default: none.
	Traps []Receiver `yaml:"traps,omitempty" json:"traps,omitempty"`
	// CertificateWarnDays: a certificate expiring within this many days
	// sends certificateExpiring (once a day per certificate). Default 30.
	CertificateWarnDays int `yaml:"certificate_warn_days" json:"certificate_warn_days"`
}

// Community is one SNMPv2c community.
type Community struct {
	// Community is the community string: a secret, masked in API reads.
	Community string `yaml:"community" json:"community"`
	// Networks are the CIDRs it is answered from. Required.
	Networks []string `yaml:"networks" json:"networks"`
}

// User is one SNMPv3 USM user (RFC 3414, RFC 7860 for SHA-2).
type User struct {
	Name string `yaml:"name" json:"name"`
	// AuthProtocol is sha256 (default, usmHMAC192SHA256AuthProtocol),
	// sha224, sha384, sha512, or sha1 when allow_sha1 is set.
	AuthProtocol string `yaml:"auth_protocol,omitempty" json:"auth_protocol,omitempty"`
	// AuthKey is the authentication passphrase (8 characters at least).
	AuthKey string `yaml:"auth_key" json:"auth_key"`
	// PrivProtocol is aes128 (default, RFC 3826) or none (authNoPriv).
	PrivProtocol string `yaml:"priv_protocol,omitempty" json:"priv_protocol,omitempty"`
	// PrivKey is the privacy passphrase (8 characters at least); required
	// unless priv_protocol is none.
	PrivKey string `yaml:"priv_key,omitempty" json:"priv_key,omitempty"`
}

// Receiver is where notifications go.
type Receiver struct {
	// Address is host:port; port 162 is the standard.
	Address string `yaml:"address" json:"address"`
	// Version is v2c (default) or v3.
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
	// Community for v2c (a secret, masked in API reads).
	Community string `yaml:"community,omitempty" json:"community,omitempty"`
	// User for v3 names an entry of users whose keys sign (and encrypt) it.
	User string `yaml:"user,omitempty" json:"user,omitempty"`
	// Inform asks for an acknowledgement (InformRequest), retried twice.
	// Default false: a trap, sent once.
	Inform bool `yaml:"inform,omitempty" json:"inform,omitempty"`
}

// DefaultSection is the section with every default filled in.
func DefaultSection() Section {
	return Section{RatePerSecond: 100, CertificateWarnDays: 30}
}

// authProtocols are the auth_protocol names; sha1 needs allow_sha1.
var authProtocols = []string{"sha224", "sha256", "sha384", "sha512", "sha1"}

// Validate checks the section and returns field.Errors naming each bad field.
func (s Section) Validate() error {
	var es field.Errors
	for i, a := range s.Listen {
		es.HostPort(field.Join("snmp.listen", i), a)
	}
	if s.RatePerSecond < 1 {
		es.Add("snmp.rate_per_second", "%d must be at least 1", s.RatePerSecond)
	}
	if s.CertificateWarnDays < 1 {
		es.Add("snmp.certificate_warn_days", "%d must be at least 1", s.CertificateWarnDays)
	}
	if s.EngineID != "" {
		if b, err := hex.DecodeString(s.EngineID); err != nil || len(b) < 5 || len(b) > 32 {
			es.Add("snmp.engine_id", "must be 5 to 32 octets in hex (RFC 3411)")
		}
	}
	for i, c := range s.Communities {
		p := field.Join("snmp.communities", i)
		if c.Community == "" {
			es.Add(p+".community", "must not be empty")
		}
		if len(c.Networks) == 0 {
			es.Add(p+".networks", "must list the networks the community is answered from")
		}
		for j, n := range c.Networks {
			es.CIDR(field.Join(p+".networks", j), n)
		}
	}
	users := map[string]bool{}
	for i, u := range s.Users {
		p := field.Join("snmp.users", i)
		switch {
		case u.Name == "" || len(u.Name) > 32:
			es.Add(p+".name", "must be 1 to 32 characters")
		case users[u.Name]:
			es.Add(p+".name", "%q is listed twice", u.Name)
		}
		users[u.Name] = true
		ap := u.authProtocol()
		switch {
		case !slices.Contains(authProtocols, ap):
			es.Add(p+".auth_protocol", "%q is not one of %s", u.AuthProtocol, strings.Join(authProtocols, ", "))
		case ap == "sha1" && !s.AllowSHA1:
			es.Add(p+".auth_protocol", "sha1 is refused unless snmp.allow_sha1 is set; use sha256")
		}
		if len(u.AuthKey) < 8 {
			es.Add(p+".auth_key", "must be at least 8 characters (RFC 3414)")
		}
		switch u.privProtocol() {
		case "aes128":
			if len(u.PrivKey) < 8 {
				es.Add(p+".priv_key", "must be at least 8 characters (RFC 3414), or set priv_protocol: none")
			}
		case "none":
		default:
			es.Add(p+".priv_protocol", "%q is not aes128 or none", u.PrivProtocol)
		}
	}
	for i, r := range s.Traps {
		p := field.Join("snmp.traps", i)
		es.HostPort(p+".address", r.Address)
		switch r.version() {
		case "v2c":
			if r.Community == "" {
				es.Add(p+".community", "required for a v2c receiver")
			}
		case "v3":
			if !users[r.User] {
				es.Add(p+".user", "%q is not one of snmp.users", r.User)
			}
		default:
			es.Add(p+".version", "%q is not v2c or v3", r.Version)
		}
	}
	if s.Enabled && len(s.Communities)+len(s.Users) == 0 {
		es.Add("snmp", "enabled but lists no communities and no users: nothing could query it")
	}
	return es.Err()
}

// ListenAddrs is Listen, or mgmtAddress port 161 when it is empty.
func (s Section) ListenAddrs(mgmtAddress string) []string {
	if len(s.Listen) > 0 {
		return s.Listen
	}
	if mgmtAddress == "" {
		mgmtAddress = "127.0.0.1"
	}
	return []string{net.JoinHostPort(mgmtAddress, "161")}
}

func (u User) authProtocol() string {
	if u.AuthProtocol == "" {
		return "sha256"
	}
	return strings.ToLower(u.AuthProtocol)
}

func (u User) privProtocol() string {
	if u.PrivProtocol == "" {
		return "aes128"
	}
	return strings.ToLower(u.PrivProtocol)
}

func (r Receiver) version() string {
	if r.Version == "" {
		return "v2c"
	}
	return r.Version
}
