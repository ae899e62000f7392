package sipedge

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/net/dns/dnsmessage"
)

// fakeDNS serves NAPTR, SRV and A records on loopback for RFC 3263 tests.
type fakeDNS struct {
	naptr map[string][]NAPTR
	srv   map[string][]SRV
	a     map[string][4]byte
}

func naptrRData(n NAPTR) []byte {
	b := binary.BigEndian.AppendUint16(nil, n.Order)
	b = binary.BigEndian.AppendUint16(b, n.Preference)
	for _, s := range []string{n.Flags, n.Service, ""} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	for _, l := range strings.Split(n.Replacement, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func (d *fakeDNS) serve(t *testing.T) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
				continue
			}
			qq := q.Questions[0]
			name := strings.TrimSuffix(qq.Name.String(), ".")
			bld := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: q.ID, Response: true, Authoritative: true})
			bld.EnableCompression()
			bld.StartQuestions()
			bld.Question(qq)
			bld.StartAnswers()
			h := dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 60}
			switch qq.Type {
			case typeNAPTR:
				for _, r := range d.naptr[name] {
					h.Type = typeNAPTR
					bld.UnknownResource(h, dnsmessage.UnknownResource{Type: typeNAPTR, Data: naptrRData(r)})
				}
			case dnsmessage.TypeSRV:
				for _, r := range d.srv[name] {
					h.Type = dnsmessage.TypeSRV
					bld.SRVResource(h, dnsmessage.SRVResource{Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: dnsmessage.MustNewName(r.Target + ".")})
				}
			case dnsmessage.TypeA:
				if a, ok := d.a[name]; ok {
					h.Type = dnsmessage.TypeA
					bld.AResource(h, dnsmessage.AResource{A: a})
				}
			}
			out, _ := bld.Finish()
			c.WriteTo(out, from)
		}
	}()
	return c.LocalAddr().String()
}

func TestResolveSIP(t *testing.T) {
	d := &fakeDNS{
		naptr: map[string][]NAPTR{"a.test": {
			{Order: 20, Preference: 10, Flags: "s", Service: "SIP+D2U", Replacement: "_sip._udp.a.test"},
			{Order: 10, Preference: 10, Flags: "s", Service: "SIP+D2T", Replacement: "_sip._tcp.a.test"},
			{Order: 5, Preference: 10, Flags: "s", Service: "E2U+sip", Replacement: "ignored.a.test"},
		}},
		srv: map[string][]SRV{
			"_sip._tcp.a.test": {{Priority: 10, Weight: 1, Port: 5070, Target: "sip1.a.test"}},
			"_sip._udp.a.test": {{Priority: 10, Weight: 1, Port: 5080, Target: "sip2.a.test"}},
			"_sip._udp.b.test": {{Priority: 20, Weight: 1, Port: 5090, Target: "late.b.test"}, {Priority: 10, Weight: 5, Port: 5091, Target: "early.b.test"}},
		},
		a: map[string][4]byte{"sip1.a.test": {127, 0, 0, 11}, "sip2.a.test": {127, 0, 0, 12}, "late.b.test": {127, 0, 0, 13},
			"early.b.test": {127, 0, 0, 14}, "c.test": {127, 0, 0, 15}},
	}
	r := &dnsResolver{server: d.serve(t)}
	tests := []struct {
		uri  string
		want string
	}{
		{"sip:x@a.test", "tcp 127.0.0.11:5070"},
		{"sip:x@a.test;transport=udp", "udp 127.0.0.12:5080"},
		{"sip:x@b.test", "udp 127.0.0.14:5091"},
		{"sip:x@c.test", "udp 127.0.0.15:5060"},
		{"sip:x@c.test:5099;transport=tcp", "tcp 127.0.0.15:5099"},
		{"sip:x@127.0.0.16", "udp 127.0.0.16:5060"},
		{"sips:x@127.0.0.16", "tls 127.0.0.16:5061"},
	}
	for _, tc := range tests {
		t.Run(tc.uri, func(t *testing.T) {
			var u sip.Uri
			if err := sip.ParseUri(tc.uri, &u); err != nil {
				t.Fatal(err)
			}
			ts, err := resolveSIP(context.Background(), r, u)
			if err != nil || len(ts) == 0 {
				t.Fatalf("resolve: %v %v", ts, err)
			}
			if got := ts[0].Transport + " " + ts[0].Addr; got != tc.want {
				t.Errorf("first target = %s, want %s (all %v)", got, tc.want, ts)
			}
		})
	}
	if _, err := resolveSIP(context.Background(), r, sip.Uri{Scheme: "sip", Host: "nothing.test"}); err == nil {
		t.Error("unknown domain resolved")
	}
}

