package callsig

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/h245"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
)

// callResult is what a scripted outside → inside call observed.
type callResult struct {
	caller, callee *endpoint
	// sent holds what Portico sent each side, in order, for tshark.
	h245Caller [][]byte // separate H.245 PDUs the caller received
}

// TestCallOutsideToInside runs a guest call from outside to an inside
// endpoint with fastStart audio, a tunnelled video channel and a separate
// H.245 connection carrying DTMF and an H.239-style content channel, then
// checks the relay carries RTP both ways, no inside address reaches the
// caller, and history records the call.
func TestCallOutsideToInside(t *testing.T) {
	p := startPortico(t, Config{})
	r := runCall(t, p)
	if ip, bad := leaks(append(r.caller.got, r.h245Caller...), insideEP, porticoIn); bad {
		t.Fatalf("inside address %v reached the outside", ip)
	}
	// The callee sees Portico's inside addresses only.
	if ip, bad := leaks(r.callee.got, outsideEP); bad {
		t.Fatalf("caller's address %v reached the inside", ip)
	}
	r.caller.send(q931.ReleaseComplete, false, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, newCallID(), netip.AddrPort{}, nil), withCause(CauseNormal))
	m, _ := r.callee.expect(q931.ReleaseComplete)
	if c := cause(t, m); c != CauseNormal {
		t.Fatalf("callee got cause %d", c)
	}
	rec := p.hist.next(t)
	if rec.Protocol != "h323" || rec.Disposition != "normal" || rec.EndedBy != "caller" || rec.To != "1000" || rec.AnsweredAt.IsZero() {
		t.Fatalf("history: %+v", rec)
	}
	kinds := map[string]bool{}
	for _, s := range rec.Streams {
		kinds[s.Kind] = true
		if s.Kind == "audio" && (s.PacketsIn == 0 || s.PacketsOut == 0) {
			t.Fatalf("audio stream stats: %+v", s)
		}
	}
	for _, k := range []string{"audio", "video", "content"} {
		if !kinds[k] {
			t.Fatalf("no %s stream in history: %+v", k, rec.Streams)
		}
	}
	if p.srv.Calls() != 0 {
		t.Fatalf("%d calls left", p.srv.Calls())
	}
}

