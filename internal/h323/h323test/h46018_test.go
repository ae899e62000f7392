package h323test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
)

// TestStartH245Facility plays the traversal server of the GnuGk capture
// gk-h323plus-notunnel.pcapng towards a simulated callee (a stand-in for
// the h323plus endpoint there): after Connect it sends Facility
// (startH245) with its own H.245 address; the endpoint must connect to it
// and send the H.460.18 genericIndication with the callIdentifier before
// its TerminalCapabilitySet.
func TestStartH245Facility(t *testing.T) {
	ctx := testCtx(t)
	ep := NewEndpoint(t, EndpointConfig{Alias: "2001"})
	conn, err := net.Dial("tcp", ep.CallSignalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server := &Call{p: &party{}, ID: newID(), ConferenceID: newID(), Ref: 7, Caller: true, mode: Separate}
	server.sig = newSigConn(conn, nil)
	setup := &h225.SetupUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7), SourceInfo: endpointType(),
		DestinationAddress: []h225.AliasAddress{ras.E164("2001")}, HasDestinationAddress: true,
		ConferenceID: server.ConferenceID[:], ConferenceGoal: h225.SetupUUIEConferenceGoal{Choice: h225.SetupUUIEConferenceGoal_Create},
		CallType: h225.CallType{Choice: h225.CallType_PointToPoint}, CallIdentifier: server.callID()}
	if err := server.sig.sendQ931(q931.Setup, server.Ref, false, server.uu(h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_Setup, Setup: setup})); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := server.sig.readQ931()
		if err != nil {
			t.Fatal(err)
		}
		if m.Q931.Type == q931.Connect {
			if m.UUIE.H323UuPdu.H323MessageBody.Connect.H245Address == nil {
				t.Fatal("Connect without h245Address")
			}
			break
		}
	}
	addr := ras.Transport(addrPort(ln.Addr()))
	fac := &h225.FacilityUUIE{ProtocolIdentifier: h225.ProtocolIdentifier(h225.ProtocolV7),
		Reason: h225.FacilityReason{Choice: h225.FacilityReason_StartH245}, CallIdentifier: server.callID(), H245Address: &addr}
	if err := server.sig.sendQ931(q931.Facility, server.Ref, false, server.uu(h225.H323UUPDUH323MessageBody{Choice: h225.H323UUPDUH323MessageBody_Facility, Facility: fac})); err != nil {
		t.Fatal(err)
	}
	hc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	h := newSigConn(hc, nil)
	var names []string
	for len(names) < 2 {
		b, err := h.next()
		if err != nil {
			t.Fatal(err)
		}
		var m h245.MultimediaSystemControlMessage
		if err := m.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		names = append(names, H245Name(&m))
		if len(names) == 1 {
			g := m.Indication
			if g == nil || g.GenericIndication == nil || g.GenericIndication.MessageIdentifier.Standard.String() != "0.0.8.460.18.0.1" ||
				len(g.GenericIndication.MessageContent) != 1 || !bytes.Equal(g.GenericIndication.MessageContent[0].ParameterValue.OctetString, server.ID[:]) {
				t.Fatalf("first H.245 message %s, want the H.460.18 genericIndication with callID %x", names[0], server.ID)
			}
		}
	}
	if names[1] != "TCS" {
		t.Errorf("H.245 messages %v, want Indication then TCS", names)
	}
	in, err := ep.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != server.ID {
		t.Errorf("callee call %x, want %x", in.ID, server.ID)
	}
}

// TestSignallingKeepAlive checks that empty TPKT keep-alives on the call
// signalling connection, as H.460.18 endpoints send them, neither break
// the call nor show up malformed in tshark.
func TestSignallingKeepAlive(t *testing.T) {
	ctx := testCtx(t)
	rec := NewRecorder(t)
	a := NewEndpoint(t, EndpointConfig{Alias: "1001", SignallingKeepAlive: time.Millisecond, Recorder: rec})
	b := NewEndpoint(t, EndpointConfig{Alias: "2001", Recorder: rec})
	call, err := a.Call(ctx, "2001", CallOptions{Direct: b.CallSignalAddr(), FastStart: true})
	if err != nil {
		t.Fatal(err)
	}
	in, err := b.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for call.KeepAlivesSent() < 3 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%d keep-alives sent", call.KeepAlivesSent())
		}
	}
	if err := call.Hangup(); err != nil {
		t.Fatal(err)
	}
	<-in.Done()
	if err := in.Err(); err != nil {
		t.Errorf("callee ended with %v", err)
	}
	NoMalformed(t, rec.Dissect(t))
}

// TestSCIRetransmitted sends the same SCI twice: the endpoint answers
// both with an SCR but opens one connection (one Facility).
func TestSCIRetransmitted(t *testing.T) {
	ctx := testCtx(t)
	gk := NewGatekeeper(t, GatekeeperConfig{})
	ep := NewEndpoint(t, EndpointConfig{Alias: "ep2", Gatekeeper: gk.RASAddr(), H46018: true})
	if err := ep.Register(ctx); err != nil {
		t.Fatal(err)
	}
	id := newID()
	feat, err := ras.IncomingCall(ras.IncomingCallIndication{CallSignal: gk.CallSignalAddr(), CallID: id[:]})
	if err != nil {
		t.Fatal(err)
	}
	sci := ras.SCI(9, ras.Supported(feat))
	reg, _ := gk.Registered("ep2")
	gk.waitFacility(t, id[:], func() {
		gk.send(sci, reg.Source)
		gk.send(sci, reg.Source)
	})
	if err := gk.WaitFor(ctx, "SCR", 2); err != nil {
		t.Fatal(err)
	}
	// closing waits for the endpoint's connections and the gatekeeper's
	// reading of them
	ep.Close()
	gk.Close()
	if n := bindings(gk.Received()); n != 1 {
		t.Errorf("%d Facility, want 1", n)
	}
}
