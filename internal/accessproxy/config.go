package accessproxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/config/field"
)

// Actions a route can take.
const (
	ActionHTTP        = "http"        // terminate TLS, reverse-proxy HTTP to Upstream (a URL)
	ActionPassthrough = "passthrough" // forward TLS untouched to Upstream (host:port)
	ActionHandoff     = "handoff"     // give the connection to Deps.Handlers[Handler]
	ActionLDAP        = "ldap"        // LDAP proxy (client LDAPS or StartTLS) to Upstream (host:port)
	ActionXMPP        = "xmpp"        // XMPP: direct TLS passed through, plaintext (STARTTLS) relayed to Upstream
)

// Config is the access proxy's configuration (the `access_proxy` section).
type Config struct {
	// Listen is the one port every TLS-shaped service shares.
	// Default "127.0.0.1:8443" (development); production is ":443".
	Listen string `yaml:"listen" json:"listen"`
	// ExtraListen are more addresses served by the same demultiplexer and
	// routes (e.g. ":636" for LDAPS, ":5222" for XMPP). Default none.
	ExtraListen []string `yaml:"extra_listen" json:"extra_listen"`
	// Routes are tried in order; the first match wins.
	Routes []Route `yaml:"routes" json:"routes"`
	// TCP maps extra listen ports straight to inside host:port.
	TCP []TCPMapping `yaml:"tcp" json:"tcp"`
	// TLS settings for every connection Portico terminates.
	TLS TLSSettings `yaml:"tls" json:"tls"`
	// ProxyProtocol accepts PROXY v1/v2 headers from load balancers.
	ProxyProtocol ProxyProtocol `yaml:"proxy_protocol" json:"proxy_protocol"`
	// Timeouts; zero fields take their defaults.
	Timeouts Timeouts `yaml:"timeouts" json:"timeouts"`
	// MaxRequestBody caps an HTTP request body in bytes. Default 10 MiB; -1 is unlimited.
	MaxRequestBody int64 `yaml:"max_request_body" json:"max_request_body"`
	// MaxConns caps concurrent connections on the shared port(s). Default
	// 10000. A Reload applies it at once (open connections stay).
	MaxConns int `yaml:"max_conns" json:"max_conns"`
	// MaxConnsPerClient caps concurrent connections on the shared port(s)
	// from one client IP address (the real client's, after PROXY
	// protocol), so one host cannot take all of MaxConns. Default 256
	// (room for many browsers behind one NAT); -1: no cap.
	MaxConnsPerClient int `yaml:"max_conns_per_client" json:"max_conns_per_client"`
	// STUNHandler names the handler for STUN/TURN over TCP arriving on the
	// shared port without TLS (magic cookie). Default "turn".
	STUNHandler string `yaml:"stun_handler" json:"stun_handler"`
}

// Route is one ordered routing rule: a match and an action.
type Route struct {
	// Name labels the route in logs and metrics. Default "route<N>".
	Name string `yaml:"name" json:"name"`
	// Match says which connections (and, for http, requests) take this route.
	Match Match `yaml:"match" json:"match"`
	// Action is http, passthrough, handoff, ldap or xmpp.
	Action string `yaml:"action" json:"action"`
	// Upstream: for http a URL (http:// or https://host[:port][/base]);
	// for passthrough, ldap and xmpp an inside host:port.
	Upstream string `yaml:"upstream" json:"upstream"`
	// Handler names a Deps.Handlers entry (action handoff), e.g. "sip-wss" or "turn".
	Handler string `yaml:"handler" json:"handler"`
	// HandoffRaw hands the still-encrypted connection (ClientHello included)
	// instead of the decrypted stream. Default false: Portico terminates TLS.
	HandoffRaw bool `yaml:"handoff_raw" json:"handoff_raw"`
	// Certificate names the certificate served; empty selects by SNI.
	Certificate string `yaml:"certificate" json:"certificate"`
	// Allow is the route's ACL: client networks (CIDR) allowed; empty allows
	// all. The client address is the PROXY-protocol source when a trusted
	// balancer sent one. Denied HTTP requests get 403; other connections a TLS alert.
	Allow []string `yaml:"allow" json:"allow"`
	// UpstreamTLS verifies https and LDAPS/StartTLS upstreams.
	UpstreamTLS UpstreamTLS `yaml:"upstream_tls" json:"upstream_tls"`
	// SendProxyProtocol sends a PROXY header (1 or 2) to the upstream on
	// passthrough, ldap and xmpp routes. Default 0 (none). Not for http
	// (pooled connections), which gets X-Forwarded-For instead.
	SendProxyProtocol int `yaml:"send_proxy_protocol" json:"send_proxy_protocol"`
	// PreserveHost sends the client's Host header upstream (http). Default false: the upstream URL's host.
	PreserveHost bool `yaml:"preserve_host" json:"preserve_host"`
	// LDAP options (action ldap).
	LDAP LDAPOptions `yaml:"ldap" json:"ldap"`
}

