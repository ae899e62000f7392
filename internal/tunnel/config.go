package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
)

// Roles.
const (
	RoleServer = "server" // the DMZ node: listens
	RoleClient = "client" // the inside node: dials out
)

// Defaults.
const (
	DefaultKeepAlive     = 500 * time.Millisecond
	DefaultIdleTimeout   = 1500 * time.Millisecond
	DefaultBackoffMin    = 250 * time.Millisecond
	DefaultBackoffMax    = 15 * time.Second
	DefaultDatagramQueue = 4096
	// DefaultDatagramConnections is the QUIC connections a client makes
	// for datagrams; MaxDatagramConnections caps the setting.
	DefaultDatagramConnections = 4
	MaxDatagramConnections     = 16
	DefaultFlowIdle            = 60 * time.Second
	// DefaultMaxFlows caps the flows of one service on the server.
	DefaultMaxFlows = 4096
	// maxFlowsPerSource caps one client address's TCP connections to a
	// service on the server.
	maxFlowsPerSource = 64
	DefaultTokenTTL   = 24 * time.Hour
	DefaultPriority   = 100
)

// Service modes on the server (Service.Mode).
const (
	ModeOne = "one" // one client carries the service's flows
	ModeAll = "all" // every client delivering the service carries some
)

// Config configures one end of the tunnel. The zero value of a field means
// its default, stated in the field comment. Errors name the field path below
// "tunnel", e.g. "tunnel.services[0].name: required".
type Config struct {
	// Role is "server" (DMZ node) or "client" (inside node). Required.
	Role string
	// Listen is the server's UDP address, "host:port". Required for a server
	// unless Run is handed a socket (Serve).
	Listen string
	// Server is the address the client dials, "host:port". A client needs
	// Server or Discover.
	Server string
	// Discover is, on a client without Server, the DNS SRV name that
	// names the tunnel server, e.g. "_portico-tunnel._udp.example.com".
	Discover string
	// Resolver is the DNS server ("host:port") Discover asks. Default: the
	// system's resolver.
	Resolver string
	// Services names the flows carried. A service with a Listen address is
	// offered on this end to local users and carried to the peer; a service
	// with a Target is delivered there when the peer carries it. Usually
	// the server offers and the client delivers; a reverse service is
	// offered by the client and delivered by the server.
	Services []Service
	// KeepAlive is the PING interval on an idle connection. Default 500ms.
	KeepAlive time.Duration
	// IdleTimeout declares the path failed when nothing arrives for this
	// long; the 1.5s default keeps detection within 2s. Default 1.5s.
	IdleTimeout time.Duration
	// BackoffMin and BackoffMax bound the client's reconnect delay, which
	// doubles after each failure and is jittered by up to half. Defaults
	// 250ms and 15s.
	BackoffMin, BackoffMax time.Duration
	// DatagramQueue bounds the datagrams waiting to be sent, and those
	// received waiting to be delivered; more are counted and dropped.
	// One queue holds every flow's datagrams: 4096 is 160 ms of 500
	// calls' audio. Default 4096.
	DatagramQueue int
	// DatagramConnections is how many QUIC connections carry the flows'
	// datagrams, each with its own congestion window, send queue (of
	// DatagramQueue) and receive loop; each flow is carried by one, chosen
	// by its flow identifier. Streams use the first connection only. A
	// client makes this many connections to the server; a server sends on
	// the ones its active client made. 1 carries everything on the one
	// connection. 1-16; default 4.
	DatagramConnections int
	// FlowIdle ends a UDP flow that carried nothing for this long.
	// Default 60s.
	FlowIdle time.Duration
	// MaxFlows caps the flows of each service the server offers: TCP
	// connections open at once (at most 64 from one address) and UDP
	// sources within FlowIdle; beyond it new ones are refused and
	// counted. Default 4096.
	MaxFlows int
	// TokenTTL is how long an enrollment token stays valid. Default 24h.
	TokenTTL time.Duration
	// EnrollmentToken, on a client not yet enrolled, is presented by Run
	// before it connects. Optional.
	EnrollmentToken string
	// Priority, on a client, ranks it among the clients connected to one
	// server: the server carries its flows through the connected client
	// with the highest priority (the earliest connected among equals).
	// 1-255; 0 means the default, 100.
	Priority int
}

