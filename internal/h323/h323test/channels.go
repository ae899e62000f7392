package h323test

import (
	"net/netip"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h245"
)

// h239Role is the H.239 extended video capability identifier
// (ITU-T H.239 §11.1, OID itu-t(0) recommendation(0) h(8) 239 generic-capabilities(1) h239ExtendedVideoCapability(2)).
var h239Role = asn1per.OID("0.0.8.239.1.2")

// h245Protocol is the H.245 protocolIdentifier of the TCS (version 13).
var h245Protocol = asn1per.OID("0.0.8.245.0.13")

func h245Addr(ap netip.AddrPort) *h245.TransportAddress {
	ip := ap.Addr().Unmap().As4()
	return &h245.TransportAddress{Choice: h245.TransportAddress_UnicastAddress,
		UnicastAddress: &h245.UnicastAddress{Choice: h245.UnicastAddress_IPAddress,
			IPAddress: &h245.UnicastAddressIPAddress{Network: ip[:], TsapIdentifier: int64(ap.Port())}}}
}

func h245AddrPort(t *h245.TransportAddress) (netip.AddrPort, bool) {
	if t == nil || t.Choice != h245.TransportAddress_UnicastAddress || t.UnicastAddress == nil {
		return netip.AddrPort{}, false
	}
	u := t.UnicastAddress
	if u.Choice != h245.UnicastAddress_IPAddress || u.IPAddress == nil {
		return netip.AddrPort{}, false
	}
	a, ok := netip.AddrFromSlice(u.IPAddress.Network)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, uint16(u.IPAddress.TsapIdentifier)), true
}

func dataType(k Kind) h245.DataType {
	h263 := h245.VideoCapability{Choice: h245.VideoCapability_H263VideoCapability,
		H263VideoCapability: &h245.H263VideoCapability{CifMPI: 1, HasCifMPI: true, QcifMPI: 1, HasQcifMPI: true, MaxBitRate: 3840, HrdB: 0, BppMaxKb: 0}}
	switch k {
	case Video:
		return h245.DataType{Choice: h245.DataType_VideoData, VideoData: &h263}
	case Content:
		return h245.DataType{Choice: h245.DataType_VideoData, VideoData: &h245.VideoCapability{
			Choice: h245.VideoCapability_ExtendedVideoCapability,
			ExtendedVideoCapability: &h245.ExtendedVideoCapability{
				VideoCapability: []h245.VideoCapability{h263},
				VideoCapabilityExtension: []h245.GenericCapability{{
					CapabilityIdentifier: h245.CapabilityIdentifier{Choice: h245.CapabilityIdentifier_Standard, Standard: h239Role},
				}},
				HasVideoCapabilityExtension: true,
			}}}
	}
	return h245.DataType{Choice: h245.DataType_AudioData,
		AudioData: &h245.AudioCapability{Choice: h245.AudioCapability_G711Alaw64k, G711Alaw64k: 20}}
}

func h2250(k Kind, media, control netip.AddrPort) *h245.H2250LogicalChannelParameters {
	p := &h245.H2250LogicalChannelParameters{SessionID: k.SessionID(), SilenceSuppression: false, HasSilenceSuppression: k == Audio}
	if media.IsValid() {
		p.MediaChannel = h245Addr(media)
	}
	if control.IsValid() {
		p.MediaControlChannel = h245Addr(control)
	}
	return p
}

// transmitOLC is the OpenLogicalChannel for our transmit channel number n
// of kind k: it carries our RTCP address (H.245 §8.4.1; the receiver
// answers with its RTP address in the OLCAck).
func transmitOLC(n int, k Kind, rtcp netip.AddrPort) *h245.OpenLogicalChannel {
	return &h245.OpenLogicalChannel{
		ForwardLogicalChannelNumber: h245.LogicalChannelNumber(n),
		ForwardLogicalChannelParameters: h245.OpenLogicalChannelForwardLogicalChannelParameters{
			DataType: dataType(k),
			MultiplexParameters: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters{
				Choice:                        h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
				H2250LogicalChannelParameters: h2250(k, netip.AddrPort{}, rtcp),
			},
		},
	}
}

