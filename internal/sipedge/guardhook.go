package sipedge

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/policy"
)

// Guard is what the SIP edge tells of, and asks about, outside sources (a
// *guard.Guard). Only the external side is guarded.
type Guard interface {
	Blocked(src netip.Addr) bool
	Observe(src netip.Addr, k guard.Kind) bool
	ObserveDigestFailure(src netip.Addr, user string) bool
	ScannerAgent(ua string) bool
	// Limit takes a token from src's bucket for m; over the limit the
	// request is answered 503 with Retry-After, or dropped when silent.
	Limit(src netip.Addr, m guard.Method) (ok bool, retryAfter time.Duration, silent bool)
}

// ACL is the SIP service's access control list (a *policy.LiveACL).
type ACL interface {
	Allow(src netip.Addr) bool
	AllowRequest(domain, userAgent string) bool
}

// gate decides, per datagram or connection, whether a source is read.
type gate struct {
	g   Guard // may be nil
	acl ACL   // may be nil
}

// drop reports whether src is denied by the ACL or blocked by the guard.
func (gt gate) drop(src netip.Addr) bool {
	return (gt.acl != nil && !gt.acl.Allow(src)) || (gt.g != nil && gt.g.Blocked(src))
}

// guardSocket wraps an external listener's socket so that datagrams and
// connections of denied or blocked sources are dropped before they are
// parsed.
func (s *Server) guardSocket(l BoundListener) BoundListener {
	gt := gate{g: s.deps.Guard, acl: s.deps.ACL}
	if (gt.g == nil && gt.acl == nil) || l.Interface != External {
		return l
	}
	if la, ok := gt.acl.(interface {
		On(netip.AddrPort) *policy.ListenerView
	}); ok {
		// policy.acl.listeners narrows this listener further.
		var a net.Addr
		if l.Packet != nil {
			a = l.Packet.LocalAddr()
		} else if l.Stream != nil {
			a = l.Stream.Addr()
		}
		if a != nil {
			if ap, err := netip.ParseAddrPort(a.String()); err == nil {
				gt.acl = la.On(ap)
			}
		}
	}
	if l.Packet != nil {
		l.Packet = &guardedPacketConn{PacketConn: l.Packet, gate: gt}
	}
	if l.Stream != nil {
		l.Stream = &guardedListener{Listener: l.Stream, gate: gt}
	}
	return l
}

// guardRequest is called first for every request. ok is false when the
// request is dropped (its source is, or now becomes, blocked); else tx is
// wrapped so that the outcome is scored when it is answered.
func (s *Server) guardRequest(sd *side, req *sip.Request, tx sip.ServerTransaction) (_ sip.ServerTransaction, ok bool) {
	g, acl := s.deps.Guard, s.deps.ACL
	if (g == nil && acl == nil) || sd != s.ext {
		return tx, true
	}
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return tx, true
	}
	src := ap.Addr().Unmap()
	if acl != nil {
		ua, domain := "", ""
		if h := firstHeader(req, "User-Agent"); h != nil {
			ua = h.Value()
		}
		if f := req.From(); f != nil {
			domain = f.Address.Host
		}
		if !acl.Allow(src) || !acl.AllowRequest(domain, ua) {
			s.m.rejected.WithLabelValues("acl").Inc()
			if tx != nil {
				tx.Terminate()
			}
			return nil, false
		}
	}
	if g == nil {
		return tx, true
	}
	drop := g.Blocked(src)
	if !drop {
		if ua := firstHeader(req, "User-Agent"); ua != nil && g.ScannerAgent(ua.Value()) {
			drop = g.Observe(src, guard.ScannerAgent)
		}
	}
	kind, method, limited := requestKind(req)
	if !drop && limited {
		drop = g.Observe(src, kind)
		if !drop {
			ok, retry, silent := g.Limit(src, method)
			if !ok {
				s.m.rejected.WithLabelValues("rate_limit").Inc()
				if silent || tx == nil {
					if tx != nil {
						tx.Terminate()
					}
				} else {
					s.respond(sd, tx, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", strconv.Itoa(int(retry/time.Second))))
				}
				return nil, false
			}
		}
	}
	if drop {
		// Silence: a scanner learns nothing, not even that a server is here.
		s.m.rejected.WithLabelValues("guard").Inc()
		if tx != nil {
			tx.Terminate()
		}
		return nil, false
	}
	if tx == nil {
		return nil, true
	}
	return &guardedTx{ServerTransaction: tx, g: g, src: src, req: req}, true
}

