package sipedge

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// fakeCallServer is a scriptable inside call server (a rawUA on 127.0.0.4).
func fakeCallServer(t *testing.T, name string) (*rawUA, CallServer) {
	u := newRawUA(t, kamIP, name)
	return u, CallServer{Address: u.local, Transport: "udp"}
}

func routeOf(req *sip.Request) string {
	if h := req.GetHeader("Route"); h != nil {
		return h.Value()
	}
	return ""
}

// TestCallServerFailover: a silent first call server is skipped after the
// failover timeout, and the Route of each request names the server it was
// actually sent to; probing marks a dead server down.
func TestCallServerFailover(t *testing.T) {
	cs1, c1 := fakeCallServer(t, "cs1")
	cs2, c2 := fakeCallServer(t, "cs2")
	c1.Priority, c2.Priority = 0, 1
	p := startPortico(t, Config{CallServers: []CallServer{c1, c2}, ProbeInterval: -1, FailoverTimeout: 400 * time.Millisecond})
	ua := newRawUA(t, outsideIP, "frank")
	done := make(chan *sip.Response, 1)
	go func() { done <- ua.register(udpAddr(p.extUDP.String()), 600) }()
	r1 := cs1.expect("REGISTER") // never answered
	r2 := cs2.expect("REGISTER")
	if got := routeOf(r1); !strings.Contains(got, c1.Address) {
		t.Errorf("Route to cs1 = %q", got)
	}
	if got := routeOf(r2); !strings.Contains(got, c2.Address) || strings.Contains(got, c1.Address) {
		t.Errorf("Route to cs2 = %q, want only %s", got, c2.Address)
	}
	path := r2.GetHeader("Path")
	if path == nil || !strings.Contains(path.Value(), intIP) || !strings.Contains(path.Value(), ";lr") {
		t.Fatalf("Path = %v", path)
	}
	res := sip.NewResponseFromRequest(r2, 200, "OK", nil)
	res.AppendHeader(&sip.ContactHeader{Address: r2.Contact().Address, Params: sip.HeaderParams{{K: "expires", V: "120"}}})
	cs2.send(udpAddr(r2.Source()), res.String())
	if r := <-done; r.StatusCode != 200 {
		t.Fatalf("register through failover: %d", r.StatusCode)
	}
	info := p.s.CallServers()
	if info[0].Up || !info[1].Up {
		t.Errorf("CallServers() = %+v", info)
	}

	t.Run("probe marks dead server down", func(t *testing.T) {
		dead := CallServer{Address: kamIP + ":" + freePort(t), Priority: 0}
		q := startPortico(t, Config{CallServers: []CallServer{dead, c2}, ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond})
		deadline := time.Now().Add(5 * time.Second)
		for q.s.CallServers()[0].Up {
			if time.Now().After(deadline) {
				t.Fatal("dead call server never marked down")
			}
			time.Sleep(50 * time.Millisecond)
		}
		// cs2 answers probes: it stays up.
		until := time.After(500 * time.Millisecond)
	answer:
		for {
			select {
			case m := <-cs2.inbox:
				if o, ok := m.(*sip.Request); ok && o.Method == sip.OPTIONS {
					cs2.send(udpAddr(o.Source()), sip.NewResponseFromRequest(o, 200, "OK", nil).String())
				}
			case <-until:
				break answer
			}
		}
		if !q.s.CallServers()[1].Up {
			t.Errorf("live call server marked down: %+v", q.s.CallServers())
		}
	})
}