func runCall(t testing.TB, p *portico) *callResult {
	t.Helper()
	// The inside endpoint: call signalling, H.245 listener and RTP.
	calleeLn := listenTCP(t, insideEP)
	calleeH245 := listenTCP(t, insideEP)
	p.mu.Lock()
	p.route = lnAddr(calleeLn)
	p.mu.Unlock()
	bRTP, bVideo, bContent := udp(t, insideEP), udp(t, insideEP), udp(t, insideEP)
	aRTP, aVideo := udp(t, outsideEP), udp(t, outsideEP)
	rtcp := func(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr(), ap.Port()+1) }

	id := newCallID()
	caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	fast := encOLC(t,
		olcTx(1, 1, g711(), netip.AddrPort{}, rtcp(udpAddr(aRTP))),
		olcRx(2, 1, g711(), udpAddr(aRTP), rtcp(udpAddr(aRTP))))
	caller.send(q931.Setup, false, setupUI("1000", id, netip.AddrPortFrom(outsideEP, 1720), netip.AddrPortFrom(outsideEP, 1721), fast))

	callee := newEndpoint(t, accept(t, calleeLn))
	_, sui := callee.expect(q931.Setup)
	s := sui.H323UuPdu.H323MessageBody.Setup
	if ap, _ := ras.AddrPort(s.SourceCallSignalAddress); ap.Addr() != porticoIn {
		t.Fatalf("sourceCallSignalAddress %v", ap)
	}
	if ap, _ := ras.AddrPort(s.H245Address); ap.Addr() != porticoIn {
		t.Fatalf("h245Address %v", ap)
	}
	if len(s.FastStart) != 2 {
		t.Fatalf("%d fastStart elements", len(s.FastStart))
	}
	tx := decOLC(t, s.FastStart[0]).ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters
	rx := decOLC(t, s.FastStart[1]).ReverseLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters
	relayRTCPin := addr245(t, tx.MediaControlChannel)
	relayRTPin := addr245(t, rx.MediaChannel)
	if relayRTPin.Addr() != porticoIn || relayRTCPin.Addr() != porticoIn || addr245(t, rx.MediaControlChannel) != relayRTCPin {
		t.Fatalf("fastStart addresses toward the inside: rtp %v rtcp %v", relayRTPin, relayRTCPin)
	}

	// The callee accepts both proposals with its own addresses.
	ans := encOLC(t,
		olcTx(1, 1, g711(), udpAddr(bRTP), rtcp(udpAddr(bRTP))),
		olcRx(2, 1, g711(), netip.AddrPort{}, rtcp(udpAddr(bRTP))))
	callee.crv = 42
	callee.send(q931.CallProceeding, true, answerUI(h225.H323UUPDUH323MessageBody_CallProceeding, id, netip.AddrPort{}, nil))
	callee.send(q931.Alerting, true, answerUI(h225.H323UUPDUH323MessageBody_Alerting, id, netip.AddrPort{}, nil))
	video := pdu(t, olcMsg(olcTx(3, 2, h261(), netip.AddrPort{}, rtcp(udpAddr(bVideo)))))
	callee.send(q931.Connect, true, answerUI(h225.H323UUPDUH323MessageBody_Connect, id, lnAddr(calleeH245), ans, video))

	caller.expect(q931.CallProceeding)
	caller.expect(q931.Alerting)
	_, cui := caller.expect(q931.Connect)
	c := cui.H323UuPdu.H323MessageBody.Connect
	if len(c.FastStart) != 2 || len(cui.H323UuPdu.H245Control) != 1 {
		t.Fatalf("connect: %d fastStart, %d tunnelled", len(c.FastStart), len(cui.H323UuPdu.H245Control))
	}
	relayRTPout := addr245(t, decOLC(t, c.FastStart[0]).ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters.MediaChannel)
	if relayRTPout.Addr() != porticoOut {
		t.Fatalf("fastStart answer toward the outside: %v", relayRTPout)
	}
	tv := decPDU(t, cui.H323UuPdu.H245Control[0]).Request.OpenLogicalChannel
	vRTCPout := addr245(t, tv.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters.MediaControlChannel)
	if vRTCPout.Addr() != porticoOut {
		t.Fatalf("tunnelled OLC toward the outside: %v", vRTCPout)
	}
	h245Out, _ := ras.AddrPort(c.H245Address)
	if h245Out.Addr() != porticoOut {
		t.Fatalf("connect h245Address %v", h245Out)
	}

	// The caller acks the tunnelled video channel in a Facility.
	ack := pdu(t, olcAckMsg(3, 2, udpAddr(aVideo), rtcp(udpAddr(aVideo))))
	caller.send(q931.Facility, false, answerUI(h225.H323UUPDUH323MessageBody_Facility, id, netip.AddrPort{}, nil, ack))
	_, fui := callee.expect(q931.Facility)
	va := decPDU(t, fui.H323UuPdu.H245Control[0]).Response.OpenLogicalChannelAck.ForwardMultiplexAckParameters.H2250LogicalChannelAckParameters
	vRTPin := addr245(t, va.MediaChannel)
	if vRTPin.Addr() != porticoIn {
		t.Fatalf("tunnelled OLCAck toward the inside: %v", vRTPin)
	}

	// RTP both ways through the relay, audio and video.
	if n := rtpFlow(t, aRTP, relayRTPout, bRTP, 10); n < 10 {
		t.Fatalf("audio caller → callee: %d packets arrived", n)
	}
	if n := rtpFlow(t, bRTP, relayRTPin, aRTP, 10); n < 10 {
		t.Fatalf("audio callee → caller: %d packets arrived", n)
	}
	if n := rtpFlow(t, bVideo, vRTPin, aVideo, 10); n < 10 {
		t.Fatalf("video callee → caller: %d packets arrived", n)
	}

	// Separate H.245: the caller connects to Portico, Portico to the callee.
	hc := newEndpoint(t, dialFrom(t, outsideEP, h245Out))
	hb := newEndpoint(t, accept(t, calleeH245))
	dtmf := pdu(t, &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Indication,
		Indication: &h245.IndicationMessage{Choice: h245.IndicationMessage_UserInput,
			UserInput: &h245.UserInputIndication{Choice: h245.UserInputIndication_Alphanumeric, Alphanumeric: []byte("5")}}})
	hc.sendRaw(dtmf)
	hb.conn.SetReadDeadline(deadline())
	got, err := hb.fr.Next()
	if err != nil || string(got) != string(dtmf) {
		t.Fatalf("DTMF over H.245: %v % x", err, got)
	}
	// A content channel (H.239: a second video session) from the callee.
	content := pdu(t, olcMsg(olcTx(4, 32, h261(), netip.AddrPort{}, rtcp(udpAddr(bContent)))))
	hb.sendRaw(content)
	hc.conn.SetReadDeadline(deadline())
	got, err = hc.fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	r := &callResult{caller: caller, callee: callee, h245Caller: [][]byte{append([]byte(nil), got...)}}
	cc := decPDU(t, got).Request.OpenLogicalChannel.ForwardLogicalChannelParameters.MultiplexParameters.H2250LogicalChannelParameters
	if a := addr245(t, cc.MediaControlChannel); a.Addr() != porticoOut {
		t.Fatalf("content OLC over H.245 toward the outside: %v", a)
	}
	aContent := udp(t, outsideEP)
	hc.sendRaw(pdu(t, olcAckMsg(4, 32, udpAddr(aContent), rtcp(udpAddr(aContent)))))
	hb.conn.SetReadDeadline(deadline())
	got, err = hb.fr.Next()
	if err != nil {
		t.Fatal(err)
	}
	cin := addr245(t, decPDU(t, got).Response.OpenLogicalChannelAck.ForwardMultiplexAckParameters.H2250LogicalChannelAckParameters.MediaChannel)
	if n := rtpFlow(t, bContent, cin, aContent, 5); n < 5 {
		t.Fatalf("content callee → caller: %d packets arrived", n)
	}
	_ = h245proxy.Outside
	return r
}

