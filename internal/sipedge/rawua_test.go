package sipedge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/portico-edge/portico/internal/sdp"
)

// rawUA is a scriptable SIP user agent over UDP for tests: it writes SIP
// text itself, so each step of a scenario is explicit.
type rawUA struct {
	t      *testing.T
	c      *net.UDPConn
	local  string
	user   string
	rtp    *net.UDPConn
	callID string
	tag    string
	rtag   string
	cseq   int
	target string // remote target URI
	dest   *net.UDPAddr
	ruri   string
	to     string
	inbox  chan sip.Message
}

var uaSeq atomic.Int64

func newRawUA(t *testing.T, ip, user string) *rawUA {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUA{t: t, c: c, rtp: r, local: c.LocalAddr().String(), user: user, inbox: make(chan sip.Message, 64)}
	t.Cleanup(func() { c.Close(); r.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				close(u.inbox)
				return
			}
			m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			if err != nil {
				continue
			}
			u.inbox <- m
		}
	}()
	return u
}

func (u *rawUA) send(to *net.UDPAddr, msg string) {
	if _, err := u.c.WriteToUDP([]byte(msg), to); err != nil {
		u.t.Fatal(err)
	}
}

func (u *rawUA) sdp(mode string) string {
	ap := u.rtp.LocalAddr().(*net.UDPAddr)
	s := fmt.Sprintf("v=0\r\no=%s 1 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
		u.user, uaSeq.Add(1), ap.IP, ap.IP, ap.Port)
	if mode != "" {
		s += "a=" + mode + "\r\n"
	}
	return s
}

// sdpVideo is sdp("") plus a content video stream (port 0 when removed).
func (u *rawUA) sdpVideo(removed bool) string {
	ap := u.rtp.LocalAddr().(*net.UDPAddr)
	port := ap.Port + 2
	if removed {
		port = 0
	}
	return u.sdp("") + fmt.Sprintf("m=video %d RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=content:slides\r\n", port)
}

func (u *rawUA) request(method, ruri, to, extra, body string) string {
	u.cseq++
	branch := fmt.Sprintf("z9hG4bK%d", uaSeq.Add(1))
	ct := ""
	if body != "" {
		ct = "Content-Type: application/sdp\r\n"
	}
	return fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s;rport\r\nFrom: <sip:%s@portico.test>;tag=%s\r\nTo: %s\r\n"+
		"Call-ID: %s\r\nCSeq: %d %s\r\nContact: <sip:%s@%s>\r\nMax-Forwards: 70\r\n%s%sContent-Length: %d\r\n\r\n%s",
		method, ruri, u.local, branch, u.user, u.tag, to, u.callID, u.cseq, method, u.user, u.local, extra, ct, len(body), body)
}

// next waits for the next message that satisfies ok, skipping others.
func (u *rawUA) next(what string, ok func(sip.Message) bool) sip.Message {
	u.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, open := <-u.inbox:
			if !open {
				u.t.Fatalf("%s: socket closed waiting for %s", u.user, what)
			}
			if ok(m) {
				return m
			}
		case <-timeout:
			u.t.Fatalf("%s: timed out waiting for %s", u.user, what)
			return nil
		}
	}
}

func (u *rawUA) final(method string) *sip.Response {
	u.t.Helper()
	return u.next("final response to "+method, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode >= 200 && r.CSeq() != nil && string(r.CSeq().MethodName) == method
	}).(*sip.Response)
}

func (u *rawUA) expect(method string) *sip.Request {
	u.t.Helper()
	return u.next(method, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && string(r.Method) == method
	}).(*sip.Request)
}

func (u *rawUA) register(server *net.UDPAddr, expires int) *sip.Response {
	u.callID = fmt.Sprintf("reg-%s-%d", u.user, uaSeq.Add(1))
	u.tag = fmt.Sprintf("t%d", uaSeq.Add(1))
	aor := "<sip:" + u.user + "@portico.test>"
	u.send(server, u.request("REGISTER", "sip:portico.test", aor, fmt.Sprintf("Expires: %d\r\n", expires), ""))
	return u.final("REGISTER")
}

// invite places a call and, on 2xx, sends the ACK.
func (u *rawUA) invite(server *net.UDPAddr, ruri, body, extra string) *sip.Response {
	u.t.Helper()
	u.callID = fmt.Sprintf("call-%s-%d", u.user, uaSeq.Add(1))
	u.tag = fmt.Sprintf("t%d", uaSeq.Add(1))
	u.ruri, u.to, u.dest, u.rtag = ruri, "<"+ruri+">", server, ""
	u.send(server, u.request("INVITE", ruri, u.to, extra, body))
	res := u.final("INVITE")
	u.ackFor(res)
	return res
}

func (u *rawUA) ackFor(res *sip.Response) {
	if res.StatusCode >= 300 {
		return // the transaction layer of the far end expects our ACK only for 2xx here; non-2xx ACK below
	}
	u.rtag, _ = res.To().Params.Get("tag")
	if c := res.Contact(); c != nil {
		u.target = c.Address.String()
		if a, err := net.ResolveUDPAddr("udp", fmt.Sprintf("%s:%d", c.Address.Host, c.Address.Port)); err == nil {
			u.dest = a
		}
	}
	u.send(u.dest, u.ackText(res.CSeq().SeqNo))
}

