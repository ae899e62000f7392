package callsig

import (
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
)

// TestSetupTimes checks that Deps.Setup gets each answered call's setup
// moments once, in order, within the time the caller waited, and none for
// a call that was not answered.
func TestSetupTimes(t *testing.T) {
	got := make(chan SetupTimes, 4)
	p := startPortico(t, Config{}, func(d *Deps) { d.Setup = func(st SetupTimes) { got <- st } })
	calleeLn := routeTo(t, p)

	before := time.Now()
	id := newCallID()
	caller, callee := placeCall(t, p.outAddr, calleeLn, id)
	callee.send(q931.Alerting, true, answerUI(h225.H323UUPDUH323MessageBody_Alerting, id, netip.AddrPort{}, nil))
	caller.expect(q931.Alerting)
	select {
	case st := <-got:
		t.Fatalf("setup times before the Connect: %+v", st)
	default:
	}
	callee.send(q931.Connect, true, answerUI(h225.H323UUPDUH323MessageBody_Connect, id, netip.AddrPort{}, nil))
	caller.expect(q931.Connect)
	after := time.Now()
	var st SetupTimes
	select {
	case st = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no setup times for an answered call")
	}
	reported := time.Now()
	// Connected is taken once the Connect's write returned, which the
	// caller may see after reading the Connect: it is bounded by the report.
	steps := []struct {
		name  string
		at    time.Time
		until time.Time
	}{{"read", st.Read, after}, {"admitted", st.Admitted, after}, {"dialled", st.Dialled, after}, {"forwarded", st.Forwarded, after},
		{"answered", st.Answered, after}, {"connected", st.Connected, reported}}
	prev := before
	for _, s := range steps {
		if s.at.IsZero() || s.at.Before(prev) || s.at.After(s.until) {
			t.Fatalf("%s at %v: not between %v and %v (%+v)", s.name, s.at, prev, s.until, st)
		}
		prev = s.at
	}
	// A second Connect is no second setup.
	callee.send(q931.Connect, true, answerUI(h225.H323UUPDUH323MessageBody_Connect, id, netip.AddrPort{}, nil))
	caller.expect(q931.Connect)
	caller.send(q931.ReleaseComplete, false, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, id, netip.AddrPort{}, nil), withCause(CauseNormal))
	callee.expect(q931.ReleaseComplete)
	p.hist.next(t)

	// A call released before the answer reports nothing.
	id = newCallID()
	caller, callee = placeCall(t, p.outAddr, calleeLn, id)
	callee.send(q931.ReleaseComplete, true, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, id, netip.AddrPort{}, nil), withCause(17))
	caller.expect(q931.ReleaseComplete)
	p.hist.next(t)
	select {
	case st := <-got:
		t.Fatalf("setup times reported twice or for an unanswered call: %+v", st)
	default:
	}
}
