package policy

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Caller kinds.
const (
	CallerRegistered = "registered" // a registered outside endpoint
	CallerGuest      = "guest"      // an unregistered outside caller
	CallerFederated  = "federated"  // a caller from an allowed other domain
	CallerInside     = "inside"     // a caller on the inside
)

// Actions of a rule.
const (
	ActionAllow   = "allow"
	ActionDeny    = "deny"
	ActionRewrite = "rewrite" // replace the destination, then allow
	ActionRoute   = "route"   // send to one call server, then allow
)

// Rule is one call policy rule.
type Rule struct {
	// Name labels the rule in call history and the dry run. Default "rule<N>".
	Name string `yaml:"name" json:"name"`
	// Match says which calls the rule decides; an empty match takes all.
	Match Match `yaml:"match" json:"match"`
	// Action is allow, deny, rewrite or route.
	Action string `yaml:"action" json:"action"`
	// Code is the SIP status a deny answers. Default 403; 400..699.
	Code int `yaml:"code,omitempty" json:"code,omitempty"`
	// Reason is the deny's reason phrase. Default the code's usual phrase.
	Reason string `yaml:"reason,omitempty" json:"reason,omitempty"`
	// Destination is the new callee user part (rewrite); $1... name the
	// groups of the re: pattern that matched.
	Destination string `yaml:"destination,omitempty" json:"destination,omitempty"`
	// CallServer is the inside call server (host:port, one of
	// sip.call_servers) a route action sends the call to.
	CallServer string `yaml:"call_server,omitempty" json:"call_server,omitempty"`
}

// Match holds a rule's conditions; every one given must hold, and a list
// holds when any of its entries does.
type Match struct {
	// Callers are caller kinds: registered, guest, federated, inside.
	Callers []string `yaml:"callers,omitempty" json:"callers,omitempty"`
	// Sources are the caller's networks (CIDR or address).
	Sources []string `yaml:"sources,omitempty" json:"sources,omitempty"`
	// Domains are the caller's domains (From host); "*.example.com"
	// matches its subdomains.
	Domains []string `yaml:"domains,omitempty" json:"domains,omitempty"`
	// Protocols are sip and h323.
	Protocols []string `yaml:"protocols,omitempty" json:"protocols,omitempty"`
	// Destinations are callee patterns (package comment).
	Destinations []string `yaml:"destinations,omitempty" json:"destinations,omitempty"`
}

// Call is what a rule is evaluated against.
type Call struct {
	Caller   string     `json:"caller"`   // a caller kind
	Source   netip.Addr `json:"source"`   // the caller's address
	Domain   string     `json:"domain"`   // the caller's domain
	Protocol string     `json:"protocol"` // sip or h323
	To       string     `json:"to"`       // the dialled user part
}

// Decision is a call's verdict.
type Decision struct {
	// Rule names the rule that decided; "" when none matched.
	Rule string `json:"rule"`
	// Index is the rule's position in the compiled list; -1 when none.
	Index int `json:"index"`
	// Action is allow, deny, rewrite or route ("allow" when none matched).
	Action string `json:"action"`
	// Code and Reason answer a deny.
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Destination is the user part the call goes to.
	Destination string `json:"destination"`
	// CallServer is the call server a route action names.
	CallServer string `json:"call_server,omitempty"`
}

// Allowed reports whether the call goes ahead.
func (d Decision) Allowed() bool { return d.Action != ActionDeny }

type compiled struct {
	Rule
	callers   []string
	sources   []netip.Prefix
	domains   []string
	protocols []string
	dests     []pattern
}

// Policy is a compiled, immutable rule list; safe for concurrent use.
type Policy struct {
	rules []compiled
}

var callerKinds = map[string]bool{CallerRegistered: true, CallerGuest: true, CallerFederated: true, CallerInside: true}

