package ras

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/h323/h225"
)

var (
	epRAS  = netip.MustParseAddrPort("127.0.0.10:1719")
	epCall = netip.MustParseAddrPort("127.0.0.10:1720")
	gkRAS  = netip.MustParseAddrPort("127.0.0.1:1719")
	dstSig = netip.MustParseAddrPort("[2001:db8::20]:1720")
	confID = bytes.Repeat([]byte{0x11}, 16)
	callID = bytes.Repeat([]byte{0x22}, 16)
)

func endpoint() Endpoint {
	return Endpoint{
		RAS: epRAS, CallSignal: epCall, Terminal: true,
		Aliases:    []h225.AliasAddress{H323ID("portico-ep"), E164("1001"), URL("h323:ep@example.org")},
		Gatekeeper: "portico-gk", EndpointID: "ep-0001", TimeToLive: 300,
	}
}

func call() Call {
	return Call{EndpointID: "ep-0001", Ref: 42, ConferenceID: confID, ID: callID, Answered: true}
}

// roundTrip encodes m, parses the encoding and checks that it re-encodes
// to the same octets.
func roundTrip(t *testing.T, m *h225.RasMessage) *h225.RasMessage {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatalf("marshal %s: %v", Name(m), err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatalf("parse %s: %v", Name(m), err)
	}
	b2, err := got.Marshal()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("%s re-encodes differently (%v):\n% x\n% x", Name(m), err, b, b2)
	}
	if got.Choice != m.Choice {
		t.Fatalf("decoded %s, want %s", Name(got), Name(m))
	}
	return got
}

func wantAddr(t *testing.T, what string, ta *h225.TransportAddress, want netip.AddrPort) {
	t.Helper()
	got, err := AddrPort(ta)
	if err != nil || got != want {
		t.Errorf("%s = %v (%v), want %v", what, got, err, want)
	}
}

func wantAliases(t *testing.T, what string, got []h225.AliasAddress, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d aliases, want %d", what, len(got), len(want))
	}
	for i := range got {
		if s, ok := AliasString(&got[i]); !ok || s != want[i] {
			t.Errorf("%s[%d] = %q, want %q", what, i, s, want[i])
		}
	}
}

func wantBMP(t *testing.T, what string, got asn1per.BMPString, want string) {
	t.Helper()
	if got.String() != want {
		t.Errorf("%s = %q, want %q", what, got.String(), want)
	}
}

func wantSeq(t *testing.T, m *h225.RasMessage, want int) {
	t.Helper()
	if s, ok := SeqNum(m); !ok || s != want {
		t.Errorf("%s requestSeqNum = %d (%v), want %d", Name(m), s, ok, want)
	}
}

