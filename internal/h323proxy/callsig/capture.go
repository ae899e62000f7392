package callsig

import (
	"fmt"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/ladder"
)

// Capture keeps the call signalling of recent calls (a *ladder.Store):
// each Q.931 message a call's legs carry, decoded to a text summary, under
// the call's history ID.
type Capture interface {
	Link(callID, dialog string)
	Add(dialog string, m ladder.Message)
}

var q931Names = map[byte]string{
	q931.Alerting: "Alerting", q931.CallProceeding: "CallProceeding", q931.ProgressMsg: "Progress",
	q931.Setup: "Setup", q931.Connect: "Connect", q931.SetupAck: "SetupAcknowledge",
	q931.ReleaseComplete: "ReleaseComplete", q931.Facility: "Facility", q931.Notify: "Notify",
	q931.StatusEnquiry: "StatusEnquiry", q931.Information: "Information",
}

// capture reports one message of side's leg to the call's capture (see
// captured).
func (c *call) capture(side Side, dir ladder.Direction, at time.Time, m *q931.Message, ui *h225.H323UserInformation, size int) {
	if lm, ok := c.captured(side, dir, at, m, ui, size); ok {
		c.srv.deps.Capture.Add(c.rec.ID, lm)
	}
}

// captured is one message of side's leg as the call's capture keeps it,
// false when the call is not captured. The text names the Q.931 message
// and its elements and the H.225.0 body, never the bytes: H.235 tokens
// stay out.
func (c *call) captured(side Side, dir ladder.Direction, at time.Time, m *q931.Message, ui *h225.H323UserInformation, size int) (ladder.Message, bool) {
	if c.srv.deps.Capture == nil || c.rec.ID == "" {
		return ladder.Message{}, false
	}
	name, ok := q931Names[m.Type]
	if !ok {
		name = fmt.Sprintf("message 0x%02x", m.Type)
	}
	summary := name
	var b strings.Builder
	fmt.Fprintf(&b, "Q.931 %s, call reference %d (flag %v), %d bytes\n", name, m.CallRef, m.FromDestination, size)
	for _, ie := range []struct {
		id   byte
		name string
	}{{q931.IECallingPartyNumber, "calling party number"}, {q931.IECalledPartyNumber, "called party number"}} {
		if n, err := m.Number(ie.id); err == nil {
			fmt.Fprintf(&b, "%s: %s\n", ie.name, n.Digits)
			if ie.id == q931.IECalledPartyNumber {
				summary += " " + n.Digits
			}
		}
	}
	if d, ok := m.Display(); ok {
		fmt.Fprintf(&b, "display: %s\n", d)
	}
	if cv, err := m.Cause(); err == nil {
		fmt.Fprintf(&b, "cause: %d\n", cv.Value)
		summary += fmt.Sprintf(" (cause %d)", cv.Value)
	}
	if ui != nil {
		pdu := &ui.H323UuPdu
		fmt.Fprintf(&b, "H.225.0 body: %s\n", h225BodyName(pdu.H323MessageBody.Choice))
		if pdu.H245Tunnelling {
			fmt.Fprintf(&b, "H.245 tunnelling, %d tunnelled messages\n", len(pdu.H245Control))
		}
		if s := pdu.H323MessageBody.Setup; s != nil && len(s.FastStart) > 0 {
			fmt.Fprintf(&b, "fastStart: %d elements\n", len(s.FastStart))
		}
	}
	sd := c.srv.cfg.Sides[side]
	l := c.legs[side]
	return ladder.Message{Time: at, Protocol: "q931", Interface: sd.Interface, Direction: dir.String(), Transport: "tcp",
		Local: l.local, Remote: l.remote, Summary: strings.ToValidUTF8(summary, "?"), Method: name, Text: strings.ToValidUTF8(b.String(), "?")}, true
}

func h225BodyName(choice int) string {
	names := []string{"setup", "callProceeding", "connect", "alerting", "information", "releaseComplete", "facility",
		"progress", "empty", "status", "statusInquiry", "setupAcknowledge", "notify"}
	if choice >= 0 && choice < len(names) {
		return names[choice]
	}
	return fmt.Sprintf("extension %d", choice)
}
