package h323proxy

import (
	"cmp"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/portico-edge/portico/internal/config/field"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
)

// Section is the h323 section of Portico's configuration document
// (docs/h323.md): its YAML shape and validation. The service runs from
// the Config that Section.Config derives from it.
type Section struct {
	// Enabled turns the H.323 edge on; it needs Gatekeeper.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// ExternalAddress and InternalAddress override the interfaces'
	// addresses for H.323 (H.323 may face other networks than SIP).
	// Default: interfaces.external.address and interfaces.internal.address.
	ExternalAddress string `yaml:"external_address,omitempty" json:"external_address,omitempty"`
	InternalAddress string `yaml:"internal_address,omitempty" json:"internal_address,omitempty"`
	// RASPort is the outside RAS port (1719); InternalRASPort the inside
	// one toward the gatekeeper (0: any free port).
	RASPort         int `yaml:"ras_port,omitempty" json:"ras_port,omitempty"`
	InternalRASPort int `yaml:"internal_ras_port,omitempty" json:"internal_ras_port,omitempty"`
	// SignalPort is the call-signalling port on both sides (1720).
	SignalPort int `yaml:"signal_port,omitempty" json:"signal_port,omitempty"`
	// Gatekeeper is the inside gatekeeper's RAS address, ip:port (port
	// 1719 if omitted). Required when enabled.
	Gatekeeper string `yaml:"gatekeeper" json:"gatekeeper"`
	// GatekeeperID is the inside gatekeeper's identifier (optional);
	// OutsideGatekeeperID the one outside endpoints see ("portico").
	GatekeeperID        string `yaml:"gatekeeper_id,omitempty" json:"gatekeeper_id,omitempty"`
	OutsideGatekeeperID string `yaml:"outside_gatekeeper_id,omitempty" json:"outside_gatekeeper_id,omitempty"`
	// TimeToLive of outside registrations (300s); KeepAliveInterval of
	// H.460.18 endpoints (19s).
	TimeToLive        field.Duration `yaml:"time_to_live,omitempty" json:"time_to_live,omitempty"`
	KeepAliveInterval field.Duration `yaml:"keep_alive_interval,omitempty" json:"keep_alive_interval,omitempty"`
	// DisableTraversal stops offering H.460.18 (on by default).
	DisableTraversal bool `yaml:"disable_traversal,omitempty" json:"disable_traversal,omitempty"`
	// DisableMediaTraversal stops offering H.460.19 (on by default with
	// H.460.18).
	DisableMediaTraversal bool `yaml:"disable_media_traversal,omitempty" json:"disable_media_traversal,omitempty"`
	// MediaKeepAlivePayloadType (96-127, default 127) and
	// MediaKeepAliveInterval (1s-60s in whole seconds, default 19s) are the
	// H.460.19 keepAlivePayloadType and keepAliveInterval asked of outside
	// endpoints in their logical channels.
	MediaKeepAlivePayloadType int            `yaml:"media_keep_alive_payload_type,omitempty" json:"media_keep_alive_payload_type,omitempty"`
	MediaKeepAliveInterval    field.Duration `yaml:"media_keep_alive_interval,omitempty" json:"media_keep_alive_interval,omitempty"`
	// MaxRegistrations (10000) are answered beyond with RRJ
	// resourceUnavailable.
	MaxRegistrations int `yaml:"max_registrations,omitempty" json:"max_registrations,omitempty"`
	// RASSocketBuffer is each RAS socket's receive buffer in bytes (4 MiB;
	// -1: the kernel's default).
	RASSocketBuffer int `yaml:"ras_socket_buffer,omitempty" json:"ras_socket_buffer,omitempty"`
	// GatekeeperSignal is the inside gatekeeper's call-signalling
	// address, ip:port, for calls from outside the gatekeeper admitted no
	// destination for (guests). Default: gatekeeper's IP, port 1720.
	GatekeeperSignal string `yaml:"gatekeeper_signal,omitempty" json:"gatekeeper_signal,omitempty"`
	// MaxCalls caps calls in progress (1000); SetupTimeout bounds the
	// first message of a call-signalling connection (10s), AnswerTimeout
	// a call from Setup to Connect (180s).
	MaxCalls      int            `yaml:"max_calls,omitempty" json:"max_calls,omitempty"`
	SetupTimeout  field.Duration `yaml:"setup_timeout,omitempty" json:"setup_timeout,omitempty"`
	AnswerTimeout field.Duration `yaml:"answer_timeout,omitempty" json:"answer_timeout,omitempty"`
	// Neighbours are outside gatekeepers Portico federates with: their
	// LRQs are answered, and the inside gatekeeper's LRQs for aliases
	// they serve are sent to them.
	Neighbours []NeighbourSection `yaml:"neighbours,omitempty" json:"neighbours,omitempty"`
	// Federation.OpenB2B accepts LRQs from any source (as
	// sip.federation.open_b2b does for SIP domains); unset, it follows
	// sip.federation.open_b2b.
	Federation FederationSection `yaml:"federation,omitempty" json:"federation,omitempty"`
	// Zones are H.460.18 traversal zones toward other edges: Portico
	// registers to each as a traversal client (zone.go).
	Zones []ZoneSection `yaml:"zones,omitempty" json:"zones,omitempty"`
	// KeepAlives choose the call-signalling and H.245 keep-alive method of
	// H.460.18 endpoints by vendor (keepalive.go); they come before the
	// built-in table.
	KeepAlives []KeepAliveSection `yaml:"keep_alives,omitempty" json:"keep_alives,omitempty"`
	// H245Ports are the TCP port ranges of the listeners Portico opens
	// for separate H.245 connections (H.225.0 §8.2.1), on each side;
	// unset: any free port.
	H245Ports H245PortsSection `yaml:"h245_ports,omitempty" json:"h245_ports,omitempty"`
	// H245TunnelService names the tunnel dial service (tunnel.services,
	// on a DMZ node with tunnel.role server) through which Portico
	// connects to the H.245 addresses inside endpoints announce; empty:
	// Portico connects to them directly.
	H245TunnelService string `yaml:"h245_tunnel_service,omitempty" json:"h245_tunnel_service,omitempty"`
}

