package h323proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/portico-edge/portico/internal/asn1per"
	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
)

func ap(t *testing.T, ta *h225.TransportAddress) netip.AddrPort {
	t.Helper()
	a, err := ras.AddrPort(ta)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func utf16be(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.BigEndian.AppendUint16(b, u)
	}
	return b
}

// assertNoInside checks every byte the endpoint received: no inside IP
// (raw or text), no inside endpoint or gatekeeper identifier.
func assertNoInside(t *testing.T, p *peer) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) == 0 {
		t.Fatal("nothing was received outside")
	}
	for i, b := range p.seen {
		for _, ip := range []netip.Addr{porticoIn, gatekeeperIP} {
			raw := ip.As4()
			for _, needle := range [][]byte{raw[:], []byte(ip.String())} {
				if bytes.Contains(b, needle) {
					t.Errorf("datagram %d sent outside contains inside address %s: % x", i, ip, b)
				}
			}
		}
		for _, id := range []string{insideEPID, insideGKID} {
			if bytes.Contains(b, utf16be(id)) || bytes.Contains(b, []byte(id)) {
				t.Errorf("datagram %d sent outside contains inside identifier %q", i, id)
			}
		}
	}
}

func TestRegisterThroughPortico(t *testing.T) {
	for _, tc := range []struct {
		name      string
		traversal bool
	}{{"plain", false}, {"h460.18", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			rcf, rrq := h.register("alice", tc.traversal)

			// The inside sees Portico's addresses, its own gatekeeper
			// identifier and no NAT traversal features.
			if got := ap(t, &rrq.CallSignalAddress[0]); got != insideSignal || len(rrq.CallSignalAddress) != 1 {
				t.Errorf("inside RRQ callSignalAddress = %v, want %v", rrq.CallSignalAddress, insideSignal)
			}
			if got := ap(t, &rrq.RasAddress[0]); got.Addr() != porticoIn {
				t.Errorf("inside RRQ rasAddress = %v, want Portico's inside socket", got)
			}
			if bmp(rrq.GatekeeperIdentifier) != insideGKID {
				t.Errorf("inside RRQ gatekeeperIdentifier = %q", bmp(rrq.GatekeeperIdentifier))
			}
			if rrq.FeatureSet != nil || ras.Generic(rrq.GenericData, ras.H46018) != nil {
				t.Error("inside RRQ carries NAT traversal features")
			}
			// The outside sees Portico's.
			if got := ap(t, &rcf.CallSignalAddress[0]); got != h.extSignal() {
				t.Errorf("RCF callSignalAddress = %v, want %v", got, h.extSignal())
			}
			if id := bmp(rcf.EndpointIdentifier); id == insideEPID || id == "" {
				t.Errorf("RCF endpointIdentifier = %q, want a Portico one", id)
			}
			if bmp(rcf.GatekeeperIdentifier) != DefaultOutsideGatekeeper {
				t.Errorf("RCF gatekeeperIdentifier = %q", bmp(rcf.GatekeeperIdentifier))
			}
			f := ras.FeatureIn(rcf.FeatureSet, ras.H46018)
			if tc.traversal {
				p := ras.Param(f, H46018KeepAliveInterval)
				if p == nil || p.Content == nil || p.Content.Number16 != int64(DefaultKeepAliveInterval.Seconds()) {
					t.Errorf("RCF lacks H.460.18 keepAliveInterval: %+v", f)
				}
			} else if f != nil {
				t.Error("RCF offers H.460.18 to an endpoint that did not ask")
			}
			if ras.FeatureIn(rcf.FeatureSet, ras.H46023) != nil || ras.FeatureIn(rcf.FeatureSet, ras.H46024) != nil {
				t.Error("RCF confirms H.460.23/24")
			}
			ep, ok := h.s.Outside("alice")
			if !ok || ep.H46018 != tc.traversal || ep.CallSignal != netip.AddrPortFrom(outsideIP, epDeclaredSig.Port()) {
				t.Errorf("Outside(alice) = %+v, %v", ep, ok)
			}
			if _, ok := h.s.Outside("4711"); !ok {
				t.Error("the E.164 alias is not registered")
			}
			assertNoInside(t, h.ep)
		})
	}
}

