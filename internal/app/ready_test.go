package app

import (
	"testing"

	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/turn"
)

// TestSIPListenerChecks: each SIP listener is its own readiness check, and
// one that stopped serving is not OK, with the reason.
func TestSIPListenerChecks(t *testing.T) {
	checks := sipListenerChecks([]sipedge.ListenerStatus{
		{Interface: "external", Transport: "udp", Address: "192.0.2.1:5060"},
		{Interface: "external", Transport: "tcp", Address: "192.0.2.1:5060", Err: "not serving: accept tcp: use of closed network connection"},
	})
	if len(checks) != 2 {
		t.Fatalf("%d checks, want 2", len(checks))
	}
	for _, tc := range []struct {
		name string
		i    int
		ok   bool
	}{
		{"serving", 0, true},
		{"dead", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := checks[tc.i]
			if c.OK != tc.ok || (c.Error == "") != tc.ok {
				t.Errorf("check %+v, want ok=%v with an error only when not ok", c, tc.ok)
			}
			if c.Name == "" || c.Name == checks[1-tc.i].Name {
				t.Errorf("check name %q does not tell the listeners apart", c.Name)
			}
		})
	}
}

// TestTURNListenerChecks: each TURN stream listener is its own readiness
// check; one whose accepts fail or that stopped is not OK, with the reason.
func TestTURNListenerChecks(t *testing.T) {
	checks := turnListenerChecks([]turn.ListenerStatus{
		{Transport: "tcp", Address: "192.0.2.1:3478"},
		{Transport: "tls", Address: "192.0.2.1:5349", Err: "accept failing: accept4: too many open files"},
	})
	if len(checks) != 2 {
		t.Fatalf("%d checks, want 2", len(checks))
	}
	if c := checks[0]; !c.OK || c.Error != "" || c.Name != "turn tcp 192.0.2.1:3478" {
		t.Errorf("serving listener check %+v", c)
	}
	if c := checks[1]; c.OK || c.Error == "" || c.Name != "turn tls 192.0.2.1:5349" {
		t.Errorf("failing listener check %+v", c)
	}
}