// TestRequests encodes each request constructor's message, decodes it and
// checks the fields the constructor sets.
func TestRequests(t *testing.T) {
	e := endpoint()
	tests := []struct {
		name  string
		msg   *h225.RasMessage
		check func(t *testing.T, m *h225.RasMessage)
	}{
		{"GRQ", GRQ(1, e), func(t *testing.T, m *h225.RasMessage) {
			r := m.GatekeeperRequest
			wantAddr(t, "rasAddress", &r.RasAddress, epRAS)
			wantAliases(t, "endpointAlias", r.EndpointAlias, "portico-ep", "1001", "h323:ep@example.org")
			wantBMP(t, "gatekeeperIdentifier", asn1per.BMPString(r.GatekeeperIdentifier), "portico-gk")
			if r.EndpointType.Terminal == nil || r.EndpointType.Vendor == nil {
				t.Errorf("endpointType = %+v, want a terminal with a vendor", r.EndpointType)
			}
			if !asn1per.ObjectIdentifier(r.ProtocolIdentifier).Equal(h225.ProtocolV7) {
				t.Errorf("protocolIdentifier = %v", r.ProtocolIdentifier)
			}
		}},
		{"RRQ", RRQ(2, e), func(t *testing.T, m *h225.RasMessage) {
			r := m.RegistrationRequest
			wantAddr(t, "callSignalAddress", &r.CallSignalAddress[0], epCall)
			wantAddr(t, "rasAddress", &r.RasAddress[0], epRAS)
			wantAliases(t, "terminalAlias", r.TerminalAlias, "portico-ep", "1001", "h323:ep@example.org")
			wantBMP(t, "endpointIdentifier", asn1per.BMPString(r.EndpointIdentifier), "ep-0001")
			if !r.DiscoveryComplete || !r.HasTimeToLive || r.TimeToLive != 300 || r.KeepAlive {
				t.Errorf("discoveryComplete %v timeToLive %v/%d keepAlive %v", r.DiscoveryComplete, r.HasTimeToLive, r.TimeToLive, r.KeepAlive)
			}
			if string(r.EndpointVendor.ProductId) != "Portico" {
				t.Errorf("productId = %q", r.EndpointVendor.ProductId)
			}
		}},
		{"RRQ keep-alive", RRQ(3, Endpoint{RAS: epRAS, CallSignal: epCall, KeepAlive: true, EndpointID: "ep-0001"}), func(t *testing.T, m *h225.RasMessage) {
			r := m.RegistrationRequest
			if !r.KeepAlive || r.HasTerminalAlias || r.HasGatekeeperIdentifier || r.HasTimeToLive || r.DiscoveryComplete {
				t.Errorf("keep-alive RRQ = %+v", r)
			}
			if r.TerminalType.Gateway == nil {
				t.Error("terminalType is not a gateway")
			}
		}},
		{"URQ", URQ(4, e), func(t *testing.T, m *h225.RasMessage) {
			r := m.UnregistrationRequest
			wantAddr(t, "callSignalAddress", &r.CallSignalAddress[0], epCall)
			wantAliases(t, "endpointAlias", r.EndpointAlias, "portico-ep", "1001", "h323:ep@example.org")
			wantBMP(t, "endpointIdentifier", asn1per.BMPString(r.EndpointIdentifier), "ep-0001")
			wantBMP(t, "gatekeeperIdentifier", asn1per.BMPString(r.GatekeeperIdentifier), "portico-gk")
		}},
		{"ARQ", ARQ(5, "ep-0001", []h225.AliasAddress{H323ID("portico-ep")}, []h225.AliasAddress{E164("5295672")}, 1280, 42, confID, callID, true), func(t *testing.T, m *h225.RasMessage) {
			r := m.AdmissionRequest
			wantAliases(t, "srcInfo", r.SrcInfo, "portico-ep")
			wantAliases(t, "destinationInfo", r.DestinationInfo, "5295672")
			wantBMP(t, "endpointIdentifier", asn1per.BMPString(r.EndpointIdentifier), "ep-0001")
			if r.BandWidth != 1280 || r.CallReferenceValue != 42 || !r.AnswerCall {
				t.Errorf("bandWidth %d callReferenceValue %d answerCall %v", r.BandWidth, r.CallReferenceValue, r.AnswerCall)
			}
			if !bytes.Equal(r.ConferenceID, confID) || r.CallIdentifier == nil || !bytes.Equal(r.CallIdentifier.Guid, callID) {
				t.Errorf("conferenceID % x callIdentifier %+v", r.ConferenceID, r.CallIdentifier)
			}
		}},
		{"LRQ", LRQ(6, []h225.AliasAddress{E164("5295672")}, gkRAS), func(t *testing.T, m *h225.RasMessage) {
			r := m.LocationRequest
			wantAliases(t, "destinationInfo", r.DestinationInfo, "5295672")
			wantAddr(t, "replyAddress", &r.ReplyAddress, gkRAS)
		}},
		{"BRQ", BRQ(7, call(), 640), func(t *testing.T, m *h225.RasMessage) {
			r := m.BandwidthRequest
			wantBMP(t, "endpointIdentifier", asn1per.BMPString(r.EndpointIdentifier), "ep-0001")
			if r.BandWidth != 640 || r.CallReferenceValue != 42 || !r.AnsweredCall || !bytes.Equal(r.CallIdentifier.Guid, callID) || !bytes.Equal(r.ConferenceID, confID) {
				t.Errorf("BRQ = %+v", r)
			}
		}},
		{"DRQ", DRQ(8, call(), h225.DisengageReason_NormalDrop), func(t *testing.T, m *h225.RasMessage) {
			r := m.DisengageRequest
			wantBMP(t, "endpointIdentifier", asn1per.BMPString(r.EndpointIdentifier), "ep-0001")
			if r.DisengageReason.Choice != h225.DisengageReason_NormalDrop || r.CallReferenceValue != 42 || !bytes.Equal(r.CallIdentifier.Guid, callID) {
				t.Errorf("DRQ = %+v", r)
			}
		}},
		{"IRQ", IRQ(9, 42, gkRAS), func(t *testing.T, m *h225.RasMessage) {
			r := m.InfoRequest
			if r.CallReferenceValue != 42 || r.ReplyAddress == nil {
				t.Fatalf("IRQ = %+v", r)
			}
			wantAddr(t, "replyAddress", r.ReplyAddress, gkRAS)
		}},
		{"IRR unsolicited", IRR(nil, 10, e), func(t *testing.T, m *h225.RasMessage) {
			r := m.InfoRequestResponse
			wantAddr(t, "rasAddress", &r.RasAddress, epRAS)
			wantAddr(t, "callSignalAddress", &r.CallSignalAddress[0], epCall)
			wantAliases(t, "endpointAlias", r.EndpointAlias, "portico-ep", "1001", "h323:ep@example.org")
			if !r.HasUnsolicited || !r.Unsolicited {
				t.Errorf("unsolicited = %v/%v", r.HasUnsolicited, r.Unsolicited)
			}
		}},
		{"SCI", SCI(11, Supported(Feature(H46018))), func(t *testing.T, m *h225.RasMessage) {
			if FindFeature(m, H46018) == nil {
				t.Error("no H.460.18 feature")
			}
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := roundTrip(t, tc.msg)
			wantSeq(t, got, i+1)
			if !IsRequest(got) {
				t.Errorf("IsRequest(%s) = false", Name(got))
			}
			tc.check(t, got)
		})
	}
}

