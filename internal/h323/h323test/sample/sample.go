// Package sample builds representative H.323 messages (RAS, Q.931 with
// H.225.0 UUIE, H.245 OpenLogicalChannel) for tests and benchmarks of the
// codecs in internal/h323.
package sample

import (
	"net/netip"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// Addresses used by the samples (loopback only).
var (
	EndpointRAS  = netip.MustParseAddrPort("127.0.0.10:1719")
	EndpointCall = netip.MustParseAddrPort("127.0.0.10:1720")
	GatekeeperRA = netip.MustParseAddrPort("127.0.0.1:1719")
	CalleeCall   = netip.MustParseAddrPort("127.0.0.20:1720")
	MediaRTCP    = netip.MustParseAddrPort("127.0.0.10:5001")
	MediaRTP     = netip.MustParseAddrPort("127.0.0.10:5000")
)

// Fixed identifiers.
var (
	ConferenceID = []byte{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f}
	CallID       = []byte{0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f}
)

// Endpoint is the registering endpoint of the samples.
func Endpoint() ras.Endpoint {
	return ras.Endpoint{
		RAS: EndpointRAS, CallSignal: EndpointCall, Terminal: true,
		Aliases:    []h225.AliasAddress{ras.H323ID("portico-ep"), ras.E164("1001")},
		Gatekeeper: "portico-gk", TimeToLive: 300,
	}
}

// RRQ returns a registration request.
func RRQ() *h225.RasMessage { return ras.RRQ(7, Endpoint()) }

// RCF returns the confirm of RRQ.
func RCF() *h225.RasMessage {
	return ras.RCF(RRQ().RegistrationRequest, "portico-gk", "ep-0001", GatekeeperRA, 60)
}

// ARQ returns an admission request for 5295672.
func ARQ() *h225.RasMessage {
	return ras.ARQ(8, "ep-0001", []h225.AliasAddress{ras.H323ID("portico-ep")},
		[]h225.AliasAddress{ras.E164("5295672")}, 1280, 42, ConferenceID, CallID, false)
}

// OLC returns an OpenLogicalChannel for G.711 A-law on channel 1 with the
// RTCP address MediaRTCP.
func OLC() *h245.OpenLogicalChannel {
	rtcp := MediaRTCP.Addr().As4()
	return &h245.OpenLogicalChannel{
		ForwardLogicalChannelNumber: 1,
		ForwardLogicalChannelParameters: h245.OpenLogicalChannelForwardLogicalChannelParameters{
			DataType: h245.DataType{Choice: h245.DataType_AudioData,
				AudioData: &h245.AudioCapability{Choice: h245.AudioCapability_G711Alaw64k, G711Alaw64k: 20}},
			MultiplexParameters: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters{
				Choice: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
				H2250LogicalChannelParameters: &h245.H2250LogicalChannelParameters{
					SessionID: 1,
					MediaControlChannel: &h245.TransportAddress{Choice: h245.TransportAddress_UnicastAddress,
						UnicastAddress: &h245.UnicastAddress{Choice: h245.UnicastAddress_IPAddress,
							IPAddress: &h245.UnicastAddressIPAddress{Network: rtcp[:], TsapIdentifier: int64(MediaRTCP.Port())}}},
					SilenceSuppression: false, HasSilenceSuppression: true,
				},
			},
		},
	}
}

// OLCMessage wraps OLC in a MultimediaSystemControlMessage request.
func OLCMessage() *h245.MultimediaSystemControlMessage {
	return &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Request,
		Request: &h245.RequestMessage{Choice: h245.RequestMessage_OpenLogicalChannel, OpenLogicalChannel: OLC()}}
}

// SetupUUIE returns the H323-UserInformation of a Setup to 5295672 with
// one fastStart OpenLogicalChannel and H.245 tunnelling.
func SetupUUIE() *h225.H323UserInformation {
	olc, err := OLC().Marshal()
	if err != nil {
		panic(err) // samples are fixed values
	}
	v := ras.Vendor()
	dst := ras.Transport(CalleeCall)
	return &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{
		H323MessageBody: h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_Setup, Setup: &h225.SetupUUIE{
			ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
			SourceAddress:      []h225.AliasAddress{ras.H323ID("portico-ep"), ras.E164("1001")}, HasSourceAddress: true,
			SourceInfo:         h225.EndpointType{Vendor: &v, Terminal: &h225.TerminalInfo{}},
			DestinationAddress: []h225.AliasAddress{ras.E164("5295672")}, HasDestinationAddress: true,
			DestCallSignalAddress: &dst,
			ConferenceID:          h225.ConferenceIdentifier(ConferenceID),
			ConferenceGoal:        h225.SetupUUIEConferenceGoal{Choice: h225.SetupUUIEConferenceGoal_Create},
			CallType:              h225.CallType{Choice: h225.CallType_PointToPoint},
			CallIdentifier:        &h225.CallIdentifier{Guid: h225.GloballyUniqueID(CallID)},
			FastStart:             [][]byte{olc}, HasFastStart: true,
			HasMediaWaitForConnect: true, HasCanOverlapSend: true, HasMultipleCalls: true, HasMaintainConnection: true,
		}},
		H245Tunnelling: true, HasH245Tunnelling: true,
	}}
}

// ConnectUUIE returns the H323-UserInformation of a Connect.
func ConnectUUIE() *h225.H323UserInformation {
	v := ras.Vendor()
	return &h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{
		H323MessageBody: h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_Connect, Connect: &h225.ConnectUUIE{
			ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
			DestinationInfo:    h225.EndpointType{Vendor: &v, Terminal: &h225.TerminalInfo{}},
			ConferenceID:       h225.ConferenceIdentifier(ConferenceID),
			CallIdentifier:     &h225.CallIdentifier{Guid: h225.GloballyUniqueID(CallID)},
			HasMultipleCalls:   true, HasMaintainConnection: true,
		}},
		H245Tunnelling: true, HasH245Tunnelling: true,
	}}
}

// Q931 wraps uuie in a Q.931 message of the given type with call
// reference 42; Setup gets bearer capability, display and called party
// number.
func Q931(msgType byte, fromDest bool, uuie *h225.H323UserInformation) ([]byte, error) {
	uu, err := uuie.Marshal()
	if err != nil {
		return nil, err
	}
	m := &q931.Message{CallRefLen: 2, CallRef: 42, FromDestination: fromDest, Type: msgType}
	if msgType == q931.Setup {
		m.Set(q931.IEBearerCapability, q931.BearerVideo)
		m.SetNumber(q931.IECalledPartyNumber, q931.Number{Type: 0, Plan: 1, Digits: "5295672"})
	}
	m.SetDisplay("Portico")
	m.SetUserUser(uu)
	return m.Append(nil)
}
