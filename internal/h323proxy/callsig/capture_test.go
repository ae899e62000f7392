package callsig

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/ladder"
)

// TestCaptureLadder: a call's Q.931 messages on both legs are kept under
// its history ID, in order, as text without the message bytes.
func TestCaptureLadder(t *testing.T) {
	st := ladder.New(ladder.Config{})
	p := startPortico(t, Config{}, func(d *Deps) { d.Capture = st })
	r := runCall(t, p)
	r.caller.send(q931.ReleaseComplete, false, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, newCallID(), netip.AddrPort{}, nil), withCause(CauseNormal))
	r.callee.expect(q931.ReleaseComplete)
	rec := p.hist.next(t)
	var l ladder.Ladder
	for i := 0; i < 500; i++ { // the last forward is recorded after it is sent
		if l, _ = st.Ladder(rec.ID); len(l.Messages) == 12 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var got []string
	for _, m := range l.Messages {
		got = append(got, m.Interface+" "+m.Direction+" "+m.Summary)
		if m.Protocol != "q931" || m.Transport != "tcp" || !m.Remote.IsValid() {
			t.Errorf("message %+v", m)
		}
	}
	want := []string{
		"external in Setup", "internal out Setup",
		"internal in CallProceeding", "external out CallProceeding",
		"internal in Alerting", "external out Alerting",
		"internal in Connect", "external out Connect",
		"external in Facility", "internal out Facility",
		"external in ReleaseComplete (cause 16)", "internal out ReleaseComplete (cause 16)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ladder of call %s:\n%s\nwant\n%s", rec.ID, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if txt := l.Messages[7].Text; !strings.Contains(txt, "H.225.0 body: connect") || !strings.Contains(txt, "H.245 tunnelling, 1 tunnelled messages") {
		t.Errorf("Connect text:\n%s", txt)
	}
}

// stalledCapture is a capture store that does not return from Add until
// released.
type stalledCapture struct{ release chan struct{} }

func (s stalledCapture) Link(string, string)        {}
func (s stalledCapture) Add(string, ladder.Message) { <-s.release }

// TestCaptureAfterSend stalls the capture store and checks that the call's
// Setup and Connect are still forwarded: the store (one lock for all
// calls) is written after each message is sent, never before.
func TestCaptureAfterSend(t *testing.T) {
	st := stalledCapture{release: make(chan struct{})}
	p := startPortico(t, Config{}, func(d *Deps) { d.Capture = st })
	defer close(st.release)
	calleeLn := routeTo(t, p)
	id := newCallID()
	caller, callee := placeCall(t, p.outAddr, calleeLn, id)
	callee.send(q931.Connect, true, answerUI(h225.H323UUPDUH323MessageBody_Connect, id, netip.AddrPort{}, nil))
	caller.expect(q931.Connect)
}