// requestKind names what a request counts as for flood scoring and rate
// limits: REGISTER, OPTIONS and initial INVITE (not re-INVITEs).
func requestKind(req *sip.Request) (guard.Kind, guard.Method, bool) {
	switch req.Method {
	case sip.REGISTER:
		return guard.Register, guard.MethodRegister, true
	case sip.OPTIONS:
		return guard.Options, guard.MethodOptions, true
	case sip.INVITE:
		if to := req.To(); to != nil && !to.Params.Has("tag") {
			return guard.Invite, guard.MethodInvite, true
		}
	}
	return 0, 0, false
}

// guardedTx scores the final response sent to an outside source.
type guardedTx struct {
	sip.ServerTransaction
	g   Guard
	src netip.Addr
	req *sip.Request
}

func (t *guardedTx) Respond(res *sip.Response) error {
	return t.respondFor(res, res)
}

// respondFor sends res and scores the source by truth, the answer it
// stands for: an inside refusal of an unknown user that Portico answers
// with a challenge (registerResponse) still counts as a 404 or 403.
func (t *guardedTx) respondFor(res, truth *sip.Response) error {
	switch code := truth.StatusCode; code {
	case 401, 407, 403:
		if user, ok := credentials(t.req); ok {
			if code == 403 || !stale(truth) {
				t.g.ObserveDigestFailure(t.src, user)
			}
		} else if code == 403 {
			t.g.Observe(t.src, guard.Forbidden)
		} else {
			t.g.Observe(t.src, guard.Challenge)
		}
	case 404:
		t.g.Observe(t.src, guard.NotFound)
	}
	return t.ServerTransaction.Respond(res)
}

// credentials returns the digest user name of a request that carries
// credentials (Authorization or Proxy-Authorization).
func credentials(req *sip.Request) (string, bool) {
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		if h := firstHeader(req, name); h != nil {
			return digestParam(h.Value(), "username"), true
		}
	}
	return "", false
}

// stale reports a challenge for a nonce that merely expired (RFC 2617
// section 3.2.1): the credentials were right.
func stale(res *sip.Response) bool {
	for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
		if h := firstHeader(res, name); h != nil && strings.EqualFold(digestParam(h.Value(), "stale"), "true") {
			return true
		}
	}
	return false
}

// digestParam returns the value of name in a Digest credentials or
// challenge header value, unquoted; "" when absent.
func digestParam(v, name string) string {
	if len(v) > 4096 {
		v = v[:4096]
	}
	if i := strings.IndexByte(v, ' '); i >= 0 && !strings.Contains(v[:i], "=") {
		v = v[i+1:] // the scheme
	}
	for v != "" {
		v = strings.TrimLeft(v, " \t,")
		eq := strings.IndexByte(v, '=')
		if eq < 0 {
			return ""
		}
		key := strings.TrimSpace(v[:eq])
		v = strings.TrimLeft(v[eq+1:], " \t")
		var val string
		if strings.HasPrefix(v, `"`) {
			end := 1
			for end < len(v) && v[end] != '"' {
				if v[end] == '\\' {
					end++
				}
				end++
			}
			val = strings.ReplaceAll(v[1:min(end, len(v))], `\`, "")
			v = v[min(end+1, len(v)):]
		} else {
			end := strings.IndexByte(v, ',')
			if end < 0 {
				end = len(v)
			}
			val = strings.TrimSpace(v[:end])
			v = v[end:]
		}
		if strings.EqualFold(key, name) {
			return val
		}
	}
	return ""
}

// guardedPacketConn drops datagrams from denied or blocked sources in the
// read path and scores datagrams that cannot be SIP.
type guardedPacketConn struct {
	net.PacketConn
	gate
}

func (c *guardedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || n == 0 {
			return n, addr, err
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			return n, addr, err
		}
		ip, _ := netip.AddrFromSlice(ua.IP)
		if c.drop(ip) {
			continue
		}
		if c.g != nil && !plausibleSIP(b[:n]) && c.g.Observe(ip, guard.Malformed) {
			continue
		}
		return n, addr, err
	}
}

// plausibleSIP is a cheap look at a datagram's start: a keepalive, STUN
// (RFC 5626 keepalives), a status line or a request line.
func plausibleSIP(b []byte) bool {
	if len(bytes.Trim(b, "\r\n")) == 0 || b[0] < 4 {
		return true
	}
	if bytes.HasPrefix(b, []byte("SIP/2.0 ")) {
		return true
	}
	sp := bytes.IndexByte(b, ' ')
	if sp < 3 || sp > 16 {
		return false
	}
	for _, ch := range b[:sp] {
		if ch < 'A' || ch > 'Z' {
			return false
		}
	}
	line := b[sp:]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	return bytes.Contains(line, []byte(" SIP/2.0"))
}

// guardedListener closes connections from denied or blocked sources on
// accept.
type guardedListener struct {
	net.Listener
	gate
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return c, err
		}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			ip, _ := netip.AddrFromSlice(ta.IP)
			if l.drop(ip) {
				c.Close()
				continue
			}
		}
		return c, nil
	}
}