// H245PortsSection is h323.h245_ports.
type H245PortsSection struct {
	External PortRangeSection `yaml:"external,omitempty" json:"external,omitempty"`
	Internal PortRangeSection `yaml:"internal,omitempty" json:"internal,omitempty"`
}

// PortRangeSection is a range of ports, min to max inclusive.
type PortRangeSection struct {
	Min int `yaml:"min" json:"min"`
	Max int `yaml:"max" json:"max"`
}

// ZoneSection is one h323.zones entry: a traversal server Portico
// registers to as an H.460.18 client.
type ZoneSection struct {
	// Name labels the zone in history, metrics and the API. Required,
	// unique.
	Name string `yaml:"name" json:"name"`
	// Server is the traversal server's RAS address, host[:port]: an IP
	// address (port 1719 if omitted), or a DNS name resolved at each
	// registration (without a port, by its _h323rs._udp SRV record first,
	// else port 1719).
	Server string `yaml:"server" json:"server"`
	// GatekeeperID is the server's gatekeeper identifier, sent in GRQ and
	// RRQ; empty: whatever the server answers.
	GatekeeperID string `yaml:"gatekeeper_id,omitempty" json:"gatekeeper_id,omitempty"`
	// Aliases are Portico's identity in the zone, registered in the RRQ
	// (digits: dialedDigits, else h323-ID). At least one.
	Aliases []string `yaml:"aliases" json:"aliases"`
	// Prefixes and Domains select the aliases called through the zone.
	Prefixes []string `yaml:"prefixes,omitempty" json:"prefixes,omitempty"`
	Domains  []string `yaml:"domains,omitempty" json:"domains,omitempty"`
	// TimeToLive is asked in the RRQ (default 300s); the server's RCF
	// grants the keep-alive interval Portico uses.
	TimeToLive field.Duration `yaml:"time_to_live,omitempty" json:"time_to_live,omitempty"`
	// RetryMax caps the backoff between registration attempts (60s).
	RetryMax field.Duration `yaml:"retry_max,omitempty" json:"retry_max,omitempty"`
}

// KeepAliveSection is one h323.keep_alives entry.
type KeepAliveSection struct {
	// Product matches, case-insensitively, a substring of the RRQ's
	// endpointVendor productId (or versionId); Manufacturer, when set,
	// the vendor's T.35 manufacturer code. At least one is required.
	Product      string `yaml:"product,omitempty" json:"product,omitempty"`
	Manufacturer *int   `yaml:"manufacturer,omitempty" json:"manufacturer,omitempty"`
	// Signalling is the call-signalling keep-alive: tpkt, facility or
	// none; H245 the H.245 one: tpkt or none.
	Signalling string `yaml:"signalling,omitempty" json:"signalling,omitempty"`
	H245       string `yaml:"h245,omitempty" json:"h245,omitempty"`
}