// Compile validates rules and compiles them; errors name each bad field
// under path (e.g. "policy.rules").
func Compile(path string, rules []Rule) (*Policy, error) {
	var errs ConfigError
	p := &Policy{}
	for i, r := range rules {
		rp := fmt.Sprintf("%s[%d]", path, i)
		add := func(field, format string, a ...any) {
			errs = append(errs, FieldError{Path: rp + field, Reason: fmt.Sprintf(format, a...)})
		}
		c := compiled{Rule: r}
		if c.Name == "" {
			c.Name = fmt.Sprintf("rule%d", i)
		}
		for j, k := range r.Match.Callers {
			k = strings.ToLower(strings.TrimSpace(k))
			if !callerKinds[k] {
				add(fmt.Sprintf(".match.callers[%d]", j), "%q is not registered, guest, federated or inside", k)
			}
			c.callers = append(c.callers, k)
		}
		for j, s := range r.Match.Sources {
			pf, err := parsePrefix(s)
			if err != nil {
				add(fmt.Sprintf(".match.sources[%d]", j), "%q is not a network or address", s)
			}
			c.sources = append(c.sources, pf)
		}
		for j, d := range r.Match.Domains {
			d = strings.ToLower(strings.TrimSpace(d))
			if d == "" || strings.ContainsAny(d, " @:/") || strings.Count(d, "*") > 1 || (strings.Contains(d, "*") && !strings.HasPrefix(d, "*.")) {
				add(fmt.Sprintf(".match.domains[%d]", j), "%q is not a domain or *.domain", d)
			}
			c.domains = append(c.domains, d)
		}
		for j, pr := range r.Match.Protocols {
			pr = strings.ToLower(strings.TrimSpace(pr))
			if pr != "sip" && pr != "h323" {
				add(fmt.Sprintf(".match.protocols[%d]", j), "%q is not sip or h323", pr)
			}
			c.protocols = append(c.protocols, pr)
		}
		for j, d := range r.Match.Destinations {
			pt, err := parsePattern(d)
			if err != nil {
				add(fmt.Sprintf(".match.destinations[%d]", j), "%v", err)
			}
			c.dests = append(c.dests, pt)
		}
		c.Action = strings.ToLower(strings.TrimSpace(r.Action))
		switch c.Action {
		case ActionAllow:
		case ActionDeny:
			if c.Code == 0 {
				c.Code = 403
			}
			if c.Code < 400 || c.Code > 699 {
				add(".code", "%d is not a SIP failure status (400..699)", r.Code)
			}
			if c.Reason == "" {
				c.Reason = reasonPhrase(c.Code)
			}
		case ActionRewrite:
			if strings.TrimSpace(r.Destination) == "" {
				add(".destination", "required for a rewrite")
			} else if strings.ContainsAny(r.Destination, " \t\r\n@;<>\"") {
				add(".destination", "%q is not a URI user part", r.Destination)
			}
		case ActionRoute:
			if _, port, err := net.SplitHostPort(r.CallServer); err != nil || port == "" {
				add(".call_server", "%q is not host:port", r.CallServer)
			}
		default:
			add(".action", "%q is not allow, deny, rewrite or route", r.Action)
		}
		if c.Action != ActionDeny && r.Code != 0 {
			add(".code", "only a deny has a code")
		}
		p.rules = append(p.rules, c)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func reasonPhrase(code int) string {
	switch code {
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 488:
		return "Not Acceptable Here"
	case 603:
		return "Decline"
	}
	return "Call Refused"
}

// Rules returns how many rules the policy holds.
func (p *Policy) Rules() int { return len(p.rules) }

// Evaluate returns the decision of the first rule that matches c.
func (p *Policy) Evaluate(c Call) Decision {
	if p != nil {
		for i := range p.rules {
			r := &p.rules[i]
			ok, sub, pt := r.matches(c)
			if !ok {
				continue
			}
			d := Decision{Rule: r.Name, Index: i, Action: r.Action, Destination: c.To}
			switch r.Action {
			case ActionDeny:
				d.Code, d.Reason = r.Code, r.Reason
			case ActionRewrite:
				d.Destination = r.Destination
				if pt != nil && pt.kind == 'x' {
					d.Destination = string(pt.re.ExpandString(nil, r.Destination, c.To, sub))
				}
			case ActionRoute:
				d.CallServer = r.CallServer
			}
			return d
		}
	}
	return Decision{Index: -1, Action: ActionAllow, Destination: c.To}
}

func (r *compiled) matches(c Call) (bool, []int, *pattern) {
	if len(r.callers) > 0 && !anyEqual(r.callers, c.Caller) {
		return false, nil, nil
	}
	if len(r.protocols) > 0 && !anyEqual(r.protocols, c.Protocol) {
		return false, nil, nil
	}
	if len(r.sources) > 0 {
		src, ok := c.Source.Unmap(), false
		for _, p := range r.sources {
			if p.Contains(src) {
				ok = true
				break
			}
		}
		if !ok {
			return false, nil, nil
		}
	}
	if len(r.domains) > 0 {
		dom, ok := strings.ToLower(c.Domain), false
		for _, d := range r.domains {
			if d == dom || (strings.HasPrefix(d, "*.") && strings.HasSuffix(dom, d[1:])) {
				ok = true
				break
			}
		}
		if !ok {
			return false, nil, nil
		}
	}
	if len(r.dests) == 0 {
		return true, nil, nil
	}
	for i := range r.dests {
		if ok, sub := r.dests[i].match(c.To); ok {
			return true, sub, &r.dests[i]
		}
	}
	return false, nil, nil
}

func anyEqual(list []string, v string) bool {
	for _, s := range list {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}

// Guest is the guest policy of the sip section (guest.enabled,
// vmr_ranges, aliases, default_destination).
type Guest struct {
	Enabled            bool
	VMRRanges          []string
	Aliases            []string
	DefaultDestination string
}

// WithGuests returns rules followed by the guest policy's (GuestRules):
// the call policy of a SIP edge.
func WithGuests(rules []Rule, g Guest) []Rule {
	return append(append([]Rule(nil), rules...), GuestRules(g)...)
}

// GuestRules expresses a guest policy as rules, evaluated after the
// configured ones: guests may call the VMR ranges and aliases; any other
// destination is rewritten to the default destination when there is one,
// else refused with 403.
func GuestRules(g Guest) []Rule {
	var out []Rule
	if g.Enabled {
		if d := append(append([]string(nil), g.VMRRanges...), g.Aliases...); len(d) > 0 {
			out = append(out, Rule{Name: "guest-vmr", Match: Match{Callers: []string{CallerGuest}, Destinations: d}, Action: ActionAllow})
		}
		if g.DefaultDestination != "" {
			out = append(out, Rule{Name: "guest-default", Match: Match{Callers: []string{CallerGuest}}, Action: ActionRewrite, Destination: g.DefaultDestination})
		}
	}
	return append(out, Rule{Name: "guest-deny", Match: Match{Callers: []string{CallerGuest}}, Action: ActionDeny, Code: 403})
}
