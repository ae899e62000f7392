// Package ras provides helpers for H.225.0 RAS (registration, admission
// and status, ITU-T H.225.0 (12/2009) §7 and §8) messages over UDP on top
// of the generated types in package h225: parsing, transport and alias
// address conversion, constructors for the requests and their confirms
// and rejects, request/response matching by requestSeqNum, and typed
// access to the H.460 generic features in featureSet and genericData
// (H.460.18, .19, .23, .24; H.460.18's IncomingCallIndication).
package ras

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h225"
)

// Port is the well-known RAS UDP port; 1718 is the discovery port.
const (
	Port          = 1719
	DiscoveryPort = 1718
)

// Parse decodes one RAS message (the payload of a UDP datagram); the
// result aliases b.
func Parse(b []byte) (*h225.RasMessage, error) {
	m := new(h225.RasMessage)
	if err := m.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("ras: parse: %w", err)
	}
	return m, nil
}

// Transport returns the H.225.0 TransportAddress of ap.
func Transport(ap netip.AddrPort) h225.TransportAddress {
	a := ap.Addr().Unmap()
	if a.Is4() {
		ip := a.As4()
		return h225.TransportAddress{Choice: h225.TransportAddress_IpAddress,
			IpAddress: &h225.TransportAddressIpAddress{Ip: ip[:], Port: int64(ap.Port())}}
	}
	ip := a.As16()
	return h225.TransportAddress{Choice: h225.TransportAddress_Ip6Address,
		Ip6Address: &h225.TransportAddressIp6Address{Ip: ip[:], Port: int64(ap.Port())}}
}

// AddrPort returns the IP address and port of t.
func AddrPort(t *h225.TransportAddress) (netip.AddrPort, error) {
	switch {
	case t.Choice == h225.TransportAddress_IpAddress && t.IpAddress != nil:
		a, ok := netip.AddrFromSlice(t.IpAddress.Ip)
		if ok {
			return netip.AddrPortFrom(a, uint16(t.IpAddress.Port)), nil
		}
	case t.Choice == h225.TransportAddress_Ip6Address && t.Ip6Address != nil:
		a, ok := netip.AddrFromSlice(t.Ip6Address.Ip)
		if ok {
			return netip.AddrPortFrom(a, uint16(t.Ip6Address.Port)), nil
		}
	}
	return netip.AddrPort{}, ErrNotIP
}

// H323ID returns an h323-ID alias.
func H323ID(s string) h225.AliasAddress {
	return h225.AliasAddress{Choice: h225.AliasAddress_H323ID, H323ID: asn1per.BMP(s)}
}

// E164 returns a dialledDigits alias (digits 0-9 # * ,).
func E164(s string) h225.AliasAddress {
	return h225.AliasAddress{Choice: h225.AliasAddress_DialledDigits, DialledDigits: s}
}

// URL returns a url-ID alias.
func URL(s string) h225.AliasAddress {
	return h225.AliasAddress{Choice: h225.AliasAddress_UrlID, UrlID: s}
}

// Alias returns the alias for s: dialledDigits when s has only the
// characters dialledDigits allows (0-9 # * ,), an h323-ID otherwise.
func Alias(s string) h225.AliasAddress {
	if s != "" && strings.Trim(s, "0123456789#*,") == "" {
		return E164(s)
	}
	return H323ID(s)
}

// AliasString returns the text of an h323-ID, dialledDigits, url-ID or
// email-ID alias, and false for other kinds.
func AliasString(a *h225.AliasAddress) (string, bool) {
	switch a.Choice {
	case h225.AliasAddress_H323ID:
		return a.H323ID.String(), true
	case h225.AliasAddress_DialledDigits:
		return a.DialledDigits, true
	case h225.AliasAddress_UrlID:
		return a.UrlID, true
	case h225.AliasAddress_EmailID:
		return a.EmailID, true
	}
	return "", false
}

// Vendor identifies Portico in endpointVendor fields.
func Vendor() h225.VendorIdentifier {
	return h225.VendorIdentifier{
		Vendor:    h225.H221NonStandard{T35CountryCode: 181, ManufacturerCode: 0x5054},
		ProductId: []byte("Portico"), HasProductId: true,
		VersionId: []byte("1"), HasVersionId: true,
	}
}

