package callsig

import (
	"strconv"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
)

// Q.931 cause values (Q.850 Table 1) the proxy sends or names.
const (
	CauseUnallocated    = 1
	CauseNoRoute        = 3
	CauseNormal         = 16
	CauseBusy           = 17
	CauseNoUserResponse = 18
	CauseNoAnswer       = 19
	CauseRejected       = 21
	// CauseRoutingError (Q.850 "exchange routing error") ends a call that
	// looped: it came back to Portico, or its hopCount ran out.
	CauseRoutingError    = 25
	CauseOutOfOrder      = 27
	CauseTemporary       = 41
	CauseResourceUnavail = 47
	CauseInvalidCallRef  = 81
	CauseInvalidMessage  = 95
	CauseRecoveryTimer   = 102
)

var causeWords = map[byte]string{
	CauseUnallocated:     "unallocated number",
	CauseNoRoute:         "no route to destination",
	CauseNormal:          "normal",
	CauseBusy:            "callee busy",
	CauseNoUserResponse:  "no answer",
	CauseNoAnswer:        "no answer",
	CauseRejected:        "call rejected",
	20:                   "callee absent",
	22:                   "number changed",
	CauseRoutingError:    "call loop",
	CauseOutOfOrder:      "destination out of order",
	28:                   "invalid number format",
	31:                   "normal",
	34:                   "no circuit available",
	38:                   "network out of order",
	CauseTemporary:       "temporary failure",
	42:                   "congestion",
	CauseResourceUnavail: "resource unavailable",
	57:                   "bearer capability not authorised",
	58:                   "bearer capability not available",
	65:                   "bearer capability not implemented",
	88:                   "incompatible destination",
	CauseInvalidCallRef:  "invalid call reference",
	CauseInvalidMessage:  "invalid message",
	100:                  "invalid information element",
	CauseRecoveryTimer:   "timeout",
	111:                  "protocol error",
	127:                  "interworking",
}

// Disposition names a Q.931 cause in words for call history.
func Disposition(cause byte) string {
	if w, ok := causeWords[cause]; ok {
		return w
	}
	return "cause " + strconv.Itoa(int(cause))
}

// releaseComplete encodes a ReleaseComplete for call reference crv, as
// sent to a side that originated it (fromDest true) or not.
func releaseComplete(crv uint32, fromDest bool, cause byte, reason int, callID []byte) []byte {
	rc := &h225.ReleaseCompleteUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV4)}
	if len(callID) == 16 {
		rc.CallIdentifier = &h225.CallIdentifier{Guid: h225.GloballyUniqueID(callID)}
	}
	if reason >= 0 {
		rc.Reason = &h225.ReleaseCompleteReason{Choice: reason}
	}
	ui := h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{
		H323MessageBody: h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_ReleaseComplete, ReleaseComplete: rc},
	}}
	uu, err := ui.Marshal()
	m := &q931.Message{CallRefLen: 2, CallRef: crv, FromDestination: fromDest, Type: q931.ReleaseComplete}
	m.SetCause(q931.Cause{Value: cause})
	if err == nil {
		m.SetUserUser(uu)
	}
	b, _ := m.Append(nil)
	return b
}
