package h460

import (
	"fmt"

	"github.com/portico-edge/portico/internal/h323/h245"
)

// Parameters of the H.460.18 genericIndication.
const (
	indicationSubMessage = 1
	paramCallIdentifier  = 1
	paramAnswerCall      = 2
)

// Indication is the content of the H.460.18 H.245 genericIndication an
// endpoint sends first on an H.245 connection it opened towards the
// traversal server: the call it belongs to, and whether the endpoint is
// the answering side.
type Indication struct {
	CallID     [16]byte
	AnswerCall bool
}

// Message returns the indication as an H.245 message.
func (in Indication) Message() *h245.MultimediaSystemControlMessage {
	content := []h245.GenericParameter{{
		ParameterIdentifier: h245.ParameterIdentifier{Choice: h245.ParameterIdentifier_Standard, Standard: paramCallIdentifier},
		ParameterValue:      h245.ParameterValue{Choice: h245.ParameterValue_OctetString, OctetString: append([]byte(nil), in.CallID[:]...)},
	}}
	if in.AnswerCall {
		content = append(content, h245.GenericParameter{
			ParameterIdentifier: h245.ParameterIdentifier{Choice: h245.ParameterIdentifier_Standard, Standard: paramAnswerCall},
			ParameterValue:      h245.ParameterValue{Choice: h245.ParameterValue_Logical},
		})
	}
	return &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Indication, Indication: &h245.IndicationMessage{
		Choice: h245.IndicationMessage_GenericIndication,
		GenericIndication: &h245.GenericMessage{
			MessageIdentifier:    h245.CapabilityIdentifier{Choice: h245.CapabilityIdentifier_Standard, Standard: SignallingTraversalOID},
			SubMessageIdentifier: indicationSubMessage, HasSubMessageIdentifier: true,
			MessageContent: content, HasMessageContent: true,
		},
	}}
}

// ParseIndication reports whether m is the H.460.18 genericIndication and
// returns its content. A matching message without a 16-octet
// callIdentifier returns ok and an error.
func ParseIndication(m *h245.MultimediaSystemControlMessage) (in Indication, ok bool, err error) {
	if m == nil || m.Choice != h245.MultimediaSystemControlMessage_Indication || m.Indication == nil ||
		m.Indication.Choice != h245.IndicationMessage_GenericIndication || m.Indication.GenericIndication == nil {
		return in, false, nil
	}
	g := m.Indication.GenericIndication
	if !isStandard(&g.MessageIdentifier, SignallingTraversalOID) {
		return in, false, nil
	}
	p := findParam(g, paramCallIdentifier)
	if p == nil {
		return in, true, fmt.Errorf("h460: signalling traversal indication: %w", ErrNoParameters)
	}
	if p.ParameterValue.Choice != h245.ParameterValue_OctetString || len(p.ParameterValue.OctetString) != 16 {
		return in, true, fmt.Errorf("h460: signalling traversal indication: callIdentifier: %w", ErrBadValue)
	}
	copy(in.CallID[:], p.ParameterValue.OctetString)
	in.AnswerCall = findParam(g, paramAnswerCall) != nil
	return in, true, nil
}
