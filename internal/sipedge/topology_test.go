package sipedge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/testpeer"
)

// insideHost is a host name the scripted inside peer uses for itself: it
// must not reach the outside either.
const insideHost = "cs1.inside.example"

// noisyHeaders are what a chatty call server adds to its responses: every
// one names an inside host, address or port.
func noisyHeaders(port int) []sip.Header {
	in := fmt.Sprintf("%s:%d", kamIP, port)
	return []sip.Header{
		sip.NewHeader("Warning", `392 `+in+` "Noisy Message: req_src_ip=`+intIP+` req_src_port=5060 in_uri=sip:`+insideHost+`"`),
		sip.NewHeader("Server", "InsideCS/5.6 ("+insideHost+")"),
		sip.NewHeader("Reason", `SIP;cause=500;text="failed at `+insideIP+`"`),
		sip.NewHeader("Error-Info", "<sip:error@"+insideIP+":5070>"),
		sip.NewHeader("Alert-Info", "<http://"+insideHost+"/ring.wav>"),
		sip.NewHeader("Call-Info", "<http://"+insideIP+"/photo.jpg>;purpose=icon"),
		sip.NewHeader("P-Asserted-Identity", "<sip:1000@"+kamIP+">"),
		sip.NewHeader("P-Charging-Vector", "icid-value=1;orig-ioi="+insideHost),
		sip.NewHeader("Service-Route", "<sip:orig@"+in+";lr>"),
		sip.NewHeader("Retry-After", "30 (maintenance on "+insideHost+")"),
		sip.NewHeader("X-Inside", insideIP),
	}
}

// noisyResponse answers req as the scripted inside peer does: with every
// noisy header, a reason phrase naming an inside host, and Contacts of
// inside hosts besides any given.
func noisyResponse(cs *rawUA, req *sip.Request, code int, totag string, contacts ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, "Answered by "+insideHost+" "+insideIP, nil)
	if totag != "" {
		res.To().Params.Add("tag", totag)
	}
	port := cs.c.LocalAddr().(*net.UDPAddr).Port
	for _, h := range noisyHeaders(port) {
		res.AppendHeader(h)
	}
	for _, c := range contacts {
		res.AppendHeader(c)
	}
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "deskphone", Host: insideIP, Port: 5062}, Params: sip.HeaderParams{{K: "expires", V: "300"}}})
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: insideHost}})
	res.AppendHeader(sip.NewHeader("Record-Route", "<sip:"+kamIP+":"+strconv.Itoa(port)+";lr>"))
	return res
}

