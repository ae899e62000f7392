package h245_test

import (
	"net/netip"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h245"
)

func TestUnicastAddrPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   netip.AddrPort
		want netip.AddrPort // invalid = same as in
		v6   bool
	}{
		{name: "ipv4", in: netip.MustParseAddrPort("192.0.2.1:5004")},
		{name: "ipv4 port 0", in: netip.MustParseAddrPort("192.0.2.1:0")},
		{name: "ipv4 top port", in: netip.MustParseAddrPort("198.51.100.7:65535")},
		{name: "ipv6", in: netip.MustParseAddrPort("[2001:db8::1]:5006"), v6: true},
		{name: "v4-mapped becomes ipv4", in: netip.MustParseAddrPort("[::ffff:192.0.2.9]:7000"), want: netip.MustParseAddrPort("192.0.2.9:7000")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if !want.IsValid() {
				want = tc.in
			}
			u := h245.NewUnicastAddress(tc.in)
			if got := u.Choice == h245.UnicastAddress_IP6Address; got != tc.v6 {
				t.Fatalf("choice %d, want ipv6=%v", u.Choice, tc.v6)
			}
			// Through the wire: encode the address in an OLC and decode it.
			olc := olcWith(h245.NewTransportAddress(tc.in))
			b, err := olc.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var back h245.OpenLogicalChannel
			if err := back.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			var got []netip.AddrPort
			h245.VisitAddresses(&back, func(u *h245.UnicastAddress) {
				ap, ok := h245.UnicastAddrPort(u)
				if !ok {
					t.Fatalf("UnicastAddrPort(%+v) not ok", u)
				}
				got = append(got, ap)
			})
			if len(got) != 1 || got[0] != want {
				t.Fatalf("got %v, want [%v]", got, want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		u    *h245.UnicastAddress
	}{
		{"nil", nil},
		{"ipx", &h245.UnicastAddress{Choice: h245.UnicastAddress_IPXAddress, IPXAddress: &h245.UnicastAddressIPXAddress{}}},
		{"selected but nil", &h245.UnicastAddress{Choice: h245.UnicastAddress_IPAddress}},
		{"short network", &h245.UnicastAddress{Choice: h245.UnicastAddress_IPAddress, IPAddress: &h245.UnicastAddressIPAddress{Network: []byte{1, 2, 3}}}},
		{"port out of range", &h245.UnicastAddress{Choice: h245.UnicastAddress_IPAddress, IPAddress: &h245.UnicastAddressIPAddress{Network: []byte{1, 2, 3, 4}, TsapIdentifier: 70000}}},
	} {
		t.Run("reject/"+tc.name, func(t *testing.T) {
			if ap, ok := h245.UnicastAddrPort(tc.u); ok {
				t.Fatalf("got %v, want not ok", ap)
			}
		})
	}
}

// olcWith returns a G.711 OLC whose forward mediaControlChannel is rtcp.
func olcWith(rtcp h245.TransportAddress) *h245.OpenLogicalChannel {
	return &h245.OpenLogicalChannel{
		ForwardLogicalChannelNumber: 1,
		ForwardLogicalChannelParameters: h245.OpenLogicalChannelForwardLogicalChannelParameters{
			DataType: h245.DataType{Choice: h245.DataType_AudioData,
				AudioData: &h245.AudioCapability{Choice: h245.AudioCapability_G711Alaw64k, G711Alaw64k: 20}},
			MultiplexParameters: h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters{
				Choice:                        h245.OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
				H2250LogicalChannelParameters: &h245.H2250LogicalChannelParameters{SessionID: 1, MediaControlChannel: &rtcp},
			},
		},
	}
}

func h2250(media, rtcp netip.AddrPort) *h245.H2250LogicalChannelParameters {
	m, c := h245.NewTransportAddress(media), h245.NewTransportAddress(rtcp)
	return &h245.H2250LogicalChannelParameters{SessionID: 1, MediaChannel: &m, MediaControlChannel: &c}
}

// TestVisitAddresses checks that the visitors reach the forward and
// reverse channels of OLC and OLCAck, and that what f writes is what
// goes on the wire.
func TestVisitAddresses(t *testing.T) {
	a := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	olc := olcWith(h245.NewTransportAddress(a("10.0.0.1:5001")))
	olc.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters.MediaChannel = func() *h245.TransportAddress {
		x := h245.NewTransportAddress(a("10.0.0.1:5000"))
		return &x
	}()
	olc.ReverseLogicalChannelParameters = &h245.OpenLogicalChannelReverseLogicalChannelParameters{
		DataType: olc.ForwardLogicalChannelParameters.DataType,
		MultiplexParameters: &h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters{
			Choice:                        h245.OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
			H2250LogicalChannelParameters: h2250(a("10.0.0.1:6000"), a("10.0.0.1:6001")),
		},
	}
	ackMedia, ackRTCP := h245.NewTransportAddress(a("10.0.0.2:7000")), h245.NewTransportAddress(a("10.0.0.2:7001"))
	ack := &h245.OpenLogicalChannelAck{
		ForwardLogicalChannelNumber: 1,
		ReverseLogicalChannelParameters: &h245.OpenLogicalChannelAckReverseLogicalChannelParameters{
			ReverseLogicalChannelNumber: 2,
			MultiplexParameters: &h245.OpenLogicalChannelAckReverseLogicalChannelParametersMultiplexParameters{
				Choice:                        h245.OpenLogicalChannelAckReverseLogicalChannelParametersMultiplexParameters_H2250LogicalChannelParameters,
				H2250LogicalChannelParameters: h2250(a("10.0.0.2:8000"), a("10.0.0.2:8001")),
			},
		},
		ForwardMultiplexAckParameters: &h245.OpenLogicalChannelAckForwardMultiplexAckParameters{
			Choice:                           h245.OpenLogicalChannelAckForwardMultiplexAckParameters_H2250LogicalChannelAckParameters,
			H2250LogicalChannelAckParameters: &h245.H2250LogicalChannelAckParameters{MediaChannel: &ackMedia, MediaControlChannel: &ackRTCP},
		},
	}
	for _, tc := range []struct {
		name string
		msg  *h245.MultimediaSystemControlMessage
		want []string
	}{
		{"olc", &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Request,
			Request: &h245.RequestMessage{Choice: h245.RequestMessage_OpenLogicalChannel, OpenLogicalChannel: olc}},
			[]string{"10.0.0.1:5000", "10.0.0.1:5001", "10.0.0.1:6000", "10.0.0.1:6001"}},
		{"olcAck", &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Response,
			Response: &h245.ResponseMessage{Choice: h245.ResponseMessage_OpenLogicalChannelAck, OpenLogicalChannelAck: ack}},
			[]string{"10.0.0.2:8000", "10.0.0.2:8001", "10.0.0.2:7000", "10.0.0.2:7001"}},
		{"roundTripDelay", h245.NewRoundTripDelayRequest(3), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen []string
			relay := uint16(40000)
			h245.VisitMessageAddresses(tc.msg, func(u *h245.UnicastAddress) {
				ap, _ := h245.UnicastAddrPort(u)
				seen = append(seen, ap.String())
				*u = h245.NewUnicastAddress(netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), relay))
				relay++
			})
			if len(seen) != len(tc.want) {
				t.Fatalf("visited %v, want %v", seen, tc.want)
			}
			for i := range seen {
				if seen[i] != tc.want[i] {
					t.Fatalf("visited %v, want %v", seen, tc.want)
				}
			}
			b, err := tc.msg.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var back h245.MultimediaSystemControlMessage
			if err := back.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			port := uint16(40000)
			h245.VisitMessageAddresses(&back, func(u *h245.UnicastAddress) {
				if ap, _ := h245.UnicastAddrPort(u); ap != netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), port) {
					t.Errorf("after rewrite: %v, want port %d", ap, port)
				}
				port++
			})
		})
	}
}

func TestRoundTripDelayRequest(t *testing.T) {
	b, err := h245.NewRoundTripDelayRequest(200).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m h245.MultimediaSystemControlMessage
	if err := m.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if m.Request == nil || m.Request.Choice != h245.RequestMessage_RoundTripDelayRequest || m.Request.RoundTripDelayRequest.SequenceNumber != 200 {
		t.Fatalf("decoded %+v", m.Request)
	}
}