// TestLimitsAndHangup: registrations and calls beyond the limits get 503
// with Retry-After; Hangup sends BYE both ways.
func TestLimitsAndHangup(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1,
		Limits: Limits{MaxRegistrations: 1, MaxCalls: 1, RetryAfter: 17 * time.Second},
		Guest:  GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}}})
	ext := udpAddr(p.extUDP.String())
	a, b := newRawUA(t, outsideIP, "alice"), newRawUA(t, outsideIP, "bob")
	go func() {
		r := cs.expect("REGISTER")
		res := sip.NewResponseFromRequest(r, 200, "OK", nil)
		res.AppendHeader(&sip.ContactHeader{Address: r.Contact().Address, Params: sip.HeaderParams{{K: "expires", V: "120"}}})
		cs.send(udpAddr(r.Source()), res.String())
	}()
	if r := a.register(ext, 600); r.StatusCode != 200 {
		t.Fatalf("first register: %d", r.StatusCode)
	}
	r := b.register(ext, 600)
	if r.StatusCode != 503 || r.GetHeader("Retry-After") == nil || r.GetHeader("Retry-After").Value() != "17" {
		t.Fatalf("second register: %d %v", r.StatusCode, r.GetHeader("Retry-After"))
	}
	// First call is answered by the fake call server.
	done := make(chan *sip.Response, 1)
	go func() { done <- a.invite(ext, "sip:1234@portico.test", a.sdp(""), "") }()
	inv := cs.expect("INVITE")
	if !strings.Contains(routeOf(inv), c.Address) {
		t.Errorf("INVITE Route = %q", routeOf(inv))
	}
	cs.reply(inv, 200, "OK", "cs1", cs.sdp(""))
	if r := <-done; r.StatusCode != 200 {
		t.Fatalf("first call: %d", r.StatusCode)
	}
	cs.expect("ACK")
	r = b.invite(ext, "sip:1234@portico.test", b.sdp(""), "")
	if r.StatusCode != 503 || r.GetHeader("Retry-After") == nil {
		t.Fatalf("second call: %d", r.StatusCode)
	}
	b.ackNon2xx(r, "sip:1234@portico.test")
	calls := p.s.Calls()
	if len(calls) != 1 {
		t.Fatalf("Calls() = %+v", calls)
	}
	// The live call's relay streams: one, the caller's side outside.
	if st, ok := p.s.LiveStreams(calls[0].ID); !ok || len(st.Streams) != 1 || st.Outside != 0 || !st.Streams[0].Local[0].IsValid() {
		t.Errorf("LiveStreams = %+v, %v", st, ok)
	}
	hung := make(chan error, 1)
	go func() { hung <- p.s.Hangup(calls[0].ID) }()
	byeOut := a.expect("BYE")
	a.reply(byeOut, 200, "OK", "", "")
	byeIn := cs.expect("BYE")
	cs.reply(byeIn, 200, "OK", "", "")
	if err := <-hung; err != nil {
		t.Fatal(err)
	}
	if err := p.s.Hangup("nope"); err == nil {
		t.Error("Hangup of unknown call succeeded")
	}
	if _, ok := p.s.LiveStreams(calls[0].ID); ok {
		t.Error("LiveStreams of an ended call")
	}
	// A call whose media stopped is ended by the relay's timeout hook.
	go func() { done <- a.invite(ext, "sip:1234@portico.test", a.sdp(""), "") }()
	inv = cs.expect("INVITE")
	cs.reply(inv, 200, "OK", "cs2", cs.sdp(""))
	if r := <-done; r.StatusCode != 200 {
		t.Fatalf("third call: %d", r.StatusCode)
	}
	cs.expect("ACK")
	id := p.s.Calls()[0].ID
	go func() { hung <- p.s.MediaTimeout(id) }()
	a.reply(a.expect("BYE"), 200, "OK", "", "")
	cs.reply(cs.expect("BYE"), 200, "OK", "", "")
	if err := <-hung; err != nil {
		t.Fatal(err)
	}
	// History records are not ordered: the refused call's is written after
	// its 503 went out, so it may come after any later call's.
	recs := p.hist.waitCalls(t, 3)
	for _, want := range []struct {
		status        int
		endedBy, disp string
	}{
		{503, endedByPortico, "capacity: too many calls"},
		{200, endedByAdmin, "ended by administrator"},
		{200, endedByPortico, "media timeout"},
	} {
		n := 0
		for _, r := range recs {
			if r.Status == want.status && r.EndedBy == want.endedBy && r.Disposition == want.disp {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d call records with status %d, ended by %s, %q; want 1 in %+v", n, want.status, want.endedBy, want.disp, recs)
		}
	}
	assertNoInside(t, p.tap)
}

// TestUDPKeepalive: Portico sends OPTIONS to the UDP flow of a registered
// endpoint every UDPKeepalive.
func TestUDPKeepalive(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1, UDPKeepalive: 200 * time.Millisecond})
	ua := newRawUA(t, outsideIP, "kim")
	go func() {
		r := cs.expect("REGISTER")
		res := sip.NewResponseFromRequest(r, 200, "OK", nil)
		res.AppendHeader(&sip.ContactHeader{Address: r.Contact().Address, Params: sip.HeaderParams{{K: "expires", V: "120"}}})
		cs.send(udpAddr(r.Source()), res.String())
	}()
	if r := ua.register(udpAddr(p.extUDP.String()), 600); r.StatusCode != 200 {
		t.Fatalf("register: %d", r.StatusCode)
	}
	o := ua.expect("OPTIONS")
	if o.Recipient.User != "kim" {
		t.Errorf("keepalive OPTIONS to %s", o.Recipient.String())
	}
	ua.reply(o, 200, "OK", "", "")
	assertNoInside(t, p.tap)
}