// TestResponses checks that each response constructor copies the
// request's sequence number, encodes and decodes, and is matched to its
// request.
func TestResponses(t *testing.T) {
	e := endpoint()
	grq := roundTrip(t, GRQ(101, e)).GatekeeperRequest
	rrq := roundTrip(t, RRQ(102, e)).RegistrationRequest
	urq := roundTrip(t, URQ(103, e)).UnregistrationRequest
	arq := roundTrip(t, ARQ(104, "ep-0001", nil, []h225.AliasAddress{E164("5295672")}, 1280, 42, confID, callID, false)).AdmissionRequest
	lrq := roundTrip(t, LRQ(105, []h225.AliasAddress{E164("5295672")}, gkRAS)).LocationRequest
	drq := roundTrip(t, DRQ(106, call(), h225.DisengageReason_ForcedDrop)).DisengageRequest
	irq := roundTrip(t, IRQ(107, 0, gkRAS)).InfoRequest
	sci := roundTrip(t, SCI(108, nil)).ServiceControlIndication
	requests := map[string]*h225.RasMessage{
		"GRQ": {Choice: h225.RasMessage_GatekeeperRequest, GatekeeperRequest: grq},
		"RRQ": {Choice: h225.RasMessage_RegistrationRequest, RegistrationRequest: rrq},
		"URQ": {Choice: h225.RasMessage_UnregistrationRequest, UnregistrationRequest: urq},
		"ARQ": {Choice: h225.RasMessage_AdmissionRequest, AdmissionRequest: arq},
		"LRQ": {Choice: h225.RasMessage_LocationRequest, LocationRequest: lrq},
		"DRQ": {Choice: h225.RasMessage_DisengageRequest, DisengageRequest: drq},
		"IRQ": {Choice: h225.RasMessage_InfoRequest, InfoRequest: irq},
		"SCI": {Choice: h225.RasMessage_ServiceControlIndication, ServiceControlIndication: sci},
	}
	tests := []struct {
		name  string
		req   string
		msg   *h225.RasMessage
		seq   int
		check func(t *testing.T, m *h225.RasMessage)
	}{
		{"GCF", "GRQ", GCF(grq, "portico-gk", gkRAS), 101, func(t *testing.T, m *h225.RasMessage) {
			wantAddr(t, "rasAddress", &m.GatekeeperConfirm.RasAddress, gkRAS)
			wantBMP(t, "gatekeeperIdentifier", asn1per.BMPString(m.GatekeeperConfirm.GatekeeperIdentifier), "portico-gk")
		}},
		{"GRJ", "GRQ", GRJ(grq, h225.GatekeeperRejectReason_TerminalExcluded), 101, func(t *testing.T, m *h225.RasMessage) {
			if c := m.GatekeeperReject.RejectReason.Choice; c != h225.GatekeeperRejectReason_TerminalExcluded {
				t.Errorf("rejectReason = %d", c)
			}
		}},
		{"RCF", "RRQ", RCF(rrq, "portico-gk", "ep-0001", gkRAS, 60), 102, func(t *testing.T, m *h225.RasMessage) {
			r := m.RegistrationConfirm
			wantAddr(t, "callSignalAddress", &r.CallSignalAddress[0], gkRAS)
			wantAliases(t, "terminalAlias", r.TerminalAlias, "portico-ep", "1001", "h323:ep@example.org")
			wantBMP(t, "endpointIdentifier", asn1per.BMPString(r.EndpointIdentifier), "ep-0001")
			if !r.HasTimeToLive || r.TimeToLive != 60 {
				t.Errorf("timeToLive = %v/%d", r.HasTimeToLive, r.TimeToLive)
			}
		}},
		{"RRJ", "RRQ", RRJ(rrq, h225.RegistrationRejectReason_DuplicateAlias), 102, func(t *testing.T, m *h225.RasMessage) {
			if c := m.RegistrationReject.RejectReason.Choice; c != h225.RegistrationRejectReason_DuplicateAlias {
				t.Errorf("rejectReason = %d", c)
			}
		}},
		{"UCF", "URQ", UCF(urq), 103, func(*testing.T, *h225.RasMessage) {}},
		{"ACF direct", "ARQ", ACF(arq, dstSig, false), 104, func(t *testing.T, m *h225.RasMessage) {
			r := m.AdmissionConfirm
			wantAddr(t, "destCallSignalAddress", &r.DestCallSignalAddress, dstSig)
			if r.BandWidth != 1280 || r.CallModel.Choice != h225.CallModel_Direct {
				t.Errorf("bandWidth %d callModel %d", r.BandWidth, r.CallModel.Choice)
			}
		}},
		{"ACF routed", "ARQ", ACF(arq, gkRAS, true), 104, func(t *testing.T, m *h225.RasMessage) {
			if c := m.AdmissionConfirm.CallModel.Choice; c != h225.CallModel_GatekeeperRouted {
				t.Errorf("callModel = %d", c)
			}
		}},
		{"ARJ", "ARQ", ARJ(arq, h225.AdmissionRejectReason_CalledPartyNotRegistered), 104, func(t *testing.T, m *h225.RasMessage) {
			if c := m.AdmissionReject.RejectReason.Choice; c != h225.AdmissionRejectReason_CalledPartyNotRegistered {
				t.Errorf("rejectReason = %d", c)
			}
		}},
		{"LCF", "LRQ", LCF(lrq, dstSig, gkRAS), 105, func(t *testing.T, m *h225.RasMessage) {
			r := m.LocationConfirm
			wantAddr(t, "callSignalAddress", &r.CallSignalAddress, dstSig)
			wantAddr(t, "rasAddress", &r.RasAddress, gkRAS)
			wantAliases(t, "destinationInfo", r.DestinationInfo, "5295672")
		}},
		{"LRJ", "LRQ", LRJ(lrq, h225.LocationRejectReason_RequestDenied), 105, func(t *testing.T, m *h225.RasMessage) {
			if c := m.LocationReject.RejectReason.Choice; c != h225.LocationRejectReason_RequestDenied {
				t.Errorf("rejectReason = %d", c)
			}
		}},
		{"DCF", "DRQ", DCF(drq), 106, func(*testing.T, *h225.RasMessage) {}},
		{"IRR", "IRQ", IRR(irq, 0, e), 107, func(t *testing.T, m *h225.RasMessage) {
			if r := m.InfoRequestResponse; r.Unsolicited {
				t.Error("IRR answering an IRQ is unsolicited")
			}
		}},
		{"SCR", "SCI", SCR(sci, h225.ServiceControlResponseResult_Started, Supported(Feature(H46018))), 108, func(t *testing.T, m *h225.RasMessage) {
			r := m.ServiceControlResponse
			if r.Result == nil || r.Result.Choice != h225.ServiceControlResponseResult_Started || FindFeature(m, H46018) == nil {
				t.Errorf("SCR = %+v", r)
			}
		}},
		{"SCR bare", "SCI", SCR(sci, -1, nil), 108, func(t *testing.T, m *h225.RasMessage) {
			if r := m.ServiceControlResponse; r.Result != nil || r.FeatureSet != nil {
				t.Errorf("SCR = %+v", r)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := roundTrip(t, tc.msg)
			wantSeq(t, got, tc.seq)
			if IsRequest(got) && got.Choice != h225.RasMessage_InfoRequestResponse {
				t.Errorf("IsRequest(%s) = true", Name(got))
			}
			for name, req := range requests {
				if m := Matches(req, got); m != (name == tc.req) {
					t.Errorf("Matches(%s, %s) = %v", name, Name(got), m)
				}
			}
			tc.check(t, got)
		})
	}
}

func TestMatches(t *testing.T) {
	rrq := RRQ(7, endpoint())
	rcf := RCF(rrq.RegistrationRequest, "", "ep", gkRAS, 0)
	other := RCF(RRQ(8, endpoint()).RegistrationRequest, "", "ep", gkRAS, 0)
	rip := &h225.RasMessage{Choice: h225.RasMessage_RequestInProgress, RequestInProgress: &h225.RequestInProgress{RequestSeqNum: 7, Delay: 1000}}
	xrs := &h225.RasMessage{Choice: h225.RasMessage_UnknownMessageResponse, UnknownMessageResponse: &h225.UnknownMessageResponse{RequestSeqNum: 7}}
	irr := IRR(nil, 7, endpoint())
	iack := &h225.RasMessage{Choice: h225.RasMessage_InfoRequestAck, InfoRequestAck: &h225.InfoRequestAck{RequestSeqNum: 7}}
	tests := []struct {
		name      string
		req, resp *h225.RasMessage
		want      bool
	}{
		{"confirm", rrq, rcf, true},
		{"other sequence number", rrq, other, false},
		{"request in progress", rrq, rip, true},
		{"unknown message response", rrq, xrs, true},
		{"RIP to a confirm", rcf, rip, false},
		{"request answering itself", rrq, rrq, false},
		{"IACK answers an unsolicited IRR", irr, iack, true},
		{"nil alternative", rrq, &h225.RasMessage{Choice: h225.RasMessage_RegistrationConfirm}, false},
		{"unset message", &h225.RasMessage{Choice: -1}, rcf, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Matches(tc.req, tc.resp); got != tc.want {
				t.Errorf("Matches(%s, %s) = %v, want %v", Name(tc.req), Name(tc.resp), got, tc.want)
			}
		})
	}
}