// Service is one named flow class.
type Service struct {
	// Name is 1-32 bytes of [a-z0-9._-]. Required, unique.
	Name string
	// Proto is "tcp" or "udp". Required.
	Proto string
	// Listen is the local address where the service is offered
	// ("host:port", or "host:first-last", a range of ports whose flows
	// reach the same offset in the peer's Target range). Optional: on the
	// server, a service with neither Listen nor Target is reached only
	// through Server.Dial (and DialTo, for a dial service).
	Listen string
	// Target is where flows the peer carries are delivered ("host:port").
	// A client needs Listen or Target for each service; no service has
	// both.
	Target string
	// Mode, on the server, is how the connected clients that deliver the
	// service share its flows: "one" (the default) carries them all
	// through one client, the one that announced the highest priority for
	// the service (the earliest connected among equals), and moves them at
	// once to the next when it goes; "all" spreads new flows over every
	// client that delivers the service, each flow staying on its client
	// while that client stays connected.
	Mode string
	// Priority, on a client, ranks it for this service among the clients
	// of one server (1-255, higher preferred); 0 means the client's
	// Priority. Only a service the client delivers (not one it offers
	// with Listen) has one.
	Priority int
	// Source is the local IP address the delivering end's flow sockets
	// use toward Target. Optional (the system chooses); it lets the target
	// see the flows coming from a chosen address, e.g. the address at
	// which it reaches the peer's servers through the tunnel, as SIP needs
	// for its responses (RFC 3261 section 18.2.2).
	Source string
	// Networks makes a TCP service a dial service on this end (instead of
	// Listen or Target): each flow the peer opens with DialTo names its
	// own destination, which is connected to only when its address lies
	// in one of these prefixes ("10.0.0.0/8"); any other is refused and
	// counted (dials_refused). The peer lists the service with neither
	// Listen nor Target.
	Networks []string
	// IdleTimeout closes a TCP connection to a service offered here
	// (Listen) that carried nothing either way for this long. Unset or
	// negative: never; a TCP flow ends when one of its ends closes it
	// (connections that stay silent for a whole call, as H.323 call
	// signalling and H.245 and SIP over TCP between refreshes do, must
	// not be cut), and MaxFlows bounds how many there are.
	IdleTimeout time.Duration
}

// Validate checks c and returns field errors with paths below prefix
// (normally "tunnel").
func (c Config) Validate(prefix string) error {
	var errs field.Errors
	switch c.Role {
	case RoleServer:
		if c.Listen != "" {
			checkAddr(&errs, prefix+".listen", c.Listen)
		}
		if c.Discover != "" || c.Resolver != "" {
			errs.Add(prefix+".discover", "only a client discovers its server")
		}
	case RoleClient:
		switch {
		case c.Server != "" && c.Discover != "":
			errs.Add(prefix+".discover", "a client with a server does not discover one")
		case c.Server != "":
			checkAddr(&errs, prefix+".server", c.Server)
		case c.Discover == "":
			errs.Add(prefix+".server", "required for role client (or discover, an SRV name)")
		case !validSRVName(c.Discover):
			errs.Add(prefix+".discover", "%q is not a DNS name", c.Discover)
		}
		if c.Resolver != "" {
			checkAddr(&errs, prefix+".resolver", c.Resolver)
		}
	case "":
		errs.Add(prefix+".role", "required (server or client)")
	default:
		errs.Add(prefix+".role", "%q is not server or client", c.Role)
	}
	seen := map[string]bool{}
	for i, s := range c.Services {
		p := fmt.Sprintf("%s.services[%d]", prefix, i)
		if err := validServiceName(s.Name); err != nil {
			errs.Add(p+".name", "%q must be 1-%d bytes of a-z, 0-9, '.', '_', '-'", s.Name, MaxServiceName)
		} else if seen[s.Name] {
			errs.Add(p+".name", "%q is listed twice", s.Name)
		}
		seen[s.Name] = true
		if s.Proto != "tcp" && s.Proto != "udp" {
			errs.Add(p+".proto", "%q is not tcp or udp", s.Proto)
		}
		switch {
		case s.Listen != "" && s.Target != "":
			errs.Add(p+".target", "a service is offered on this end (listen) or delivered here (target), not both")
		case len(s.Networks) > 0:
			checkNetworks(&errs, p, s)
		case s.Listen != "":
			checkServiceAddr(&errs, p+".listen", s)
		case s.Target != "":
			checkServiceAddr(&errs, p+".target", s)
		case c.Role == RoleClient:
			errs.Add(p+".target", "required for role client (or listen, for a service offered inside, or networks, for a dial service)")
		}
		if s.IdleTimeout != 0 && (s.Proto != "tcp" || s.Listen == "") {
			errs.Add(p+".idle_timeout", "only a tcp service offered on this end (listen) has an idle timeout")
		}
		switch {
		case s.Mode == "":
		case s.Mode != ModeOne && s.Mode != ModeAll:
			errs.Add(p+".mode", "%q is not one or all", s.Mode)
		case c.Role != RoleServer:
			errs.Add(p+".mode", "only the server shares a service among its clients")
		case s.Target != "":
			errs.Add(p+".mode", "a service delivered here (target) is not carried by clients")
		}
		switch {
		case s.Priority == 0:
		case s.Priority < 0 || s.Priority > 255:
			errs.Add(p+".priority", "%d is not 1-255", s.Priority)
		case c.Role != RoleClient:
			errs.Add(p+".priority", "only a client has a priority")
		case s.Listen != "":
			errs.Add(p+".priority", "only a service this client delivers (not one it offers, listen) has a priority")
		}
		if s.Source != "" {
			if _, err := netip.ParseAddr(s.Source); err != nil {
				errs.Add(p+".source", "%q is not an IP address", s.Source)
			} else if s.Target == "" && len(s.Networks) == 0 {
				errs.Add(p+".source", "only a service with a target or networks has a source")
			}
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"keep_alive", c.KeepAlive}, {"idle_timeout", c.IdleTimeout}, {"backoff_min", c.BackoffMin}, {"backoff_max", c.BackoffMax}, {"flow_idle", c.FlowIdle}, {"token_ttl", c.TokenTTL}} {
		if d.v < 0 {
			errs.Add(prefix+"."+d.name, "%s is negative", d.v)
		}
	}
	if c.Priority < 0 || c.Priority > 255 {
		errs.Add(prefix+".priority", "%d is not 1-255", c.Priority)
	} else if c.Priority != 0 && c.Role != RoleClient {
		errs.Add(prefix+".priority", "only a client has a priority")
	}
	if c.MaxFlows < 0 {
		errs.Add(prefix+".max_flows", "%d is negative", c.MaxFlows)
	}
	if c.DatagramConnections < 0 || c.DatagramConnections > MaxDatagramConnections {
		errs.Add(prefix+".datagram_connections", "%d is not 1-%d", c.DatagramConnections, MaxDatagramConnections)
	}
	if c.DatagramQueue < 0 {
		errs.Add(prefix+".datagram_queue", "%d is negative", c.DatagramQueue)
	}
	d := c.withDefaults()
	if d.KeepAlive >= d.IdleTimeout {
		errs.Add(prefix+".keep_alive", "%s must be shorter than idle_timeout %s", d.KeepAlive, d.IdleTimeout)
	}
	if d.BackoffMin > d.BackoffMax {
		errs.Add(prefix+".backoff_min", "%s is above backoff_max %s", d.BackoffMin, d.BackoffMax)
	}
	return errs.Err()
}

