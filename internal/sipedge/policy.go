package sipedge

import (
	"net/netip"

	"github.com/emiago/sipgo/sip"

	"github.com/portico-edge/portico/internal/policy"
)

// newCallPolicy compiles the call policy: the configured rules, then the
// guest policy expressed as rules (policy.GuestRules). withDefaults has
// validated both.
func newCallPolicy(cfg Config) *policy.Policy {
	g := cfg.Guest
	rules := policy.WithGuests(cfg.Rules, policy.Guest{Enabled: g.Enabled,
		VMRRanges: g.VMRRanges, Aliases: g.Aliases, DefaultDestination: g.DefaultDestination})
	p, err := policy.Compile("sip.rules", rules)
	if err != nil {
		// Not reached: the configuration was validated. Refuse every guest.
		p, _ = policy.Compile("sip.rules", policy.GuestRules(policy.Guest{}))
	}
	return p
}

// validateRules adds the call policy's field errors to errs.
func validateRules(rules []policy.Rule, errs *ConfigError) {
	if _, err := policy.Compile("policy.rules", rules); err != nil {
		if ce, ok := err.(policy.ConfigError); ok {
			for _, f := range ce {
				*errs = append(*errs, FieldError{Path: f.Path, Reason: f.Reason})
			}
		}
	}
}

// callerKind is the policy's name of a call type.
var callerKind = map[string]string{CallRegistered: policy.CallerRegistered, CallGuest: policy.CallerGuest,
	CallFederation: policy.CallerFederated, CallInbound: policy.CallerInside}

// decide evaluates the call policy for a call from the outside to user.
func (lc *liveConfig) decide(typ string, req *sip.Request, src netip.Addr, user string) policy.Decision {
	c := policy.Call{Caller: callerKind[typ], Source: src, Protocol: "sip", To: user}
	if f := req.From(); f != nil {
		c.Domain = f.Address.Host
	}
	return lc.policy.Evaluate(c)
}

// routeTo narrows hops to the call server a route rule names; a server
// not among the configured ones is used as given, over UDP.
func routeTo(hops []hop, server string) []hop {
	if server == "" {
		return hops
	}
	for _, h := range hops {
		if h.callServer != nil && h.callServer.Address == server {
			return []hop{h}
		}
	}
	return []hop{{transport: "udp", addr: server}}
}