// TestTopologyNoisyInside drives registrations and calls against a
// scripted inside peer standing in for a noisy call server: it answers
// with Warning, Server, Reason, Error-Info, Alert-Info, Call-Info, P-
// headers, Service-Route, Retry-After comments, Contact lists of inside
// devices, a 3xx to inside targets and reason phrases naming inside hosts.
// Nothing that names the inside (address, port, host name) may reach any
// message Portico sends outside.
func TestTopologyNoisyInside(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1,
		Guest: GuestPolicy{Enabled: true, VMRRanges: []string{"1000-1999"}}})
	ext := udpAddr(p.extUDP.String())
	csPort := strconv.Itoa(cs.c.LocalAddr().(*net.UDPAddr).Port)

	zoe := newRawUA(t, outsideIP, "zoe")
	var path string // the Path Portico put in zoe's REGISTER
	t.Run("register", func(t *testing.T) {
		go func() {
			r := cs.expect("REGISTER")
			path = r.GetHeader("Path").Value()
			res := noisyResponse(cs, r, 200, "", &sip.ContactHeader{Address: r.Contact().Address, Params: sip.HeaderParams{{K: "expires", V: "120"}}})
			res.AppendHeader(sip.NewHeader("Expires", "3600"))
			res.AppendHeader(sip.NewHeader("Date", "Mon, 07 Dec 2026 05:00:00 GMT"))
			cs.send(udpAddr(r.Source()), res.String())
		}()
		res := zoe.register(ext, 600)
		if res.StatusCode != 200 {
			t.Fatalf("register: %d", res.StatusCode)
		}
		cts := res.GetHeaders("Contact")
		if len(cts) != 1 || !strings.Contains(cts[0].Value(), zoe.local) {
			t.Errorf("200 Contacts = %v, want only zoe's own (%s)", cts, zoe.local)
		}
		if res.GetHeader("Date") == nil {
			t.Error("Date (on the allow list) not relayed")
		}
		if h := res.GetHeader("Retry-After"); h != nil && h.Value() != "30" {
			t.Errorf("Retry-After = %q, want the comment dropped", h.Value())
		}
	})

	t.Run("guest call busy", func(t *testing.T) {
		g, done, inv := guestCall(t, ext, cs, "guest1", "sip:1234@portico.test")
		cs.send(udpAddr(inv.Source()), noisyResponse(cs, inv, 180, "b1").String())
		cs.send(udpAddr(inv.Source()), noisyResponse(cs, inv, 486, "b1").String())
		r := <-done
		if r.StatusCode != 486 || r.Reason != "Busy Here" {
			t.Errorf("busy: %d %q", r.StatusCode, r.Reason)
		}
		g.ackNon2xx(r, "sip:1234@portico.test")
	})

	t.Run("redirect to inside targets", func(t *testing.T) {
		g, done, inv := guestCall(t, ext, cs, "guest2", "sip:1235@portico.test")
		moved := noisyResponse(cs, inv, 302, "r1", &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "1240", Host: insideIP, Port: 5099}})
		// Vias below Portico's, as a chain of inside proxies would add.
		moved.AppendHeader(sip.NewHeader("Via", "SIP/2.0/UDP "+kamIP+":"+csPort+";branch=z9hG4bKinside1"))
		cs.send(udpAddr(inv.Source()), moved.String())
		r := <-done
		if r.StatusCode != 302 {
			t.Fatalf("redirect: %d", r.StatusCode)
		}
		var users []string
		for _, h := range r.GetHeaders("Contact") {
			ch := h.(*sip.ContactHeader)
			if ch.Address.Host != extIP {
				t.Errorf("3xx Contact %s does not name Portico", ch.Address.String())
			}
			users = append(users, ch.Address.User)
		}
		if strings.Join(users, ",") != "1240,deskphone" {
			t.Errorf("3xx Contact users = %v, want the inside targets' users 1240,deskphone", users)
		}
		g.ackNon2xx(r, "sip:1235@portico.test")
	})

	t.Run("guest call answered", func(t *testing.T) {
		g, done, inv := guestCall(t, ext, cs, "guest3", "sip:1236@portico.test")
		ok := noisyResponse(cs, inv, 200, "a1")
		ok.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		ok.SetBody([]byte(cs.sdp("")))
		cs.send(udpAddr(inv.Source()), ok.String())
		if r := <-done; r.StatusCode != 200 {
			t.Fatalf("answer: %d", r.StatusCode)
		}
		cs.expect("ACK")
		// An in-dialog request from inside, as noisy as its responses.
		info := sip.NewRequest(sip.INFO, inv.Contact().Address)
		info.AppendHeader(sip.NewHeader("Via", "SIP/2.0/UDP "+cs.local+";branch=z9hG4bKinfo1;rport"))
		info.AppendHeader(sip.NewHeader("From", inv.To().Value()+";tag=a1"))
		info.AppendHeader(sip.NewHeader("To", inv.From().Value()))
		info.AppendHeader(sip.NewHeader("Call-ID", inv.CallID().Value()))
		info.AppendHeader(sip.NewHeader("CSeq", "1 INFO"))
		info.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
		info.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "cs", Host: kamIP, Port: cs.c.LocalAddr().(*net.UDPAddr).Port}})
		for _, h := range noisyHeaders(cs.c.LocalAddr().(*net.UDPAddr).Port) {
			info.AppendHeader(h)
		}
		info.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
		info.SetBody([]byte("Signal=5\r\nDuration=160\r\n"))
		cs.send(udpAddr(inv.Source()), info.String())
		in := g.expect("INFO")
		if ct := in.GetHeader("Content-Type"); ct == nil || ct.Value() != "application/dtmf-relay" || string(in.Body()) != "Signal=5\r\nDuration=160\r\n" {
			t.Errorf("relayed INFO: %v %q", ct, in.Body())
		}
		g.reply(in, 200, "OK", "", "")
		if r := cs.final("INFO"); r.StatusCode != 200 {
			t.Errorf("INFO answered %d", r.StatusCode)
		}
		bye := make(chan *sip.Response, 1)
		go func() { bye <- g.inDialog("BYE", "") }()
		b := cs.expect("BYE")
		cs.send(udpAddr(b.Source()), noisyResponse(cs, b, 200, "").String())
		if r := <-bye; r.StatusCode != 200 {
			t.Fatalf("bye: %d", r.StatusCode)
		}
	})

	t.Run("inside calls outside", func(t *testing.T) {
		if path == "" {
			t.Skip("zoe did not register")
		}
		port := cs.c.LocalAddr().(*net.UDPAddr).Port
		inv := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "zoe", Host: outsideIP, Port: zoe.c.LocalAddr().(*net.UDPAddr).Port})
		inv.AppendHeader(sip.NewHeader("Via", "SIP/2.0/UDP "+cs.local+";branch=z9hG4bKin1;rport"))
		inv.AppendHeader(sip.NewHeader("Via", "SIP/2.0/UDP "+insideIP+":5062;branch=z9hG4bKdesk1;received="+insideIP))
		inv.AppendHeader(sip.NewHeader("Route", path))
		inv.AppendHeader(sip.NewHeader("Record-Route", "<sip:"+kamIP+":"+csPort+";lr>"))
		inv.AppendHeader(sip.NewHeader("From", `"Desk 1000" <sip:1000@`+insideHost+`>;tag=d1`))
		inv.AppendHeader(sip.NewHeader("To", "<sip:zoe@portico.test>"))
		inv.AppendHeader(sip.NewHeader("Call-ID", "inbound-1@"+insideIP))
		inv.AppendHeader(sip.NewHeader("CSeq", "1 INVITE"))
		inv.AppendHeader(sip.NewHeader("Max-Forwards", "69"))
		inv.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "1000", Host: insideIP, Port: 5062}})
		inv.AppendHeader(sip.NewHeader("Subject", "call from "+insideHost))
		inv.AppendHeader(sip.NewHeader("Priority", "urgent"))
		inv.AppendHeader(sip.NewHeader("User-Agent", "InsideCS desk phone"))
		for _, h := range noisyHeaders(port) {
			inv.AppendHeader(h)
		}
		inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		inv.SetBody([]byte(cs.sdp("")))
		cs.send(udpAddr(p.intUDP.String()), inv.String())
		got := zoe.expect("INVITE")
		for _, name := range []string{"Subject", "Priority", "User-Agent"} {
			if h := got.GetHeader(name); h != nil {
				t.Errorf("%s from inside relayed outside: %s", name, h.Value())
			}
		}
		zoe.reply(got, 486, "Busy Here", "z1", "")
		if r := cs.final("INVITE"); r.StatusCode != 486 {
			t.Errorf("inside caller got %d", r.StatusCode)
		}
	})
	assertNoInside(t, p.tap, insideHost, csPort, "InsideCS", "req_src_ip")
}