// TestSeqNumEveryKind checks SeqNum on every RasMessage alternative with
// and without its value, so that a new alternative cannot be forgotten.
func TestSeqNumEveryKind(t *testing.T) {
	for choice, name := range names {
		m := &h225.RasMessage{Choice: choice}
		if _, ok := SeqNum(m); ok {
			t.Errorf("%s: SeqNum of a nil alternative reports ok", name)
		}
		b, err := m.Marshal()
		if err == nil && choice != h225.RasMessage_AdmissionConfirmSequence { // an empty SEQUENCE OF is valid
			t.Errorf("%s: a nil alternative encodes to % x", name, b)
		}
		if Name(m) != name {
			t.Errorf("Name = %s, want %s", Name(m), name)
		}
	}
	if Name(&h225.RasMessage{Choice: 999}) != "unknown" {
		t.Error("Name of an unknown alternative")
	}
}

func TestTransport(t *testing.T) {
	tests := []struct {
		name string
		ap   netip.AddrPort
		want netip.AddrPort
		kind int
	}{
		{"IPv4", epRAS, epRAS, h225.TransportAddress_IpAddress},
		{"IPv4-mapped IPv6", netip.MustParseAddrPort("[::ffff:10.0.0.1]:1720"), netip.MustParseAddrPort("10.0.0.1:1720"), h225.TransportAddress_IpAddress},
		{"IPv6", dstSig, dstSig, h225.TransportAddress_Ip6Address},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ta := Transport(tc.ap)
			if ta.Choice != tc.kind {
				t.Errorf("choice = %d, want %d", ta.Choice, tc.kind)
			}
			wantAddr(t, "address", &ta, tc.want)
		})
	}
	for _, ta := range []h225.TransportAddress{
		{Choice: h225.TransportAddress_IpAddress},
		{Choice: h225.TransportAddress_IpAddress, IpAddress: &h225.TransportAddressIpAddress{Ip: []byte{1, 2, 3}}},
		{Choice: h225.TransportAddress_NetBios, NetBios: make([]byte, 16)},
	} {
		if _, err := AddrPort(&ta); !errors.Is(err, ErrNotIP) {
			t.Errorf("AddrPort(%+v) = %v, want ErrNotIP", ta, err)
		}
	}
}

