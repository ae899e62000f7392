package accessproxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// state is one validated configuration, compiled for the data path and
// swapped atomically by Reload.
type state struct {
	cfg        Config
	routes     []*route
	tcp        []*tcpMap
	trusted    []netip.Prefix
	minVersion uint16
	suites     []uint16
	knownHosts []string // Host/SNI names of http routes, for 421 vs 404
}

type route struct {
	Route
	idx       int
	source    []netip.Prefix
	allow     []netip.Prefix
	proxy     *httputil.ReverseProxy
	transport *http.Transport
	h1        *h1Transport // plain-HTTP upstreams: the lean path, transport behind it
	upTLS     *tls.Config  // client config for https/LDAPS upstreams
	routedC   prometheus.Counter
	classC    [6]prometheus.Counter // http responses by status class: index code/100
}

type tcpMap struct {
	TCPMapping
	allow []netip.Prefix
	sem   chan struct{}
}

func compile(cfg Config, s *Server) (*state, error) {
	st := &state{cfg: cfg}
	st.trusted, _ = parseCIDRs("", cfg.ProxyProtocol.Trusted)
	st.minVersion, _ = parseTLSVersion(cfg.TLS.MinVersion)
	st.suites = cipherSuites(st.minVersion)
	for i, r := range cfg.Routes {
		rt := &route{Route: r, idx: i}
		rt.source, _ = parseCIDRs("", r.Match.Source)
		rt.allow, _ = parseCIDRs("", r.Allow)
		rt.routedC = s.m.routed.WithLabelValues(r.Name)
		for c := 1; c <= 5; c++ {
			rt.classC[c] = s.m.requests.WithLabelValues(r.Name, statusClass(c*100))
		}
		if r.Action == ActionHTTP || r.Action == ActionLDAP {
			rt.upTLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.UpstreamTLS.ServerName}
			if r.UpstreamTLS.CA != "" {
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM([]byte(r.UpstreamTLS.CA))
				rt.upTLS.RootCAs = pool
			}
		}
		if r.Action == ActionHTTP {
			st.knownHosts = append(st.knownHosts, r.Match.Host...)
			st.knownHosts = append(st.knownHosts, r.Match.SNI...)
			s.buildProxy(rt, cfg)
		}
		if r.Action == ActionLDAP && rt.upTLS.ServerName == "" {
			host, _, _ := net.SplitHostPort(r.Upstream)
			rt.upTLS.ServerName = host
		}
		st.routes = append(st.routes, rt)
	}
	for _, m := range cfg.TCP {
		tm := &tcpMap{TCPMapping: m}
		tm.allow, _ = parseCIDRs("", m.Allow)
		if m.MaxConns > 0 {
			tm.sem = make(chan struct{}, m.MaxConns)
		}
		st.tcp = append(st.tcp, tm)
	}
	return st, nil
}

// retire releases the upstream connections of a state no longer served
// (replaced by a reload, or the server closed): the pooled ones now, and
// those of requests still in flight when they finish.
func (st *state) retire() {
	for _, r := range st.routes {
		if r.h1 != nil {
			r.h1.retire()
		}
		if r.transport != nil {
			r.transport.CloseIdleConnections()
		}
	}
}

func (st *state) isTrusted(a netip.Addr) bool { return inPrefixes(st.trusted, a, false) }