// Match selects connections. Empty fields match anything.
type Match struct {
	// SNI lists server names ("portal.example.com" or "*.example.com").
	// A route with SNI or ALPN set matches TLS connections only.
	SNI []string `yaml:"sni" json:"sni"`
	// ALPN matches when the client offers any of these protocols (e.g. "stun.turn", "xmpp-client").
	ALPN []string `yaml:"alpn" json:"alpn"`
	// Host lists HTTP Host names (http routes; same wildcard rule as SNI).
	Host []string `yaml:"host" json:"host"`
	// PathPrefix matches the HTTP request path (http routes). Default "/".
	PathPrefix string `yaml:"path_prefix" json:"path_prefix"`
	// Source lists client networks (CIDR) the route applies to.
	Source []string `yaml:"source" json:"source"`
	// Listen limits the route to connections accepted on these of the
	// configured listen addresses (as written in Listen/ExtraListen).
	Listen []string `yaml:"listen" json:"listen"`
	// Plaintext lets an http route also serve plain HTTP arriving on the
	// port (no TLS). Default false.
	Plaintext bool `yaml:"plaintext" json:"plaintext"`
}

// UpstreamTLS says how Portico verifies an inside TLS server.
type UpstreamTLS struct {
	// CA is a PEM bundle of CAs trusted for the upstream; empty uses the system roots.
	CA string `yaml:"ca" json:"ca"`
	// ServerName overrides the name verified (default: the upstream's host).
	ServerName string `yaml:"server_name" json:"server_name"`
}

// LDAPOptions configure an ldap route.
type LDAPOptions struct {
	// Upstream is how Portico secures the inside leg: "starttls" (default), "ldaps" or "none".
	Upstream string `yaml:"upstream" json:"upstream"`
	// ReadOnly allows only bind, search, unbind, abandon and StartTLS;
	// everything else is answered insufficientAccessRights.
	ReadOnly bool `yaml:"read_only" json:"read_only"`
	// BaseDNs, when set, confine searches (and bind names) to these subtrees.
	BaseDNs []string `yaml:"base_dns" json:"base_dns"`
	// MaxMessage caps one LDAP message in bytes. Default 1 MiB.
	MaxMessage int `yaml:"max_message" json:"max_message"`
}

// TCPMapping forwards a listen address to an inside host:port.
type TCPMapping struct {
	// Name labels the mapping. Default "tcp<N>".
	Name string `yaml:"name" json:"name"`
	// Listen is the outside address, e.g. ":8080".
	Listen string `yaml:"listen" json:"listen"`
	// Upstream is the inside host:port.
	Upstream string `yaml:"upstream" json:"upstream"`
	// MaxConns caps concurrent connections. Default 1000.
	MaxConns int `yaml:"max_conns" json:"max_conns"`
	// IdleTimeout closes a connection idle both ways this long. Default 5m.
	IdleTimeout time.Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// Allow lists client networks (CIDR); empty allows all.
	Allow []string `yaml:"allow" json:"allow"`
	// SendProxyProtocol sends a PROXY header (1 or 2) upstream. Default 0.
	SendProxyProtocol int `yaml:"send_proxy_protocol" json:"send_proxy_protocol"`
}

