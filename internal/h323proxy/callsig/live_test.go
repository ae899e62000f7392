package callsig

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
)

// TestLiveCallAndHangup: a connected call with audio, video and content
// is listed with both legs, codecs and the relay's counters; Hangup sends
// ReleaseComplete (normal clearing) to both sides, releases the relay
// session and records "ended by administrator"; an unknown id is
// ErrNoCall.
func TestLiveCallAndHangup(t *testing.T) {
	p := startPortico(t, Config{})
	r := runCall(t, p)
	live := p.srv.Live()
	if len(live) != 1 {
		t.Fatalf("%d live calls, want 1", len(live))
	}
	c := live[0]
	if c.Protocol != "h323" || c.State != "confirmed" || c.To != "1000" || c.Answered.IsZero() || len(c.ID) != 32 {
		t.Errorf("live call %+v", c)
	}
	if len(c.Legs) != 2 || c.Legs[0].Side != "outside" || c.Legs[0].Party != "caller" ||
		!strings.HasPrefix(c.Legs[0].Remote, outsideEP.String()+":") || !strings.HasPrefix(c.Legs[0].Local, porticoOut.String()+":") ||
		c.Legs[1].Side != "inside" || c.Legs[1].Party != "callee" || c.Legs[1].Alias != "1000" ||
		!strings.HasPrefix(c.Legs[1].Remote, insideEP.String()+":") || !strings.HasPrefix(c.Legs[1].Local, porticoIn.String()+":") {
		t.Errorf("legs %+v", c.Legs)
	}
	if !strings.Contains(c.Codecs, "G.711 µ-law") || !strings.Contains(c.Codecs, "H.261") {
		t.Errorf("codecs %q", c.Codecs)
	}
	var audio bool
	for _, s := range c.Streams {
		if s.Kind == "audio" {
			audio = s.PacketsIn > 0 && s.PacketsOut > 0 && s.Codec == "G.711 µ-law" &&
				strings.HasPrefix(s.RelayOutside, porticoOut.String()+":") && strings.HasPrefix(s.RelayInside, porticoIn.String()+":")
		}
	}
	if !audio {
		t.Errorf("no audio stream with RTP both ways: %+v", c.Streams)
	}

	if err := p.srv.Hangup(c.ID); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*endpoint{r.caller, r.callee} {
		m, _ := e.expect(q931.ReleaseComplete)
		if got := cause(t, m); got != CauseNormal {
			t.Errorf("ReleaseComplete cause %d, want %d", got, CauseNormal)
		}
	}
	rec := p.hist.next(t)
	if rec.ID != c.ID || rec.Disposition != "ended by administrator" || rec.EndedBy != "admin" || rec.Status != CauseNormal {
		t.Errorf("history %+v", rec)
	}
	if n := len(p.relay.Sessions()); n != 0 {
		t.Errorf("%d relay sessions left", n)
	}
	if n := len(p.srv.Live()); n != 0 || p.srv.Calls() != 0 {
		t.Errorf("%d live calls listed, %d counted after the hang-up", n, p.srv.Calls())
	}
	if err := p.srv.Hangup(c.ID); !errors.Is(err, ErrNoCall) {
		t.Errorf("second Hangup = %v, want ErrNoCall", err)
	}
}

// TestLiveCallEarly: a call not yet answered is listed as early, and a
// Setup without callIdentifier (H.225.0 version 1) still gets an id.
func TestLiveCallEarly(t *testing.T) {
	p := startPortico(t, Config{})
	ln := routeTo(t, p)
	ui := setupUI("1000", newCallID(), netip.AddrPortFrom(outsideEP, 1720), netip.AddrPort{}, nil)
	ui.H323UuPdu.H323MessageBody.Setup.CallIdentifier = nil // version 1: no callIdentifier
	caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	caller.send(q931.Setup, false, ui)
	callee := newEndpoint(t, accept(t, ln))
	callee.expect(q931.Setup)
	live := p.srv.Live()
	if len(live) != 1 || live[0].State != "early" || !strings.HasPrefix(live[0].ID, "local-") || !live[0].Answered.IsZero() {
		t.Fatalf("live %+v", live)
	}
	if err := p.srv.Hangup(live[0].ID); err != nil {
		t.Fatal(err)
	}
	caller.expect(q931.ReleaseComplete)
	callee.expect(q931.ReleaseComplete)
	if rec := p.hist.next(t); rec.Disposition != "ended by administrator" || !rec.AnsweredAt.IsZero() {
		t.Errorf("history %+v", rec)
	}
}

// TestCallIDOutlivesTheSetupFrame: the callIdentifier Portico puts in the
// ReleaseCompletes it sends is the Setup's, also after the caller sent a
// longer message on the same connection (whose read reuses the buffer the
// Setup was read into).
func TestCallIDOutlivesTheSetupFrame(t *testing.T) {
	p := startPortico(t, Config{})
	calleeLn := routeTo(t, p)
	id := newCallID()
	caller, callee := placeCall(t, p.outAddr, calleeLn, id)
	caller.send(q931.Facility, false, answerUI(h225.H323UUPDUH323MessageBody_Facility, newCallID(), netip.AddrPort{}, nil),
		func(m *q931.Message) { m.SetDisplay(strings.Repeat("x", 200)) })
	callee.expect(q931.Facility)
	if err := p.srv.Hangup(hex.EncodeToString(id)); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*endpoint{caller, callee} {
		_, ui := e.expect(q931.ReleaseComplete)
		rc := ui.H323UuPdu.H323MessageBody.ReleaseComplete
		if rc == nil || rc.CallIdentifier == nil {
			t.Fatalf("ReleaseComplete without a callIdentifier: %+v", rc)
		}
		if !bytes.Equal(rc.CallIdentifier.Guid, id) {
			t.Errorf("ReleaseComplete callIdentifier %x, want the Setup's %x", rc.CallIdentifier.Guid, id)
		}
	}
}