// Endpoint describes the registering side for GRQ/RRQ constructors.
type Endpoint struct {
	RAS         netip.AddrPort
	CallSignal  netip.AddrPort
	Aliases     []h225.AliasAddress
	Gatekeeper  string // gatekeeperIdentifier, optional
	Terminal    bool   // terminal rather than gateway
	KeepAlive   bool
	EndpointID  string // endpointIdentifier for keep-alive RRQs
	TimeToLive  int64  // seconds, 0 for none
	FeatureSet  *h225.FeatureSet
	GenericData []h225.GenericData
}

func (e *Endpoint) endpointType() h225.EndpointType {
	v := Vendor()
	t := h225.EndpointType{Vendor: &v}
	if e.Terminal {
		t.Terminal = &h225.TerminalInfo{}
	} else {
		t.Gateway = &h225.GatewayInfo{}
	}
	return t
}

// GRQ returns a GatekeeperRequest.
func GRQ(seq int, e Endpoint) *h225.RasMessage {
	m := &h225.GatekeeperRequest{
		RequestSeqNum:      h225.RequestSeqNum(seq),
		ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		RasAddress:         Transport(e.RAS),
		EndpointType:       e.endpointType(),
		EndpointAlias:      e.Aliases, HasEndpointAlias: len(e.Aliases) > 0,
		FeatureSet:  e.FeatureSet,
		GenericData: e.GenericData, HasGenericData: len(e.GenericData) > 0,
	}
	if e.Gatekeeper != "" {
		m.GatekeeperIdentifier, m.HasGatekeeperIdentifier = h225.GatekeeperIdentifier(asn1per.BMP(e.Gatekeeper)), true
	}
	return &h225.RasMessage{Choice: h225.RasMessage_GatekeeperRequest, GatekeeperRequest: m}
}

// GCF returns the GatekeeperConfirm answering a GRQ.
func GCF(req *h225.GatekeeperRequest, gatekeeper string, ras netip.AddrPort) *h225.RasMessage {
	m := &h225.GatekeeperConfirm{
		RequestSeqNum:      req.RequestSeqNum,
		ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		RasAddress:         Transport(ras),
	}
	if gatekeeper != "" {
		m.GatekeeperIdentifier, m.HasGatekeeperIdentifier = h225.GatekeeperIdentifier(asn1per.BMP(gatekeeper)), true
	}
	return &h225.RasMessage{Choice: h225.RasMessage_GatekeeperConfirm, GatekeeperConfirm: m}
}

// RRQ returns a RegistrationRequest (a lightweight keep-alive one when
// e.KeepAlive is set).
func RRQ(seq int, e Endpoint) *h225.RasMessage {
	m := &h225.RegistrationRequest{
		RequestSeqNum:      h225.RequestSeqNum(seq),
		ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		DiscoveryComplete:  e.Gatekeeper != "",
		CallSignalAddress:  []h225.TransportAddress{Transport(e.CallSignal)},
		RasAddress:         []h225.TransportAddress{Transport(e.RAS)},
		TerminalType:       e.endpointType(),
		TerminalAlias:      e.Aliases, HasTerminalAlias: len(e.Aliases) > 0,
		EndpointVendor: Vendor(),
		KeepAlive:      e.KeepAlive, HasKeepAlive: true,
		HasWillSupplyUUIEs: true, HasMaintainConnection: true, HasSupportsAssignedGK: true,
		FeatureSet:  e.FeatureSet,
		GenericData: e.GenericData, HasGenericData: len(e.GenericData) > 0,
	}
	if e.Gatekeeper != "" {
		m.GatekeeperIdentifier, m.HasGatekeeperIdentifier = h225.GatekeeperIdentifier(asn1per.BMP(e.Gatekeeper)), true
	}
	if e.EndpointID != "" {
		m.EndpointIdentifier, m.HasEndpointIdentifier = h225.EndpointIdentifier(asn1per.BMP(e.EndpointID)), true
	}
	if e.TimeToLive > 0 {
		m.TimeToLive, m.HasTimeToLive = h225.TimeToLive(e.TimeToLive), true
	}
	return &h225.RasMessage{Choice: h225.RasMessage_RegistrationRequest, RegistrationRequest: m}
}

