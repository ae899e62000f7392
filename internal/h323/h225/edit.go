package h225

import (
	"fmt"

	"github.com/portico-edge/portico/internal/h323/h245"
)

// VisitAddresses calls f on every transport address the message body of
// ui carries: h245Address of Setup, CallProceeding, Connect, Alerting,
// Facility and Progress; sourceCallSignalAddress and destCallSignalAddress
// of Setup; alternativeAddress of Facility; and the transportID
// alternative of the alias lists (sourceAddress, destinationAddress,
// destExtraCallInfo, remoteExtensionAddress, connectedAddress,
// alertingAddress, alternativeAliasAddress). f may change the address in
// place. Addresses inside fastStart and h245Control are H.245 encodings:
// see EditFastStart and EditH245Control.
func VisitAddresses(ui *H323UserInformation, f func(*TransportAddress)) {
	if ui == nil {
		return
	}
	addr := func(t *TransportAddress) {
		if t != nil {
			f(t)
		}
	}
	aliases := func(as []AliasAddress) {
		for i := range as {
			if as[i].Choice == AliasAddress_TransportID {
				addr(as[i].TransportID)
			}
		}
	}
	alias := func(a *AliasAddress) {
		if a != nil && a.Choice == AliasAddress_TransportID {
			addr(a.TransportID)
		}
	}
	b := &ui.H323UuPdu.H323MessageBody
	switch b.Choice {
	case H323UUPDUH323MessageBody_Setup:
		if s := b.Setup; s != nil {
			addr(s.H245Address)
			addr(s.SourceCallSignalAddress)
			addr(s.DestCallSignalAddress)
			aliases(s.SourceAddress)
			aliases(s.DestinationAddress)
			aliases(s.DestExtraCallInfo)
			alias(s.RemoteExtensionAddress)
		}
	case H323UUPDUH323MessageBody_CallProceeding:
		if c := b.CallProceeding; c != nil {
			addr(c.H245Address)
		}
	case H323UUPDUH323MessageBody_Connect:
		if c := b.Connect; c != nil {
			addr(c.H245Address)
			aliases(c.ConnectedAddress)
		}
	case H323UUPDUH323MessageBody_Alerting:
		if a := b.Alerting; a != nil {
			addr(a.H245Address)
			aliases(a.AlertingAddress)
		}
	case H323UUPDUH323MessageBody_Facility:
		if fa := b.Facility; fa != nil {
			addr(fa.H245Address)
			addr(fa.AlternativeAddress)
			aliases(fa.AlternativeAliasAddress)
			aliases(fa.DestExtraCallInfo)
			alias(fa.RemoteExtensionAddress)
		}
	case H323UUPDUH323MessageBody_Progress:
		if p := b.Progress; p != nil {
			addr(p.H245Address)
		}
	}
}

// FastStart returns the fastStart field of the message body of ui and its
// presence flag, or nils when the body has none.
func FastStart(ui *H323UserInformation) (*[][]byte, *bool) {
	if ui == nil {
		return nil, nil
	}
	b := &ui.H323UuPdu.H323MessageBody
	switch {
	case b.Choice == H323UUPDUH323MessageBody_Setup && b.Setup != nil:
		return &b.Setup.FastStart, &b.Setup.HasFastStart
	case b.Choice == H323UUPDUH323MessageBody_CallProceeding && b.CallProceeding != nil:
		return &b.CallProceeding.FastStart, &b.CallProceeding.HasFastStart
	case b.Choice == H323UUPDUH323MessageBody_Connect && b.Connect != nil:
		return &b.Connect.FastStart, &b.Connect.HasFastStart
	case b.Choice == H323UUPDUH323MessageBody_Alerting && b.Alerting != nil:
		return &b.Alerting.FastStart, &b.Alerting.HasFastStart
	case b.Choice == H323UUPDUH323MessageBody_Information && b.Information != nil:
		return &b.Information.FastStart, &b.Information.HasFastStart
	case b.Choice == H323UUPDUH323MessageBody_Facility && b.Facility != nil:
		return &b.Facility.FastStart, &b.Facility.HasFastStart
	case b.Choice == H323UUPDUH323MessageBody_Progress && b.Progress != nil:
		return &b.Progress.FastStart, &b.Progress.HasFastStart
	}
	return nil, nil
}