// receiveOLC is a fastStart proposal for the peer's transmit channel
// towards us (H.225.0 §8.1.7.1): nullData forward, our RTP and RTCP
// addresses in the reverse parameters.
func receiveOLC(n int, k Kind, rtp, rtcp netip.AddrPort) *h245.OpenLogicalChannel {
	return &h245.OpenLogicalChannel{
		ForwardLogicalChannelNumber: h245.LogicalChannelNumber(n),
		ForwardLogicalChannelParameters: h245.OpenLogicalChannelForwardLogicalChannelParameters{
			DataType: h245.DataType{Choice: h245.DataType_NullData},
			MultiplexParameters: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters{
				Choice: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_None,
			},
		},
		ReverseLogicalChannelParameters: &h245.OpenLogicalChannelReverseLogicalChannelParameters{
			DataType: dataType(k),
			MultiplexParameters: &h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters{
				Choice:                        h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
				H2250LogicalChannelParameters: h2250(k, rtp, rtcp),
			},
		},
	}
}

// olcAck answers OLC number n of kind k with our RTP and RTCP addresses.
func olcAck(n int64, k Kind, rtp, rtcp netip.AddrPort) *h245.MultimediaSystemControlMessage {
	return &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Response,
		Response: &h245.ResponseMessage{Choice: h245.ResponseMessage_OpenLogicalChannelAck,
			OpenLogicalChannelAck: &h245.OpenLogicalChannelAck{
				ForwardLogicalChannelNumber: h245.LogicalChannelNumber(n),
				ForwardMultiplexAckParameters: &h245.OpenLogicalChannelAckForwardMultiplexAckParameters{
					Choice: h245.OpenLogicalChannelAckForwardMultiplexAckParameters_H2250LogicalChannelAckParameters,
					H2250LogicalChannelAckParameters: &h245.H2250LogicalChannelAckParameters{
						SessionID: k.SessionID(), HasSessionID: true,
						MediaChannel:        h245Addr(rtp),
						MediaControlChannel: h245Addr(rtcp),
					},
				},
			}}}
}

func request(r *h245.RequestMessage) *h245.MultimediaSystemControlMessage {
	return &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Request, Request: r}
}

func response(r *h245.ResponseMessage) *h245.MultimediaSystemControlMessage {
	return &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Response, Response: r}
}

// tcs is a TerminalCapabilitySet listing audio, video and content.
func tcs() *h245.MultimediaSystemControlMessage {
	var table []h245.CapabilityTableEntry
	for i, k := range AllKinds {
		dt := dataType(k)
		c := h245.Capability{}
		if k == Audio {
			c.Choice, c.ReceiveAudioCapability = h245.Capability_ReceiveAudioCapability, dt.AudioData
		} else {
			c.Choice, c.ReceiveVideoCapability = h245.Capability_ReceiveVideoCapability, dt.VideoData
		}
		table = append(table, h245.CapabilityTableEntry{CapabilityTableEntryNumber: h245.CapabilityTableEntryNumber(i + 1), Capability: &c})
	}
	return request(&h245.RequestMessage{Choice: h245.RequestMessage_TerminalCapabilitySet,
		TerminalCapabilitySet: &h245.TerminalCapabilitySet{
			SequenceNumber: 1, ProtocolIdentifier: h245Protocol,
			CapabilityTable: table, HasCapabilityTable: true,
		}})
}

func msd(number int64) *h245.MultimediaSystemControlMessage {
	return request(&h245.RequestMessage{Choice: h245.RequestMessage_MasterSlaveDetermination,
		MasterSlaveDetermination: &h245.MasterSlaveDetermination{TerminalType: 50, StatusDeterminationNumber: number}})
}

// h46018Indication is the H.460.18 H.245 message identifier (0.0.8.460.18.0.1).
var h46018Indication = asn1per.OID("0.0.8.460.18.0.1")

// traversalIndication is the genericIndication an H.460.18 endpoint sends
// first on an H.245 connection it opened towards the traversal server,
// binding it to the call (H.460.18 §11: subMessageIdentifier 1,
// parameter 1 the callIdentifier).
func traversalIndication(callID []byte) *h245.MultimediaSystemControlMessage {
	return &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Indication,
		Indication: &h245.IndicationMessage{Choice: h245.IndicationMessage_GenericIndication,
			GenericIndication: &h245.GenericMessage{
				MessageIdentifier:    h245.CapabilityIdentifier{Choice: h245.CapabilityIdentifier_Standard, Standard: h46018Indication},
				SubMessageIdentifier: 1, HasSubMessageIdentifier: true,
				MessageContent: []h245.GenericParameter{{
					ParameterIdentifier: h245.ParameterIdentifier{Choice: h245.ParameterIdentifier_Standard, Standard: 1},
					ParameterValue:      h245.ParameterValue{Choice: h245.ParameterValue_OctetString, OctetString: callID},
				}},
				HasMessageContent: true,
			}}}
}