func TestRejectPassesThroughAndIsNotKept(t *testing.T) {
	h := newHarness(t, nil)
	e := endpoint("mallory", false)
	h.ep.send(h.ext, ras.RRQ(5, e))
	from, m := h.gk.expect(h225.RasMessage_RegistrationRequest)
	h.gk.send(from, ras.RRJ(m.RegistrationRequest, h225.RegistrationRejectReason_SecurityDenial))
	_, out := h.ep.expect(h225.RasMessage_RegistrationReject)
	if r := out.RegistrationReject; r.RejectReason.Choice != h225.RegistrationRejectReason_SecurityDenial || r.RequestSeqNum != 5 {
		t.Errorf("RRJ = reason %d seq %d, want securityDenial seq 5", r.RejectReason.Choice, r.RequestSeqNum)
	}
	if regs := h.s.Registrations(); len(regs) != 0 {
		t.Errorf("rejected registration kept: %+v", regs)
	}
	if _, ok := h.s.Outside("mallory"); ok {
		t.Error("rejected alias resolvable")
	}
	if !slices.Contains(h.g.kinds(), guard.Forbidden) {
		t.Errorf("guard saw %v, want a forbidden outcome scored", h.g.kinds())
	}
	h.s.Close()
	var found bool
	for _, ev := range h.hist.evs {
		if ev.Protocol == "h323" && ev.Kind == "rejected" && ev.Reason == "gatekeeper rejected: security denial" && strings.Contains(ev.AOR, "mallory") {
			found = true
		}
	}
	if !found {
		t.Errorf("history = %+v, want the rejection in words", h.hist.evs)
	}
	assertNoInside(t, h.ep)
}

func TestKeepAliveAnsweredLocallyAndAdmissionRelayed(t *testing.T) {
	h := newHarness(t, nil)
	rcf, _ := h.register("bob", false)
	outID := bmp(rcf.EndpointIdentifier)
	e := endpoint("bob", false)
	e.KeepAlive, e.EndpointID = true, outID
	h.ep.send(h.ext, ras.RRQ(3, e))
	_, ka := h.ep.expect(h225.RasMessage_RegistrationConfirm)
	if bmp(ka.RegistrationConfirm.EndpointIdentifier) != outID {
		t.Error("keep-alive RCF changed the endpointIdentifier")
	}
	// Keep-alives are not scored as registration floods (an H.460.18
	// site behind one address sends one per endpoint every 19 s).
	var registers int
	for _, k := range h.g.kinds() {
		if k == guard.Register {
			registers++
		}
	}
	if registers != 1 {
		t.Errorf("guard scored %d registrations, want 1 (the full RRQ only)", registers)
	}
	// The next thing the gatekeeper sees is the ARQ: the keep-alive did
	// not cross.
	callID := bytes.Repeat([]byte{7}, 16)
	arq := ras.ARQ(4, outID, []h225.AliasAddress{ras.H323ID("bob")}, []h225.AliasAddress{ras.E164("8001")}, 1280, 9, callID, callID, false)
	src := ras.Transport(epDeclaredSig)
	arq.AdmissionRequest.SrcCallSignalAddress = &src
	h.ep.send(h.ext, arq)
	from, m := h.gk.expect(h225.RasMessage_AdmissionRequest)
	in := m.AdmissionRequest
	if bmp(in.EndpointIdentifier) != insideEPID {
		t.Errorf("inside ARQ endpointIdentifier = %q, want %q", bmp(in.EndpointIdentifier), insideEPID)
	}
	if got := ap(t, in.SrcCallSignalAddress); got != insideSignal {
		t.Errorf("inside ARQ srcCallSignalAddress = %v, want %v", got, insideSignal)
	}
	h.gk.send(from, ras.ACF(in, gkSignal, true))
	_, out := h.ep.expect(h225.RasMessage_AdmissionConfirm)
	if got := ap(t, &out.AdmissionConfirm.DestCallSignalAddress); got != h.extSignal() {
		t.Errorf("ACF destCallSignalAddress = %v, want %v", got, h.extSignal())
	}
	if out.AdmissionConfirm.RequestSeqNum != 4 {
		t.Errorf("ACF seq = %d, want 4", out.AdmissionConfirm.RequestSeqNum)
	}
	// An ARJ's reason passes through.
	h.ep.send(h.ext, ras.ARQ(6, outID, nil, []h225.AliasAddress{ras.E164("9")}, 1280, 10, callID, callID, false))
	from, m = h.gk.expect(h225.RasMessage_AdmissionRequest)
	h.gk.send(from, ras.ARJ(m.AdmissionRequest, h225.AdmissionRejectReason_CalledPartyNotRegistered))
	_, out = h.ep.expect(h225.RasMessage_AdmissionReject)
	if out.AdmissionReject.RejectReason.Choice != h225.AdmissionRejectReason_CalledPartyNotRegistered {
		t.Errorf("ARJ reason = %d", out.AdmissionReject.RejectReason.Choice)
	}
	assertNoInside(t, h.ep)
}