// EditFastStart decodes each fastStart element of ui as an
// OpenLogicalChannel, calls f on it and replaces the element with the
// re-encoding. It stops at the first error, naming the element; elements
// before it are already replaced. The new encodings are fresh slices, so
// the buffer ui was decoded from is not written to.
func EditFastStart(ui *H323UserInformation, f func(i int, olc *h245.OpenLogicalChannel) error) error {
	fs, _ := FastStart(ui)
	if fs == nil {
		return nil
	}
	var olc h245.OpenLogicalChannel
	for i, el := range *fs {
		if err := olc.Unmarshal(el); err != nil {
			return fmt.Errorf("h225: fastStart element %d: %w", i, err)
		}
		if err := f(i, &olc); err != nil {
			return fmt.Errorf("h225: fastStart element %d: %w", i, err)
		}
		out, err := olc.Marshal()
		if err != nil {
			return fmt.Errorf("h225: fastStart element %d: %w", i, err)
		}
		(*fs)[i] = out
	}
	return nil
}

// EditH245Control does for the tunnelled H.245 messages of ui
// (h245Control) what EditFastStart does for fastStart elements.
func EditH245Control(ui *H323UserInformation, f func(i int, m *h245.MultimediaSystemControlMessage) error) error {
	if ui == nil {
		return nil
	}
	ctl := ui.H323UuPdu.H245Control
	var m h245.MultimediaSystemControlMessage
	for i, el := range ctl {
		if err := m.Unmarshal(el); err != nil {
			return fmt.Errorf("h225: h245Control element %d: %w", i, err)
		}
		if err := f(i, &m); err != nil {
			return fmt.Errorf("h225: h245Control element %d: %w", i, err)
		}
		out, err := m.Marshal()
		if err != nil {
			return fmt.Errorf("h225: h245Control element %d: %w", i, err)
		}
		ctl[i] = out
	}
	return nil
}

// newFacility returns an H323-UserInformation holding a Facility UUIE of
// protocol version 4 with the given reason and call identifier.
func newFacility(reason int, callID [16]byte) (*H323UserInformation, *FacilityUUIE) {
	fa := &FacilityUUIE{
		ProtocolIdentifier: ProtocolIdentifier(ProtocolV4),
		Reason:             FacilityReason{Choice: reason},
		CallIdentifier:     &CallIdentifier{Guid: GloballyUniqueID(append([]byte(nil), callID[:]...))},
	}
	ui := &H323UserInformation{H323UuPdu: H323UUPDU{H323MessageBody: H323UUPDUH323MessageBody{
		Choice: H323UUPDUH323MessageBody_Facility, Facility: fa,
	}}}
	return ui, fa
}

// StartH245Facility returns the Facility with reason startH245 (H.225.0
// §7.4.1) asking the peer to open a separate H.245 connection to h245Addr.
// conferenceID (16 octets) may be nil.
func StartH245Facility(callID [16]byte, conferenceID []byte, h245Addr TransportAddress) *H323UserInformation {
	ui, fa := newFacility(FacilityReason_StartH245, callID)
	if len(conferenceID) == 16 {
		fa.ConferenceID = ConferenceIdentifier(append([]byte(nil), conferenceID...))
		fa.HasConferenceID = true
	}
	fa.H245Address = &h245Addr
	return ui
}

// EmptyFacility returns the Facility keep-alive of a call-signalling
// connection: reason undefinedReason and nothing else but the call
// identifier. (An empty TPKT, q931.AppendTPKT(nil, nil), is the lighter
// keep-alive H.225.0 also allows.)
func EmptyFacility(callID [16]byte) *H323UserInformation {
	ui, _ := newFacility(FacilityReason_UndefinedReason, callID)
	return ui
}

// Tunnel returns an H323-UserInformation whose message body is empty
// (H.225.0 v4 "empty") carrying the given H.245 messages in h245Control
// with h245Tunnelling set: how a tunnelled H.245 message travels when no
// call-signalling message is due.
func Tunnel(msgs ...*h245.MultimediaSystemControlMessage) (*H323UserInformation, error) {
	ui := &H323UserInformation{H323UuPdu: H323UUPDU{
		H323MessageBody: H323UUPDUH323MessageBody{Choice: H323UUPDUH323MessageBody_Empty},
		H245Tunnelling:  true, HasH245Tunnelling: true,
	}}
	for i, m := range msgs {
		b, err := m.Marshal()
		if err != nil {
			return nil, fmt.Errorf("h225: tunnel message %d: %w", i, err)
		}
		ui.H323UuPdu.H245Control = append(ui.H323UuPdu.H245Control, b)
	}
	ui.H323UuPdu.HasH245Control = len(ui.H323UuPdu.H245Control) > 0
	return ui, nil
}
