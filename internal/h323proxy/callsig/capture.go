package callsig

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	// Six messages of every call pass here: the text is appended, not
	// formatted.
	summary := name
	b := make([]byte, 0, 256)
	b = append(b, "Q.931 "...)
	b = append(b, name...)
	b = append(b, ", call reference "...)
	b = strconv.AppendUint(b, uint64(m.CallRef), 10)
	b = append(b, " (flag "...)
	b = strconv.AppendBool(b, m.FromDestination)
	b = append(b, "), "...)
	b = strconv.AppendInt(b, int64(size), 10)
	b = append(b, " bytes\n"...)
	for _, ie := range []struct {
		id   byte
		name string
	}{{q931.IECallingPartyNumber, "calling party number: "}, {q931.IECalledPartyNumber, "called party number: "}} {
		if n, err := m.Number(ie.id); err == nil {
			b = append(append(append(b, ie.name...), n.Digits...), '\n')
			if ie.id == q931.IECalledPartyNumber {
				summary += " " + n.Digits
			}
		}
	}
	if d, ok := m.Get(q931.IEDisplay); ok {
		b = append(append(append(b, "display: "...), d...), '\n')
	}
	if cv, err := m.Cause(); err == nil {
		b = strconv.AppendUint(append(b, "cause: "...), uint64(cv.Value), 10)
		b = append(b, '\n')
		summary += " (cause " + strconv.Itoa(int(cv.Value)) + ")"
	}
	if ui != nil {
		pdu := &ui.H323UuPdu
		b = append(append(append(b, "H.225.0 body: "...), h225BodyName(pdu.H323MessageBody.Choice)...), '\n')
		if pdu.H245Tunnelling {
			b = strconv.AppendInt(append(b, "H.245 tunnelling, "...), int64(len(pdu.H245Control)), 10)
			b = append(b, " tunnelled messages\n"...)
		}
		if s := pdu.H323MessageBody.Setup; s != nil && len(s.FastStart) > 0 {
			b = strconv.AppendInt(append(b, "fastStart: "...), int64(len(s.FastStart)), 10)
			b = append(b, " elements\n"...)
		}
	}
	sd := c.srv.cfg.Sides[side]
	l := c.legs[side]
	return ladder.Message{Time: at, Protocol: "q931", Interface: sd.Interface, Direction: dir.String(), Transport: "tcp",
		Local: l.local, Remote: l.remote, Summary: validUTF8(summary), Method: name, Text: validUTF8(string(b))}, true
}

// validUTF8 is s with invalid UTF-8 replaced, s itself when it is valid
// (as every text of a well-formed message is).
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "?")
}

func h225BodyName(choice int) string {
	names := []string{"setup", "callProceeding", "connect", "alerting", "information", "releaseComplete", "facility",
		"progress", "empty", "status", "statusInquiry", "setupAcknowledge", "notify"}
	if choice >= 0 && choice < len(names) {
		return names[choice]
	}
	return fmt.Sprintf("extension %d", choice)
}