// TestKeepAliveFromAnotherAddressRefused: a lightweight RRQ carrying a
// registered endpoint's identifier from another IP address (someone who
// saw the identifier) is answered "full registration required" and does not
// move the endpoint's binding; one from a new port of the same address (NAT
// rebinding) does.
func TestKeepAliveFromAnotherAddressRefused(t *testing.T) {
	h := newHarness(t, nil)
	rcf, _ := h.register("dave", false)
	outID := bmp(rcf.EndpointIdentifier)
	e := endpoint("dave", false)
	e.KeepAlive, e.EndpointID = true, outID
	stranger := newPeer(t, netip.MustParseAddr("127.0.0.9"))
	stranger.send(h.ext, ras.RRQ(5, e))
	_, m := stranger.expect(h225.RasMessage_RegistrationReject)
	if c := m.RegistrationReject.RejectReason.Choice; c != h225.RegistrationRejectReason_FullRegistrationRequired {
		t.Fatalf("keep-alive from another address: RRJ reason %d, want fullRegistrationRequired", c)
	}
	if rs := h.s.Registrations(); len(rs) != 1 || netip.MustParseAddrPort(rs[0].Source).Addr() != outsideIP {
		t.Fatalf("the stranger's keep-alive moved the binding: %+v", rs)
	}
	rebound := newPeer(t, outsideIP) // same address, new port
	rebound.send(h.ext, ras.RRQ(6, e))
	rebound.expect(h225.RasMessage_RegistrationConfirm)
}

func TestInsideRefreshedByPortico(t *testing.T) {
	h := newHarness(t, nil)
	h.register("carol", false)
	// The inside granted 60s: Portico refreshes it itself at two thirds.
	h.s.sweep(h.advance(41e9))
	from, m := h.gk.expect(h225.RasMessage_RegistrationRequest)
	r := m.RegistrationRequest
	if !r.KeepAlive || bmp(r.EndpointIdentifier) != insideEPID || ap(t, &r.RasAddress[0]).Addr() != porticoIn {
		t.Errorf("refresh RRQ keepAlive=%v id=%q ras=%v", r.KeepAlive, bmp(r.EndpointIdentifier), r.RasAddress)
	}
	h.gk.send(from, ras.RCF(r, insideGKID, insideEPID, gkSignal, 60))
	// The endpoint fell silent beyond its time to live: Portico
	// unregisters it inside.
	h.s.sweep(h.advance(DefaultTimeToLive))
	_, m = h.gk.expect(h225.RasMessage_UnregistrationRequest)
	if bmp(m.UnregistrationRequest.EndpointIdentifier) != insideEPID {
		t.Errorf("expiry URQ id = %q", bmp(m.UnregistrationRequest.EndpointIdentifier))
	}
	if _, ok := h.s.Outside("carol"); ok {
		t.Error("expired registration kept")
	}
}

