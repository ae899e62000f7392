package callsig

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
)

// TestCallLoops: a Setup that comes back to Portico is refused with
// ReleaseComplete, cause 25 (reason hopCountExceeded), history "call
// loop", and counted; what is not a loop goes through.
func TestCallLoops(t *testing.T) {
	zoneCall := func(Decision) Decision { return Decision{Allow: true, CallType: "zone:far"} }
	for _, tc := range []struct {
		name string
		// hops is the Setup's hopCount (0: none); policy, when set,
		// labels calls from outside.
		hops   int64
		policy func(Decision) Decision
		// first, when set, places a call with the same callIdentifier
		// first: from outside (to inside) or from inside (to "4000").
		first    *Side
		from     Side
		dest     string
		loop     bool
		wantHops int64 // the hopCount forwarded (when no loop)
	}{
		{name: "hopCount 1 is exhausted", hops: 1, from: Outside, loop: true},
		{name: "hopCount counts Portico", hops: 5, from: Outside, wantHops: 4},
		{name: "no hopCount stays none", from: Outside},
		{name: "a call out comes back in", first: ptr(Inside), from: Outside, loop: true},
		{name: "a zone's call routed back to the zone", policy: zoneCall, first: ptr(Outside), from: Inside, dest: "7000", loop: true},
		{name: "an outside call hairpinned to another outside endpoint", first: ptr(Outside), from: Inside, dest: "4000"},
		{name: "a zone's call routed to another zone", policy: func(Decision) Decision { return Decision{Allow: true, CallType: "zone:other"} },
			first: ptr(Outside), from: Inside, dest: "7000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dialled atomic.Int64
			p := startPortico(t, Config{}, func(d *Deps) {
				if tc.policy != nil {
					d.Policy = func(CallInfo) Decision { return tc.policy(Decision{}) }
				}
			})
			calleeIn := listenTCP(t, insideEP)
			room := listenTCP(t, outsideEP)
			zoneLn := listenTCP(t, outsideEP)
			p.mu.Lock()
			p.route = lnAddr(calleeIn)
			p.registry["4000"] = Endpoint{ID: "4000", CallSignal: lnAddr(room)}
			p.registry["7000"] = Endpoint{ID: "zone:far", CallType: "zone:far", Dial: func(ctx context.Context, _ [16]byte) (net.Conn, error) {
				dialled.Add(1)
				var d net.Dialer
				return d.DialContext(ctx, "tcp", lnAddr(zoneLn).String())
			}}
			p.mu.Unlock()
			id := newCallID()
			setup := func(dest string, hops int64) *h225.H323UserInformation {
				ui := setupUI(dest, id, netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, nil)
				if hops > 0 {
					ui.H323UuPdu.H323MessageBody.Setup.HopCount, ui.H323UuPdu.H323MessageBody.Setup.HasHopCount = hops, true
				}
				return ui
			}
			if tc.first != nil {
				if *tc.first == Outside {
					c := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
					c.send(q931.Setup, false, setup("1000", 0))
					newEndpoint(t, accept(t, calleeIn)).expect(q931.Setup) // held, unanswered
				} else {
					c := newEndpoint(t, dialFrom(t, insideEP, p.inAddr))
					c.send(q931.Setup, false, setup("4000", 0))
					newEndpoint(t, accept(t, room)).expect(q931.Setup)
				}
			}
			dest, src, to, ln := "1000", outsideEP, p.outAddr, calleeIn
			if tc.from == Inside {
				dest, src, to, ln = tc.dest, insideEP, p.inAddr, room
				if tc.dest == "7000" {
					ln = zoneLn
				}
			}
			caller := newEndpoint(t, dialFrom(t, src, to))
			caller.send(q931.Setup, false, setup(dest, tc.hops))
			if !tc.loop {
				_, ui := newEndpoint(t, accept(t, ln)).expect(q931.Setup)
				s := ui.H323UuPdu.H323MessageBody.Setup
				if s.HasHopCount != (tc.wantHops > 0) || s.HopCount != tc.wantHops {
					t.Errorf("forwarded hopCount %d (present %v), want %d", s.HopCount, s.HasHopCount, tc.wantHops)
				}
				if n := p.srv.Loops.Load(); n != 0 {
					t.Errorf("%d loops counted", n)
				}
				return
			}
			m, ui := caller.expect(q931.ReleaseComplete)
			rc := ui.H323UuPdu.H323MessageBody.ReleaseComplete
			if c := cause(t, m); c != CauseRoutingError || rc == nil || rc.Reason == nil || rc.Reason.Choice != h225.ReleaseCompleteReason_HopCountExceeded {
				t.Errorf("cause %d, reason %+v; want 25, hopCountExceeded", c, rc)
			}
			rec := p.hist.next(t)
			if rec.Disposition != "call loop" || rec.Status != CauseRoutingError || rec.EndedBy != "portico" {
				t.Errorf("history %+v, want call loop", rec)
			}
			if n := p.srv.Loops.Load(); n != 1 {
				t.Errorf("%d loops counted, want 1", n)
			}
			if dialled.Load() != 0 {
				t.Error("the zone was dialled for a looping call")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkLooped measures the loop check of a Setup from outside while
// 1,000 calls are in progress, none of them its own.
func BenchmarkLooped(b *testing.B) {
	s := &Server{calls: map[*call]struct{}{}, byID: map[[16]byte][]*call{}}
	for i := range 1000 {
		id := make([]byte, 16)
		id[0], id[1] = byte(i>>8), byte(i)
		c := &call{id: id, caller: Inside}
		s.calls[c] = struct{}{}
		s.byID[[16]byte(id)] = []*call{c}
	}
	id := make([]byte, 16)
	id[15] = 1
	b.ReportAllocs()
	for b.Loop() {
		if s.looped(Outside, id, "") {
			b.Fatal("looped")
		}
	}
}
