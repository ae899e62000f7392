package api

import (
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/policy"
)

// rulesOnly is a PolicyService over fixed rules; callers default to guest.
type rulesOnly struct{ p *policy.Policy }

func (r rulesOnly) DryRun(c policy.Call) (policy.Call, policy.Decision, error) {
	if c.Caller == "" {
		c.Caller = policy.CallerGuest
	}
	return c, r.p.Evaluate(c), nil
}

func TestPolicyDryRun(t *testing.T) {
	s, _, c := newGuardedServer(t)
	pol, err := policy.Compile("policy.rules", policy.WithGuests([]policy.Rule{
		{Name: "partner-net", Match: policy.Match{Sources: []string{"203.0.113.0/24"}, Domains: []string{"partner.example"}}, Action: "route", CallServer: "10.0.0.5:5060"},
		{Name: "h323-off", Match: policy.Match{Protocols: []string{"h323"}}, Action: "deny", Code: 488},
	}, policy.Guest{Enabled: true, VMRRanges: []string{"7000-7999"}}))
	if err != nil {
		t.Fatal(err)
	}
	s.deps.Policy = func() PolicyService { return rulesOnly{pol} }
	tests := []struct {
		name, body string
		code       int
		want       []string
	}{
		{"guest to a VMR", `{"from":"sip:eve@example.net","to":"sip:7001@portico.example","source":"192.0.2.7"}`, 200,
			[]string{`"rule": "guest-vmr"`, `"action": "allow"`, `"destination": "7001"`, `"caller": "guest"`}},
		{"guest elsewhere", `{"from":"eve@example.net","to":"8000"}`, 200,
			[]string{`"rule": "guest-deny"`, `"action": "deny"`, `"code": 403`}},
		{"route by source and domain", `{"from":"<sip:bob@partner.example>","to":"9000","source":"203.0.113.9","caller":"federated"}`, 200,
			[]string{`"rule": "partner-net"`, `"call_server": "10.0.0.5:5060"`}},
		{"protocol", `{"from":"x@y","to":"7001","protocol":"h323","caller":"registered"}`, 200,
			[]string{`"rule": "h323-off"`, `"code": 488`}},
		{"no rule", `{"from":"x@y","to":"7001","caller":"registered"}`, 200,
			[]string{`"rule": ""`, `"index": -1`, `"action": "allow"`}},
		{"bad source", `{"to":"1","source":"nowhere"}`, 400, []string{"source"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := cookieCall(s, c, "POST", "/api/v1/policy/dry-run", tt.body)
			if w.Code != tt.code {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			for _, want := range tt.want {
				if !strings.Contains(w.Body.String(), want) {
					t.Errorf("response lacks %s:\n%s", want, w.Body)
				}
			}
		})
	}
}