func TestUnregisterBothWays(t *testing.T) {
	h := newHarness(t, nil)
	rcf, _ := h.register("dave", false)
	outID := bmp(rcf.EndpointIdentifier)
	// Outside -> inside.
	e := endpoint("dave", false)
	e.EndpointID = outID
	h.ep.send(h.ext, ras.URQ(8, e))
	from, m := h.gk.expect(h225.RasMessage_UnregistrationRequest)
	if bmp(m.UnregistrationRequest.EndpointIdentifier) != insideEPID || ap(t, &m.UnregistrationRequest.CallSignalAddress[0]) != insideSignal {
		t.Errorf("inside URQ = %+v", m.UnregistrationRequest)
	}
	h.gk.send(from, ras.UCF(m.UnregistrationRequest))
	_, out := h.ep.expect(h225.RasMessage_UnregistrationConfirm)
	if out.UnregistrationConfirm.RequestSeqNum != 8 {
		t.Errorf("UCF seq = %d", out.UnregistrationConfirm.RequestSeqNum)
	}
	if _, ok := h.s.Outside("dave"); ok {
		t.Error("unregistered alias kept")
	}
	// Inside -> outside.
	rcf, _ = h.register("dave", false)
	outID = bmp(rcf.EndpointIdentifier)
	h.gk.send(h.in, ras.URQ(77, ras.Endpoint{CallSignal: insideSignal, EndpointID: insideEPID, Gatekeeper: insideGKID}))
	_, m = h.ep.expect(h225.RasMessage_UnregistrationRequest)
	if bmp(m.UnregistrationRequest.EndpointIdentifier) != outID {
		t.Errorf("outside URQ id = %q, want %q", bmp(m.UnregistrationRequest.EndpointIdentifier), outID)
	}
	h.ep.send(h.ext, ras.UCF(m.UnregistrationRequest))
	_, m = h.gk.expect(h225.RasMessage_UnregistrationConfirm)
	if m.UnregistrationConfirm.RequestSeqNum != 77 {
		t.Errorf("inside UCF seq = %d, want 77", m.UnregistrationConfirm.RequestSeqNum)
	}
	assertNoInside(t, h.ep)
}

func TestLocationRelayedWithAddressesRewritten(t *testing.T) {
	h := newHarness(t, nil)
	h.register("erin", false)
	h.ep.send(h.ext, ras.LRQ(11, []h225.AliasAddress{ras.E164("8001")}, netip.MustParseAddrPort("192.0.2.10:1719")))
	from, m := h.gk.expect(h225.RasMessage_LocationRequest)
	if got := ap(t, &m.LocationRequest.ReplyAddress); got.Addr() != porticoIn {
		t.Errorf("inside LRQ replyAddress = %v", got)
	}
	h.gk.send(from, ras.LCF(m.LocationRequest, gkSignal, netip.AddrPortFrom(gatekeeperIP, 1719)))
	_, out := h.ep.expect(h225.RasMessage_LocationConfirm)
	if got := ap(t, &out.LocationConfirm.CallSignalAddress); got != h.extSignal() {
		t.Errorf("LCF callSignalAddress = %v", got)
	}
	if got := ap(t, &out.LocationConfirm.RasAddress); got != h.ext {
		t.Errorf("LCF rasAddress = %v, want %v", got, h.ext)
	}
	assertNoInside(t, h.ep)
}

func TestMaxRegistrations(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxRegistrations = 1 })
	h.register("first", false)
	other := newPeer(t, outsideIP)
	other.send(h.ext, ras.RRQ(1, endpoint("second", false)))
	_, m := other.expect(h225.RasMessage_RegistrationReject)
	if m.RegistrationReject.RejectReason.Choice != h225.RegistrationRejectReason_ResourceUnavailable {
		t.Errorf("reason = %d, want resourceUnavailable", m.RegistrationReject.RejectReason.Choice)
	}
}

