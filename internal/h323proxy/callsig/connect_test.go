package callsig

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/media"
)

// fastSetup is the Setup of a call from outside with two G.711
// fastStart proposals, whose rewrite allocates a relay stream while the
// inside connection is being opened.
func fastSetup(t testing.TB, id []byte) *h225.H323UserInformation {
	rtp := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(outsideEP, port) }
	fast := encOLC(t, olcTx(1, 1, g711(), netip.AddrPort{}, rtp(5001)), olcRx(2, 1, g711(), rtp(5000), rtp(5001)))
	return setupUI("1000", id, netip.AddrPortFrom(outsideEP, 1720), netip.AddrPortFrom(outsideEP, 1800), fast)
}

// releaseReason is the ReleaseComplete-UUIE reason of ui, -1 without one.
func releaseReason(t testing.TB, ui *h225.H323UserInformation) int {
	t.Helper()
	rc := ui.H323UuPdu.H323MessageBody.ReleaseComplete
	if rc == nil {
		t.Fatal("no ReleaseComplete-UUIE")
	}
	if rc.Reason == nil {
		return -1
	}
	return rc.Reason.Choice
}

// freePort returns a loopback address of the inside endpoint nothing
// listens on.
func freePort(t testing.TB) netip.AddrPort {
	l := listenTCP(t, insideEP)
	ap := lnAddr(l)
	l.Close()
	return ap
}

func sessions(p *portico) int { return len(p.relay.Sessions()) }

// settled checks what is left once a call was refused or ended: the
// relay sessions (held by the test), the calls refused and ended, and
// none in progress.
func settled(t *testing.T, p *portico, held int, rejected, completed uint64) {
	t.Helper()
	if n := sessions(p); n != held {
		t.Fatalf("%d relay sessions, %d held by the test", n, held)
	}
	if r, c := p.srv.Rejected.Load(), p.srv.Completed.Load(); r != rejected || c != completed {
		t.Fatalf("rejected %d, completed %d; want %d, %d", r, c, rejected, completed)
	}
	if n := p.srv.Calls(); n != 0 {
		t.Fatalf("%d calls in progress", n)
	}
}

// TestDialRefusedReleasesRelay: the inside refuses the connection while
// the Setup's relay stream and H.245 bridge were being set up; the
// caller is refused as before (cause 27, unreachableDestination) and the
// relay session is released.
func TestDialRefusedReleasesRelay(t *testing.T) {
	p := startPortico(t, Config{})
	dst := freePort(t)
	p.mu.Lock()
	p.route = dst
	p.mu.Unlock()
	free, err := p.relay.Available("external")
	if err != nil {
		t.Fatal(err)
	}
	caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	caller.send(q931.Setup, false, fastSetup(t, newCallID()))
	m, ui := caller.expect(q931.ReleaseComplete)
	if c, r := cause(t, m), releaseReason(t, ui); c != CauseOutOfOrder || r != h225.ReleaseCompleteReason_UnreachableDestination {
		t.Fatalf("cause %d reason %d", c, r)
	}
	rec := p.hist.next(t)
	if rec.Disposition != "destination out of order" || rec.EndedBy != "portico" || rec.Status != int(CauseOutOfOrder) {
		t.Fatalf("history: %+v", rec)
	}
	settled(t, p, 0, 1, 0)
	if now, _ := p.relay.Available("external"); now != free {
		t.Fatalf("%d free port pairs, %d before", now, free)
	}
}

// TestAllocationFailureClosesInsideConnection: the relay has no ports
// left for the Setup's fastStart; the caller gets cause 47 as before and
// the inside connection, opened meanwhile, is closed without a message.
func TestAllocationFailureClosesInsideConnection(t *testing.T) {
	p := startPortico(t, Config{})
	calleeLn := routeTo(t, p)
	held := 0
	for {
		_, _, err := p.relay.Allocate(media.SessionConfig{Interfaces: [2]string{"external", "internal"},
			Streams: []media.StreamConfig{{Kind: media.KindAudio}}})
		if err != nil {
			break
		}
		held++
	}
	if held == 0 {
		t.Fatal("the relay allocated nothing")
	}
	caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	caller.send(q931.Setup, false, fastSetup(t, newCallID()))
	m, ui := caller.expect(q931.ReleaseComplete)
	if c, r := cause(t, m), releaseReason(t, ui); c != CauseResourceUnavail || r != -1 {
		t.Fatalf("cause %d reason %d", c, r)
	}
	rec := p.hist.next(t)
	if rec.Disposition != "resource unavailable: media relay" || rec.EndedBy != "portico" || rec.Status != int(CauseResourceUnavail) {
		t.Fatalf("history: %+v", rec)
	}
	// The dial was either cancelled or its connection closed before the
	// caller was answered: whatever reached the callee is closed unused.
	calleeLn.(*net.TCPListener).SetDeadline(time.Now().Add(500 * time.Millisecond))
	if ic, err := calleeLn.Accept(); err == nil {
		if !closedByPeer(t, ic) {
			t.Fatal("the inside connection got data or stayed open")
		}
		ic.Close()
	}
	settled(t, p, held, 1, 0)
}

