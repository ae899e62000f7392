package policy

import (
	"errors"
	"net/netip"
	"testing"
)

func TestACL(t *testing.T) {
	a, err := NewACL("policy.acl.sip", ACLConfig{Allow: []string{"192.0.2.0/24", "2001:db8::/32"}, Deny: []string{"192.0.2.66"},
		Domains: []string{"example.com", "*.partner.example"}, DenyUserAgents: []string{"BadPhone"}})
	if err != nil {
		t.Fatal(err)
	}
	open, _ := NewACL("x", ACLConfig{})
	tests := []struct {
		name   string
		acl    *ACL
		src    string
		domain string
		ua     string
		addr   bool
		req    bool
	}{
		{"allowed network", a, "192.0.2.1", "example.com", "Phone/1", true, true},
		{"mapped form", a, "::ffff:192.0.2.1", "example.com", "", true, true},
		{"denied inside allowed", a, "192.0.2.66", "example.com", "", false, true},
		{"outside allow list", a, "198.51.100.1", "example.com", "", false, true},
		{"v6", a, "2001:db8::5", "example.com", "", true, true},
		{"subdomain", a, "192.0.2.1", "eu.Partner.Example", "", true, true},
		{"other domain", a, "192.0.2.1", "evil.example", "", true, false},
		{"denied agent", a, "192.0.2.1", "example.com", "the badphone 2", true, false},
		{"empty allows all", open, "198.51.100.1", "any", "BadPhone", true, true},
		{"nil allows all", nil, "198.51.100.1", "any", "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.acl.Allow(netip.MustParseAddr(tt.src)); got != tt.addr {
				t.Errorf("Allow(%s) = %v", tt.src, got)
			}
			if got := tt.acl.AllowRequest(tt.domain, tt.ua); got != tt.req {
				t.Errorf("AllowRequest(%q, %q) = %v", tt.domain, tt.ua, got)
			}
		})
	}
	var live LiveACL
	if !live.Allow(netip.MustParseAddr("198.51.100.1")) {
		t.Error("an unset LiveACL denies")
	}
	live.Set(a)
	if live.Allow(netip.MustParseAddr("198.51.100.1")) {
		t.Error("LiveACL ignores its ACL")
	}
	if n := testing.AllocsPerRun(100, func() { a.Allow(netip.MustParseAddr("192.0.2.1")) }); n != 0 {
		t.Errorf("Allow allocates %v", n)
	}
}

func TestACLErrors(t *testing.T) {
	err := Config{ACL: ACLs{TURN: ACLConfig{Deny: []string{"10.0.0.0/8", "x"}}, SIP: ACLConfig{Domains: []string{"a.*.b"}}}}.Validate()
	var ce ConfigError
	if !errors.As(err, &ce) || len(ce) != 2 || ce[0].Path != "policy.acl.sip.domains[0]" || ce[1].Path != "policy.acl.turn.deny[1]" {
		t.Fatalf("%v", err)
	}
}

func TestListenerACL(t *testing.T) {
	svc, _ := NewACL("policy.acl.sip", ACLConfig{Deny: []string{"192.0.2.66"}})
	ls, err := Listeners("policy.acl.listeners", []ListenerACL{{Listen: "203.0.113.1:5061", Allow: []string{"198.51.100.0/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	var live LiveACL
	live.Set(svc.WithListeners(ls))
	tls, udp := live.On(netip.MustParseAddrPort("203.0.113.1:5061")), live.On(netip.MustParseAddrPort("203.0.113.1:5060"))
	tests := []struct {
		name string
		view *ListenerView
		src  string
		want bool
	}{
		{"listed listener, allowed network", tls, "198.51.100.7", true},
		{"listed listener, other network", tls, "192.0.2.1", false},
		{"other listener", udp, "192.0.2.1", true},
		{"service deny applies everywhere", udp, "192.0.2.66", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.view.Allow(netip.MustParseAddr(tt.src)); got != tt.want {
				t.Fatalf("Allow(%s) = %v", tt.src, got)
			}
		})
	}
	_, err = Listeners("p", []ListenerACL{{Listen: "5060"}, {Listen: "10.0.0.1:5060"}, {Listen: "10.0.0.1:5060", Deny: []string{"x"}}})
	var ce ConfigError
	if !errors.As(err, &ce) || len(ce) != 3 || ce[0].Path != "p[0].listen" || ce[1].Path != "p[2].listen" || ce[2].Path != "p[2].deny[0]" {
		t.Fatalf("%v", err)
	}
}
