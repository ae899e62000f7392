package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	rules := []Rule{
		{Name: "block-bad-net", Match: Match{Sources: []string{"198.51.100.0/24"}}, Action: "deny", Code: 603},
		{Name: "partners-to-sales", Match: Match{Callers: []string{"federated"}, Domains: []string{"*.partner.example"}, Destinations: []string{"sales"}}, Action: "allow"},
		{Name: "no-federated", Match: Match{Callers: []string{"federated"}}, Action: "deny", Code: 404, Reason: "Unknown"},
		{Name: "e164", Match: Match{Destinations: []string{`re:^\+44(\d+)$`}}, Action: "rewrite", Destination: "0$1"},
		{Name: "mcu", Match: Match{Destinations: []string{"8???"}, Protocols: []string{"sip"}}, Action: "route", CallServer: "10.0.0.9:5060"},
	}
	rules = append(rules, GuestRules(Guest{Enabled: true, VMRRanges: []string{"1000-1999"}, Aliases: []string{"Meet"}, DefaultDestination: "reception"})...)
	p, err := Compile("policy.rules", rules)
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("203.0.113.1")
	tests := []struct {
		name string
		call Call
		want Decision
	}{
		{"source deny first", Call{Caller: "registered", Source: netip.MustParseAddr("198.51.100.9"), To: "1000"}, Decision{Rule: "block-bad-net", Index: 0, Action: "deny", Code: 603, Reason: "Decline", Destination: "1000"}},
		{"federated subdomain to alias", Call{Caller: "federated", Source: src, Domain: "Eu.Partner.Example", To: "SALES"}, Decision{Rule: "partners-to-sales", Index: 1, Action: "allow", Destination: "SALES"}},
		{"federated bare domain is not a subdomain", Call{Caller: "federated", Source: src, Domain: "partner.example", To: "sales"}, Decision{Rule: "no-federated", Index: 2, Action: "deny", Code: 404, Reason: "Unknown", Destination: "sales"}},
		{"regexp rewrite", Call{Caller: "registered", Source: src, To: "+44123"}, Decision{Rule: "e164", Index: 3, Action: "rewrite", Destination: "0123"}},
		{"glob route", Call{Caller: "registered", Source: src, Protocol: "sip", To: "8001"}, Decision{Rule: "mcu", Index: 4, Action: "route", Destination: "8001", CallServer: "10.0.0.9:5060"}},
		{"glob length", Call{Caller: "registered", Source: src, Protocol: "sip", To: "80011"}, Decision{Index: -1, Action: "allow", Destination: "80011"}},
		{"protocol", Call{Caller: "registered", Source: src, Protocol: "h323", To: "8001"}, Decision{Index: -1, Action: "allow", Destination: "8001"}},
		{"guest in VMR range", Call{Caller: "guest", Source: src, To: "1500"}, Decision{Rule: "guest-vmr", Index: 5, Action: "allow", Destination: "1500"}},
		{"guest alias", Call{Caller: "guest", Source: src, To: "meet"}, Decision{Rule: "guest-vmr", Index: 5, Action: "allow", Destination: "meet"}},
		{"guest range length", Call{Caller: "guest", Source: src, To: "15000"}, Decision{Rule: "guest-default", Index: 6, Action: "rewrite", Destination: "reception"}},
		{"guest elsewhere", Call{Caller: "guest", Source: src, To: "2000"}, Decision{Rule: "guest-default", Index: 6, Action: "rewrite", Destination: "reception"}},
		{"registered anywhere", Call{Caller: "registered", Source: src, To: "2000"}, Decision{Index: -1, Action: "allow", Destination: "2000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Evaluate(tt.call); got != tt.want {
				t.Fatalf("Evaluate = %+v\nwant       %+v", got, tt.want)
			}
		})
	}
}

