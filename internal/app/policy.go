package app

import (
	"strings"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/policy"
)

// policyService runs the call policy dry run on the active configuration.
type policyService struct{ a *App }

var _ api.PolicyService = policyService{}

func (p policyService) DryRun(c policy.Call) (policy.Call, policy.Decision, error) {
	return dryRun(p.a.cur.Load().cfg, c)
}

// dryRun compiles cfg's call policy (the rules, then the SIP guest policy)
// and decides c with it.
func dryRun(cfg *config.Config, c policy.Call) (policy.Call, policy.Decision, error) {
	pol, err := callPolicy(cfg)
	if err != nil {
		return c, policy.Decision{}, err
	}
	if c.Caller == "" {
		c.Caller = policy.CallerGuest
		fed := cfg.SIP.Federation
		if c.Domain != "" && fed.OpenB2B {
			c.Caller = policy.CallerFederated
		}
		for _, d := range fed.AllowedDomains {
			if strings.EqualFold(d, c.Domain) {
				c.Caller = policy.CallerFederated
			}
		}
	}
	return c, pol.Evaluate(c), nil
}

// callPolicy compiles cfg's call policy: policy.rules, then the guest
// rules of the sip section's guest policy. The H.323 edge decides with it
// too (one guest policy for both protocols; rules may match protocol).
func callPolicy(cfg *config.Config) (*policy.Policy, error) {
	g := cfg.SIP.Guest
	return policy.Compile("policy.rules", policy.WithGuests(cfg.Policy.Rules, policy.Guest{Enabled: g.Enabled,
		VMRRanges: g.VMRRanges, Aliases: g.Aliases, DefaultDestination: g.DefaultDestination}))
}