// guestCall has a new outside UA call ruri through ext and returns it,
// the channel of its final response and the INVITE the call server got.
func guestCall(t *testing.T, ext *net.UDPAddr, cs *rawUA, user, ruri string) (*rawUA, chan *sip.Response, *sip.Request) {
	g := newRawUA(t, outsideIP, user)
	done := make(chan *sip.Response, 1)
	go func() { done <- g.invite(ext, ruri, g.sdp(""), "") }()
	return g, done, cs.expect("INVITE")
}

// TestTopologyKamailio: Kamailio with sip_warning=1 as the inside call
// server. A user with a phone registered inside registers from outside:
// the outside 200 lists only the outside Contact, with expires capped at
// nat_binding_expiry even when the endpoint asked in its Contact's
// expires parameter. Kamailio's Warning (its address and the source
// address it saw, Portico's internal one) on a 483 and a 404 never
// reaches the outside.
func TestTopologyKamailio(t *testing.T) {
	k := startKamailio(t, 64, "WITH_SIPWARNING")
	p := startPortico(t, Config{CallServers: kamailioServer(k), ProbeInterval: -1,
		Guest: GuestPolicy{Enabled: true, Aliases: []string{"meet"}}})
	ext := udpAddr(p.extUDP.String())
	kam := udpAddr(k.addr.String())

	desk := newRawUA(t, insideIP, "erin") // erin's desk phone, registered inside
	if res := desk.register(kam, 300); res.StatusCode != 200 {
		t.Fatalf("desk phone register: %d", res.StatusCode)
	}
	soft := newRawUA(t, outsideIP, "erin") // erin's softphone, outside
	soft.callID = fmt.Sprintf("reg-soft-%d", uaSeq.Add(1))
	soft.tag = "s1"
	msg := soft.request("REGISTER", "sip:portico.test", "<sip:erin@portico.test>", "", "")
	msg = strings.Replace(msg, "Contact: <sip:erin@"+soft.local+">", "Contact: <sip:erin@"+soft.local+">;expires=3600", 1)
	soft.send(ext, msg)
	res := soft.final("REGISTER")
	if res.StatusCode != 200 {
		t.Fatalf("softphone register: %d %s", res.StatusCode, res.Reason)
	}
	cts := res.GetHeaders("Contact")
	if len(cts) != 1 || !strings.Contains(cts[0].Value(), soft.local) {
		t.Errorf("outside 200 Contacts = %v, want only the softphone's %s", cts, soft.local)
	}
	for _, h := range cts {
		if e, ok := contactExpires(h); !ok || e > 120 {
			t.Errorf("Contact %s: expires %d (%v), want at most nat_binding_expiry 120", h.Value(), e, ok)
		}
	}
	for _, r := range p.s.Registrations() {
		if left := time.Until(r.Expires); left > 121*time.Second {
			t.Errorf("binding %s kept for %v, more than nat_binding_expiry", r.Contact, left)
		}
	}

	t.Run("483 with Warning", func(t *testing.T) {
		u := newRawUA(t, outsideIP, "hops")
		u.callID, u.tag = "reg-hops", "h1"
		m := strings.Replace(u.request("REGISTER", "sip:portico.test", "<sip:hops@portico.test>", "Expires: 60\r\n", ""), "Max-Forwards: 70", "Max-Forwards: 1", 1)
		u.send(ext, m)
		r := u.final("REGISTER")
		if r.StatusCode != 483 {
			t.Fatalf("register with Max-Forwards 1: %d", r.StatusCode)
		}
		if w := r.GetHeader("Warning"); w != nil {
			t.Errorf("Warning relayed: %s", w.Value())
		}
	})

	t.Run("404 with Warning", func(t *testing.T) {
		g := newRawUA(t, outsideIP, "guest")
		r := g.invite(ext, "sip:meet@portico.test", g.sdp(""), "")
		if r.StatusCode != 404 {
			t.Fatalf("call to meet: %d", r.StatusCode)
		}
		if w := r.GetHeader("Warning"); w != nil {
			t.Errorf("Warning relayed: %s", w.Value())
		}
		g.ackNon2xx(r, "sip:meet@portico.test")
	})
	assertNoInside(t, p.tap, "req_src_ip")
}