// NeighbourSection is one h323.neighbours entry.
type NeighbourSection struct {
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Address is its RAS address, ip:port (port 1719 if omitted).
	Address string `yaml:"address" json:"address"`
	// Prefixes and Domains select the aliases located there: alias
	// prefixes, and the domains of alias@domain.
	Prefixes []string `yaml:"prefixes,omitempty" json:"prefixes,omitempty"`
	Domains  []string `yaml:"domains,omitempty" json:"domains,omitempty"`
}

// FederationSection is h323.federation.
type FederationSection struct {
	// OpenB2B, when set, wins; nil (not in the document) takes
	// Interfaces.SIPOpenB2B, the sip section's setting.
	OpenB2B *bool `yaml:"open_b2b,omitempty" json:"open_b2b,omitempty"`
	// DNSServer is the resolver, ip[:port] (port 53), for the
	// _h323ls._udp lookups of alias@domain; default the system's.
	DNSServer string `yaml:"dns_server,omitempty" json:"dns_server,omitempty"`
}

// Interfaces are the node's addresses the section defaults to, and the
// other sections' settings it follows when it does not set its own.
type Interfaces struct {
	External, Public, Internal string
	// SIPOpenB2B is sip.federation.open_b2b, the default of
	// h323.federation.open_b2b.
	SIPOpenB2B bool
}

// Validate checks an enabled section as New does (a disabled one may be
// incomplete); errors name the document's fields.
func (s Section) Validate(ifs Interfaces) error {
	if !s.Enabled {
		return nil
	}
	c, err := s.Config(ifs)
	if err != nil {
		return err
	}
	_, err = c.withDefaults()
	return err
}