// TLSSettings apply to every TLS session Portico terminates.
type TLSSettings struct {
	// MinVersion is "1.2" (default) or "1.3". "1.0" and "1.1" are accepted
	// only when written explicitly, for legacy endpoints. RC4 and 3DES are
	// never offered, whatever the version.
	MinVersion string `yaml:"min_version" json:"min_version"`
	// DefaultCertificate names the certificate served when no SNI matches
	// and the route names none (default: the store's default).
	DefaultCertificate string `yaml:"default_certificate" json:"default_certificate"`
}

// ProxyProtocol configures PROXY protocol on accepted connections.
type ProxyProtocol struct {
	// Trusted lists load-balancer networks (CIDR). Connections from them
	// must begin with a PROXY v1 or v2 header; from anywhere else a header
	// is not accepted (it would let clients forge their address).
	Trusted []string `yaml:"trusted" json:"trusted"`
}

// Timeouts bound every wait. Zero takes the default.
type Timeouts struct {
	// Peek bounds reading the PROXY header and first bytes/ClientHello. Default 10s.
	Peek time.Duration `yaml:"peek" json:"peek"`
	// Handshake bounds a TLS handshake Portico terminates. Default 10s.
	Handshake time.Duration `yaml:"handshake" json:"handshake"`
	// Dial bounds connecting to an upstream. Default 10s.
	Dial time.Duration `yaml:"dial" json:"dial"`
	// Idle closes relayed (passthrough, ldap, xmpp) connections idle both ways. Default 5m.
	Idle time.Duration `yaml:"idle" json:"idle"`
	// HTTPReadHeader bounds reading request headers. Default 10s.
	HTTPReadHeader time.Duration `yaml:"http_read_header" json:"http_read_header"`
	// HTTPIdle closes idle keep-alive client connections. Default 120s.
	HTTPIdle time.Duration `yaml:"http_idle" json:"http_idle"`
	// HTTPResponseHeader bounds waiting for the upstream's response headers. Default 60s.
	HTTPResponseHeader time.Duration `yaml:"http_response_header" json:"http_response_header"`
}

// DefaultMaxConnsPerClient is the default of Config.MaxConnsPerClient.
const DefaultMaxConnsPerClient = 256

// DefaultListen is the development default for Config.Listen.
const DefaultListen = "127.0.0.1:8443"

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxRequestBody == 0 {
		c.MaxRequestBody = 10 << 20
	}
	if c.MaxConns == 0 {
		c.MaxConns = 10000
	}
	if c.MaxConnsPerClient == 0 {
		c.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
	if c.STUNHandler == "" {
		c.STUNHandler = "turn"
	}
	if c.TLS.MinVersion == "" {
		c.TLS.MinVersion = "1.2"
	}
	t := &c.Timeouts
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.Peek, 10*time.Second)
	def(&t.Handshake, 10*time.Second)
	def(&t.Dial, 10*time.Second)
	def(&t.Idle, 5*time.Minute)
	def(&t.HTTPReadHeader, 10*time.Second)
	def(&t.HTTPIdle, 120*time.Second)
	def(&t.HTTPResponseHeader, 60*time.Second)
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Name == "" {
			r.Name = fmt.Sprintf("route%d", i)
		}
		if r.Match.PathPrefix == "" {
			r.Match.PathPrefix = "/"
		}
		if r.Action == ActionLDAP {
			if r.LDAP.Upstream == "" {
				r.LDAP.Upstream = "starttls"
			}
			if r.LDAP.MaxMessage == 0 {
				r.LDAP.MaxMessage = 1 << 20
			}
		}
	}
	for i := range c.TCP {
		m := &c.TCP[i]
		if m.Name == "" {
			m.Name = fmt.Sprintf("tcp%d", i)
		}
		if m.MaxConns == 0 {
			m.MaxConns = 1000
		}
		if m.IdleTimeout == 0 {
			m.IdleTimeout = 5 * time.Minute
		}
	}
}