// TestContactExpiresCapped: an expiry asked in the Contact's expires
// parameter is capped at nat_binding_expiry towards the registrar, and a
// longer grant is cut to it towards the endpoint and in the binding.
func TestContactExpiresCapped(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1, NATBindingExpiry: 90 * time.Second})
	u := newRawUA(t, outsideIP, "cap")
	u.callID, u.tag = "reg-cap", "c1"
	msg := u.request("REGISTER", "sip:portico.test", "<sip:cap@portico.test>", "", "")
	msg = strings.Replace(msg, "Contact: <sip:cap@"+u.local+">", "Contact: <sip:cap@"+u.local+">;expires=3600", 1)
	u.send(udpAddr(p.extUDP.String()), msg)
	r := cs.expect("REGISTER")
	got := -1
	if ct := r.Contact(); ct != nil {
		if v, ok := ct.Params.Get("expires"); ok {
			got, _ = strconv.Atoi(v)
		}
	}
	if got < 0 || got > 90 {
		t.Errorf("Contact expires relayed inside = %d (%s), want at most 90", got, r.Contact().Value())
	}
	res := sip.NewResponseFromRequest(r, 200, "OK", nil)
	res.AppendHeader(&sip.ContactHeader{Address: r.Contact().Address, Params: sip.HeaderParams{{K: "expires", V: "3600"}}})
	cs.send(udpAddr(r.Source()), res.String())
	back := u.final("REGISTER")
	if e, ok := contactExpires(back.Contact()); back.StatusCode != 200 || !ok || e > 90 {
		t.Errorf("200 to the endpoint: %d, Contact %v", back.StatusCode, back.Contact())
	}
	regs := p.s.Registrations()
	if len(regs) != 1 || time.Until(regs[0].Expires) > 91*time.Second {
		t.Errorf("Registrations() = %+v, want one binding of at most 90s", regs)
	}
}

var nonceRe = regexp.MustCompile(`(nonce|opaque)="[^"]*"`)

