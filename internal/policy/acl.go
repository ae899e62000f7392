package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
)

// ACLConfig is one service's access control list.
type ACLConfig struct {
	// Allow lists the networks (CIDR or address) that may connect; empty
	// allows every network not denied.
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	// Deny lists networks refused even when Allow holds them.
	Deny []string `yaml:"deny,omitempty" json:"deny,omitempty"`
	// Domains (SIP only) are the From domains outside requests may carry;
	// "*.example.com" takes subdomains; empty allows all.
	Domains []string `yaml:"domains,omitempty" json:"domains,omitempty"`
	// DenyUserAgents (SIP only) are User-Agent substrings, without case,
	// whose requests are refused.
	DenyUserAgents []string `yaml:"deny_user_agents,omitempty" json:"deny_user_agents,omitempty"`
}

// ACLs are the access control lists per service (policy.acl).
type ACLs struct {
	SIP        ACLConfig `yaml:"sip" json:"sip"`
	H323       ACLConfig `yaml:"h323" json:"h323"`
	TURN       ACLConfig `yaml:"turn" json:"turn"`
	Management ACLConfig `yaml:"management" json:"management"`
	// Listeners narrow single listeners further: a source must pass its
	// service's list and its listener's.
	Listeners []ListenerACL `yaml:"listeners,omitempty" json:"listeners,omitempty"`
}

// ListenerACL is one listener's network list.
type ListenerACL struct {
	// Listen is the listener's address as configured (ip:port).
	Listen string   `yaml:"listen" json:"listen"`
	Allow  []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	Deny   []string `yaml:"deny,omitempty" json:"deny,omitempty"`
}

// Listeners compiles the per-listener lists; errors name fields under
// path (policy.acl.listeners).
func Listeners(path string, ls []ListenerACL) (map[netip.AddrPort]*ACL, error) {
	var errs ConfigError
	out := map[netip.AddrPort]*ACL{}
	for i, l := range ls {
		p := fmt.Sprintf("%s[%d]", path, i)
		ap, err := netip.ParseAddrPort(l.Listen)
		if err != nil {
			errs = append(errs, FieldError{Path: p + ".listen", Reason: fmt.Sprintf("%q is not ip:port", l.Listen)})
			continue
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if _, dup := out[ap]; dup {
			errs = append(errs, FieldError{Path: p + ".listen", Reason: l.Listen + " is listed twice"})
		}
		a, err := NewACL(p, ACLConfig{Allow: l.Allow, Deny: l.Deny})
		if err != nil {
			errs = append(errs, err.(ConfigError)...)
			continue
		}
		out[ap] = a
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// ACL is a compiled access control list; the zero value and nil allow
// everything.
type ACL struct {
	allow, deny []netip.Prefix
	domains     []string
	agents      []string
	listeners   map[netip.AddrPort]*ACL // by local address (WithListeners)
}

// WithListeners returns a copy of a that also applies the per-listener
// lists (Listeners) on the listeners they name.
func (a *ACL) WithListeners(ls map[netip.AddrPort]*ACL) *ACL {
	n := &ACL{}
	if a != nil {
		*n = *a
	}
	n.listeners = ls
	return n
}

// AllowOn is Allow for a source arriving on the listener bound to local:
// the service's list and that listener's must both admit it.
func (a *ACL) AllowOn(local netip.AddrPort, src netip.Addr) bool {
	if !a.Allow(src) {
		return false
	}
	if a == nil || len(a.listeners) == 0 {
		return true
	}
	return a.listeners[netip.AddrPortFrom(local.Addr().Unmap(), local.Port())].Allow(src)
}

// NewACL validates c; errors name fields under path (policy.acl.sip).
func NewACL(path string, c ACLConfig) (*ACL, error) {
	var errs ConfigError
	a := &ACL{}
	nets := func(field string, in []string) []netip.Prefix {
		var out []netip.Prefix
		for i, s := range in {
			p, err := parsePrefix(s)
			if err != nil {
				errs = append(errs, FieldError{Path: fmt.Sprintf("%s.%s[%d]", path, field, i), Reason: fmt.Sprintf("%q is not a network or address", s)})
				continue
			}
			out = append(out, p)
		}
		return out
	}
	a.allow, a.deny = nets("allow", c.Allow), nets("deny", c.Deny)
	for i, d := range c.Domains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" || strings.ContainsAny(d, " @:/") || (strings.Contains(d, "*") && (!strings.HasPrefix(d, "*.") || strings.Count(d, "*") > 1)) {
			errs = append(errs, FieldError{Path: fmt.Sprintf("%s.domains[%d]", path, i), Reason: fmt.Sprintf("%q is not a domain or *.domain", d)})
		}
		a.domains = append(a.domains, d)
	}
	for i, u := range c.DenyUserAgents {
		u = strings.ToLower(strings.TrimSpace(u))
		if u == "" {
			errs = append(errs, FieldError{Path: fmt.Sprintf("%s.deny_user_agents[%d]", path, i), Reason: "is empty"})
		}
		a.agents = append(a.agents, u)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return a, nil
}

// Allow reports whether src may connect: not denied, and allowed when an
// allow list is given. It does not allocate.
func (a *ACL) Allow(src netip.Addr) bool {
	if a == nil {
		return true
	}
	src = src.Unmap()
	for _, p := range a.deny {
		if p.Contains(src) {
			return false
		}
	}
	if len(a.allow) == 0 {
		return true
	}
	for _, p := range a.allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// AllowRequest reports whether a SIP request with this From domain and
// User-Agent passes the domain list and the user-agent denials.
func (a *ACL) AllowRequest(domain, userAgent string) bool {
	if a == nil {
		return true
	}
	if len(a.agents) > 0 && userAgent != "" {
		ua := strings.ToLower(userAgent)
		for _, s := range a.agents {
			if strings.Contains(ua, s) {
				return false
			}
		}
	}
	if len(a.domains) == 0 {
		return true
	}
	domain = strings.ToLower(domain)
	for _, d := range a.domains {
		if d == domain || (strings.HasPrefix(d, "*.") && strings.HasSuffix(domain, d[1:])) {
			return true
		}
	}
	return false
}

// LiveACL holds the ACL in force for a running service; Set swaps it in
// (a configuration reload) without locking readers.
type LiveACL struct{ p atomic.Pointer[ACL] }

// Set replaces the ACL.
func (l *LiveACL) Set(a *ACL) { l.p.Store(a) }

// Allow is the current ACL's Allow.
func (l *LiveACL) Allow(src netip.Addr) bool { return l.p.Load().Allow(src) }

// On returns the view of the ACL in force for one listener: its Allow is
// AllowOn(local, src), its AllowRequest the service's.
func (l *LiveACL) On(local netip.AddrPort) *ListenerView { return &ListenerView{l: l, local: local} }

// ListenerView is a LiveACL seen from one listener.
type ListenerView struct {
	l     *LiveACL
	local netip.AddrPort
}

// Allow reports whether src may use the listener.
func (v *ListenerView) Allow(src netip.Addr) bool { return v.l.p.Load().AllowOn(v.local, src) }

// AllowRequest is the service's AllowRequest.
func (v *ListenerView) AllowRequest(domain, userAgent string) bool {
	return v.l.AllowRequest(domain, userAgent)
}

// AllowRequest is the current ACL's AllowRequest.
func (l *LiveACL) AllowRequest(domain, userAgent string) bool {
	return l.p.Load().AllowRequest(domain, userAgent)
}
