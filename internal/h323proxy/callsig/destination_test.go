package callsig

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// TestSetupNamesOnlyTheAdmittedDestination: the policy admits a call for
// one of its aliases (or rewrites it, as a guest's default destination
// does); the Setup the inside receives names that destination alone, in
// destinationAddress and the called party number, so an inside gatekeeper
// routing on another alias of the Setup cannot take the call somewhere
// the policy did not allow.
func TestSetupNamesOnlyTheAdmittedDestination(t *testing.T) {
	for _, tc := range []struct {
		name     string
		decision string // Decision.To
		dest     []h225.AliasAddress
		cpn      string
		wantDest []string
		wantCPN  string
	}{
		{"admitted alias kept, others dropped", "1001",
			[]h225.AliasAddress{ras.H323ID("sales"), ras.E164("1001")}, "2001", []string{"1001"}, "1001"},
		{"rewritten to a default destination", "1000",
			[]h225.AliasAddress{ras.E164("2001")}, "2001", []string{"1000"}, "1000"},
		{"rewritten to a name: no called party number", "meet.lobby",
			[]h225.AliasAddress{ras.E164("2001")}, "2001", []string{"meet.lobby"}, ""},
		{"no decided destination: Setup unchanged", "",
			[]h225.AliasAddress{ras.E164("2001"), ras.H323ID("x")}, "2001", []string{"2001", "x"}, "2001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPortico(t, Config{}, func(d *Deps) {
				d.Policy = func(CallInfo) Decision { return Decision{Allow: true, CallType: "guest", To: tc.decision} }
			})
			calleeLn := routeTo(t, p)
			id := newCallID()
			caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
			ui := setupUI("0", id, netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, nil)
			ui.H323UuPdu.H323MessageBody.Setup.DestinationAddress = tc.dest
			caller.send(q931.Setup, false, ui, func(m *q931.Message) {
				m.SetNumber(q931.IECalledPartyNumber, q931.Number{Type: 4, Plan: 1, Digits: tc.cpn})
			})
			callee := newEndpoint(t, accept(t, calleeLn))
			m, got := callee.expect(q931.Setup)
			var dest []string
			for i := range got.H323UuPdu.H323MessageBody.Setup.DestinationAddress {
				a, _ := ras.AliasString(&got.H323UuPdu.H323MessageBody.Setup.DestinationAddress[i])
				dest = append(dest, a)
			}
			if !slices.Equal(dest, tc.wantDest) {
				t.Errorf("destinationAddress = %q, want %q", dest, tc.wantDest)
			}
			n, err := m.Number(q931.IECalledPartyNumber)
			if tc.wantCPN == "" {
				if err == nil {
					t.Errorf("called party number %q crossed, want none", n.Digits)
				}
			} else if err != nil || n.Digits != tc.wantCPN {
				t.Errorf("called party number = %q (%v), want %q", n.Digits, err, tc.wantCPN)
			}
			caller.send(q931.ReleaseComplete, false, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, id, netip.AddrPort{}, nil), withCause(CauseNormal))
			callee.expect(q931.ReleaseComplete)
		})
	}
}
