package app

import (
	"testing"

	"github.com/portico-edge/portico/internal/config"
	"github.com/portico-edge/portico/internal/policy"
	"github.com/portico-edge/portico/internal/sipedge"
)

// TestDryRunUsesConfig: the dry run decides with the policy rules and the
// sip section's guest policy, and infers federated callers.
func TestDryRunUsesConfig(t *testing.T) {
	cfg := config.Default()
	cfg.SIP.Guest = sipedge.GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}}
	cfg.SIP.Federation.AllowedDomains = []string{"partner.example"}
	cfg.Policy.Rules = []policy.Rule{{Name: "fed-only-sales", Match: policy.Match{Callers: []string{"federated"}, Destinations: []string{"sales"}}, Action: "allow"},
		{Name: "fed-deny", Match: policy.Match{Callers: []string{"federated"}}, Action: "deny", Code: 404}}
	tests := []struct {
		name   string
		call   policy.Call
		caller string
		rule   string
	}{
		{"guest in range", policy.Call{Domain: "example.net", To: "1500"}, "guest", "guest-vmr"},
		{"guest outside", policy.Call{Domain: "example.net", To: "2500"}, "guest", "guest-deny"},
		{"federated inferred", policy.Call{Domain: "Partner.Example", To: "sales"}, "federated", "fed-only-sales"},
		{"federated elsewhere", policy.Call{Domain: "partner.example", To: "1500"}, "federated", "fed-deny"},
		{"caller given", policy.Call{Caller: "registered", Domain: "partner.example", To: "1500"}, "registered", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, d, err := dryRun(cfg, tt.call)
			if err != nil {
				t.Fatal(err)
			}
			if c.Caller != tt.caller || d.Rule != tt.rule {
				t.Fatalf("caller %q rule %q, want %q %q", c.Caller, d.Rule, tt.caller, tt.rule)
			}
		})
	}
}
