package sipedge

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func udpAddr(s string) *net.UDPAddr {
	a, _ := net.ResolveUDPAddr("udp", s)
	return a
}

// TestCallFeatures drives calls between an outside UA registered through
// Portico and an inside UA registered directly to Kamailio: hold and resume
// by re-INVITE with media following, BYE from the callee, CANCEL, rejected
// and removed registrations, and the topology-hiding capture.
func TestCallFeatures(t *testing.T) {
	mcu := startSippUAS(t)
	k := startKamailio(t, 64, `MCU_URI="sip:`+mcu+`"`)
	p := startPortico(t, Config{CallServers: kamailioServer(k),
		Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}, Aliases: []string{"meet"}}})
	ext := udpAddr(p.extUDP.String())
	kam := udpAddr(k.addr.String())

	carol := newRawUA(t, insideIP, "carol") // inside, registered to Kamailio directly
	if res := carol.register(kam, 300); res.StatusCode != 200 {
		t.Fatalf("carol inside register: %d", res.StatusCode)
	}
	dave := newRawUA(t, outsideIP, "dave") // outside, through Portico
	if res := dave.register(ext, 3600); res.StatusCode != 200 {
		t.Fatalf("dave register: %d %s", res.StatusCode, res.Reason)
	} else if c := res.Contact(); c == nil {
		t.Fatal("no Contact in register 200")
	} else if e, _ := c.Params.Get("expires"); e != "120" {
		t.Errorf("granted expires = %q, want the NAT cap 120", e)
	}

	t.Run("hold resume and callee BYE", func(t *testing.T) {
		n := p.hist.count()
		done := make(chan *sip.Response, 1)
		go func() { done <- dave.invite(ext, "sip:carol@portico.test", dave.sdp(""), "") }()
		inv := carol.expect("INVITE")
		if strings.Contains(inv.String(), outsideIP) {
			t.Errorf("INVITE sent inside names the outside caller address:\n%s", inv)
		}
		carol.reply(inv, 180, "Ringing", "carol1", "")
		carol.reply(inv, 200, "OK", "carol1", carol.sdp(""))
		res := <-done
		if res.StatusCode != 200 {
			t.Fatalf("INVITE answered %d", res.StatusCode)
		}
		carol.expect("ACK")
		toCarol, toDave := mediaAddr(t, inv.Body()), mediaAddr(t, res.Body())
		if toCarol.Addr().String() != intIP || toDave.Addr().String() != extIP {
			t.Fatalf("SDP not anchored: inside sees %v, outside sees %v", toCarol, toDave)
		}
		if !rtpFlows(t, dave, toDave, carol) || !rtpFlows(t, carol, toCarol, dave) {
			t.Fatal("RTP not relayed both ways")
		}
		if calls := p.s.Calls(); len(calls) != 1 || calls[0].State != "confirmed" || calls[0].Type != CallRegistered {
			t.Fatalf("Calls() = %+v", calls)
		}
		// Hold: dave re-INVITEs with sendonly.
		go func() { done <- dave.inDialog("INVITE", dave.sdp("sendonly")) }()
		re := carol.expect("INVITE")
		if !strings.Contains(string(re.Body()), "a=sendonly") {
			t.Errorf("hold re-INVITE lost a=sendonly:\n%s", re.Body())
		}
		carol.reply(re, 200, "OK", "carol1", carol.sdp("recvonly"))
		if res := <-done; res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=recvonly") {
			t.Fatalf("hold answered %d:\n%s", res.StatusCode, res.Body())
		}
		carol.expect("ACK")
		if c := p.s.Calls(); len(c) != 1 || !c[0].Hold {
			t.Errorf("call not on hold: %+v", c)
		}
		// Resume.
		go func() { done <- dave.inDialog("INVITE", dave.sdp("sendrecv")) }()
		re = carol.expect("INVITE")
		carol.reply(re, 200, "OK", "carol1", carol.sdp("sendrecv"))
		if res := <-done; res.StatusCode != 200 {
			t.Fatalf("resume answered %d", res.StatusCode)
		}
		carol.expect("ACK")
		if !rtpFlows(t, dave, toDave, carol) {
			t.Fatal("RTP not relayed after resume")
		}
		// INFO (DTMF) is relayed with its body.
		go func() {
			dave.send(dave.dest, strings.Replace(dave.request("INFO", dave.target, dave.to+";tag="+dave.rtag, "Content-Type: application/dtmf-relay\r\n", "Signal=5\r\nDuration=160\r\n"),
				"Content-Type: application/sdp\r\n", "", 1))
			done <- dave.final("INFO")
		}()
		info := carol.expect("INFO")
		if !strings.Contains(string(info.Body()), "Signal=5") {
			t.Errorf("INFO body lost: %q", info.Body())
		}
		carol.reply(info, 200, "OK", "", "")
		if r := <-done; r.StatusCode != 200 {
			t.Fatalf("INFO answered %d", r.StatusCode)
		}
		// UPDATE with SDP is anchored like a re-INVITE.
		go func() { done <- dave.inDialog("UPDATE", dave.sdp("sendrecv")) }()
		up := carol.expect("UPDATE")
		if a := mediaAddr(t, up.Body()); a.Addr().String() != intIP {
			t.Errorf("UPDATE SDP not anchored: %v", a)
		}
		carol.reply(up, 200, "OK", "", carol.sdp(""))
		if r := <-done; r.StatusCode != 200 || mediaAddr(t, r.Body()).Addr().String() != extIP {
			t.Fatalf("UPDATE answered %d:\n%s", r.StatusCode, r.Body())
		}
		// A content (slides) stream is added, then removed, by re-INVITE.
		go func() { done <- dave.inDialog("INVITE", dave.sdpVideo(false)) }()
		re = carol.expect("INVITE")
		if st := streamsOf(t, re.Body()); len(st) != 2 || st[1].Disabled() || st[1].RTP.Addr().String() != intIP || st[1].Content != "slides" {
			t.Errorf("content stream not anchored inside: %+v", st)
		}
		carol.reply(re, 200, "OK", "carol1", carol.sdpVideo(false))
		res2 := <-done
		if st := streamsOf(t, res2.Body()); res2.StatusCode != 200 || len(st) != 2 || st[1].RTP.Addr().String() != extIP {
			t.Fatalf("content stream answer %d: %+v", res2.StatusCode, st)
		}
		carol.expect("ACK")
		if !rtpFlowsTo(t, dave, streamsOf(t, res2.Body())[1].RTP, carol, streamsOf(t, []byte(carol.sdpVideo(false)))[1].RTP.Port()) {
			t.Error("content stream media not relayed")
		}
		go func() { done <- dave.inDialog("INVITE", dave.sdpVideo(true)) }()
		re = carol.expect("INVITE")
		if st := streamsOf(t, re.Body()); len(st) != 2 || !st[1].Disabled() {
			t.Errorf("removed content stream not disabled: %+v", st)
		}
		carol.reply(re, 200, "OK", "carol1", carol.sdpVideo(true))
		if r := <-done; r.StatusCode != 200 {
			t.Fatalf("content removal answered %d", r.StatusCode)
		}
		carol.expect("ACK")
		// Callee hangs up.
		bye := make(chan *sip.Response, 1)
		go func() { bye <- carol.byeAsCallee(inv, "carol1") }()
		b := dave.expect("BYE")
		dave.reply(b, 200, "OK", "", "")
		if r := <-bye; r.StatusCode != 200 {
			t.Fatalf("BYE answered %d", r.StatusCode)
		}
		c := p.hist.waitCalls(t, n+1)[n]
		if c.EndedBy != endedByCallee || c.Disposition != "normal" || c.Codecs != "audio:PCMU/8000" {
			t.Errorf("call record = %+v", c)
		}
		if c.Streams[0].PacketsIn < 10 || c.Streams[0].PacketsOut < 5 {
			t.Errorf("stream stats = %+v", c.Streams[0])
		}
	})

	t.Run("CANCEL", func(t *testing.T) {
		n := p.hist.count()
		dave.callID = "cancel-" + fmt.Sprint(time.Now().UnixNano())
		dave.tag = "tc"
		invText := dave.request("INVITE", "sip:carol@portico.test", "<sip:carol@portico.test>", "", dave.sdp(""))
		dave.dest = ext
		dave.send(ext, invText)
		inv := carol.expect("INVITE")
		carol.reply(inv, 180, "Ringing", "carol2", "")
		dave.next("180", func(m sip.Message) bool { r, ok := m.(*sip.Response); return ok && r.StatusCode == 180 })
		// CANCEL: same Via branch as the INVITE.
		via := invText[strings.Index(invText, "Via:"):]
		via = via[:strings.Index(via, "\r\n")]
		cancel := fmt.Sprintf("CANCEL sip:carol@portico.test SIP/2.0\r\n%s\r\nFrom: <sip:dave@portico.test>;tag=tc\r\nTo: <sip:carol@portico.test>\r\nCall-ID: %s\r\nCSeq: %d CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			via, dave.callID, dave.cseq)
		dave.send(ext, cancel)
		if r := dave.final("CANCEL"); r.StatusCode != 200 {
			t.Fatalf("CANCEL answered %d", r.StatusCode)
		}
		c := carol.expect("CANCEL")
		carol.reply(c, 200, "OK", "", "")
		carol.reply(inv, 487, "Request Terminated", "carol2", "")
		r := dave.final("INVITE")
		if r.StatusCode != 487 {
			t.Fatalf("INVITE final %d after CANCEL", r.StatusCode)
		}
		dave.ackNon2xx(r, "sip:carol@portico.test")
		rec := p.hist.waitCalls(t, n+1)[n]
		if rec.Disposition != "caller cancelled" || rec.EndedBy != endedByCaller || !rec.AnsweredAt.IsZero() {
			t.Errorf("call record = %+v", rec)
		}
	})

	t.Run("guest allowed and forbidden", func(t *testing.T) {
		n := p.hist.count()
		g := newRawUA(t, outsideIP, "guest")
		if res := g.invite(ext, "sip:1500@portico.test", g.sdp(""), ""); res.StatusCode != 200 {
			t.Fatalf("guest to VMR 1500: %d", res.StatusCode)
		}
		if r := g.inDialog("BYE", ""); r.StatusCode != 200 {
			t.Fatalf("guest BYE: %d", r.StatusCode)
		}
		res := g.invite(ext, "sip:carol@portico.test", g.sdp(""), "")
		if res.StatusCode != 403 {
			t.Fatalf("guest to carol: %d, want 403", res.StatusCode)
		}
		g.ackNon2xx(res, "sip:carol@portico.test")
		recs := p.hist.waitCalls(t, n+2)[n:]
		if recs[0].To != "sip:1500@portico.test" {
			recs[0], recs[1] = recs[1], recs[0] // the two calls end concurrently
		}
		if recs[0].CallType != CallGuest || recs[0].Disposition != "normal" || recs[0].EndedBy != endedByCaller {
			t.Errorf("allowed guest call = %+v", recs[0])
		}
		if recs[1].CallType != CallGuest || recs[1].Disposition != "policy: rule guest-deny" || recs[1].Status != 403 {
			t.Errorf("forbidden guest call = %+v", recs[1])
		}
	})

	t.Run("registration rejected inside is not kept", func(t *testing.T) {
		r := newRawUA(t, outsideIP, "rejectme")
		// Outside, the refusal looks like any user's challenge
		// (TopologyHiding.RevealUnknownUsers is off); history has the truth.
		if res := r.register(ext, 600); res.StatusCode != 401 || res.GetHeader("WWW-Authenticate") == nil {
			t.Fatalf("register answered %d", res.StatusCode)
		}
		for _, reg := range p.s.Registrations() {
			if strings.Contains(reg.AOR, "rejectme") {
				t.Fatalf("rejected registration kept: %+v", reg)
			}
		}
		_, evs := p.hist.snapshot()
		found := false
		for _, e := range evs {
			if strings.Contains(e.AOR, "rejectme") && e.Kind == "rejected" && e.Reason == "403 Registration Refused" {
				found = true
			}
		}
		if !found {
			t.Errorf("no rejected event: %+v", evs)
		}
	})

	t.Run("unregister", func(t *testing.T) {
		if res := dave.register(ext, 0); res.StatusCode != 200 {
			t.Fatalf("unregister: %d", res.StatusCode)
		}
		for _, reg := range p.s.Registrations() {
			if strings.Contains(reg.AOR, "dave") {
				t.Fatalf("dave still registered: %+v", reg)
			}
		}
		_, evs := p.hist.snapshot()
		if !hasKind(evs, "dave", "unregistered") || !hasKind(evs, "dave", "registered") {
			t.Errorf("events = %+v", evs)
		}
	})
	assertNoInside(t, p.tap)
}

