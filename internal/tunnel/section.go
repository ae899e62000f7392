package tunnel

import (
	"github.com/portico-edge/portico/internal/config/field"
)

// Section is the tunnel section of Portico's configuration document
// (docs/tunnel.md): its YAML shape, defaults and validation. The service
// runs from the Config that Section.Config derives from it.
type Section struct {
	// Enabled turns the tunnel end on. Default false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Role is "server" on the DMZ node and "client" on the inside node.
	Role string `yaml:"role" json:"role"`
	// Listen is the server's UDP address (host:port), e.g. "0.0.0.0:4443".
	Listen string `yaml:"listen,omitempty" json:"listen,omitempty"`
	// Server is the DMZ node's tunnel address (host:port) the client dials.
	Server string `yaml:"server,omitempty" json:"server,omitempty"`
	// Discover is the DNS SRV name a client without Server resolves to
	// find the DMZ node, e.g. "_portico-tunnel._udp.example.com".
	Discover string `yaml:"discover,omitempty" json:"discover,omitempty"`
	// Resolver is the DNS server (host:port) Discover asks; default the
	// system's.
	Resolver string `yaml:"resolver,omitempty" json:"resolver,omitempty"`
	// EnrollmentToken is presented once by a client not yet enrolled; after
	// a successful enrollment it is never used again and may be removed.
	EnrollmentToken string `yaml:"enrollment_token,omitempty" json:"enrollment_token,omitempty"`
	// Services name the flows carried (see Service).
	Services []SectionService `yaml:"services,omitempty" json:"services,omitempty"`
	// KeepAlive (500ms), IdleTimeout (1.5s: path failure), BackoffMin (250ms),
	// BackoffMax (15s), FlowIdle (60s), TokenTTL (24h): see Config.
	KeepAlive   field.Duration `yaml:"keep_alive,omitempty" json:"keep_alive,omitempty"`
	IdleTimeout field.Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty"`
	BackoffMin  field.Duration `yaml:"backoff_min,omitempty" json:"backoff_min,omitempty"`
	BackoffMax  field.Duration `yaml:"backoff_max,omitempty" json:"backoff_max,omitempty"`
	FlowIdle    field.Duration `yaml:"flow_idle,omitempty" json:"flow_idle,omitempty"`
	TokenTTL    field.Duration `yaml:"token_ttl,omitempty" json:"token_ttl,omitempty"`
	// DatagramQueue bounds datagrams waiting to be sent on each datagram
	// connection. Default 4096.
	DatagramQueue int `yaml:"datagram_queue,omitempty" json:"datagram_queue,omitempty"`
	// DatagramConnections is the QUIC connections carrying datagrams
	// (1-16). Default 4.
	DatagramConnections int `yaml:"datagram_connections,omitempty" json:"datagram_connections,omitempty"`
	// MaxFlows caps each offered service's flows. Default 4096.
	MaxFlows int `yaml:"max_flows,omitempty" json:"max_flows,omitempty"`
	// Priority ranks a client among those connected to one server (1-255,
	// higher preferred). Default 100.
	Priority int `yaml:"priority,omitempty" json:"priority,omitempty"`
}

// SectionService is one entry of tunnel.services.
type SectionService struct {
	Name   string `yaml:"name" json:"name"`
	Proto  string `yaml:"proto" json:"proto"`
	Listen string `yaml:"listen,omitempty" json:"listen,omitempty"`
	Target string `yaml:"target,omitempty" json:"target,omitempty"`
	// Mode (server): "one" (default) or "all"; see Service.Mode.
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Priority (client): this service's rank, 1-255; default the
	// section's priority.
	Priority int    `yaml:"priority,omitempty" json:"priority,omitempty"`
	Source   string `yaml:"source,omitempty" json:"source,omitempty"`
	// Networks make a TCP service a dial service (Service.Networks).
	Networks []string `yaml:"networks,omitempty" json:"networks,omitempty"`
	// IdleTimeout of an offered TCP service's connections (default and
	// negative: never).
	IdleTimeout field.Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty"`
}

// DefaultSection is the section with its defaults: off.
func DefaultSection() Section { return Section{} }

// Config derives the tunnel Config from the section.
func (s Section) Config() Config {
	c := Config{
		Role: s.Role, Listen: s.Listen, Server: s.Server, Discover: s.Discover, Resolver: s.Resolver,
		KeepAlive: s.KeepAlive.D(), IdleTimeout: s.IdleTimeout.D(), BackoffMin: s.BackoffMin.D(),
		BackoffMax: s.BackoffMax.D(), FlowIdle: s.FlowIdle.D(), TokenTTL: s.TokenTTL.D(),
		DatagramQueue: s.DatagramQueue, MaxFlows: s.MaxFlows, EnrollmentToken: s.EnrollmentToken,
		Priority: s.Priority, DatagramConnections: s.DatagramConnections,
	}
	for _, x := range s.Services {
		c.Services = append(c.Services, Service{Name: x.Name, Proto: x.Proto, Listen: x.Listen, Target: x.Target,
			Source: x.Source, Networks: x.Networks, IdleTimeout: x.IdleTimeout.D(), Mode: x.Mode, Priority: x.Priority})
	}
	return c
}

// Validate checks the section when it is enabled; errors name paths below
// "tunnel".
func (s Section) Validate() error {
	if !s.Enabled {
		return nil
	}
	var es field.Errors
	if s.Role == RoleServer && s.Listen == "" {
		es.Add("tunnel.listen", "required for role server")
	}
	if s.Role == RoleServer && s.EnrollmentToken != "" {
		es.Add("tunnel.enrollment_token", "only a client presents a token")
	}
	if s.EnrollmentToken != "" {
		if _, _, err := parseToken(s.EnrollmentToken); err != nil {
			es.Add("tunnel.enrollment_token", "not a token issued by a tunnel server")
		}
	}
	if err := s.Config().Validate("tunnel"); err != nil {
		if more, ok := field.As(err); ok {
			es = append(es, more...)
		}
	}
	return es.Err()
}