// TestDigestPassThroughAndExpiry: a 401 challenge and the Authorization of
// the retry cross Portico untouched (digest end to end) and are not
// recorded as a refusal; a binding the registrar granted for 1 s expires.
func TestDigestPassThroughAndExpiry(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1})
	ua := newRawUA(t, outsideIP, "lee")
	ext := udpAddr(p.extUDP.String())
	const challenge = `Digest realm="portico.test", nonce="abc123", algorithm=MD5, qop="auth"`
	const creds = `Digest username="lee", realm="portico.test", nonce="abc123", uri="sip:portico.test", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="x", algorithm=MD5`
	go func() {
		r := cs.expect("REGISTER")
		res := sip.NewResponseFromRequest(r, 401, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", challenge))
		cs.send(udpAddr(r.Source()), res.String())
		r = cs.expect("REGISTER")
		if h := r.GetHeader("Authorization"); h == nil || h.Value() != creds {
			res = sip.NewResponseFromRequest(r, 403, "Bad Credentials", nil)
		} else {
			res = sip.NewResponseFromRequest(r, 200, "OK", nil)
			res.AppendHeader(&sip.ContactHeader{Address: r.Contact().Address, Params: sip.HeaderParams{{K: "expires", V: "1"}}})
		}
		cs.send(udpAddr(r.Source()), res.String())
	}()
	r := ua.register(ext, 600)
	if r.StatusCode != 401 || r.GetHeader("WWW-Authenticate") == nil || r.GetHeader("WWW-Authenticate").Value() != challenge {
		t.Fatalf("challenge not relayed: %d %v", r.StatusCode, r.GetHeader("WWW-Authenticate"))
	}
	ua.cseq++
	ua.send(ext, strings.Replace(ua.request("REGISTER", "sip:portico.test", "<sip:lee@portico.test>", "Expires: 600\r\n", ""),
		"Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nAuthorization: "+creds+"\r\n", 1))
	if r := ua.final("REGISTER"); r.StatusCode != 200 {
		t.Fatalf("authorized register: %d %s", r.StatusCode, r.Reason)
	}
	if len(p.s.Registrations()) != 1 {
		t.Fatalf("Registrations() = %+v", p.s.Registrations())
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.s.Registrations()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("binding never expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, evs := p.hist.snapshot()
	kinds := []string{}
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if strings.Join(kinds, ",") != "registered,expired" {
		t.Errorf("events = %v, want registered,expired", kinds)
	}
}

// TestRedirect: a 3xx from inside is followed when configured, and
// otherwise relayed with its targets' users at Portico's external host
// (the Contact names an inside host).
func TestRedirect(t *testing.T) {
	for _, follow := range []bool{true, false} {
		t.Run(fmt.Sprintf("follow=%v", follow), func(t *testing.T) {
			cs, c := fakeCallServer(t, "cs")
			ivan := newRawUA(t, insideIP, "ivan")
			p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1, FollowRedirects: follow,
				Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}}})
			g := newRawUA(t, outsideIP, "guest")
			done := make(chan *sip.Response, 1)
			go func() { done <- g.invite(udpAddr(p.extUDP.String()), "sip:1777@portico.test", g.sdp(""), "") }()
			inv := cs.expect("INVITE")
			moved := sip.NewResponseFromRequest(inv, 302, "Moved Temporarily", nil)
			moved.To().Params.Add("tag", "r1")
			moved.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "ivan", Host: insideIP, Port: ivan.c.LocalAddr().(*net.UDPAddr).Port}})
			cs.send(udpAddr(inv.Source()), moved.String())
			if follow {
				in2 := ivan.expect("INVITE")
				if in2.CallID().Value() != inv.CallID().Value() || in2.CSeq().SeqNo <= inv.CSeq().SeqNo {
					t.Errorf("redirected INVITE: Call-ID %s CSeq %d after %s %d", in2.CallID().Value(), in2.CSeq().SeqNo, inv.CallID().Value(), inv.CSeq().SeqNo)
				}
				ivan.reply(in2, 200, "OK", "iv1", ivan.sdp(""))
				if r := <-done; r.StatusCode != 200 {
					t.Fatalf("redirected call: %d", r.StatusCode)
				}
				ivan.expect("ACK")
			} else {
				r := <-done
				if c := r.Contact(); r.StatusCode != 302 || c == nil || c.Address.User != "ivan" || c.Address.Host != extIP || c.Address.Port != 0 {
					t.Fatalf("relayed 3xx: %d contact %v, want sip:ivan@%s", r.StatusCode, r.Contact(), extIP)
				}
				g.ackNon2xx(r, "sip:1777@portico.test")
			}
			assertNoInside(t, p.tap)
		})
	}
}