func TestMalformedAndBlockedDropped(t *testing.T) {
	h := newHarness(t, nil)
	h.g.mu.Lock()
	h.g.blocked[outsideIP] = true
	h.g.mu.Unlock()
	h.ep.send(h.ext, ras.GRQ(1, endpoint("x", false)))
	// The socket is read in order: once another source's GRQ is
	// answered, the blocked one was handled.
	other := newPeer(t, netip.MustParseAddr("127.0.0.4"))
	other.send(h.ext, ras.GRQ(9, endpoint("y", false)))
	other.expect(h225.RasMessage_GatekeeperConfirm)
	h.g.mu.Lock()
	h.g.blocked = map[netip.Addr]bool{}
	h.g.mu.Unlock()
	h.ep.c.WriteToUDPAddrPort([]byte{0xff, 0xff, 0xff}, h.ext)
	h.ep.send(h.ext, ras.GRQ(2, endpoint("x", false)))
	_, m := h.ep.expect(h225.RasMessage_GatekeeperConfirm)
	if m.GatekeeperConfirm.RequestSeqNum != 2 {
		t.Errorf("answered GRQ %d, want only the second (the blocked one dropped)", m.GatekeeperConfirm.RequestSeqNum)
	}
	if !slices.Contains(h.g.kinds(), guard.Malformed) {
		t.Errorf("guard saw %v, want malformed scored", h.g.kinds())
	}
}

// facility builds the Q.931 Facility an H.460.18 endpoint sends first on
// the connection an SCI asked for.
func facility(t *testing.T, callID []byte) []byte {
	ui := h225.H323UserInformation{H323UuPdu: h225.H323UUPDU{H323MessageBody: h225.H323UUPDUH323MessageBody{
		Choice: h225.H323UUPDUH323MessageBody_Facility,
		Facility: &h225.FacilityUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
			ConferenceID: h225.ConferenceIdentifier(make([]byte, 16)), HasConferenceID: true,
			Reason:         h225.FacilityReason{Choice: h225.FacilityReason_UndefinedReason},
			CallIdentifier: &h225.CallIdentifier{Guid: h225.GloballyUniqueID(callID)}},
	}}}
	uu, err := ui.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := &q931.Message{CallRefLen: 2, Type: q931.Facility}
	m.SetUserUser(uu)
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTraversalConnect(t *testing.T) {
	h := newHarness(t, nil)
	h.register("frank", true)
	ep, _ := h.s.Outside("frank")
	var callID [16]byte
	copy(callID[:], "call-0123456789a")
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := h.s.Connect(context.Background(), ep, callID)
		done <- result{c, err}
	}()
	_, m := h.ep.expect(h225.RasMessage_ServiceControlIndication)
	ic, err := ras.FindIncomingCall(m)
	if err != nil {
		t.Fatal(err)
	}
	if ic.CallSignal != h.extSignal() || !bytes.Equal(ic.CallID, callID[:]) {
		t.Errorf("IncomingCallIndication = %v %x, want %v %x", ic.CallSignal, ic.CallID, h.extSignal(), callID)
	}
	h.ep.send(h.ext, ras.SCR(m.ServiceControlIndication, -1, nil))
	// The endpoint connects; callsig's listener (played here by the
	// test) reads the Facility and binds the connection.
	epSide, porticoSide := net.Pipe()
	defer epSide.Close()
	go epSide.Write(facility(t, callID[:]))
	buf := make([]byte, 512)
	n, err := porticoSide.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	id, ok := FacilityCallID(buf[:n])
	if !ok || id != callID {
		t.Fatalf("FacilityCallID = %x, %v", id, ok)
	}
	if !h.s.Arrived(id, porticoSide) {
		t.Fatal("Arrived found no waiting Connect")
	}
	r := <-done
	if r.err != nil || r.c != porticoSide {
		t.Fatalf("Connect = %v, %v; want the bound connection", r.c, r.err)
	}
	if h.s.Arrived(id, porticoSide) {
		t.Error("a second Arrived for the same call succeeded")
	}
	// A plain endpoint cannot be asked to connect.
	h.register("grace", false)
	plain, _ := h.s.Outside("grace")
	if _, err := h.s.Connect(context.Background(), plain, callID); err != ErrNotTraversal {
		t.Errorf("Connect(plain) = %v, want ErrNotTraversal", err)
	}
	assertNoInside(t, h.ep)
}

