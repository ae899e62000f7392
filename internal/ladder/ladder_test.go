package ladder

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/portico-edge/portico/internal/testpeer"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

const invite = `INVITE sip:1001@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1
From: <sip:alice@example.com>;tag=a1
To: <sip:1001@example.com>
Call-ID: call-1@example
CSeq: 1 INVITE
Authorization: Digest username="alice", realm="example.com", nonce="abcNONCE", uri="sip:1001@example.com",
 response="0123456789abcdef0123456789abcdef", cnonce="xyzCN", nc=00000001, qop=auth
Proxy-Authorization: Basic YWxpY2U6c2VjcmV0
Content-Type: application/sdp
Content-Length: 155

v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 4000 RTP/SAVP 0
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEYkeyKEY|2^20|1:4;inline:KEY2key2 FEC_ORDER=FEC_SRTP
a=fingerprint:sha-256 AB:CD
`

func TestMask(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		secrets []string
		keep    []string
	}{
		{"digest, folded, basic, sdes", invite,
			[]string{"abcNONCE", "0123456789abcdef0123456789abcdef", "xyzCN", "YWxpY2U6c2VjcmV0", "KEYkeyKEY", "KEY2key2"},
			[]string{`username="alice"`, `uri="sip:1001@example.com"`, "nc=00000001", "Basic ", "a=fingerprint:sha-256 AB:CD", "|2^20|1:4;inline:", " FEC_ORDER=FEC_SRTP"}},
		{"challenge and info", "SIP/2.0 401 Unauthorized\nWWW-Authenticate: Digest realm=\"x\", nonce=\"n0nce\", algorithm=MD5\nAuthentication-Info: nextnonce=\"nn1\", rspauth=\"ra\"\nCall-ID: c\n\n",
			[]string{"n0nce", "nn1", `"ra"`}, []string{`realm="x"`, "algorithm=MD5"}},
		{"bearer padded", "REGISTER sip:x SIP/2.0\nAuthorization: Bearer dXNlcg==\n\n", []string{"dXNlcg=="}, []string{"Bearer "}},
		{"key-mgmt", "INVITE sip:x SIP/2.0\nCall-ID: c\n\nv=0\na=key-mgmt:mikey AQAFgM0X\n", []string{"AQAFgM0X"}, []string{"a=key-mgmt:mikey "}},
		{"nothing secret", "OPTIONS sip:x SIP/2.0\nCall-ID: c\nSubject: response=\"public\"\n\n", nil, []string{`response="public"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := crlf(tc.in)
			out := Mask(in)
			if len(out) != len(in) {
				t.Fatalf("length %d, want %d", len(out), len(in))
			}
			for _, s := range tc.secrets {
				if bytes.Contains(out, []byte(s)) {
					t.Errorf("%q kept:\n%s", s, out)
				}
			}
			for _, s := range tc.keep {
				if !bytes.Contains(out, []byte(s)) {
					t.Errorf("%q lost:\n%s", s, out)
				}
			}
			if !bytes.Equal(Mask(out), out) {
				t.Error("masking twice changes the message")
			}
		})
	}
}

func TestSummaryAndKeys(t *testing.T) {
	msg := crlf(invite)
	if s := Summary(msg); s != "INVITE sip:1001@example.com" {
		t.Errorf("Summary = %q", s)
	}
	if s := Summary(crlf("SIP/2.0 180 Ringing\nCSeq: 1 INVITE\n\n")); s != "180 Ringing" {
		t.Errorf("Summary = %q", s)
	}
	if s := Summary([]byte("SIP/2.0 200 OK\x00<b>\r\n\r\n")); s != "200 OK?<b>" {
		t.Errorf("Summary of control characters = %q", s)
	}
	if Summary([]byte("\x16\x03\x01 junk")) != "" {
		t.Error("junk has a summary")
	}
	if id := CallID(msg); id != "call-1@example" {
		t.Errorf("CallID = %q", id)
	}
	if id := CallID(crlf("BYE sip:x SIP/2.0\ni: compact\n\n")); id != "compact" {
		t.Errorf("compact CallID = %q", id)
	}
	if CSeqMethod(msg) != "INVITE" || !startsDialog(msg) {
		t.Error("CSeq method or initial INVITE not recognised")
	}
	if startsDialog(crlf("INVITE sip:x SIP/2.0\nTo: <sip:x>;tag=1\nCall-ID: c\n\n")) {
		t.Error("a re-INVITE starts a dialog")
	}
}

var (
	ext  = netip.MustParseAddrPort("192.0.2.10:5060")
	peer = netip.MustParseAddrPort("198.51.100.7:5062")
	in4  = netip.MustParseAddrPort("10.0.0.10:5060")
	cs   = netip.MustParseAddrPort("10.0.0.20:5060")
)

func pk(iface, transport string, dir Direction, local, remote netip.AddrPort) Packet {
	return Packet{Interface: iface, Transport: transport, Dir: dir, Time: time.Now(), Local: local, Remote: remote}
}

// sipMsg builds a message of about size bytes for dialog cid.
func sipMsg(first, cid string, size int) []byte {
	if !strings.HasPrefix(first, "SIP/2.0 ") {
		first += " SIP/2.0"
	}
	m := first + "\r\nCall-ID: " + cid + "\r\nTo: <sip:x>\r\nCSeq: 1 INVITE\r\n"
	if size > len(m)+20 {
		m += "X-Pad: " + strings.Repeat("p", size-len(m)-11) + "\r\n"
	}
	return []byte(m + "\r\n")
}

func TestStoreLinksAndBounds(t *testing.T) {
	st := New(Config{MaxCalls: 3, MaxCallBytes: 1000, MaxBytes: 2500, MaxPending: 2})
	// An INVITE before the call exists, then the call links both dialogs.
	st.Observe(pk(External, "udp", In, ext, peer), sipMsg("INVITE sip:1@x", "out-1", 100))
	st.Observe(pk(External, "udp", Out, ext, peer), []byte("\x16\x03\x01 Call-ID: out-1\r\n\r\n")) // not SIP: dropped
	st.Link("call-1", "out-1")
	st.Link("call-1", "in-1")
	st.Observe(pk(Internal, "udp", Out, in4, cs), sipMsg("INVITE sip:1@cs", "in-1", 100))
	st.Observe(pk(Internal, "udp", In, in4, cs), sipMsg("SIP/2.0 180 Ringing", "in-1", 100))
	st.Observe(pk(External, "udp", In, ext, peer), sipMsg("OPTIONS sip:x", "other", 100)) // no call: not kept
	l, ok := st.Ladder("call-1")
	if !ok || len(l.Messages) != 3 {
		t.Fatalf("ladder %v %+v", ok, l)
	}
	want := [][2]int{{OutsideParty, PorticoOutside}, {PorticoInside, InsideParty}, {InsideParty, PorticoInside}}
	for i, m := range l.Messages {
		if m.Index != i || m.From != want[i][0] || m.To != want[i][1] {
			t.Errorf("message %d: index %d, %d->%d, want %v", i, m.Index, m.From, m.To, want[i])
		}
	}
	if l.Parties[OutsideParty].Address != peer.String() || l.Parties[InsideParty].Address != cs.String() {
		t.Errorf("parties %+v", l.Parties)
	}

	// Per call: beyond MaxCallBytes messages are dropped and flagged.
	for range 10 {
		st.Observe(pk(Internal, "udp", In, in4, cs), sipMsg("SIP/2.0 180 Ringing", "in-1", 200))
	}
	if l, _ := st.Ladder("call-1"); !l.Truncated || len(l.Messages) != 6 {
		t.Errorf("after overflow: truncated %v, %d messages", l.Truncated, len(l.Messages))
	}
	// Pending: at most MaxPending dialogs wait, the oldest goes.
	for i := range 4 {
		st.Observe(pk(External, "udp", In, ext, peer), sipMsg("INVITE sip:1@x", fmt.Sprint("p", i), 50))
	}
	if _, pending, _ := st.Len(); pending != 2 {
		t.Errorf("%d pending, want 2", pending)
	}
	// Calls: at most MaxCalls, the oldest goes; total bytes stay bounded.
	for i := 2; i < 8; i++ {
		id, key := fmt.Sprint("call-", i), fmt.Sprint("k", i)
		st.Link(id, key)
		for range 4 {
			st.Observe(pk(External, "udp", In, ext, peer), sipMsg("ACK sip:x", key, 200))
		}
		if c, _, b := st.Len(); c > 3 || b > 2500 {
			t.Fatalf("after call %d: %d calls, %d bytes", i, c, b)
		}
	}
	if _, ok := st.Ladder("call-1"); ok {
		t.Error("oldest call kept")
	}
	if _, ok := st.Ladder("call-7"); !ok {
		t.Error("newest call evicted")
	}
}

func TestFramer(t *testing.T) {
	a, b := sipMsg("INVITE sip:a", "a", 0), []byte("SIP/2.0 200 OK\r\nCall-ID: b\r\nl: 4\r\n\r\nbody")
	stream := append(append(append([]byte("\r\n\r\n"), a...), "\r\n"...), b...)
	for step := 1; step <= len(stream); step++ {
		var f Framer
		var got [][]byte
		for i := 0; i < len(stream); i += step {
			f.Write(stream[i:min(i+step, len(stream))], func(m []byte) { got = append(got, bytes.Clone(m)) })
		}
		if len(got) != 2 || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) {
			t.Fatalf("step %d: framed %q", step, got)
		}
	}
	var f Framer
	f.Write([]byte("INVITE sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n"), func([]byte) { t.Error("framed an unframeable message") })
	if f.Dropped == 0 || len(f.buf) != 0 {
		t.Errorf("dropped %d, buffered %d", f.Dropped, len(f.buf))
	}
}

func TestTrace(t *testing.T) {
	st := New(Config{})
	sub := st.Subscribe(Filter{User: "ALICE", Address: peer.Addr().String(), PerSecond: 3, Buffer: 10})
	defer sub.Cancel()
	other := st.Subscribe(Filter{Address: "203.0.113.1"})
	other.Cancel()
	msg := crlf("REGISTER sip:example.com SIP/2.0\nFrom: <sip:alice@example.com>;tag=1\nAuthorization: Digest response=\"secret1\"\nCall-ID: r1\n\n")
	st.Observe(pk(External, "udp", In, ext, peer), msg)
	st.Observe(pk(External, "udp", In, ext, netip.MustParseAddrPort("203.0.113.1:5060")), msg)                       // other address
	st.Observe(pk(External, "udp", In, ext, peer), crlf("OPTIONS sip:x SIP/2.0\nFrom: <sip:bob@x>\nCall-ID: o\n\n")) // other user
	for range 5 {
		st.Observe(pk(External, "udp", In, ext, peer), msg)
	}
	if len(sub.C) != 3 || sub.Dropped() != 3 {
		t.Fatalf("delivered %d, dropped %d; want 3 and 3 (rate bound)", len(sub.C), sub.Dropped())
	}
	m := <-sub.C
	if strings.Contains(m.Text, "secret1") || m.Summary != "REGISTER sip:example.com" {
		t.Errorf("traced %+v", m)
	}
	if len(other.C) != 0 || st.Subscribers() != 1 {
		t.Errorf("cancelled trace got %d; %d subscribers", len(other.C), st.Subscribers())
	}
	if c, p, _ := st.Len(); c != 0 || p != 0 {
		t.Error("a traced REGISTER was stored")
	}
}

// TestSVGEscapes: header text an attacker sent cannot break out of the
// chart's markup.
func TestSVGEscapes(t *testing.T) {
	st := New(Config{})
	st.Link("c1", "evil")
	evil := "INVITE sip:\"><script>alert(1)</script>&amp;\xff@x SIP/2.0\r\nCall-ID: evil\r\nTo: <sip:x>\r\n\r\n"
	st.Observe(pk(External, "udp", In, ext, peer), []byte(evil))
	l, _ := st.Ladder("c1")
	var b bytes.Buffer
	if err := SVG(&b, l); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b.Bytes(), []byte("<script")) {
		t.Fatalf("markup injected:\n%s", b.Bytes())
	}
	dec := xml.NewDecoder(&b)
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "script" {
			t.Fatal("script element")
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "line" {
			n++
		}
	}
	if n != 5 { // four lifelines, one arrow
		t.Errorf("%d lines", n)
	}
}

// TestPcapTshark: UDP, TCP and IPv6 messages read back by tshark as SIP,
// none malformed, checksums right.
func TestPcapTshark(t *testing.T) {
	bin := testpeer.Require(t, "tshark")[0]
	st := New(Config{})
	st.Link("c", "k")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:5060")
	v6peer := netip.MustParseAddrPort("[2001:db8::2]:5070")
	body := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
	inv := fmt.Sprintf("INVITE sip:1@x SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:1@x>\r\nCall-ID: k\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	ok := "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 10.0.0.10:5060;branch=z9hG4bK2\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:1@x>;tag=2\r\nCall-ID: k\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	st.Observe(pk(External, "udp", In, ext, peer), []byte(inv))
	st.Observe(pk(Internal, "tcp", Out, in4, cs), []byte(inv))
	st.Observe(pk(Internal, "tcp", In, in4, cs), []byte(ok))
	st.Observe(pk(Internal, "tcp", In, in4, cs), []byte(ok))
	st.Observe(pk(External, "tls", Out, v6, v6peer), []byte(ok))
	st.Observe(pk(External, "udp", Out, v6, v6peer), []byte(ok))
	l, _ := st.Ladder("c")
	file := filepath.Join(t.TempDir(), "c.pcap")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := Pcap(f, l); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(bin, "-r", file, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-T", "fields", "-e", "frame.protocols", "-e", "_ws.malformed", "-e", "_ws.expert.severity").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "raw:") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 6 {
		t.Fatalf("tshark read %d packets:\n%s", len(lines), out)
	}
	for i, line := range lines {
		f := append(strings.Split(line, "\t"), "", "")
		if !strings.Contains(f[0], ":sip") || f[1] != "" || strings.Contains(f[2], "8388608") { // PI_ERROR
			t.Errorf("packet %d: %q", i+1, line)
		}
	}
	// sip is on 5060 here; tshark must see IPv6 and TCP too.
	if !strings.Contains(string(out), "ipv6:udp:sip") || !strings.Contains(string(out), "ip:tcp:sip") {
		t.Errorf("protocols:\n%s", out)
	}
}

func FuzzMask(f *testing.F) {
	f.Add(crlf(invite))
	f.Add([]byte("REGISTER sip:x SIP/2.0\r\nAuthorization: Digest response=\"a\\\"b\", nonce=x\r\n\r\n"))
	f.Add([]byte("INVITE sip:x SIP/2.0\r\n\r\na=crypto:1 X inline:abc;inline:def|1\na=key-mgmt:mikey ABC"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := Mask(b)
		if len(out) != len(b) {
			t.Fatalf("length %d, want %d", len(out), len(b))
		}
		for i := range b {
			if out[i] != b[i] && out[i] != maskByte && out[i] != keyMask {
				t.Fatalf("byte %d changed to %q", i, out[i])
			}
		}
	})
}

func FuzzSummary(f *testing.F) {
	f.Add(crlf(invite))
	f.Add([]byte("SIP/2.0 180 Ringing\r\ni: x\r\nCSeq: 1 INVITE\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := Summary(b)
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00") || len(s) > maxLine+3*maxLine {
			t.Fatalf("Summary %q", s)
		}
		if len(CallID(b)) > 256 {
			t.Fatal("long Call-ID")
		}
		CSeqMethod(b)
		startsDialog(b)
	})
}

func FuzzFramer(f *testing.F) {
	f.Add([]byte("\r\n\r\nINVITE sip:x SIP/2.0\r\nl: 2\r\n\r\nabSIP/2.0 200 OK\r\n\r\n"), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		n := int(step%64) + 1
		var fr Framer
		total := 0
		for i := 0; i < len(b); i += n {
			fr.Write(b[i:min(i+n, len(b))], func(m []byte) {
				if !bytes.Contains(m, []byte("\r\n\r\n")) || len(m) > maxFrame {
					t.Fatalf("framed %q", m)
				}
				total += len(m)
			})
			if len(fr.buf) > maxFrame+n {
				t.Fatalf("buffered %d", len(fr.buf))
			}
		}
		if total+fr.Dropped+len(fr.buf) > len(b) {
			t.Fatalf("framed %d + dropped %d + buffered %d of %d bytes", total, fr.Dropped, len(fr.buf), len(b))
		}
	})
}

// BenchmarkObserveOther is the cost capture adds to a message that
// belongs to no call (REGISTER, OPTIONS) while no trace runs.
func BenchmarkObserveOther(b *testing.B) {
	st := New(Config{})
	msg := crlf("OPTIONS sip:x SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:x>\nCall-ID: opt-1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
	b.ReportAllocs()
	for b.Loop() {
		st.Observe(pk(External, "udp", In, ext, peer), msg)
	}
}

// BenchmarkObserveCall is the cost of keeping one message of a call.
func BenchmarkObserveCall(b *testing.B) {
	st := New(Config{MaxCallBytes: 1 << 30, MaxBytes: 1 << 30})
	st.Link("c", "call-1@example")
	msg := crlf(invite)
	b.ReportAllocs()
	for b.Loop() {
		st.Observe(pk(External, "udp", In, ext, peer), msg)
	}
}

// wsFrame builds one WebSocket frame, masked when key is not nil.
func wsFrame(fin bool, op byte, payload []byte, key []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	m := byte(0)
	if key != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		f = append(f, m|byte(n))
	case n < 1<<16:
		f = append(f, m|126, byte(n>>8), byte(n))
	default:
		f = append(f, m|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if key != nil {
		f = append(f, key...)
		for i, c := range payload {
			f = append(f, c^key[i%4])
		}
		return f
	}
	return append(f, payload...)
}

func TestWSFramer(t *testing.T) {
	a := sipMsg("REGISTER sip:x", "a", 0)
	b := sipMsg("INVITE sip:y", "b", 300) // 16-bit length
	key := []byte{1, 2, 3, 4}
	var stream []byte
	stream = append(stream, "GET / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: sip\r\n\r\n"...)
	stream = append(stream, wsFrame(true, wsText, a, key)...)
	stream = append(stream, wsFrame(true, 0x9, []byte("ping"), key)...) // control: skipped
	stream = append(stream, wsFrame(false, wsText, b[:100], key)...)
	stream = append(stream, wsFrame(true, 0xA, nil, key)...) // a pong between fragments
	stream = append(stream, wsFrame(true, wsContinuation, b[100:], key)...)
	for step := 1; step <= len(stream); step += 7 {
		var f WSFramer
		var got [][]byte
		for i := 0; i < len(stream); i += step {
			f.Write(stream[i:min(i+step, len(stream))], func(m []byte) { got = append(got, bytes.Clone(m)) })
		}
		if len(got) != 2 || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) || f.Dropped != 0 {
			t.Fatalf("step %d: framed %q, dropped %d", step, got, f.Dropped)
		}
	}
	// The server's side: a 101 response, unmasked frames.
	var f WSFramer
	var got [][]byte
	f.Write(append([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"), wsFrame(true, wsBinary, a, nil)...), func(m []byte) { got = append(got, bytes.Clone(m)) })
	if len(got) != 1 || !bytes.Equal(got[0], a) {
		t.Fatalf("server side framed %q", got)
	}
	// An oversized frame ends the framing of the connection.
	f = WSFramer{started: true}
	f.Write(wsFrame(true, wsText, make([]byte, maxFrame+1), nil), func([]byte) { t.Error("framed an oversized message") })
	f.Write(wsFrame(true, wsText, a, nil), func([]byte) { t.Error("framed after the connection broke") })
	if !f.broken || f.Dropped == 0 {
		t.Errorf("broken %v, dropped %d", f.broken, f.Dropped)
	}
}

func FuzzWSFramer(f *testing.F) {
	f.Add(append([]byte("GET / HTTP/1.1\r\n\r\n"), wsFrame(true, wsText, []byte("OPTIONS sip:x SIP/2.0\r\n\r\n"), []byte{9, 8, 7, 6})...), uint8(5))
	f.Add(wsFrame(false, wsText, []byte("abc"), nil), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		n := int(step%64) + 1
		var fr WSFramer
		for i := 0; i < len(b); i += n {
			fr.Write(b[i:min(i+n, len(b))], func(m []byte) {
				if len(m) > maxFrame {
					t.Fatalf("framed %d bytes", len(m))
				}
			})
			if len(fr.buf) > 2*maxFrame+n || len(fr.msg) > maxFrame {
				t.Fatalf("buffered %d, joining %d", len(fr.buf), len(fr.msg))
			}
		}
	})
}

// TestConnTapConcurrentWrites: messages written from several goroutines
// at once on one tapped connection are each observed whole (run with
// -race: the framer is not shared unguarded).
func TestConnTapConcurrentWrites(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go io.Copy(io.Discard, b)
	st := New(Config{})
	st.Link("c", "k")
	tc := WrapConn(a, st, External, "tcp")
	msg := sipMsg("INVITE sip:x", "k", 300)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				tc.Write(msg) // a message is one Write, as the SIP stack writes it
			}
		}()
	}
	wg.Wait()
	l, _ := st.Ladder("c")
	if len(l.Messages) != 80 {
		t.Fatalf("observed %d messages, want 80", len(l.Messages))
	}
	for _, m := range l.Messages {
		if m.Text != string(msg) {
			t.Fatalf("observed %q", m.Text)
		}
	}
}