// validSRVName accepts a DNS name of labels of letters, digits, '-' and
// '_' (SRV owner names start with _service._proto).
func validSRVName(n string) bool {
	n = strings.TrimSuffix(n, ".")
	if n == "" || len(n) > 253 {
		return false
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// MaxPortRange caps the ports of one range service; the port's index
// rides in the top bits of the flow identifier.
const MaxPortRange = 1 << (32 - flowIndexShift)

// flowIndexShift places a range service's port index in a flow
// identifier: index<<flowIndexShift | counter.
const flowIndexShift = 20

// portRange splits "host:port" or "host:lo-hi" (a UDP service's range of
// ports, one flow socket each) into the host and the first and last port.
func portRange(addr string) (host string, lo, hi int, err error) {
	host, ports, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, 0, err
	}
	a, b, isRange := strings.Cut(ports, "-")
	if lo, err = strconv.Atoi(a); err != nil || lo < 0 || lo > 65535 {
		return "", 0, 0, fmt.Errorf("%q has no valid port", addr)
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil || hi < lo || hi > 65535 || lo == 0 {
			return "", 0, 0, fmt.Errorf("%q has no valid port range", addr)
		}
	}
	return host, lo, hi, nil
}

// checkServiceAddr checks a service's listen or target: host:port, or for
// host:lo-hi of at most MaxPortRange ports.
func checkServiceAddr(errs *field.Errors, path string, s Service) {
	addr := s.Listen
	if s.Listen == "" {
		addr = s.Target
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || !strings.Contains(port, "-") {
		checkAddr(errs, path, addr)
		return
	}
	_, lo, hi, err := portRange(addr)
	switch {
	case err != nil:
		errs.Add(path, "%q is not host:port or host:first-last", addr)
	case hi-lo+1 > MaxPortRange:
		errs.Add(path, "%d ports is more than %d", hi-lo+1, MaxPortRange)
	}
}

func checkAddr(errs *field.Errors, path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		errs.Add(path, "%q is not host:port", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs.Add(path, "%q has no valid port", addr)
	}
}

func (c Config) withDefaults() Config {
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.DatagramQueue == 0 {
		c.DatagramQueue = DefaultDatagramQueue
	}
	if c.DatagramConnections == 0 {
		c.DatagramConnections = DefaultDatagramConnections
	}
	if c.FlowIdle == 0 {
		c.FlowIdle = DefaultFlowIdle
	}
	if c.MaxFlows == 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.Priority == 0 {
		c.Priority = DefaultPriority
	}
	return c
}

func (c Config) service(name string) (Service, bool) {
	for _, s := range c.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}
