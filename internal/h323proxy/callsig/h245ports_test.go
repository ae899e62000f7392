package callsig

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/portico-edge/portico/internal/h323/h225"
	"github.com/portico-edge/portico/internal/h323/q931"
	"github.com/portico-edge/portico/internal/h323/ras"
	"github.com/portico-edge/portico/internal/h323proxy/h245proxy"
	"github.com/portico-edge/portico/internal/testpeer"
)

// TestH245PortRange: Portico's H.245 listener on the inside binds in the
// inside range and the Setup sent inside names it; with every port of the
// range taken, the call is released with cause 47, a disposition naming
// the H.245 ports, and the counter.
func TestH245PortRange(t *testing.T) {
	base := testpeer.FreePorts(t, 1)
	var cfg Config
	cfg.Sides[Inside].H245Ports = h245proxy.PortRange{Min: uint16(base), Max: uint16(base)}
	p := startPortico(t, cfg)
	calleeLn := routeTo(t, p)

	// The range is free: the callee is told the range's port.
	caller := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	caller.send(q931.Setup, false, setupUI("1000", newCallID(), netip.AddrPortFrom(outsideEP, 1720), netip.AddrPortFrom(outsideEP, 5555), nil))
	callee := newEndpoint(t, accept(t, calleeLn))
	_, ui := callee.expect(q931.Setup)
	got, err := ras.AddrPort(ui.H323UuPdu.H323MessageBody.Setup.H245Address)
	if err != nil || got != netip.AddrPortFrom(porticoIn, uint16(base)) {
		t.Fatalf("Setup h245Address %v (%v), want %s:%d", got, err, porticoIn, base)
	}

	// The first call holds the only port: a second is refused.
	caller2 := newEndpoint(t, dialFrom(t, outsideEP, p.outAddr))
	caller2.send(q931.Setup, false, setupUI("1000", newCallID(), netip.AddrPortFrom(outsideEP, 1720), netip.AddrPortFrom(outsideEP, 5556), nil))
	m, _ := caller2.expect(q931.ReleaseComplete)
	if c := cause(t, m); c != CauseResourceUnavail {
		t.Fatalf("cause %d, want %d", c, CauseResourceUnavail)
	}
	rec := p.hist.next(t)
	if rec.Disposition != "resource unavailable: no free H.245 port" || rec.Status != CauseResourceUnavail {
		t.Fatalf("history %+v", rec)
	}
	if n := p.srv.H245PortsExhausted.Load(); n != 1 {
		t.Fatalf("H245PortsExhausted %d, want 1", n)
	}
	caller.conn.Close()
}

// TestH245DialInside: an inside endpoint's h245Address is reached
// through DialH245 (the tunnel's dial service), not directly.
func TestH245DialInside(t *testing.T) {
	calleeH245 := listenTCP(t, insideEP)
	asked := make(chan netip.AddrPort, 1)
	p := startPortico(t, Config{}, func(d *Deps) {
		d.DialH245 = func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
			asked <- to
			var dl net.Dialer
			return dl.DialContext(ctx, "tcp", to.String())
		}
	})
	calleeLn := routeTo(t, p)
	id := newCallID()
	caller, callee := placeCall(t, p.outAddr, calleeLn, id)
	callee.send(q931.Connect, true, answerUI(h225.H323UUPDUH323MessageBody_Connect, id, lnAddr(calleeH245), nil))
	_, ui := caller.expect(q931.Connect)
	h245Out, err := ras.AddrPort(ui.H323UuPdu.H323MessageBody.Connect.H245Address)
	if err != nil || h245Out.Addr() != porticoOut {
		t.Fatalf("Connect h245Address %v %v", h245Out, err)
	}
	hc := newEndpoint(t, dialFrom(t, outsideEP, h245Out))
	hb := newEndpoint(t, accept(t, calleeH245))
	if to := <-asked; to != lnAddr(calleeH245) {
		t.Fatalf("DialH245 asked for %s, want %s", to, lnAddr(calleeH245))
	}
	hc.sendRaw(pdu(t, olcAckMsg(1, 1, netip.MustParseAddrPort("127.0.0.4:6000"), netip.MustParseAddrPort("127.0.0.4:6001"))))
	hb.conn.SetReadDeadline(deadline())
	if _, err := hb.fr.Next(); err != nil {
		t.Fatalf("H.245 through the dialled connection: %v", err)
	}
}