func (u *rawUA) ackText(cseq uint32) string {
	return fmt.Sprintf("ACK %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d;rport\r\nFrom: <sip:%s@portico.test>;tag=%s\r\nTo: %s;tag=%s\r\n"+
		"Call-ID: %s\r\nCSeq: %d ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		u.target, u.local, uaSeq.Add(1), u.user, u.tag, u.to, u.rtag, u.callID, cseq)
}

// inDialog sends a request within the call this UA placed.
func (u *rawUA) inDialog(method, body string) *sip.Response {
	u.t.Helper()
	u.send(u.dest, u.request(method, u.target, u.to+";tag="+u.rtag, "", body))
	res := u.final(method)
	if method == "INVITE" && res.StatusCode < 300 {
		u.send(u.dest, u.ackText(res.CSeq().SeqNo))
	}
	return res
}

// reply answers a request received by this UA.
func (u *rawUA) reply(req *sip.Request, code int, reason, totag, body string) {
	u.replyWith(req, code, reason, totag, body)
}

// replyWith answers a request received by this UA with extra headers.
func (u *rawUA) replyWith(req *sip.Request, code int, reason, totag, body string, extra ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range extra {
		res.AppendHeader(h)
	}
	if totag != "" {
		res.To().Params.Add("tag", totag)
	}
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: u.user, Host: strings.Split(u.local, ":")[0], Port: u.c.LocalAddr().(*net.UDPAddr).Port}})
	if body != "" {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	res.SetBody([]byte(body))
	src, err := net.ResolveUDPAddr("udp", req.Source())
	if err != nil {
		u.t.Fatal(err)
	}
	if v := req.Via(); v != nil {
		if p, ok := v.Params.Get("rport"); ok && p == "" {
			_ = p
		}
	}
	u.send(src, res.String())
}

// media returns the RTP address signalled in a body.
func mediaAddr(t *testing.T, body []byte) netip.AddrPort {
	t.Helper()
	d, err := sdp.Parse(body)
	if err != nil || len(d.Streams) == 0 {
		t.Fatalf("bad SDP %v:\n%s", err, body)
	}
	return d.Streams[0].RTP
}

// rtpFlows sends a few RTP packets from u to addr and checks that peer
// receives them.
func rtpFlows(t *testing.T, from *rawUA, to netip.AddrPort, peer *rawUA) bool {
	t.Helper()
	pkt := make([]byte, 172)
	pkt[0] = 0x80
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 2048)
		n := 0
		peer.rtp.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			if _, _, err := peer.rtp.ReadFromUDP(buf); err != nil {
				break
			}
			n++
			if n == 5 {
				break
			}
		}
		got <- n
	}()
	for i := 0; i < 5; i++ {
		pkt[3] = byte(i)
		from.rtp.WriteToUDPAddrPort(pkt, to)
		time.Sleep(20 * time.Millisecond)
	}
	return <-got == 5
}

// byeAsCallee hangs up a call this UA answered (inv) with tag mytag.
func (u *rawUA) byeAsCallee(inv *sip.Request, mytag string) *sip.Response {
	u.t.Helper()
	c := inv.Contact().Address
	dest, err := net.ResolveUDPAddr("udp", fmt.Sprintf("%s:%d", c.Host, c.Port))
	if err != nil {
		u.t.Fatal(err)
	}
	msg := fmt.Sprintf("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d;rport\r\nFrom: <%s>;tag=%s\r\nTo: %s\r\n"+
		"Call-ID: %s\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		c.String(), u.local, uaSeq.Add(1), inv.To().Address.String(), mytag, inv.From().Value(), string(*inv.CallID()))
	u.send(dest, msg)
	return u.final("BYE")
}

// ackNon2xx acknowledges a failure response in its own transaction.
func (u *rawUA) ackNon2xx(res *sip.Response, ruri string) {
	msg := fmt.Sprintf("ACK %s SIP/2.0\r\n%s\r\n%s\r\n%s\r\nCall-ID: %s\r\nCSeq: %d ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		ruri, res.Via().String(), res.From().String(), res.To().String(), string(*res.CallID()), res.CSeq().SeqNo)
	u.send(u.dest, msg)
}

func io_ReadFull(r *bufio.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

func streamsOf(t *testing.T, body []byte) []sdp.Stream {
	t.Helper()
	d, err := sdp.Parse(body)
	if err != nil {
		t.Fatalf("bad SDP %v:\n%s", err, body)
	}
	return d.Streams
}

// rtpFlowsTo sends packets from u to addr and checks that peer receives
// them on its port rtpPort (a second stream's socket, opened here).
func rtpFlowsTo(t *testing.T, from *rawUA, to netip.AddrPort, peer *rawUA, rtpPort uint16) bool {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(strings.Split(peer.local, ":")[0]), Port: int(rtpPort)})
	if err != nil {
		t.Fatalf("listen second stream: %v", err)
	}
	defer c.Close()
	pkt := make([]byte, 200)
	pkt[0] = 0x80
	for i := 0; i < 5; i++ {
		from.rtp.WriteToUDPAddrPort(pkt, to)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	_, err = c.Read(buf)
	return err == nil
}
