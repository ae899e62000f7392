package sipedge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// TestWebSocket registers a sipgo client over SIP-over-WebSocket (RFC 7118)
// and receives a call from inside over the same WebSocket connection.
func TestWebSocket(t *testing.T) {
	k := startKamailio(t, 64)
	p := startPortico(t, Config{CallServers: kamailioServer(k)})
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("df7jal23ls0d.invalid"))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	cl, err := sipgo.NewClient(ua, sipgo.WithClientHostname(outsideIP))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	invited := make(chan *sip.Request, 1)
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		invited <- req
		tx.Respond(sip.NewResponseFromRequest(req, 603, "Decline", nil))
	})
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "portico.test"})
	req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "wendy", Host: "portico.test"}, Params: sip.HeaderParams{{K: "tag", V: "w1"}}})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "wendy", Host: "portico.test"}})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "wendy", Host: "df7jal23ls0d.invalid", UriParams: sip.HeaderParams{{K: "transport", V: "ws"}}}})
	req.AppendHeader(sip.NewHeader("Expires", "600"))
	req.SetTransport("WS")
	req.SetDestination(p.extWS.String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cl.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("WS REGISTER: %d", res.StatusCode)
	}
	regs := p.s.Registrations()
	if len(regs) != 1 || regs[0].Transport != "ws" {
		t.Fatalf("Registrations() = %+v", regs)
	}
	carol := newRawUA(t, insideIP, "carol")
	r := carol.invite(udpAddr(k.addr.String()), "sip:wendy@portico.test", carol.sdp(""), "")
	if r.StatusCode != 603 {
		t.Fatalf("inside call to WS user: %d, want 603", r.StatusCode)
	}
	carol.ackNon2xx(r, "sip:wendy@portico.test")
	inv := <-invited
	if !strings.EqualFold(inv.Transport(), "WS") {
		t.Errorf("INVITE arrived over %s", inv.Transport())
	}
	if strings.Contains(inv.String(), insideIP) || strings.Contains(inv.String(), kamIP) || strings.Contains(inv.String(), intIP) {
		t.Errorf("INVITE over WS names an inside address:\n%s", inv)
	}
	rec := p.hist.waitCalls(t, 1)[0]
	if rec.Status != 603 || rec.Disposition != "callee declined" {
		t.Errorf("call record = %+v", rec)
	}
	assertNoInside(t, p.tap)
}