var _ = asn1per.BMP

// TestOneSourceCannotFillPending: requests one outside source leaves
// unanswered (LRQs need no registration) take at most its share of the
// transactions in flight, so another source's still go through.
func TestOneSourceCannotFillPending(t *testing.T) {
	// open_b2b: LRQs from sources that are neither registered nor a
	// neighbour are relayed (else refused here).
	h := newHarness(t, func(c *Config) { c.MaxPending = 100; c.OpenB2B = true })
	flooder := newPeer(t, netip.MustParseAddr("127.0.0.5"))
	for i := 1; i <= 100; i++ {
		flooder.send(h.ext, ras.LRQ(i, []h225.AliasAddress{ras.E164("1")}, flooder.addr()))
	}
	h.ep.send(h.ext, ras.LRQ(1, []h225.AliasAddress{ras.E164("2002")}, h.ep.addr()))
	for i := 0; i <= 100; i++ {
		_, m := h.gk.expect(h225.RasMessage_LocationRequest)
		if s, _ := ras.AliasString(&m.LocationRequest.DestinationInfo[0]); s == "2002" {
			if i > maxPendingPerSource {
				t.Errorf("the flooder got %d requests in flight, more than its share %d", i, maxPendingPerSource)
			}
			return
		}
	}
	t.Fatal("the other source's LRQ never reached the gatekeeper")
}

// TestCallRASRelayed: BRQ and DRQ from outside, and DRQ and IRQ from the
// inside for an admitted call, cross with identifiers mapped and
// sequence numbers restored.
func TestCallRASRelayed(t *testing.T) {
	h := newHarness(t, nil)
	rcf, _ := h.register("ivy", false)
	outID := bmp(rcf.EndpointIdentifier)
	id := bytes.Repeat([]byte{9}, 16)
	h.ep.send(h.ext, ras.ARQ(20, outID, nil, []h225.AliasAddress{ras.E164("8001")}, 1280, 3, id, id, false))
	from, m := h.gk.expect(h225.RasMessage_AdmissionRequest)
	h.gk.send(from, ras.ACF(m.AdmissionRequest, gkSignal, true))
	h.ep.expect(h225.RasMessage_AdmissionConfirm)

	call := ras.Call{EndpointID: outID, Ref: 3, ConferenceID: id, ID: id}
	h.ep.send(h.ext, ras.BRQ(21, call, 3840))
	from, m = h.gk.expect(h225.RasMessage_BandwidthRequest)
	if bmp(m.BandwidthRequest.EndpointIdentifier) != insideEPID {
		t.Errorf("inside BRQ id = %q", bmp(m.BandwidthRequest.EndpointIdentifier))
	}
	h.gk.send(from, &h225.RasMessage{Choice: h225.RasMessage_BandwidthConfirm, BandwidthConfirm: &h225.BandwidthConfirm{
		RequestSeqNum: m.BandwidthRequest.RequestSeqNum, BandWidth: 3840}})
	_, out := h.ep.expect(h225.RasMessage_BandwidthConfirm)
	if out.BandwidthConfirm.RequestSeqNum != 21 || out.BandwidthConfirm.BandWidth != 3840 {
		t.Errorf("BCF = %+v", out.BandwidthConfirm)
	}

	// The inside asks about the call: the IRQ reaches the endpoint, its
	// IRR the inside, with Portico's addresses.
	h.gk.send(h.in, &h225.RasMessage{Choice: h225.RasMessage_InfoRequest, InfoRequest: &h225.InfoRequest{
		RequestSeqNum: 500, CallReferenceValue: 3, CallIdentifier: &h225.CallIdentifier{Guid: h225.GloballyUniqueID(id)}}})
	_, m = h.ep.expect(h225.RasMessage_InfoRequest)
	if got := ap(t, m.InfoRequest.ReplyAddress); got != h.ext {
		t.Errorf("IRQ replyAddress = %v, want %v", got, h.ext)
	}
	irr := ras.IRR(m.InfoRequest, 0, ras.Endpoint{RAS: epDeclaredSig, CallSignal: epDeclaredSig, EndpointID: outID, Terminal: true})
	h.ep.send(h.ext, irr)
	_, m = h.gk.expect(h225.RasMessage_InfoRequestResponse)
	if r := m.InfoRequestResponse; r.RequestSeqNum != 500 || bmp(r.EndpointIdentifier) != insideEPID || ap(t, &r.RasAddress).Addr() != porticoIn {
		t.Errorf("inside IRR seq %d id %q ras %v", r.RequestSeqNum, bmp(r.EndpointIdentifier), r.RasAddress)
	}

	// The inside disengages the call.
	h.gk.send(h.in, ras.DRQ(600, ras.Call{EndpointID: insideEPID, Ref: 3, ConferenceID: id, ID: id}, h225.DisengageReason_ForcedDrop))
	_, m = h.ep.expect(h225.RasMessage_DisengageRequest)
	if bmp(m.DisengageRequest.EndpointIdentifier) != outID {
		t.Errorf("outside DRQ id = %q, want %q", bmp(m.DisengageRequest.EndpointIdentifier), outID)
	}
	h.ep.send(h.ext, ras.DCF(m.DisengageRequest))
	_, m = h.gk.expect(h225.RasMessage_DisengageConfirm)
	if m.DisengageConfirm.RequestSeqNum != 600 {
		t.Errorf("inside DCF seq = %d, want 600", m.DisengageConfirm.RequestSeqNum)
	}

	// And the endpoint disengages one itself.
	h.ep.send(h.ext, ras.DRQ(22, call, h225.DisengageReason_NormalDrop))
	from, m = h.gk.expect(h225.RasMessage_DisengageRequest)
	if bmp(m.DisengageRequest.EndpointIdentifier) != insideEPID {
		t.Errorf("inside DRQ id = %q", bmp(m.DisengageRequest.EndpointIdentifier))
	}
	h.gk.send(from, ras.DCF(m.DisengageRequest))
	_, out = h.ep.expect(h225.RasMessage_DisengageConfirm)
	if out.DisengageConfirm.RequestSeqNum != 22 {
		t.Errorf("DCF seq = %d, want 22", out.DisengageConfirm.RequestSeqNum)
	}
	assertNoInside(t, h.ep)
}