// TestRegisterEnumeration: an unauthenticated REGISTER for a user the
// registrar refuses (404) is answered like one for an existing user: a
// 401 whose challenge has the registrar's shape (realm, qop, algorithm,
// nonce length), with a fresh nonce. RevealUnknownUsers relays the 404.
func TestRegisterEnumeration(t *testing.T) {
	const realChallenge = `Digest realm="portico.test", nonce="5f1e2d3c4b5a69788796a5b4c3d2e1f0aabbccdd", opaque="0011aa", qop="auth", algorithm=MD5`
	for _, reveal := range []bool{false, true} {
		t.Run(fmt.Sprintf("reveal=%v", reveal), func(t *testing.T) {
			cs, c := fakeCallServer(t, "cs")
			p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1,
				TopologyHiding: TopologyHiding{RevealUnknownUsers: reveal}})
			ext := udpAddr(p.extUDP.String())
			go func() {
				for _, code := range []int{401, 404} {
					r := cs.expect("REGISTER")
					res := sip.NewResponseFromRequest(r, code, "", nil)
					if code == 401 {
						res.AppendHeader(sip.NewHeader("WWW-Authenticate", realChallenge))
					}
					cs.send(udpAddr(r.Source()), res.String())
				}
			}()
			known := newRawUA(t, outsideIP, "known").register(ext, 60)
			ghost := newRawUA(t, outsideIP, "ghost").register(ext, 60)
			if known.StatusCode != 401 {
				t.Fatalf("known user: %d", known.StatusCode)
			}
			if reveal {
				if ghost.StatusCode != 404 {
					t.Fatalf("ghost user with RevealUnknownUsers: %d, want 404", ghost.StatusCode)
				}
				return
			}
			if ghost.StatusCode != 401 || ghost.Reason != known.Reason {
				t.Fatalf("ghost user: %d %q, known user: %d %q", ghost.StatusCode, ghost.Reason, known.StatusCode, known.Reason)
			}
			kc, gc := known.GetHeader("WWW-Authenticate").Value(), ghost.GetHeader("WWW-Authenticate").Value()
			if kc == gc {
				t.Fatal("the ghost's challenge reuses the registrar's nonce")
			}
			shape := func(s string) string {
				return nonceRe.ReplaceAllStringFunc(s, func(m string) string { return strings.Repeat("x", len(m)) })
			}
			if shape(kc) != shape(gc) {
				t.Errorf("challenges differ in shape:\n known %s\n ghost %s", kc, gc)
			}
			if n := testutil.ToFloat64(p.s.m.rejected.WithLabelValues("register_refusal_hidden")); n != 1 {
				t.Errorf("hidden refusals counted %v, want 1", n)
			}
		})
	}
}

// bareEdge is a SIP edge on one external and one internal UDP socket with
// its own logger and metrics registry.
type bareEdge struct {
	s   *Server
	ext *net.UDPAddr
	reg *prometheus.Registry
}

func startBare(t *testing.T, lg *slog.Logger, cs CallServer) *bareEdge {
	t.Helper()
	pc, ic := listenUDP(t, extIP), listenUDP(t, intIP)
	reg := prometheus.NewRegistry()
	s, err := New(Config{Listeners: []Listener{{Interface: External, Transport: "udp", Address: pc.LocalAddr().String()},
		{Interface: Internal, Transport: "udp", Address: ic.LocalAddr().String()}},
		CallServers: []CallServer{cs}, ProbeInterval: -1}, Deps{Logger: lg, Media: nopMedia{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- s.Serve(context.Background(), []BoundListener{{Interface: External, Transport: "udp", Packet: pc}, {Interface: Internal, Transport: "udp", Packet: ic}})
	}()
	t.Cleanup(func() { s.Close(); <-errc })
	waitServed(t, ic.LocalAddr().String(), pc.LocalAddr().String())
	return &bareEdge{s: s, ext: pc.LocalAddr().(*net.UDPAddr), reg: reg}
}

// counter returns the value of metric name with the given labels (0 when
// it does not exist).
func (e *bareEdge) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// optionsSync sends an OPTIONS from conn and waits for its answer, so that
// everything conn sent before has been read by Portico. It returns the
// messages that arrived before the answer.
func optionsSync(t *testing.T, conn *net.UDPConn, to *net.UDPAddr, id string) []string {
	t.Helper()
	la := conn.LocalAddr().String()
	opt := fmt.Sprintf("OPTIONS sip:portico.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKo%s\r\nFrom: <sip:a@example.net>;tag=1\r\n"+
		"To: <sip:portico.test>\r\nCall-ID: opt-%s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", la, id, id)
	conn.WriteToUDP([]byte(opt), to)
	var before []string
	buf := make([]byte, 65535)
	for {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no answer to OPTIONS %s: %v", id, err)
		}
		if m, err := sip.ParseMessage(buf[:n]); err == nil && m.(*sip.Response).CallID() != nil && m.(*sip.Response).CallID().Value() == "opt-"+id {
			return before
		}
		before = append(before, string(buf[:n]))
	}
}

// TestJunkLogging: 2,000 junk datagrams from one source (1,400 that are
// not SIP at all, 500 that start like SIP and do not parse, 100 requests
// without Via) cost a bounded number of short log lines, at debug level,
// and are counted. No JSON record carries a key twice.
func TestJunkLogging(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	lg := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, cs := fakeCallServer(t, "cs")
	e := startBare(t, lg, cs)
	t.Cleanup(func() { logTail(t, "log tail", &mu, &logs, 6000) })
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(outsideIP)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	junk := bytes.Repeat([]byte("\x16\x03\x01 GET / HTTP/1.1 junk "), 40)
	sipish := []byte("OPTIONS sip:portico.test SIP/2.0\r\nVia: broken " + strings.Repeat("y", 900) + "\r\n\r\n")
	for i := 0; i < 2000; i++ {
		p := junk
		switch {
		case i%4 == 3:
			p = sipish
		case i%20 == 1:
			p = []byte(fmt.Sprintf("MESSAGE sip:portico.test SIP/2.0\r\nFrom: <sip:a@example.net>;tag=1\r\nTo: <sip:b@portico.test>\r\n"+
				"Call-ID: novia-%d\r\nCSeq: 1 MESSAGE\r\nX-Pad: %s\r\nContent-Length: 0\r\n\r\n", i, strings.Repeat("z", 600)))
		}
		conn.WriteToUDP(p, e.ext)
		if i%25 == 24 { // a loopback socket buffer holds about 90 such datagrams
			if t.Failed() {
				break
			}
			optionsSync(t, conn, e.ext, strconv.Itoa(i))
		}
	}
	// The last OPTIONS answer orders what the read loop counts (not_sip,
	// unparsable), not the "malformed" records: sipgo's transaction layer
	// handles each request on a goroutine of its own, which an OPTIONS
	// answered later can overtake. So the counts are awaited, then compared.
	want := map[string]float64{"not_sip": 1400, "unparsable": 500, "malformed": 100}
	got := map[string]float64{}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		short := false
		for reason, w := range want {
			got[reason] = e.counter(t, "portico_sip_dropped_total", map[string]string{"interface": External, "reason": reason})
			short = short || got[reason] < w
		}
		if !short || time.Now().After(deadline) {
			break
		}
	}
	for reason, w := range want {
		if got[reason] != w {
			t.Errorf("dropped counted as %s: %v, want %v", reason, got[reason], w)
		}
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if len(l) > 1024 {
			t.Errorf("log line of %d bytes: %.200s...", len(l), l)
		}
		dec := json.NewDecoder(strings.NewReader(l))
		seen := map[string]bool{}
		depth := 0
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			switch v := tok.(type) {
			case json.Delim:
				if v == '{' {
					depth++
				} else if v == '}' {
					depth--
				}
			case string:
				if depth == 1 && dec.More() {
					if seen[v] {
						t.Errorf("key %q twice in %s", v, l)
					}
					seen[v] = true
					dec.Token() // its value
				}
			}
		}
	}
	// The OPTIONS that pace the test log their transactions; what the junk
	// costs is the rest.
	var junkLines, junkBytes int
	for _, l := range lines {
		if strings.Contains(l, `"msg":"dropped`) || strings.Contains(l, "failed to parse") || strings.Contains(l, "failed to handle") {
			junkLines++
			junkBytes += len(l) + 1
		}
	}
	if junkLines > 6 || junkBytes > 4096 {
		t.Errorf("2,000 junk datagrams made %d bytes of log in %d lines", junkBytes, junkLines)
	}
	t.Logf("2,000 junk datagrams: %d bytes of log in %d lines (debug level)", junkBytes, junkLines)
}

