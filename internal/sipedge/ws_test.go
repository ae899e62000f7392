package sipedge

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// wsEndpoint is an outside sipgo user agent that registers over WS or WSS
// and declines every call it receives.
type wsEndpoint struct {
	host    string
	cl      *sipgo.Client
	invited chan *sip.Request
}

// newWSEndpoint starts the user agent; host is its Contact host and tlsCfg
// its client TLS config (nil for WS).
func newWSEndpoint(t *testing.T, host string, tlsCfg *tls.Config) *wsEndpoint {
	t.Helper()
	opts := []sipgo.UserAgentOption{sipgo.WithUserAgentHostname(host)}
	if tlsCfg != nil {
		opts = append(opts, sipgo.WithUserAgenTLSConfig(tlsCfg))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	cl, err := sipgo.NewClient(ua, sipgo.WithClientHostname(outsideIP))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	e := &wsEndpoint{host: host, cl: cl, invited: make(chan *sip.Request, 1)}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		e.invited <- req
		tx.Respond(sip.NewResponseFromRequest(req, 603, "Decline", nil))
	})
	return e
}

// register registers user@portico.test over transport ("ws" or "wss") at
// dest and fails the test unless the answer is 200.
func (e *wsEndpoint) register(t *testing.T, user, transport, dest string) {
	t.Helper()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "portico.test"})
	req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "portico.test"}, Params: sip.HeaderParams{{K: "tag", V: user + "1"}}})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "portico.test"}})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: e.host, UriParams: sip.HeaderParams{{K: "transport", V: transport}}}})
	req.AppendHeader(sip.NewHeader("Expires", "600"))
	req.SetTransport(strings.ToUpper(transport))
	req.SetDestination(dest)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := e.cl.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("%s REGISTER: %d", transport, res.StatusCode)
	}
}

// declinedInboundCall calls user from inside through Kamailio, checks that
// e received the INVITE over transport with no inside address in it and
// declined it, and returns that INVITE.
func (e *wsEndpoint) declinedInboundCall(t *testing.T, p *portico, k *kamailio, user, transport string) *sip.Request {
	t.Helper()
	aor := "sip:" + user + "@portico.test"
	carol := newRawUA(t, insideIP, "carol")
	r := carol.invite(udpAddr(k.addr.String()), aor, carol.sdp(""), "")
	if r.StatusCode != 603 {
		t.Fatalf("inside call to %s user: %d, want 603", transport, r.StatusCode)
	}
	carol.ackNon2xx(r, aor)
	inv := <-e.invited
	if !strings.EqualFold(inv.Transport(), transport) {
		t.Errorf("INVITE arrived over %s, want %s", inv.Transport(), transport)
	}
	for _, a := range insideAddrs {
		if strings.Contains(inv.String(), a) {
			t.Errorf("INVITE over %s names inside address %s:\n%s", transport, a, inv)
		}
	}
	rec := p.hist.waitCalls(t, 1)[0]
	if rec.Status != 603 || rec.Disposition != "callee declined" {
		t.Errorf("call record = %+v", rec)
	}
	assertNoInside(t, p.tap)
	return inv
}

// TestWebSocket registers a sipgo client over SIP-over-WebSocket (RFC 7118)
// and receives a call from inside over the same WebSocket connection.
func TestWebSocket(t *testing.T) {
	k := startKamailio(t, 64)
	p := startPortico(t, Config{CallServers: kamailioServer(k)})
	e := newWSEndpoint(t, "df7jal23ls0d.invalid", nil)
	e.register(t, "wendy", "ws", p.extWS.String())
	regs := p.s.Registrations()
	if len(regs) != 1 || regs[0].Transport != "ws" {
		t.Fatalf("Registrations() = %+v", regs)
	}
	e.declinedInboundCall(t, p, k, "wendy", "ws")
}