// TestFederation: an inside call to an allowed domain goes out by RFC 3263
// to the partner's edge; a call from the partner domain comes in; other
// domains are refused.
func TestFederation(t *testing.T) {
	partner := newRawUA(t, "127.0.0.6", "xena")
	port := partner.c.LocalAddr().(*net.UDPAddr).Port
	d := &fakeDNS{
		naptr: map[string][]NAPTR{"partner.test": {{Order: 10, Preference: 10, Flags: "s", Service: "SIP+D2U", Replacement: "_sip._udp.partner.test"}}},
		srv:   map[string][]SRV{"_sip._udp.partner.test": {{Priority: 1, Weight: 1, Port: uint16(port), Target: "edge.partner.test"}}},
		a:     map[string][4]byte{"edge.partner.test": {127, 0, 0, 6}},
	}
	cs, c := fakeCallServer(t, "cs")
	p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1,
		Federation: Federation{AllowedDomains: []string{"partner.test"}, DNSServer: d.serve(t)}})
	ivan := newRawUA(t, insideIP, "ivan")
	in := udpAddr(p.intUDP.String())

	t.Run("outbound by NAPTR/SRV/A", func(t *testing.T) {
		done := make(chan *sip.Response, 1)
		go func() { done <- ivan.invite(in, "sip:xena@partner.test", ivan.sdp(""), "") }()
		inv := partner.expect("INVITE")
		if inv.Recipient.Host != "partner.test" || inv.Recipient.User != "xena" {
			t.Errorf("R-URI = %s", inv.Recipient.String())
		}
		for _, bad := range insideAddrs {
			if strings.Contains(inv.String(), bad) {
				t.Errorf("federated INVITE names inside %s:\n%s", bad, inv)
			}
		}
		partner.reply(inv, 200, "OK", "x1", partner.sdp(""))
		if r := <-done; r.StatusCode != 200 {
			t.Fatalf("federated call: %d", r.StatusCode)
		}
		partner.expect("ACK")
		bye := make(chan *sip.Response, 1)
		go func() { bye <- ivan.inDialog("BYE", "") }()
		b := partner.expect("BYE")
		partner.reply(b, 200, "OK", "", "")
		<-bye
		rec := p.hist.waitCalls(t, 1)[0]
		if rec.CallType != CallFederation || rec.Disposition != "normal" {
			t.Errorf("record = %+v", rec)
		}
	})
	t.Run("outbound to other domain refused", func(t *testing.T) {
		r := ivan.invite(in, "sip:mallory@evil.test", ivan.sdp(""), "")
		if r.StatusCode != 404 {
			t.Errorf("call to evil.test: %d, want 404", r.StatusCode)
		}
		ivan.ackNon2xx(r, "sip:mallory@evil.test")
	})
	t.Run("inbound from partner", func(t *testing.T) {
		x := newRawUA(t, "127.0.0.6", "xena")
		done := make(chan *sip.Response, 1)
		go func() {
			x.callID, x.tag = "fed-in-1", "xt"
			x.dest = udpAddr(p.extUDP.String())
			msg := x.request("INVITE", "sip:ivan@portico.test", "<sip:ivan@portico.test>", "", x.sdp(""))
			msg = strings.Replace(msg, "From: <sip:xena@portico.test>", "From: <sip:xena@partner.test>", 1)
			x.send(x.dest, msg)
			done <- x.final("INVITE")
		}()
		inv := cs.expect("INVITE")
		if inv.Recipient.User != "ivan" || inv.From().Address.Host != "partner.test" {
			t.Errorf("inbound federated INVITE: %s from %s", inv.Recipient.String(), inv.From().Address.String())
		}
		cs.reply(inv, 486, "Busy Here", "cs9", "")
		if r := <-done; r.StatusCode != 486 {
			t.Fatalf("inbound federated call: %d", r.StatusCode)
		}
		recs := p.hist.waitCalls(t, 3)
		if r := recs[len(recs)-1]; r.CallType != CallFederation || r.Disposition != "callee busy" {
			t.Errorf("record = %+v", r)
		}
	})
	t.Run("inbound from other domain refused", func(t *testing.T) {
		m := newRawUA(t, outsideIP, "mallory")
		r := m.invite(udpAddr(p.extUDP.String()), "sip:ivan@portico.test", m.sdp(""), "")
		if r.StatusCode != 403 {
			t.Errorf("call from unknown domain: %d, want 403", r.StatusCode)
		}
	})
}