// TestCallerReleaseDuringDial: the caller's ReleaseComplete has arrived
// with its Setup, before the inside connection is open: that connection
// is closed before the callee sees the call, nothing is sent back to the
// caller, the call is recorded as ended by the caller and its relay
// stream is released.
func TestCallerReleaseDuringDial(t *testing.T) {
	p := startPortico(t, Config{})
	ln := routeTo(t, p)
	id := newCallID()
	caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	setup := caller.message(q931.Setup, false, fastSetup(t, id))
	rc := caller.message(q931.ReleaseComplete, false, answerUI(h225.H323UUPDUH323MessageBody_ReleaseComplete, id, netip.AddrPort{}, nil), withCause(CauseNormal))
	// One write: Portico reads the ReleaseComplete with the Setup.
	if _, err := caller.conn.Write(h245proxy.AppendFrame(h245proxy.AppendFrame(nil, setup), rc)); err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(t, accept(t, ln)) {
		t.Fatal("the inside connection got data")
	}
	if !closedByPeer(t, caller.conn) {
		t.Fatal("the caller got an answer or its connection stayed open")
	}
	rec := p.hist.next(t)
	if rec.EndedBy != "caller" || rec.Status != int(CauseNormal) || rec.Disposition != Disposition(CauseNormal) {
		t.Fatalf("history: %+v", rec)
	}
	settled(t, p, 0, 0, 1)
}

// TestCallerGoneDuringSetup: the caller's connection ends right after its
// Setup. Whether Portico sees the end before the inside connection is
// open (which it then closes unused) or after the Setup went in (the
// callee then gets ReleaseComplete, cause 41), the call is recorded as
// lost on the outside and its relay stream is released.
func TestCallerGoneDuringSetup(t *testing.T) {
	p := startPortico(t, Config{})
	ln := routeTo(t, p)
	caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	caller.send(q931.Setup, false, fastSetup(t, newCallID()))
	caller.conn.(*net.TCPConn).CloseWrite()
	callee := newEndpoint(t, accept(t, ln))
	callee.conn.SetReadDeadline(deadline())
	if m, _, err := callee.tryRecv(); err == nil {
		if m.Type != q931.Setup {
			t.Fatalf("callee got message 0x%02x first", m.Type)
		}
		m, _ := callee.expect(q931.ReleaseComplete)
		if c := cause(t, m); c != CauseTemporary {
			t.Fatalf("cause %d toward the callee", c)
		}
	}
	rec := p.hist.next(t)
	if rec.EndedBy != "caller" || rec.Disposition != "connection lost on the outside" {
		t.Fatalf("history: %+v", rec)
	}
	if n := sessions(p); n != 0 {
		t.Fatalf("%d relay sessions after the call", n)
	}
}

// FuzzReleasedIn: what a caller sent after its Setup, read without
// consuming it, never panics the check for its ReleaseComplete, and a
// release it reports is a whole ReleaseComplete of the call.
func FuzzReleasedIn(f *testing.F) {
	rc := releaseComplete(42, false, CauseNormal, -1, nil)
	f.Add(h245proxy.AppendFrame(nil, rc), uint32(42))
	f.Add(append([]byte{3, 0, 0, 4}, h245proxy.AppendFrame(nil, rc)...), uint32(42))
	f.Add(h245proxy.AppendFrame(nil, rc)[:10], uint32(42))
	f.Add([]byte{3, 0, 0, 3}, uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, crv uint32) {
		cause, ok := releasedIn(b, crv)
		if !ok {
			return
		}
		for len(b) >= 4 && b[0] == 3 && b[2] == 0 && b[3] == 4 {
			b = b[4:]
		}
		var m q931.Message
		n := int(b[2])<<8 | int(b[3])
		if err := m.Parse(b[4:n]); err != nil || m.Type != q931.ReleaseComplete || m.CallRef != crv || releaseCause(&m) != cause {
			t.Fatalf("reported cause %d for %x", cause, b)
		}
	})
}