// RCF returns the RegistrationConfirm answering an RRQ.
func RCF(req *h225.RegistrationRequest, gatekeeper, endpointID string, callSignal netip.AddrPort, ttl int64) *h225.RasMessage {
	m := &h225.RegistrationConfirm{
		RequestSeqNum:      req.RequestSeqNum,
		ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		CallSignalAddress:  []h225.TransportAddress{Transport(callSignal)},
		TerminalAlias:      req.TerminalAlias, HasTerminalAlias: req.HasTerminalAlias,
		EndpointIdentifier:    h225.EndpointIdentifier(asn1per.BMP(endpointID)),
		HasWillRespondToIRR:   true,
		HasMaintainConnection: true,
	}
	if gatekeeper != "" {
		m.GatekeeperIdentifier, m.HasGatekeeperIdentifier = h225.GatekeeperIdentifier(asn1per.BMP(gatekeeper)), true
	}
	if ttl > 0 {
		m.TimeToLive, m.HasTimeToLive = h225.TimeToLive(ttl), true
	}
	return &h225.RasMessage{Choice: h225.RasMessage_RegistrationConfirm, RegistrationConfirm: m}
}

// RRJ returns a RegistrationReject with the given reason alternative
// (h225.RegistrationRejectReason_*).
func RRJ(req *h225.RegistrationRequest, reason int) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_RegistrationReject, RegistrationReject: &h225.RegistrationReject{
		RequestSeqNum:      req.RequestSeqNum,
		ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		RejectReason:       h225.RegistrationRejectReason{Choice: reason},
	}}
}

// ARQ returns an AdmissionRequest for a point-to-point call to dest.
func ARQ(seq int, endpointID string, src []h225.AliasAddress, dest []h225.AliasAddress, bandwidth int64, callRef int, confID, callID []byte, answer bool) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_AdmissionRequest, AdmissionRequest: &h225.AdmissionRequest{
		RequestSeqNum:      h225.RequestSeqNum(seq),
		CallType:           h225.CallType{Choice: h225.CallType_PointToPoint},
		EndpointIdentifier: h225.EndpointIdentifier(asn1per.BMP(endpointID)),
		DestinationInfo:    dest, HasDestinationInfo: len(dest) > 0,
		SrcInfo:            src,
		BandWidth:          h225.BandWidth(bandwidth),
		CallReferenceValue: h225.CallReferenceValue(callRef),
		ConferenceID:       h225.ConferenceIdentifier(confID),
		AnswerCall:         answer,
		HasCanMapAlias:     true,
		CallIdentifier:     &h225.CallIdentifier{Guid: h225.GloballyUniqueID(callID)},
		HasWillSupplyUUIEs: true, HasCanMapSrcAlias: true,
	}}
}

// ACF returns the AdmissionConfirm answering an ARQ.
func ACF(req *h225.AdmissionRequest, dest netip.AddrPort, routed bool) *h225.RasMessage {
	model := h225.CallModel{Choice: h225.CallModel_Direct}
	if routed {
		model.Choice = h225.CallModel_GatekeeperRouted
	}
	return &h225.RasMessage{Choice: h225.RasMessage_AdmissionConfirm, AdmissionConfirm: &h225.AdmissionConfirm{
		RequestSeqNum:         req.RequestSeqNum,
		BandWidth:             req.BandWidth,
		CallModel:             model,
		DestCallSignalAddress: Transport(dest),
		HasWillRespondToIRR:   true,
		UuiesRequested:        &h225.UUIEsRequested{},
	}}
}

// ARJ returns an AdmissionReject with the reason alternative
// (h225.AdmissionRejectReason_*).
func ARJ(req *h225.AdmissionRequest, reason int) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_AdmissionReject, AdmissionReject: &h225.AdmissionReject{
		RequestSeqNum: req.RequestSeqNum,
		RejectReason:  h225.AdmissionRejectReason{Choice: reason},
	}}
}