// TestReRegistrationFromNewBindingSupersedes: an endpoint whose NAT
// binding changed registers again; the inside confirms the same
// endpointIdentifier, and Portico keeps one registration, so the old one's
// expiry cannot unregister the new one inside.
func TestReRegistrationFromNewBindingSupersedes(t *testing.T) {
	h := newHarness(t, nil)
	h.register("kate", false)
	h.ep = newPeer(t, outsideIP) // the new NAT binding
	h.register("kate", false)
	if regs := h.s.Registrations(); len(regs) != 1 || regs[0].Source != h.ep.addr().String() {
		t.Fatalf("registrations = %+v, want only the new binding", regs)
	}
	// Nothing expires early: a sweep before the time to live sends nothing
	// inside, and the next thing the inside sees is the endpoint's URQ.
	h.s.sweep(h.advance(30 * time.Second))
	ep, _ := h.s.Outside("kate")
	e := endpoint("kate", false)
	e.EndpointID = ep.ID
	h.ep.send(h.ext, ras.URQ(30, e))
	h.gk.expect(h225.RasMessage_UnregistrationRequest)
}

type denyACL struct{ deny netip.Addr }

func (a denyACL) Allow(src netip.Addr) bool { return src != a.deny }

// TestACLAndGuessingScored: a source policy.acl.h323 denies is dropped
// unread; the inside's "no such alias" answers (LRJ, ARJ
// calledPartyNotRegistered) score the asker as not_found, as alias
// guessing.
func TestACLAndGuessingScored(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.OpenB2B = true }) // the LRQ's source is not registered
	denied := newPeer(t, netip.MustParseAddr("127.0.0.6"))
	h.acl.set(denyACL{deny: netip.MustParseAddr("127.0.0.6")})
	denied.send(h.ext, ras.GRQ(1, endpoint("z", false)))
	h.ep.send(h.ext, ras.LRQ(2, []h225.AliasAddress{ras.E164("5555")}, h.ep.addr()))
	from, m := h.gk.expect(h225.RasMessage_LocationRequest)
	h.gk.send(from, ras.LRJ(m.LocationRequest, h225.LocationRejectReason_RequestDenied))
	_, out := h.ep.expect(h225.RasMessage_LocationReject)
	if out.LocationReject.RejectReason.Choice != h225.LocationRejectReason_RequestDenied {
		t.Errorf("LRJ reason %d", out.LocationReject.RejectReason.Choice)
	}
	if !slices.Contains(h.g.kinds(), guard.NotFound) {
		t.Errorf("guard saw %v, want not_found scored", h.g.kinds())
	}
	if got := testutilCount(h.s.m.dropped.WithLabelValues(External, "acl")); got != 1 {
		t.Errorf("acl drops = %v, want 1", got)
	}
}