// TestStreamFlowsAndKeepalive registers over TCP and over TLS, answers a
// CRLF ping with a pong (RFC 5626 section 3.5.1), and delivers a call from
// inside over the same connection.
func TestStreamFlowsAndKeepalive(t *testing.T) {
	k := startKamailio(t, 64)
	p := startPortico(t, Config{CallServers: kamailioServer(k)})
	for i, tc := range []struct {
		transport string
		dial      func() (net.Conn, error)
	}{
		{"tcp", func() (net.Conn, error) { return net.Dial("tcp", p.extTCP.String()) }},
		{"tls", func() (net.Conn, error) {
			return tls.Dial("tcp", p.extTLS.String(), &tls.Config{RootCAs: p.ca.Pool(), ServerName: "portico.test", MinVersion: tls.VersionTLS12})
		}},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			conn, err := tc.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			streamFlow(t, p, k, conn, tc.transport, fmt.Sprintf("erin%d", i), i+1)
		})
	}
	assertNoInside(t, p.tap)
}

func streamFlow(t *testing.T, p *portico, k *kamailio, conn net.Conn, transport, user string, n int) {
	rd := bufio.NewReader(conn)
	la := conn.LocalAddr().String()
	reg := fmt.Sprintf("REGISTER sip:portico.test SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bKst%d;rport\r\nFrom: <sip:%s@portico.test>;tag=e1\r\n"+
		"To: <sip:%s@portico.test>\r\nCall-ID: streamreg%d\r\nCSeq: 1 REGISTER\r\nContact: <sip:%s@%s;transport=%s>\r\nExpires: 600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		strings.ToUpper(transport), la, n, user, user, n, user, la, transport)
	conn.Write([]byte(reg))
	res := readSIP(t, conn, rd)
	if !strings.HasPrefix(res, "SIP/2.0 200") {
		t.Fatalf("REGISTER: %s", res)
	}
	conn.Write([]byte("\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	b1, err := rd.ReadByte()
	b2, err2 := rd.ReadByte()
	if err != nil || err2 != nil || b1 != '\r' || b2 != '\n' {
		t.Fatalf("no CRLF pong: %q %q %v %v", b1, b2, err, err2)
	}
	found := false
	for _, r := range p.s.Registrations() {
		found = found || (strings.Contains(r.AOR, user) && r.Transport == transport)
	}
	if !found {
		t.Fatalf("Registrations() = %+v", p.s.Registrations())
	}
	// Inside calls the user: the INVITE must come back on this connection.
	carol := newRawUA(t, insideIP, "carol")
	done := make(chan *sip.Response, 1)
	go func() { done <- carol.invite(udpAddr(k.addr.String()), "sip:"+user+"@portico.test", carol.sdp(""), "") }()
	inv := readSIP(t, conn, rd)
	if !strings.HasPrefix(inv, "INVITE sip:"+user+"@") {
		t.Fatalf("expected INVITE over the %s flow, got:\n%s", transport, inv)
	}
	msg, err := sip.ParseMessage([]byte(inv))
	if err != nil {
		t.Fatal(err)
	}
	busy := sip.NewResponseFromRequest(msg.(*sip.Request), 486, "Busy Here", nil)
	conn.Write([]byte(busy.String()))
	r := <-done
	if r.StatusCode != 486 {
		t.Fatalf("inside caller got %d, want 486", r.StatusCode)
	}
	carol.ackNon2xx(r, "sip:"+user+"@portico.test")
	rec := p.hist.waitCalls(t, n)[n-1]
	if rec.Disposition != "callee busy" || rec.CallType != CallInbound || rec.EndedBy != endedByCallee {
		t.Errorf("call record = %+v", rec)
	}
}

// readSIP reads one SIP message (headers and Content-Length body) from a stream.
func readSIP(t *testing.T, conn net.Conn, rd *bufio.Reader) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sb strings.Builder
	clen := 0
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (have %q)", err, sb.String())
		}
		if sb.Len() == 0 && strings.TrimSpace(line) == "" {
			continue
		}
		sb.WriteString(line)
		if l := strings.ToLower(line); strings.HasPrefix(l, "content-length:") || strings.HasPrefix(l, "l:") {
			fmt.Sscanf(strings.TrimSpace(line[strings.Index(line, ":")+1:]), "%d", &clen)
		}
		if line == "\r\n" {
			break
		}
	}
	if clen > 0 {
		body := make([]byte, clen)
		if _, err := io_ReadFull(rd, body); err != nil {
			t.Fatal(err)
		}
		sb.Write(body)
	}
	return sb.String()
}