// LRQ returns a LocationRequest for dest, answered at reply.
func LRQ(seq int, dest []h225.AliasAddress, reply netip.AddrPort) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_LocationRequest, LocationRequest: &h225.LocationRequest{
		RequestSeqNum:   h225.RequestSeqNum(seq),
		DestinationInfo: dest,
		ReplyAddress:    Transport(reply),
		HasCanMapAlias:  true, HasCanMapSrcAlias: true,
	}}
}

// GRJ returns a GatekeeperReject with the reason alternative
// (h225.GatekeeperRejectReason_*).
func GRJ(req *h225.GatekeeperRequest, reason int) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_GatekeeperReject, GatekeeperReject: &h225.GatekeeperReject{
		RequestSeqNum:      req.RequestSeqNum,
		ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		RejectReason:       h225.GatekeeperRejectReason{Choice: reason},
	}}
}

// URQ returns an UnregistrationRequest for the endpoint's call signalling
// address, aliases and endpointIdentifier.
func URQ(seq int, e Endpoint) *h225.RasMessage {
	m := &h225.UnregistrationRequest{
		RequestSeqNum:     h225.RequestSeqNum(seq),
		CallSignalAddress: []h225.TransportAddress{Transport(e.CallSignal)},
		EndpointAlias:     e.Aliases, HasEndpointAlias: len(e.Aliases) > 0,
	}
	if e.EndpointID != "" {
		m.EndpointIdentifier, m.HasEndpointIdentifier = h225.EndpointIdentifier(asn1per.BMP(e.EndpointID)), true
	}
	if e.Gatekeeper != "" {
		m.GatekeeperIdentifier, m.HasGatekeeperIdentifier = h225.GatekeeperIdentifier(asn1per.BMP(e.Gatekeeper)), true
	}
	return &h225.RasMessage{Choice: h225.RasMessage_UnregistrationRequest, UnregistrationRequest: m}
}

// UCF returns the UnregistrationConfirm answering a URQ.
func UCF(req *h225.UnregistrationRequest) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_UnregistrationConfirm,
		UnregistrationConfirm: &h225.UnregistrationConfirm{RequestSeqNum: req.RequestSeqNum}}
}

// LCF returns the LocationConfirm answering an LRQ with the call
// signalling and RAS addresses of the located endpoint.
func LCF(req *h225.LocationRequest, callSignal, ras netip.AddrPort) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_LocationConfirm, LocationConfirm: &h225.LocationConfirm{
		RequestSeqNum:     req.RequestSeqNum,
		CallSignalAddress: Transport(callSignal),
		RasAddress:        Transport(ras),
		DestinationInfo:   req.DestinationInfo, HasDestinationInfo: len(req.DestinationInfo) > 0,
	}}
}

// LRJ returns a LocationReject with the reason alternative
// (h225.LocationRejectReason_*).
func LRJ(req *h225.LocationRequest, reason int) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_LocationReject, LocationReject: &h225.LocationReject{
		RequestSeqNum: req.RequestSeqNum,
		RejectReason:  h225.LocationRejectReason{Choice: reason},
	}}
}

// Call identifies an admitted call in BRQ, DRQ and IRQ.
type Call struct {
	EndpointID   string // endpointIdentifier of the sender
	Ref          int    // callReferenceValue, 0..65535
	ConferenceID []byte // 16 octets
	ID           []byte // callIdentifier guid, 16 octets
	Answered     bool   // the sender is the called endpoint
}

// BRQ returns a BandwidthRequest asking for bandwidth (in 100 bit/s units)
// for call c.
func BRQ(seq int, c Call, bandwidth int64) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_BandwidthRequest, BandwidthRequest: &h225.BandwidthRequest{
		RequestSeqNum:      h225.RequestSeqNum(seq),
		EndpointIdentifier: h225.EndpointIdentifier(asn1per.BMP(c.EndpointID)),
		ConferenceID:       h225.ConferenceIdentifier(c.ConferenceID),
		CallReferenceValue: h225.CallReferenceValue(c.Ref),
		BandWidth:          h225.BandWidth(bandwidth),
		CallIdentifier:     &h225.CallIdentifier{Guid: h225.GloballyUniqueID(c.ID)},
		AnsweredCall:       c.Answered, HasAnsweredCall: true,
	}}
}