// TestScannerDropped: requests whose User-Agent names a SIP scanner get no
// answer, are not relayed inside, and are counted.
func TestScannerDropped(t *testing.T) {
	cs, c := fakeCallServer(t, "cs")
	e := startBare(t, slog.New(slog.DiscardHandler), c)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(outsideIP)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	la := conn.LocalAddr().String()
	for i, ua := range []string{"friendly-scanner", "sipvicious 0.3.3", "VaxSIPUserAgent/3.1", "sipcli/v1.8", "sundayddr", "pplsip"} {
		method := []string{"OPTIONS", "REGISTER"}[i%2]
		msg := fmt.Sprintf("%s sip:portico.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKs%d\r\nFrom: <sip:100@portico.test>;tag=%d\r\n"+
			"To: <sip:100@portico.test>\r\nCall-ID: scan-%d\r\nCSeq: 1 %s\r\nContact: <sip:100@%s>\r\nUser-Agent: %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			method, la, i, i, i, method, la, ua)
		conn.WriteToUDP([]byte(msg), e.ext)
	}
	if before := optionsSync(t, conn, e.ext, "after-scan"); len(before) > 0 {
		t.Errorf("scanner requests answered: %q", before)
	}
	// A REGISTER from an ordinary client is the first the call server sees.
	done := make(chan *sip.Response, 1)
	u := newRawUA(t, outsideIP, "ordinary")
	go func() { done <- u.register(e.ext, 60) }()
	r := cs.expect("REGISTER")
	if r.From().Address.User != "ordinary" {
		t.Errorf("call server got a REGISTER from %s", r.From().Address.User)
	}
	cs.send(udpAddr(r.Source()), sip.NewResponseFromRequest(r, 403, "Forbidden", nil).String())
	<-done
	// Handlers run on their own goroutines: the count may trail the OPTIONS
	// answer a moment.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := e.counter(t, "portico_sip_dropped_total", map[string]string{"reason": "scanner"})
		if n == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scanner requests counted %v, want 6", n)
		}
	}
}

