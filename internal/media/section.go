package media

import (
	"net/netip"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
)

// Section is the media section of Portico's configuration document
// (docs/config.md): its YAML shape, defaults and validation. The relay
// runs from the Config that Section.Config derives from it with the
// node's interface addresses; package ng derives its listener from the
// ng_* fields.
type Section struct {
	// Enabled turns the relay on. Default false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// External and Internal are the relay port ranges on each interface.
	// Defaults 40000-49999 (external) and 50000-59999 (internal).
	External field.PortRange `yaml:"external" json:"external"`
	Internal field.PortRange `yaml:"internal" json:"internal"`
	// NATLatching lets the outside peer be learnt from any source address
	// (endpoints behind NAT). Default true; false accepts only the signalled IP.
	NATLatching *bool `yaml:"nat_latching" json:"nat_latching"`
	// InactivityTimeout reports a stream silent for this long. Default 60s.
	InactivityTimeout field.Duration `yaml:"inactivity_timeout" json:"inactivity_timeout"`
	// SocketBufferKB sets each relay socket's receive buffer. Default 4096.
	SocketBufferKB int `yaml:"socket_buffer_kb" json:"socket_buffer_kb"`
	// NGListen is host:port of the rtpengine "ng" control listener; empty: off.
	NGListen string `yaml:"ng_listen" json:"ng_listen"`
	// NGAllow lists the networks (CIDR) ng requests may come from; others
	// are dropped and counted. NGAllow or NGSecret is required when
	// NGListen is not a loopback or private address. Default: any source.
	NGAllow []string `yaml:"ng_allow,omitempty" json:"ng_allow,omitempty"`
	// NGSecret is a shared secret every ng request must carry (key
	// "secret" or flag "secret=..."). Default: none.
	NGSecret string `yaml:"ng_secret,omitempty" json:"ng_secret,omitempty"`
	// Workers is the number of packet workers: 0 (the default) is one per
	// CPU; 1 costs the least CPU per packet but adds latency under load.
	// 0..256.
	Workers int `yaml:"workers" json:"workers"`
	// MultiplexPort, when not zero, is the external H.460.19 multiplexed
	// RTP port (RTCP on the next one): an even port outside both ranges.
	// Default: none.
	MultiplexPort int `yaml:"multiplex_port,omitempty" json:"multiplex_port,omitempty"`
	// FastPath is auto, on or off: whether latched RTP is forwarded in
	// the kernel by the eBPF fast path. Default auto (when it loads).
	FastPath string `yaml:"fast_path,omitempty" json:"fast_path,omitempty"`
	// InternalLatchFrom is an IP address from which, with NAT latching, an
	// internal leg may latch besides its signalled address: where the
	// tunnel delivers inside endpoints' media when the internal port range
	// is mirrored on an inside node (docs/tunnel.md). Default: none.
	InternalLatchFrom string `yaml:"internal_latch_from,omitempty" json:"internal_latch_from,omitempty"`
}

// DefaultSection is the section with every default filled in.
func DefaultSection() Section {
	latch := true
	return Section{
		External:          field.PortRange{Min: 40000, Max: 49999},
		Internal:          field.PortRange{Min: 50000, Max: 59999},
		NATLatching:       &latch,
		InactivityTimeout: field.Duration(60 * time.Second),
		SocketBufferKB:    4096,
	}
}

// Validate checks the section on its own; errors name the document's
// fields (media.external.port_min).
func (s Section) Validate() error {
	var es field.Errors
	okE := es.PortRange("media.external", s.External)
	okI := es.PortRange("media.internal", s.Internal)
	if okE && okI && s.External.Min <= s.Internal.Max && s.Internal.Min <= s.External.Max {
		es.Add("media.internal", "%d-%d overlaps media.external %d-%d", s.Internal.Min, s.Internal.Max, s.External.Min, s.External.Max)
	}
	es.Positive("media.inactivity_timeout", s.InactivityTimeout)
	if s.SocketBufferKB < 64 || s.SocketBufferKB > 65536 {
		es.Add("media.socket_buffer_kb", "%d is outside 64..65536", s.SocketBufferKB)
	}
	if s.NGListen != "" {
		es.HostPort("media.ng_listen", s.NGListen)
	}
	for i, n := range s.NGAllow {
		es.CIDR(field.Join("media.ng_allow", i), n)
	}
	if m := s.MultiplexPort; m != 0 {
		switch {
		case m < 1024 || m > 65534 || m%2 != 0:
			es.Add("media.multiplex_port", "%d is not an even port in 1024..65534", m)
		case okE && m+1 >= s.External.Min && m <= s.External.Max:
			es.Add("media.multiplex_port", "%d is inside media.external %d-%d", m, s.External.Min, s.External.Max)
		case okI && m+1 >= s.Internal.Min && m <= s.Internal.Max:
			es.Add("media.multiplex_port", "%d is inside media.internal %d-%d", m, s.Internal.Min, s.Internal.Max)
		}
	}
	if _, err := ParseFastPath(s.FastPath); err != nil {
		es.Add("media.fast_path", "%v", err)
	}
	if s.Workers < 0 || s.Workers > 256 {
		es.Add("media.workers", "%d is outside 0..256 (0: one per CPU)", s.Workers)
	}
	if s.InternalLatchFrom != "" {
		if _, err := netip.ParseAddr(s.InternalLatchFrom); err != nil {
			es.Add("media.internal_latch_from", "%q is not an IP address", s.InternalLatchFrom)
		}
	}
	return es.Err()
}

// Env is what the relay takes from the rest of the node: the interface
// addresses (interfaces.external.address, .public_address and
// interfaces.internal.address).
type Env struct {
	External, PublicAddress, Internal string
}

// Config derives the relay's Config, with the interfaces named
// "external" and "internal".
func (s Section) Config(env Env) (Config, error) {
	var es field.Errors
	ext, err := netip.ParseAddr(env.External)
	if err != nil {
		es.Add("interfaces.external.address", "%q is not an IP address", env.External)
	}
	in, err := netip.ParseAddr(env.Internal)
	if err != nil {
		es.Add("interfaces.internal.address", "%q is not an IP address", env.Internal)
	}
	if len(es) > 0 {
		return Config{}, es
	}
	extIf := InterfaceConfig{Addr: ext, PortMin: s.External.Min, PortMax: s.External.Max, MultiplexPort: s.MultiplexPort}
	if env.PublicAddress != "" {
		extIf.Advertised, _ = netip.ParseAddr(env.PublicAddress)
	}
	fp, err := ParseFastPath(s.FastPath)
	if err != nil {
		es.Add("media.fast_path", "%v", err)
		return Config{}, es
	}
	latch := LatchStrict
	if s.NATLatching == nil || *s.NATLatching {
		latch = LatchNAT
	}
	inIf := InterfaceConfig{Addr: in, PortMin: s.Internal.Min, PortMax: s.Internal.Max}
	if s.InternalLatchFrom != "" {
		inIf.LatchFrom, _ = netip.ParseAddr(s.InternalLatchFrom)
	}
	return Config{
		Interfaces: map[string]InterfaceConfig{
			"external": extIf,
			"internal": inIf,
		},
		SocketBuffer:      s.SocketBufferKB << 10,
		Workers:           s.Workers,
		Latching:          latch,
		InactivityTimeout: s.InactivityTimeout.D(),
		FastPath:          fp,
	}, nil
}