// Config derives the service's Config.
func (s Section) Config(ifs Interfaces) (Config, error) {
	var es field.Errors
	addr := func(path, v, def string) netip.Addr {
		if v == "" {
			v = def
		}
		if v == "" {
			return netip.Addr{}
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			es.Add(path, "%q is not an IP address", v)
		}
		return a
	}
	port := func(path string, v, def int) uint16 {
		if v == 0 {
			return uint16(def)
		}
		if v < 0 || v > 65535 {
			es.Add(path, "%d is not a port", v)
			return 0
		}
		return uint16(v)
	}
	ext := addr("h323.external_address", s.ExternalAddress, ifs.External)
	in := addr("h323.internal_address", s.InternalAddress, ifs.Internal)
	var public netip.Addr
	if ifs.Public != "" && s.ExternalAddress == "" {
		public = addr("interfaces.external.public_address", ifs.Public, "")
	}
	sig := port("h323.signal_port", s.SignalPort, DefaultSignalPort)
	c := Config{
		ExternalRAS:               netip.AddrPortFrom(ext, port("h323.ras_port", s.RASPort, DefaultRASPort)),
		PublicAddress:             public,
		InternalRAS:               netip.AddrPortFrom(in, port("h323.internal_ras_port", s.InternalRASPort, 0)),
		ExternalSignalPort:        sig,
		InternalSignal:            netip.AddrPortFrom(in, sig),
		GatekeeperID:              s.GatekeeperID,
		OutsideGatekeeperID:       s.OutsideGatekeeperID,
		TimeToLive:                s.TimeToLive.D(),
		KeepAliveInterval:         s.KeepAliveInterval.D(),
		Traversal:                 !s.DisableTraversal,
		MediaTraversal:            !s.DisableTraversal && !s.DisableMediaTraversal,
		MediaKeepAliveInterval:    s.MediaKeepAliveInterval.D(),
		MediaKeepAlivePayloadType: s.MediaKeepAlivePayloadType,
		MaxRegistrations:          s.MaxRegistrations,
		SocketBuffer:              s.RASSocketBuffer,
		MaxCalls:                  s.MaxCalls,
		SetupTimeout:              s.SetupTimeout.D(),
		AnswerTimeout:             s.AnswerTimeout.D(),
	}
	hostPort := func(path, v string, def int) netip.AddrPort {
		if v == "" {
			return netip.AddrPort{}
		}
		host, p := v, strconv.Itoa(def)
		if h, pp, err := net.SplitHostPort(v); err == nil {
			host, p = h, pp
		}
		a, err1 := netip.ParseAddr(host)
		n, err2 := strconv.Atoi(p)
		if err1 != nil || err2 != nil || n < 1 || n > 65535 {
			es.Add(path, "%q is not ip:port", v)
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(a, uint16(n))
	}
	c.Gatekeeper = hostPort("h323.gatekeeper", s.Gatekeeper, DefaultRASPort)
	c.GatekeeperSignal = hostPort("h323.gatekeeper_signal", s.GatekeeperSignal, DefaultSignalPort)
	for i, n := range s.Neighbours {
		path := "h323.neighbours[" + strconv.Itoa(i) + "].address"
		if n.Address == "" {
			es.Add(path, "the neighbour's RAS address is required")
		}
		c.Neighbours = append(c.Neighbours, Neighbour{Name: n.Name, RAS: hostPort(path, n.Address, DefaultRASPort),
			Prefixes: n.Prefixes, Domains: n.Domains})
	}
	c.OpenB2B = ifs.SIPOpenB2B
	if s.Federation.OpenB2B != nil {
		c.OpenB2B = *s.Federation.OpenB2B
	}
	for i, z := range s.Zones {
		path := "h323.zones[" + strconv.Itoa(i) + "]"
		if z.Server == "" {
			es.Add(path+".server", "the traversal server's RAS address is required")
		}
		server, host := zoneServer(&es, path+".server", z.Server)
		c.Zones = append(c.Zones, Zone{Name: z.Name, Server: server, Host: host, GatekeeperID: z.GatekeeperID,
			Aliases: z.Aliases, Prefixes: z.Prefixes, Domains: z.Domains, TimeToLive: z.TimeToLive.D(), RetryMax: z.RetryMax.D()})
	}
	for _, k := range s.KeepAlives {
		c.KeepAlives = append(c.KeepAlives, KeepAliveRule{Product: k.Product, Manufacturer: k.Manufacturer,
			Signalling: KeepAliveMethod(k.Signalling), H245: KeepAliveMethod(k.H245)})
	}
	c.DNSServer = hostPort("h323.federation.dns_server", s.Federation.DNSServer, 53)
	portRange := func(path string, r PortRangeSection) h245proxy.PortRange {
		if r.Min < 0 || r.Min > 65535 || r.Max < 0 || r.Max > 65535 {
			es.Add(path, "%d-%d is not a range of ports", r.Min, r.Max)
			return h245proxy.PortRange{}
		}
		return h245proxy.PortRange{Min: uint16(r.Min), Max: uint16(r.Max)}
	}
	c.H245External = portRange("h323.h245_ports.external", s.H245Ports.External)
	c.H245Internal = portRange("h323.h245_ports.internal", s.H245Ports.Internal)
	return c, es.Err()
}

// zoneServer parses a zone's server, host[:port]: an IP address's
// RAS address (port 1719 if omitted), or a DNS name and the port given
// (0: none).
func zoneServer(es *field.Errors, path, v string) (netip.AddrPort, string) {
	if v == "" {
		return netip.AddrPort{}, ""
	}
	host, port := v, 0
	if h, p, err := net.SplitHostPort(v); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			es.Add(path, "%q: %q is not a port", v, p)
			return netip.AddrPort{}, ""
		}
		host, port = h, n
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(cmp.Or(port, DefaultRASPort))), ""
	}
	if !isHostName(host) {
		es.Add(path, "%q is not host[:port] (an IP address or a DNS name)", v)
		return netip.AddrPort{}, ""
	}
	return netip.AddrPortFrom(netip.Addr{}, uint16(port)), strings.ToLower(strings.TrimSuffix(host, "."))
}

// isHostName reports whether s is a DNS host name: dot-separated labels
// of letters, digits and inner hyphens, 1 to 63 octets each, 253 in all.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range []byte(l) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Sockets lists the UDP and TCP ports an enabled section binds, for the
// configuration's port-overlap check: "udp" or "tcp" and ip:port.
func (s Section) Sockets(ifs Interfaces) (udp, tcp []netip.AddrPort) {
	c, err := s.Config(ifs)
	if err != nil || !s.Enabled {
		return nil, nil
	}
	udp = []netip.AddrPort{c.ExternalRAS}
	if c.InternalRAS.Port() != 0 {
		udp = append(udp, c.InternalRAS)
	}
	tcp = []netip.AddrPort{netip.AddrPortFrom(c.ExternalRAS.Addr(), c.ExternalSignalPort), c.InternalSignal}
	return udp, tcp
}