// TestOutOfDialogACK: an ACK that matches no transaction or dialog gets
// no response, however malformed (RFC 3261 section 17: ACK is never
// answered).
func TestOutOfDialogACK(t *testing.T) {
	_, c := fakeCallServer(t, "cs")
	p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1})
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(outsideIP)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	la := conn.LocalAddr().String()
	const head = "ACK sip:1000@portico.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d\r\nFrom: <sip:a@example.net>;tag=1\r\n"
	cases := []string{
		"To: <sip:1000@portico.test>\r\nCall-ID: ack-no-to-tag\r\nCSeq: 1 ACK\r\n",
		"To: <sip:1000@portico.test>;tag=9\r\nCall-ID: ack-unknown-dialog\r\nCSeq: 1 ACK\r\n",
		"To: <sip:1000@portico.test>\r\nCall-ID: ack-no-cseq\r\n",
		"To: <sip:1000@portico.test>\r\nCall-ID: ack-cseq-invite\r\nCSeq: 1 INVITE\r\n",
		"To: <sip:1000@portico.test>\r\nCSeq: 1 ACK\r\n",
		"Call-ID: ack-no-to\r\nCSeq: 1 ACK\r\n",
	}
	for i, rest := range cases {
		conn.WriteToUDP([]byte(fmt.Sprintf(head, la, i)+rest+"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"), ext(p))
	}
	// OPTIONS sent after them are answered in turn; whatever else arrives
	// before the last answer is a response to an ACK.
	buf := make([]byte, 4096)
	for i := 0; i < 3; i++ {
		opt := fmt.Sprintf("OPTIONS sip:portico.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKo%d\r\nFrom: <sip:a@example.net>;tag=1\r\n"+
			"To: <sip:portico.test>\r\nCall-ID: opt-%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", la, i, i)
		conn.WriteToUDP([]byte(opt), ext(p))
		for {
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("no answer to OPTIONS %d: %v", i, err)
			}
			m, err := sip.ParseMessage(buf[:n])
			if r, ok := m.(*sip.Response); err == nil && ok && r.CallID() != nil && r.CallID().Value() == fmt.Sprintf("opt-%d", i) {
				break
			}
			t.Errorf("an ACK was answered:\n%s", buf[:n])
		}
	}
}

func ext(p *portico) *net.UDPAddr { return net.UDPAddrFromAddrPort(p.extUDP) }

