package config

import (
	"testing"
	"time"
)

// TestGuardAndPolicySections: the guard and policy sections parse with
// durations and nested lists, and their errors carry the field path and
// line.
func TestGuardAndPolicySections(t *testing.T) {
	doc := `version: 1
guard:
  block_time: 30m
  allow: [192.0.2.0/24]
  limits:
    not_found: {count: 5, window: 2m}
  rate_limits:
    register: {per_second: 1, burst: 5}
    action: drop
policy:
  rules:
    - name: vmr
      match: {callers: [guest], destinations: ["7000-7999", "re:^\\+1"]}
      action: allow
  acl:
    sip: {deny: [198.51.100.0/24], deny_user_agents: [friendly-scanner]}
`
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Guard
	if g.BlockTime != 30*time.Minute || g.Limits["not_found"].Window != 2*time.Minute || g.RateLimits.Register.Burst != 5 || g.RateLimits.Action != "drop" {
		t.Errorf("guard %+v", g)
	}
	if r := cfg.Policy.Rules; len(r) != 1 || r[0].Match.Destinations[1] != `re:^\+1` || len(cfg.Policy.ACL.SIP.Deny) != 1 {
		t.Errorf("policy %+v", cfg.Policy)
	}
	tests := []struct {
		name, doc, path string
		line            int
	}{
		{"guard kind", "version: 1\nguard:\n  limits:\n    flood: {count: 1, window: 1s}\n", "guard.limits.flood", 4},
		{"guard unknown field", "version: 1\nguard:\n  blocktime: 1m\n", "guard.blocktime", 3},
		{"rule action", "version: 1\npolicy:\n  rules:\n    - {action: permit}\n", "policy.rules[0].action", 4},
		{"rule destination", "version: 1\npolicy:\n  rules:\n    - action: allow\n      match:\n        destinations: [\"9-1\"]\n", "policy.rules[0].match.destinations[0]", 6},
		{"acl network", "version: 1\npolicy:\n  acl:\n    management: {allow: [nowhere]}\n", "policy.acl.management.allow[0]", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			es, ok := AsErrors(err)
			if !ok || len(es) == 0 || es[0].Path != tc.path || es[0].Line != tc.line {
				t.Fatalf("errors %v, want %s at line %d", err, tc.path, tc.line)
			}
		})
	}
}