func invalid(path, format string, a ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalidConfig, field.Error{Path: "access_proxy." + path, Reason: fmt.Sprintf(format, a...)})
}

func parseCIDRs(path string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(s))
			if aerr != nil {
				return nil, invalid(fmt.Sprintf("%s[%d]", path, i), "%q is not a CIDR or address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func checkHostPort(path, s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return invalid(path, "%q is not host:port: %v", s, err)
	}
	if host == "" {
		return invalid(path, "%q has no host", s)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 1 || p > 65535 || fmt.Sprint(p) != port {
		return invalid(path, "%q: %s is not a port", s, port)
	}
	return nil
}

func checkListen(path, s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return invalid(path, "%q is not host:port: %v", s, err)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 0 || p > 65535 {
		return invalid(path, "%q: %s is not a port", s, port)
	}
	return nil
}

func parseNames(path string, names []string) error {
	for i, n := range names {
		n = strings.TrimPrefix(n, "*.")
		if n == "" || strings.ContainsAny(n, " /*:") {
			return invalid(fmt.Sprintf("%s[%d]", path, i), "%q is not a host name or *.domain", names[i])
		}
	}
	return nil
}

func parseTLSVersion(s string) (uint16, error) {
	switch s {
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q is not one of 1.0, 1.1, 1.2, 1.3", s)
}

// cipherSuites returns the TLS 1.0–1.2 suites offered: ECDHE with AEAD
// only, plus ECDHE with AES-CBC when legacy versions are enabled (TLS 1.0
// and 1.1 have no AEAD suites). Never RC4, 3DES or static RSA key exchange.
func cipherSuites(min uint16) []uint16 {
	s := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	if min < tls.VersionTLS12 {
		s = append(s,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA)
	}
	return s
}

// validate checks a defaulted config and returns the compiled pieces.
func (c *Config) validate(handlers map[string]ConnHandler) error {
	if err := checkListen("listen", c.Listen); err != nil {
		return err
	}
	for i, l := range c.ExtraListen {
		if err := checkListen(fmt.Sprintf("extra_listen[%d]", i), l); err != nil {
			return err
		}
	}
	if _, err := parseTLSVersion(c.TLS.MinVersion); err != nil {
		return invalid("tls.min_version", "%v", err)
	}
	if _, err := parseCIDRs("proxy_protocol.trusted", c.ProxyProtocol.Trusted); err != nil {
		return err
	}
	if c.MaxConns < 0 {
		return invalid("max_conns", "%d is negative", c.MaxConns)
	}
	if c.MaxConnsPerClient < -1 {
		return invalid("max_conns_per_client", "%d is not a count (-1 for no cap)", c.MaxConnsPerClient)
	}
	if c.MaxRequestBody < -1 {
		return invalid("max_request_body", "%d is not a size (-1 for unlimited)", c.MaxRequestBody)
	}
	listens := map[string]bool{c.Listen: true}
	for _, l := range c.ExtraListen {
		listens[l] = true
	}
	names := map[string]bool{}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		if names[r.Name] {
			return invalid(p+".name", "%q used twice", r.Name)
		}
		names[r.Name] = true
		if err := parseNames(p+".match.sni", r.Match.SNI); err != nil {
			return err
		}
		if err := parseNames(p+".match.host", r.Match.Host); err != nil {
			return err
		}
		if !strings.HasPrefix(r.Match.PathPrefix, "/") {
			return invalid(p+".match.path_prefix", "%q does not start with /", r.Match.PathPrefix)
		}
		if _, err := parseCIDRs(p+".match.source", r.Match.Source); err != nil {
			return err
		}
		if _, err := parseCIDRs(p+".allow", r.Allow); err != nil {
			return err
		}
		for j, l := range r.Match.Listen {
			if !listens[l] {
				return invalid(fmt.Sprintf("%s.match.listen[%d]", p, j), "%q is not a configured listen address", l)
			}
		}
		if r.Action != ActionHTTP && (len(r.Match.Host) > 0 || r.Match.PathPrefix != "/" || r.Match.Plaintext) {
			return invalid(p+".match", "host, path_prefix and plaintext apply to http routes only")
		}
		if r.SendProxyProtocol != 0 && r.SendProxyProtocol != 1 && r.SendProxyProtocol != 2 {
			return invalid(p+".send_proxy_protocol", "%d is not 0, 1 or 2", r.SendProxyProtocol)
		}
		if r.UpstreamTLS.CA != "" {
			if !x509.NewCertPool().AppendCertsFromPEM([]byte(r.UpstreamTLS.CA)) {
				return invalid(p+".upstream_tls.ca", "no PEM certificate found")
			}
		}
		switch r.Action {
		case ActionHTTP:
			u, err := url.Parse(r.Upstream)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return invalid(p+".upstream", "%q is not an http:// or https:// URL", r.Upstream)
			}
			if r.SendProxyProtocol != 0 {
				return invalid(p+".send_proxy_protocol", "not supported on http routes (X-Forwarded-For is sent)")
			}
		case ActionPassthrough, ActionXMPP:
			if err := checkHostPort(p+".upstream", r.Upstream); err != nil {
				return err
			}
		case ActionLDAP:
			if err := checkHostPort(p+".upstream", r.Upstream); err != nil {
				return err
			}
			switch r.LDAP.Upstream {
			case "starttls", "ldaps", "none":
			default:
				return invalid(p+".ldap.upstream", "%q is not starttls, ldaps or none", r.LDAP.Upstream)
			}
			if r.LDAP.MaxMessage < 64 {
				return invalid(p+".ldap.max_message", "%d is too small", r.LDAP.MaxMessage)
			}
		case ActionHandoff:
			if r.Handler == "" {
				return invalid(p+".handler", "empty (action handoff needs a handler name)")
			}
			if _, ok := handlers[r.Handler]; !ok {
				return invalid(p+".handler", "%q is not a registered handler", r.Handler)
			}
		case "":
			return invalid(p+".action", "missing (http, passthrough, handoff, ldap or xmpp)")
		default:
			return invalid(p+".action", "%q is not http, passthrough, handoff, ldap or xmpp", r.Action)
		}
	}
	seen := map[string]bool{}
	for i := range c.TCP {
		m := &c.TCP[i]
		p := fmt.Sprintf("tcp[%d]", i)
		if err := checkListen(p+".listen", m.Listen); err != nil {
			return err
		}
		if listens[m.Listen] || seen[m.Listen] {
			return invalid(p+".listen", "%q is already used", m.Listen)
		}
		seen[m.Listen] = true
		if err := checkHostPort(p+".upstream", m.Upstream); err != nil {
			return err
		}
		if m.MaxConns < 0 {
			return invalid(p+".max_conns", "%d is negative", m.MaxConns)
		}
		if m.IdleTimeout < 0 {
			return invalid(p+".idle_timeout", "%v is negative", m.IdleTimeout)
		}
		if _, err := parseCIDRs(p+".allow", m.Allow); err != nil {
			return err
		}
		if m.SendProxyProtocol != 0 && m.SendProxyProtocol != 1 && m.SendProxyProtocol != 2 {
			return invalid(p+".send_proxy_protocol", "%d is not 0, 1 or 2", m.SendProxyProtocol)
		}
	}
	return nil
}
