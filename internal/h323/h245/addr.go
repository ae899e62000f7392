package h245

import "net/netip"

// UnicastAddrPort returns the IPv4 or IPv6 address and port of a, and
// false for any other alternative (IPX, NetBIOS, source routes, ...) or a
// malformed network octet string.
func UnicastAddrPort(a *UnicastAddress) (netip.AddrPort, bool) {
	if a == nil {
		return netip.AddrPort{}, false
	}
	var network []byte
	var port int64
	switch {
	case a.Choice == UnicastAddress_IPAddress && a.IPAddress != nil:
		network, port = a.IPAddress.Network, a.IPAddress.TsapIdentifier
	case a.Choice == UnicastAddress_IP6Address && a.IP6Address != nil:
		network, port = a.IP6Address.Network, a.IP6Address.TsapIdentifier
	default:
		return netip.AddrPort{}, false
	}
	ip, ok := netip.AddrFromSlice(network)
	if !ok || port < 0 || port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, uint16(port)), true
}

// NewUnicastAddress returns ap as an iPAddress (IPv4, also for an
// IPv4-mapped IPv6 address) or iP6Address alternative.
func NewUnicastAddress(ap netip.AddrPort) UnicastAddress {
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		b := ip.As4()
		return UnicastAddress{Choice: UnicastAddress_IPAddress, IPAddress: &UnicastAddressIPAddress{Network: b[:], TsapIdentifier: int64(ap.Port())}}
	}
	b := ip.As16()
	return UnicastAddress{Choice: UnicastAddress_IP6Address, IP6Address: &UnicastAddressIP6Address{Network: b[:], TsapIdentifier: int64(ap.Port())}}
}

// NewTransportAddress returns ap as a unicast TransportAddress, the form
// of mediaChannel and mediaControlChannel.
func NewTransportAddress(ap netip.AddrPort) TransportAddress {
	u := NewUnicastAddress(ap)
	return TransportAddress{Choice: TransportAddress_UnicastAddress, UnicastAddress: &u}
}

// unicast returns the unicast address t holds, or nil.
func unicast(t *TransportAddress) *UnicastAddress {
	if t == nil || t.Choice != TransportAddress_UnicastAddress {
		return nil
	}
	return t.UnicastAddress
}

// visitH2250 calls f on the unicast media and media control channels of p.
func visitH2250(p *H2250LogicalChannelParameters, f func(*UnicastAddress)) {
	if p == nil {
		return
	}
	if u := unicast(p.MediaChannel); u != nil {
		f(u)
	}
	if u := unicast(p.MediaControlChannel); u != nil {
		f(u)
	}
}

// VisitAddresses calls f on every unicast transport address of an
// OpenLogicalChannel: mediaChannel and mediaControlChannel of the forward
// and reverse H2250LogicalChannelParameters. f may change the address in
// place (a proxy rewriting them to its relay). Multicast addresses and
// the addresses of separateStack are not visited; H.460.19 traversal
// parameters in genericInformation are handled by package h460.
func VisitAddresses(m *OpenLogicalChannel, f func(*UnicastAddress)) {
	if m == nil {
		return
	}
	if mp := &m.ForwardLogicalChannelParameters.MultiplexParameters; mp.Choice == OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters {
		visitH2250(mp.H2250LogicalChannelParameters, f)
	}
	if r := m.ReverseLogicalChannelParameters; r != nil && r.MultiplexParameters != nil &&
		r.MultiplexParameters.Choice == OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters {
		visitH2250(r.MultiplexParameters.H2250LogicalChannelParameters, f)
	}
}

// VisitAckAddresses calls f on every unicast transport address of an
// OpenLogicalChannelAck: mediaChannel and mediaControlChannel of the
// forward H2250LogicalChannelAckParameters and of the reverse
// H2250LogicalChannelParameters. f may change the address in place.
func VisitAckAddresses(m *OpenLogicalChannelAck, f func(*UnicastAddress)) {
	if m == nil {
		return
	}
	if r := m.ReverseLogicalChannelParameters; r != nil && r.MultiplexParameters != nil &&
		r.MultiplexParameters.Choice == OpenLogicalChannelAckReverseLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters {
		visitH2250(r.MultiplexParameters.H2250LogicalChannelParameters, f)
	}
	if a := m.ForwardMultiplexAckParameters; a != nil && a.Choice == OpenLogicalChannelAckForwardMultiplexAckParameters_H2250LogicalChannelAckParameters && a.H2250LogicalChannelAckParameters != nil {
		p := a.H2250LogicalChannelAckParameters
		if u := unicast(p.MediaChannel); u != nil {
			f(u)
		}
		if u := unicast(p.MediaControlChannel); u != nil {
			f(u)
		}
	}
}

// VisitMessageAddresses calls VisitAddresses or VisitAckAddresses when m
// is an openLogicalChannel request or an openLogicalChannelAck response,
// and does nothing otherwise.
func VisitMessageAddresses(m *MultimediaSystemControlMessage, f func(*UnicastAddress)) {
	switch {
	case m == nil:
	case m.Choice == MultimediaSystemControlMessage_Request && m.Request != nil && m.Request.Choice == RequestMessage_OpenLogicalChannel:
		VisitAddresses(m.Request.OpenLogicalChannel, f)
	case m.Choice == MultimediaSystemControlMessage_Response && m.Response != nil && m.Response.Choice == ResponseMessage_OpenLogicalChannelAck:
		VisitAckAddresses(m.Response.OpenLogicalChannelAck, f)
	}
}

// NewRoundTripDelayRequest returns the H.245 roundTripDelayRequest with the
// given sequence number (0..255): the H.245 keep-alive (round trip delay procedure) that
// every endpoint must answer, also used to keep a NAT binding open.
func NewRoundTripDelayRequest(seq uint8) *MultimediaSystemControlMessage {
	return &MultimediaSystemControlMessage{Choice: MultimediaSystemControlMessage_Request, Request: &RequestMessage{
		Choice: RequestMessage_RoundTripDelayRequest, RoundTripDelayRequest: &RoundTripDelayRequest{SequenceNumber: SequenceNumber(seq)},
	}}
}
