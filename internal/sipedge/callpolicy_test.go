package sipedge

import (
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/policy"
)

// TestCallPolicyRules: configured rules come before the guest policy; a
// deny answers its own code and the call's history names the rule; a
// rewrite changes the destination sent inside; a route sends the call to
// the call server it names.
func TestCallPolicyRules(t *testing.T) {
	cs1, c1 := fakeCallServer(t, "pol1")
	cs2, c2 := fakeCallServer(t, "pol2")
	c2.Priority = 1
	p := startPortico(t, Config{CallServers: []CallServer{c1, c2}, ProbeInterval: -1,
		Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}},
		Rules: []policy.Rule{
			{Name: "no-1900s", Match: policy.Match{Destinations: []string{"19??"}}, Action: "deny", Code: 486, Reason: "Busy Here"},
			{Name: "lobby", Match: policy.Match{Destinations: []string{"lobby"}}, Action: "rewrite", Destination: "1000"},
			{Name: "to-second", Match: policy.Match{Destinations: []string{"1500"}}, Action: "route", CallServer: c2.Address},
		}})
	ext := udpAddr(p.extUDP.String())
	g := newRawUA(t, outsideIP, "polguest")
	tests := []struct {
		name   string
		ruri   string
		code   int    // the guest's final response; 0: the call reaches a call server
		server *rawUA // which one
		user   string // the Request-URI user it sees
		disp   string // history disposition of a refused call
	}{
		{"rule denies with its code", "sip:1901@portico.test", 486, nil, "", "policy: rule no-1900s"},
		{"guest rules still apply", "sip:2000@portico.test", 403, nil, "", "policy: rule guest-deny"},
		{"rewrite", "sip:lobby@portico.test", 0, cs1, "1000", ""},
		{"route", "sip:1500@portico.test", 0, cs2, "1500", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := p.hist.count()
			done := make(chan int, 1)
			go func() {
				res := g.invite(ext, tt.ruri, g.sdp(""), "")
				g.ackNon2xx(res, tt.ruri)
				done <- res.StatusCode
			}()
			if tt.code != 0 {
				if code := <-done; code != tt.code {
					t.Fatalf("final response %d, want %d", code, tt.code)
				}
				rec := p.hist.waitCalls(t, n+1)[n]
				if rec.Disposition != tt.disp || rec.Status != tt.code {
					t.Fatalf("history %+v, want disposition %q", rec, tt.disp)
				}
				return
			}
			inv := tt.server.expect("INVITE")
			if inv.Recipient.User != tt.user {
				t.Errorf("call server saw %s", inv.Recipient.String())
			}
			tt.server.reply(inv, 404, "Not Found", "x", "")
			if code := <-done; code != 404 {
				t.Fatalf("final response %d", code)
			}
			p.hist.waitCalls(t, n+1)
		})
	}
	for _, m := range p.tap.messages() {
		if strings.Contains(string(m), "no-1900s") {
			t.Errorf("a rule's name was sent outside: %s", m)
		}
	}
}