func inPrefixes(ps []netip.Prefix, a netip.Addr, emptyMeans bool) bool {
	if len(ps) == 0 {
		return emptyMeans
	}
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// nameMatch matches host against exact names and "*.domain" wildcards
// (one label, as for certificates).
func nameMatch(patterns []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range patterns {
		p = strings.ToLower(p)
		if p == host {
			return true
		}
		if strings.HasPrefix(p, "*.") {
			if dot := strings.IndexByte(host, '.'); dot > 0 && host[dot:] == p[1:] {
				return true
			}
		}
	}
	return false
}

// connInfo is what routing knows about a connection.
type connInfo struct {
	listen string
	src    netip.AddrPort
	tls    bool
	sni    string
	alpn   []string
	ip     string // src.Addr() as text for X-Forwarded-For, set once src is final
}

// matchConn applies the connection-level part of a match (listener,
// source, SNI, ALPN).
func (r *route) matchConn(ci *connInfo) bool {
	if len(r.Match.Listen) > 0 && !slices.Contains(r.Match.Listen, ci.listen) {
		return false
	}
	if !inPrefixes(r.source, ci.src.Addr(), true) {
		return false
	}
	if !ci.tls && (len(r.Match.SNI) > 0 || len(r.Match.ALPN) > 0) {
		return false
	}
	if len(r.Match.SNI) > 0 && !nameMatch(r.Match.SNI, ci.sni) {
		return false
	}
	if len(r.Match.ALPN) > 0 {
		ok := false
		for _, p := range ci.alpn {
			if slices.Contains(r.Match.ALPN, p) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (r *route) allowed(a netip.Addr) bool { return inPrefixes(r.allow, a, true) }

// matchTLS picks the route for a TLS connection from its ClientHello.
func (st *state) matchTLS(ci *connInfo) *route {
	for _, r := range st.routes {
		if r.matchConn(ci) {
			return r
		}
	}
	return nil
}

// matchPlain picks the route for a plaintext connection of an action kind.
func (st *state) matchPlain(ci *connInfo, action string) *route {
	for _, r := range st.routes {
		if r.Action == action && r.matchConn(ci) && (action != ActionHTTP || r.Match.Plaintext) {
			return r
		}
	}
	return nil
}

// matchHTTP picks the http route for a request on a connection.
func (st *state) matchHTTP(ci *connInfo, host, path string) *route {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, r := range st.routes {
		if r.Action != ActionHTTP || !r.matchConn(ci) || (!ci.tls && !r.Match.Plaintext) {
			continue
		}
		if len(r.Match.Host) > 0 && !nameMatch(r.Match.Host, host) {
			continue
		}
		if !strings.HasPrefix(path, r.Match.PathPrefix) {
			continue
		}
		return r
	}
	return nil
}

func (st *state) hostKnown(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return nameMatch(st.knownHosts, host)
}

// tlsServer starts TLS on c with cfg. Every connection's handshake goes
// through the Server-wide tlsBase, whose session ticket keys (created and
// rotated by crypto/tls) are therefore shared: a client resumes its
// session on its next connection and across reloads, where a Config per
// connection would give each connection keys of its own.
func (s *Server) tlsServer(c net.Conn, cfg *tls.Config) *tls.Conn {
	pc, ok := c.(*peekConn)
	if !ok {
		return tls.Server(c, cfg)
	}
	pc.tlsCfg = cfg
	return tls.Server(pc, s.tlsBase)
}

// configForConn is tlsBase's GetConfigForClient: the connection's own
// Config, set by tlsServer.
func configForConn(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if pc, ok := hello.Conn.(*peekConn); ok && pc.tlsCfg != nil {
		return pc.tlsCfg, nil
	}
	return nil, errors.New("accessproxy: handshake on a connection without a TLS config")
}

// serverTLS is the tls.Config for a connection Portico terminates on route r.
func (s *Server) serverTLS(st *state, r *route, nextProtos []string) *tls.Config {
	certName := ""
	if r != nil {
		certName = r.Certificate
	}
	def := st.cfg.TLS.DefaultCertificate
	return &tls.Config{
		MinVersion:   st.minVersion,
		CipherSuites: st.suites,
		NextProtos:   nextProtos,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if certName == "" && def != "" {
				if c, err := s.certs.Select(hello, ""); err == nil && hello.ServerName != "" && c.Leaf != nil && c.Leaf.VerifyHostname(hello.ServerName) == nil {
					return c, nil
				}
				return s.certs.Select(hello, def)
			}
			return s.certs.Select(hello, certName)
		},
	}
}

func upstreamURL(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}

var _ = time.Second