func TestGuestRules(t *testing.T) {
	tests := []struct {
		name  string
		guest Guest
		to    string
		rule  string
		allow bool
	}{
		{"guests off", Guest{VMRRanges: []string{"1000-1999"}}, "1000", "guest-deny", false},
		{"in range", Guest{Enabled: true, VMRRanges: []string{"1000-1999"}}, "1000", "guest-vmr", true},
		{"outside range, no default", Guest{Enabled: true, VMRRanges: []string{"1000-1999"}}, "2000", "guest-deny", false},
		{"empty destination", Guest{Enabled: true, VMRRanges: []string{"1000-1999"}}, "", "guest-deny", false},
		{"no ranges, default", Guest{Enabled: true, DefaultDestination: "lobby"}, "2000", "guest-default", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile("x", GuestRules(tt.guest))
			if err != nil {
				t.Fatal(err)
			}
			d := p.Evaluate(Call{Caller: CallerGuest, To: tt.to})
			if d.Rule != tt.rule || d.Allowed() != tt.allow {
				t.Fatalf("%+v", d)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		path string
	}{
		{"action", Rule{Action: "maybe"}, "policy.rules[0].action"},
		{"caller", Rule{Action: "allow", Match: Match{Callers: []string{"robot"}}}, "policy.rules[0].match.callers[0]"},
		{"source", Rule{Action: "allow", Match: Match{Sources: []string{"10.0.0.0/33"}}}, "policy.rules[0].match.sources[0]"},
		{"domain", Rule{Action: "allow", Match: Match{Domains: []string{"a*.example"}}}, "policy.rules[0].match.domains[0]"},
		{"protocol", Rule{Action: "allow", Match: Match{Protocols: []string{"xmpp"}}}, "policy.rules[0].match.protocols[0]"},
		{"range order", Rule{Action: "allow", Match: Match{Destinations: []string{"1999-1000"}}}, "policy.rules[0].match.destinations[0]"},
		{"range lengths", Rule{Action: "allow", Match: Match{Destinations: []string{"100-1999"}}}, "policy.rules[0].match.destinations[0]"},
		{"regexp", Rule{Action: "allow", Match: Match{Destinations: []string{"re:("}}}, "policy.rules[0].match.destinations[0]"},
		{"deny code", Rule{Action: "deny", Code: 200}, "policy.rules[0].code"},
		{"code without deny", Rule{Action: "allow", Code: 403}, "policy.rules[0].code"},
		{"rewrite destination", Rule{Action: "rewrite"}, "policy.rules[0].destination"},
		{"route server", Rule{Action: "route", CallServer: "inside"}, "policy.rules[0].call_server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{Rules: []Rule{tt.rule}}.Validate()
			var ce ConfigError
			if !errors.As(err, &ce) || ce[0].Path != tt.path {
				t.Fatalf("error %v, want path %s", err, tt.path)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true}, {"9*", "9", true}, {"9*", "19", false}, {"?", "", false}, {"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false}, {"*a", strings.Repeat("b", 1000), false}, {"+44*", "+4412", true},
		{"*", "*0000", true}, {"1*", "1*", true}, {"*1", "*1", true},
	}
	for _, tt := range tests {
		t.Run(tt.pat+"/"+tt.s, func(t *testing.T) {
			if got := glob(tt.pat, tt.s); got != tt.want {
				t.Fatalf("glob(%q, %q) = %v", tt.pat, tt.s, got)
			}
		})
	}
}

func FuzzPattern(f *testing.F) {
	for _, s := range []string{"1000-1999", "sales", "+44*", "9??", `re:^\+1(\d+)$`, "-", "1-", "re:", "**?*"} {
		f.Add(s, "1500")
	}
	f.Fuzz(func(t *testing.T, pat, user string) {
		p, err := parsePattern(pat)
		if err != nil {
			return
		}
		ok, _ := p.match(user)
		if p.kind == 'a' && ok != strings.EqualFold(p.text, user) {
			t.Fatalf("alias %q vs %q", p.text, user)
		}
		if p.kind == 'g' && strings.Trim(p.text, "*") == "" && !ok {
			t.Fatalf("all-star glob %q refused %q", p.text, user)
		}
	})
}

func BenchmarkEvaluate(b *testing.B) {
	var rules []Rule
	for range 50 {
		rules = append(rules, Rule{Match: Match{Callers: []string{"federated"}, Destinations: []string{"5000-5999", "x*"}}, Action: "deny"})
	}
	rules = append(rules, GuestRules(Guest{Enabled: true, VMRRanges: []string{"1000-1999"}})...)
	p, err := Compile("b", rules)
	if err != nil {
		b.Fatal(err)
	}
	c := Call{Caller: "guest", Source: netip.MustParseAddr("192.0.2.1"), To: "1500"}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(c)
	}
}