// TestTraversalEndpointExpiresAfterMissedKeepAlives: an H.460.18
// endpoint is unregistered inside after three keepAliveIntervals without a
// keep-alive (its NAT binding is gone by then), and a Connect waiting for
// an endpoint that never answers ends with its context.
func TestTraversalEndpointExpiresAfterMissedKeepAlives(t *testing.T) {
	h := newHarness(t, nil)
	h.register("leo", true)
	ep, _ := h.s.Outside("leo")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.s.Connect(ctx, ep, [16]byte{1})
		done <- err
	}()
	h.ep.expect(h225.RasMessage_ServiceControlIndication)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Connect = %v, want context.Canceled", err)
	}
	h.s.sweep(h.advance(3*DefaultKeepAliveInterval + time.Second))
	_, m := h.gk.expect(h225.RasMessage_UnregistrationRequest)
	if bmp(m.UnregistrationRequest.EndpointIdentifier) != insideEPID {
		t.Errorf("URQ id %q", bmp(m.UnregistrationRequest.EndpointIdentifier))
	}
	if _, ok := h.s.Outside("leo"); ok {
		t.Error("expired traversal endpoint kept")
	}
}

// TestTraversalAnsweredButNotConnected: an endpoint that answers the SCI
// but never opens the connection ends Connect with ErrNoConnection after
// the request timeout, even when the caller's context has no deadline.
func TestTraversalAnsweredButNotConnected(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond })
	h.register("mia", true)
	ep, _ := h.s.Outside("mia")
	done := make(chan error, 1)
	go func() {
		_, err := h.s.Connect(context.Background(), ep, [16]byte{2})
		done <- err
	}()
	_, m := h.ep.expect(h225.RasMessage_ServiceControlIndication)
	h.ep.send(h.ext, ras.SCR(m.ServiceControlIndication, -1, nil))
	if err := <-done; err != ErrNoConnection {
		t.Errorf("Connect = %v, want ErrNoConnection", err)
	}
}

// TestRetransmittedRequestResent: an endpoint's retransmission of a
// request still waiting for the inside is resent as the same inside
// transaction, not relayed as a new one (which would register it twice).
func TestRetransmittedRequestResent(t *testing.T) {
	h := newHarness(t, nil)
	rrq := ras.RRQ(2, endpoint("nina", false))
	h.ep.send(h.ext, rrq)
	h.ep.send(h.ext, rrq)
	from, first := h.gk.expect(h225.RasMessage_RegistrationRequest)
	_, second := h.gk.expect(h225.RasMessage_RegistrationRequest)
	if a, b := first.RegistrationRequest.RequestSeqNum, second.RegistrationRequest.RequestSeqNum; a != b {
		t.Fatalf("the retransmission became inside transaction %d beside %d", b, a)
	}
	h.gk.send(from, ras.RCF(first.RegistrationRequest, insideGKID, insideEPID, gkSignal, 60))
	h.ep.expect(h225.RasMessage_RegistrationConfirm)
	if regs := h.s.Registrations(); len(regs) != 1 {
		t.Errorf("registrations = %+v", regs)
	}
}