func TestAliasString(t *testing.T) {
	email := h225.AliasAddress{Choice: h225.AliasAddress_EmailID, EmailID: "a@b.c"}
	for _, tc := range []struct {
		a    h225.AliasAddress
		want string
		ok   bool
	}{
		{H323ID("Zoë"), "Zoë", true},
		{E164("12#*"), "12#*", true},
		{URL("h323:x"), "h323:x", true},
		{email, "a@b.c", true},
		{h225.AliasAddress{Choice: h225.AliasAddress_TransportID}, "", false},
	} {
		if s, ok := AliasString(&tc.a); s != tc.want || ok != tc.ok {
			t.Errorf("AliasString(%d) = %q, %v; want %q, %v", tc.a.Choice, s, ok, tc.want, tc.ok)
		}
	}
}

func TestParseErrors(t *testing.T) {
	b, err := RRQ(1, endpoint()).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, len(b) / 2, len(b) - 1} {
		if _, err := Parse(b[:n]); !errors.Is(err, asn1per.ErrTruncated) {
			t.Errorf("Parse of %d of %d octets: %v, want ErrTruncated", n, len(b), err)
		}
	}
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// BenchmarkParse decodes an RRQ with a fresh Decoder each time, as Parse
// does for every datagram.
func BenchmarkParse(b *testing.B) {
	in, err := RRQ(7, endpoint()).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Parse(in); err != nil {
			b.Fatal(err)
		}
	}
}