// DRQ returns a DisengageRequest for call c with the reason alternative
// (h225.DisengageReason_*).
func DRQ(seq int, c Call, reason int) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_DisengageRequest, DisengageRequest: &h225.DisengageRequest{
		RequestSeqNum:      h225.RequestSeqNum(seq),
		EndpointIdentifier: h225.EndpointIdentifier(asn1per.BMP(c.EndpointID)),
		ConferenceID:       h225.ConferenceIdentifier(c.ConferenceID),
		CallReferenceValue: h225.CallReferenceValue(c.Ref),
		DisengageReason:    h225.DisengageReason{Choice: reason},
		CallIdentifier:     &h225.CallIdentifier{Guid: h225.GloballyUniqueID(c.ID)},
		AnsweredCall:       c.Answered, HasAnsweredCall: true,
	}}
}

// DCF returns the DisengageConfirm answering a DRQ.
func DCF(req *h225.DisengageRequest) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_DisengageConfirm,
		DisengageConfirm: &h225.DisengageConfirm{RequestSeqNum: req.RequestSeqNum}}
}

// IRQ returns an InfoRequest for the call with reference callRef (0 asks
// about all calls), answered at reply.
func IRQ(seq int, callRef int, reply netip.AddrPort) *h225.RasMessage {
	r := Transport(reply)
	return &h225.RasMessage{Choice: h225.RasMessage_InfoRequest, InfoRequest: &h225.InfoRequest{
		RequestSeqNum:      h225.RequestSeqNum(seq),
		CallReferenceValue: h225.CallReferenceValue(callRef),
		ReplyAddress:       &r,
	}}
}

// IRR returns the InfoRequestResponse answering an IRQ for endpoint e
// (with no per-call information). A nil req gives an unsolicited IRR with
// sequence number seq.
func IRR(req *h225.InfoRequest, seq int, e Endpoint) *h225.RasMessage {
	m := &h225.InfoRequestResponse{
		RequestSeqNum:      h225.RequestSeqNum(seq),
		EndpointType:       e.endpointType(),
		EndpointIdentifier: h225.EndpointIdentifier(asn1per.BMP(e.EndpointID)),
		RasAddress:         Transport(e.RAS),
		CallSignalAddress:  []h225.TransportAddress{Transport(e.CallSignal)},
		EndpointAlias:      e.Aliases, HasEndpointAlias: len(e.Aliases) > 0,
		HasUnsolicited: true, Unsolicited: req == nil,
	}
	if req != nil {
		m.RequestSeqNum = req.RequestSeqNum
	}
	return &h225.RasMessage{Choice: h225.RasMessage_InfoRequestResponse, InfoRequestResponse: m}
}

// SCI returns a ServiceControlIndication carrying the features fs (for
// H.460.18, a supportedFeatures entry made by IncomingCall).
func SCI(seq int, fs *h225.FeatureSet) *h225.RasMessage {
	return &h225.RasMessage{Choice: h225.RasMessage_ServiceControlIndication, ServiceControlIndication: &h225.ServiceControlIndication{
		RequestSeqNum:  h225.RequestSeqNum(seq),
		ServiceControl: []h225.ServiceControlSession{},
		FeatureSet:     fs,
	}}
}

// SCR returns the ServiceControlResponse answering an SCI with the result
// alternative (h225.ServiceControlResponseResult_*, or -1 for none) and
// the features fs (nil for none).
func SCR(req *h225.ServiceControlIndication, result int, fs *h225.FeatureSet) *h225.RasMessage {
	m := &h225.ServiceControlResponse{RequestSeqNum: req.RequestSeqNum, FeatureSet: fs}
	if result >= 0 {
		m.Result = &h225.ServiceControlResponseResult{Choice: result}
	}
	return &h225.RasMessage{Choice: h225.RasMessage_ServiceControlResponse, ServiceControlResponse: m}
}