// TestEarlyH245 opens the separate H.245 connection before the answer:
// the callee connects to the h245Address of the Setup (Portico, inside),
// and Portico connects to the caller's.
func TestEarlyH245(t *testing.T) {
	p := startPortico(t, Config{})
	calleeLn := routeTo(t, p)
	callerH245 := listenTCP(t, outsideEP)
	id := newCallID()
	caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	caller.send(q931.Setup, false, setupUI("1000", id, netip.AddrPortFrom(outsideEP, 1720), lnAddr(callerH245), nil))
	callee := newEndpoint(t, accept(t, calleeLn))
	_, ui := callee.expect(q931.Setup)
	h, _ := ras.AddrPort(ui.H323UuPdu.H323MessageBody.Setup.H245Address)
	hb := newEndpoint(t, dialFrom(t, insideEP, h))
	msd := pdu(t, &h245.MultimediaSystemControlMessage{Choice: h245.MultimediaSystemControlMessage_Request,
		Request: &h245.RequestMessage{Choice: h245.RequestMessage_MasterSlaveDetermination,
			MasterSlaveDetermination: &h245.MasterSlaveDetermination{TerminalType: 50, StatusDeterminationNumber: 777}}})
	hb.sendRaw(msd)
	ha := newEndpoint(t, accept(t, callerH245))
	ha.conn.SetReadDeadline(deadline())
	got, err := ha.fr.Next()
	if err != nil || string(got) != string(msd) {
		t.Fatalf("master/slave determination over early H.245: %v % x", err, got)
	}
	// The call ends: the bridge goes with it.
	callee.send(q931.ReleaseComplete, true, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, id, netip.AddrPort{}, nil), withCause(CauseBusy))
	caller.expect(q931.ReleaseComplete)
	if rec := p.hist.next(t); rec.Disposition != "callee busy" || rec.EndedBy != "callee" {
		t.Fatalf("history %+v", rec)
	}
	if !closedByPeer(t, ha.conn) {
		t.Fatal("H.245 connection outlived the call")
	}
}

// TestConcurrentCallsReleaseEverything places 20 fastStart calls at once
// and ends them: every relay session is released and every call recorded.
func TestConcurrentCallsReleaseEverything(t *testing.T) {
	p := startPortico(t, Config{})
	const n = 20
	t.Run("calls", func(t *testing.T) {
		for i := range n {
			alias := strconv.Itoa(3000 + i)
			t.Run(alias, func(t *testing.T) {
				t.Parallel()
				ln := listenTCP(t, insideEP)
				p.mu.Lock()
				p.routes[alias] = lnAddr(ln)
				p.mu.Unlock()
				newBenchCall(t, alias).run(t, p, ln)
			})
		}
	})
	for range n {
		if rec := p.hist.next(t); rec.Disposition != "normal" || len(rec.Streams) != 1 {
			t.Fatalf("history %+v", rec)
		}
	}
	if s := p.relay.Sessions(); len(s) != 0 || p.srv.Calls() != 0 {
		t.Fatalf("%d relay sessions and %d calls left", len(s), p.srv.Calls())
	}
	p.srv.mu.Lock()
	left := len(p.srv.byID)
	p.srv.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d callIdentifiers left in the loop index", left)
	}
}