// TestScannerSvwar: SIPVicious's svwar, enumerating extensions 100-120 by
// REGISTER through Portico to Kamailio (which would accept any), gets no
// answer and finds nothing; nothing it sent reaches the registrar.
func TestScannerSvwar(t *testing.T) {
	bin := testpeer.Require(t, "svwar")[0]
	k := startKamailio(t, 64)
	p := startPortico(t, Config{CallServers: kamailioServer(k), ProbeInterval: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-e", "100-120", "-m", "REGISTER", "--force", "-b", outsideIP, "-P", freePort(t),
		"-p", strconv.Itoa(int(p.extUDP.Port())), "--maximumtime=3", extIP)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("svwar: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "Extension") {
		t.Errorf("svwar found extensions:\n%s", out)
	}
	if regs := p.s.Registrations(); len(regs) != 0 {
		t.Errorf("svwar's REGISTERs reached the registrar: %+v", regs)
	}
	// svwar gives up when its first probe gets no answer.
	if n := testutil.ToFloat64(p.s.m.dropped.WithLabelValues(External, dropScanner)); n < 1 {
		t.Errorf("scanner requests counted %v", n)
	}
	t.Logf("svwar: %s", strings.TrimSpace(string(out)))
}

// TestOutOfDialogACKStream: over TCP too, an ACK without CSeq gets no
// response.
func TestOutOfDialogACKStream(t *testing.T) {
	_, c := fakeCallServer(t, "cs")
	p := startPortico(t, Config{CallServers: []CallServer{c}, ProbeInterval: -1})
	conn, err := net.Dial("tcp", p.extTCP.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	la := conn.LocalAddr().String()
	fmt.Fprintf(conn, "ACK sip:1000@portico.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bKtack1\r\nFrom: <sip:a@example.net>;tag=1\r\n"+
		"To: <sip:1000@portico.test>\r\nCall-ID: tack-no-cseq\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", la)
	// Written separately, as a client sends its next request.
	rd := bufio.NewReader(conn)
	for i := 0; i < 2; i++ {
		fmt.Fprintf(conn, "OPTIONS sip:portico.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bKtopt%d\r\nFrom: <sip:a@example.net>;tag=1\r\n"+
			"To: <sip:portico.test>\r\nCall-ID: topt-%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", la, i, i)
		for {
			m := readSIP(t, conn, rd)
			if strings.Contains(m, fmt.Sprintf("Call-ID: topt-%d\r\n", i)) {
				break
			}
			t.Errorf("the ACK was answered:\n%s", m)
		}
	}
}

// svwarRow150 is the row of svwar's result table for extension 150.
var svwarRow150 = regexp.MustCompile(`(?m)^\s*\|\s*150\s*\|`)

// TestEnumerationDefeatsSvwar: svwar with a user agent nobody recognises,
// and a guard that lets it run, enumerates extensions 100-200 by REGISTER;
// the inside knows only 150 (challenged) and answers 404 for the others.
// With reveal_unknown_users svwar finds 150; by default Portico answers the
// 404s with challenges like 150's, and svwar finds nothing.
func TestEnumerationDefeatsSvwar(t *testing.T) {
	for _, reveal := range []bool{true, false} {
		t.Run(fmt.Sprintf("reveal=%v", reveal), func(t *testing.T) {
			cs := startCountingServer(t)
			lenient := guard.Limit{Count: 1000, Window: time.Minute}
			g := newGuard(t, guard.Config{ScannerAgents: []string{"no-such-agent"},
				Limits: map[string]guard.Limit{"not_found": lenient, "challenge": lenient, "register": lenient}})
			edge := startGuarded(t, g, nil, cs, func(c *Config) { c.TopologyHiding.RevealUnknownUsers = reveal })
			out := sipvicious(t, "svwar", edge, "-e100-200", "--force", "--maximumtime=2")
			// svwar names what it found in a table row or a warning; "150"
			// alone also turns up in its random Call-IDs and tags.
			found := svwarRow150.MatchString(out) || strings.Contains(out, "extension '150'")
			if found != reveal {
				t.Errorf("svwar found 150: %v, want %v:\n%s", found, reveal, out)
			}
			t.Logf("svwar: %s", strings.TrimSpace(out))
		})
	}
}

// TestEnumerationKamailio: Kamailio challenging its users and answering
// 404 for others. Through Portico an unknown user's REGISTER is answered
// like a known one's: 401 with a challenge of Kamailio's shape.
func TestEnumerationKamailio(t *testing.T) {
	k := startKamailio(t, 64, "WITH_AUTH")
	p := startPortico(t, Config{CallServers: kamailioServer(k), ProbeInterval: -1})
	ext := udpAddr(p.extUDP.String())
	if r := newRawUA(t, insideIP, "nobody").register(udpAddr(k.addr.String()), 60); r.StatusCode != 404 {
		t.Fatalf("Kamailio answers an unknown user directly with %d, want 404", r.StatusCode)
	}
	known := newRawUA(t, outsideIP, "erin").register(ext, 60)
	ghost := newRawUA(t, outsideIP, "nobody").register(ext, 60)
	if known.StatusCode != 401 || ghost.StatusCode != 401 || known.Reason != ghost.Reason {
		t.Fatalf("known user %d %q, unknown user %d %q", known.StatusCode, known.Reason, ghost.StatusCode, ghost.Reason)
	}
	kc, gc := known.GetHeader("WWW-Authenticate").Value(), ghost.GetHeader("WWW-Authenticate").Value()
	shape := func(s string) string {
		return nonceRe.ReplaceAllStringFunc(s, func(m string) string { return strings.Repeat("x", len(m)) })
	}
	if shape(kc) != shape(gc) || kc == gc {
		t.Errorf("challenges:\n known %s\n ghost %s", kc, gc)
	}
	// Kamailio's nonces are base64: a hex one would give the ghost away.
	if classes(digestValue(kc, "nonce")) != classes(digestValue(gc, "nonce")) {
		t.Errorf("nonce characters differ:\n known %s\n ghost %s", kc, gc)
	}
	var keys []string
	for _, h := range known.Headers() {
		keys = append(keys, h.Name())
	}
	var gkeys []string
	for _, h := range ghost.Headers() {
		gkeys = append(gkeys, h.Name())
	}
	if strings.Join(keys, ",") != strings.Join(gkeys, ",") {
		t.Errorf("header names differ:\n known %v\n ghost %v", keys, gkeys)
	}
	t.Logf("known: %s\nghost: %s", kc, gc)
}

// digestValue is a quoted parameter's value in a challenge.
func digestValue(ch, name string) string {
	_, v, _ := strings.Cut(ch, name+`="`)
	v, _, _ = strings.Cut(v, `"`)
	return v
}

// classes names the character classes s uses.
func classes(s string) string {
	var out []string
	for _, c := range []struct{ name, set string }{{"lower", "ghijklmnopqrstuvwxyz"}, {"upper", "GHIJKLMNOPQRSTUVWXYZ"}} {
		if strings.ContainsAny(s, c.set) {
			out = append(out, c.name)
		}
	}
	return strings.Join(out, ",")
}
