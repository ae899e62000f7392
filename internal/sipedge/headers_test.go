package sipedge

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestCopyHeadersAllowList: only headers on the crossing list are copied,
// and cleaned where the list says so.
func TestCopyHeadersAllowList(t *testing.T) {
	src := sip.NewResponse(200, "OK")
	for _, h := range []sip.Header{
		sip.NewHeader("Warning", `392 10.0.0.1:5060 "x"`), sip.NewHeader("Server", "cs"), sip.NewHeader("P-Asserted-Identity", "<sip:1@10.0.0.1>"),
		sip.NewHeader("Retry-After", "120 (down for maintenance);duration=3600"), sip.NewHeader("Date", "yesterday"),
		sip.NewHeader("Supported", "path, outbound"), sip.NewHeader("Min-Expires", "60"),
	} {
		src.AppendHeader(h)
	}
	dst := sip.NewResponse(200, "OK")
	copyHeaders(dst, src, "Warning", "Server", "P-Asserted-Identity", "Retry-After", "Date", "Supported", "min-expires")
	got := map[string]string{}
	for _, h := range dst.Headers() {
		got[h.Name()] = h.Value()
	}
	want := map[string]string{"Retry-After": "120", "Supported": "path, outbound", "Min-Expires": "60"}
	if len(got) != len(want) {
		t.Errorf("copied %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for name, rule := range crossing {
		if name != strings.ToLower(name) || rule.why == "" {
			t.Errorf("crossing[%q]: names are lower case and each has a reason", name)
		}
	}
}

func TestDeltaSeconds(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"120", "120", true},
		{" 30 ", "30", true},
		{"30 (maintenance on cs1.inside)", "30", true},
		{"18000;duration=3600", "18000;duration=3600", true},
		{"18000 (x);duration=3600", "18000", true},
		{"60;by=<sip:10.0.0.1>", "60", true},
		{"soon", "", false},
		{"", "", false},
		{"99999999999", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			out, ok := deltaSeconds(tc.in)
			if out != tc.out || ok != tc.ok {
				t.Errorf("deltaSeconds(%q) = %q, %v; want %q, %v", tc.in, out, ok, tc.out, tc.ok)
			}
		})
	}
}

func TestReasonPhrase(t *testing.T) {
	for code, want := range map[int]string{180: "Ringing", 302: "Moved Temporarily", 483: "Too Many Hops", 499: "Request Failure", 555: "Server Failure", 699: "Global Failure", 199: "Early Dialog Terminated"} {
		if got := reasonPhrase(code); got != want {
			t.Errorf("reasonPhrase(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestFakeChallenge(t *testing.T) {
	for _, tc := range []struct{ name, tmpl, want string }{
		{"kamailio", `Digest realm="portico.test", nonce="Zx1yAbCdEf0123456789abcdefABCDEF", qop="auth"`, `Digest realm="portico.test", nonce="********************************", qop="auth"`},
		{"opaque and unquoted", `Digest realm="r", nonce="abcd0123ef", opaque=ff00ff0011, algorithm=MD5`, `Digest realm="r", nonce="**********", opaque=**********, algorithm=MD5`},
		{"cnonce is not nonce", `Digest realm="r", xcnonce="keep", nonce="1234567890"`, `Digest realm="r", xcnonce="keep", nonce="**********"`},
		{"no template", ``, `Digest realm="portico.test", nonce="********************************", algorithm=MD5`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fakeChallenge(tc.tmpl, "portico.test")
			if masked := maskHex(got, tc.want); masked != tc.want {
				t.Errorf("fakeChallenge(%q) = %q, want the shape %q", tc.tmpl, got, tc.want)
			}
			if tc.tmpl != "" && got == tc.tmpl {
				t.Error("values not replaced")
			}
		})
	}
}

// maskHex replaces the characters of got by '*' where want has '*', if
// they are letters or digits.
func maskHex(got, want string) string {
	if len(got) != len(want) {
		return got
	}
	b := []byte(got)
	for i, c := range b {
		if want[i] == '*' && ('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			b[i] = '*'
		}
	}
	return string(b)
}

func TestRandomLike(t *testing.T) {
	for _, tc := range []struct{ name, tmpl, chars string }{
		{"hex", "5f1e2d3c4b5a69788796a5b4c3d2e1f0", "0123456789abcdef"},
		{"upper hex", "5F1E2D3C4B5A6978", "0123456789ABCDEF"},
		{"kamailio base64", "axZFQmsWRBaQfn90Pi7IllzVVkHNnXdm", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"},
		{"base64 padded", "aGVsbG8/d29ybGQ+==", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/+="},
		{"punctuation only", "...", "0123456789abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := randomLike(tc.tmpl, len(tc.tmpl))
			if len(got) != len(tc.tmpl) || strings.Trim(got, tc.chars) != "" || got == tc.tmpl {
				t.Errorf("randomLike(%q) = %q, want %d of %q", tc.tmpl, got, len(tc.tmpl), tc.chars)
			}
			if strings.HasSuffix(tc.tmpl, "==") != strings.HasSuffix(got, "==") {
				t.Errorf("padding of %q not kept: %q", tc.tmpl, got)
			}
		})
	}
}

func TestRedirectContacts(t *testing.T) {
	res := sip.NewResponse(302, "Moved")
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "1240", Host: "10.1.2.3", Port: 5070,
		UriParams: sip.HeaderParams{{K: "transport", V: "tcp"}}}, Params: sip.HeaderParams{{K: "q", V: "0.7"}, {K: "expires", V: "60"}}})
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "10.1.2.3"}})
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "tel", User: "+4930123"}})
	out := redirectContacts(res, "203.0.113.5")
	if len(out) != 1 || out[0].Value() != "<sip:1240@203.0.113.5>;q=0.7" {
		t.Errorf("redirectContacts = %v", out)
	}
}

func TestDatagramFault(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"keepalive", "\r\n\r\n", ""},
		{"request", "OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", ""},
		{"response", "SIP/2.0 200 OK\r\n\r\n", ""},
		{"http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", dropNotSIP},
		{"tls", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", dropNotSIP},
		{"stun binding", "\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl", dropSTUN},
		{"stun with bad length", "\x00\x01\x00\x08\x21\x12\xa4\x42abcdefghijkl", dropNotSIP},
		{"no uri", "OPTIONS SIP/2.0\r\n\r\n", dropNotSIP},
		{"bad status", "SIP/2.0 OK\r\n\r\n", dropNotSIP},
		{"ack complete", "ACK sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\nt: <sip:b@c>\r\ni: 1\r\nCSeq: 1 ACK\r\n\r\n", ""},
		{"ack without CSeq", "ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: 1\r\n\r\n", dropBadACK},
		{"ack CSeq only in body", "ACK sip:a@b SIP/2.0\r\nVia: x\r\nFrom: a\r\nTo: b\r\nCall-ID: 1\r\n\r\nCSeq: 1 ACK\r\n", dropBadACK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := datagramFault([]byte(tc.in)); got != tc.want {
				t.Errorf("datagramFault(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestStreamACKs(t *testing.T) {
	const bad = "ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n"
	const opt = "OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody"
	good := strings.Replace(bad, "Call-ID: 1\r\n", "Call-ID: 1\r\nCSeq: 1 ACK\r\n", 1)
	for _, tc := range []struct{ name, in, want string }{
		{"malformed ACK alone", bad, ""},
		{"after a keepalive", "\r\n\r\n" + bad, "\r\n\r\n"},
		{"before another message", bad + opt, opt},
		{"between messages", opt + bad + opt, opt + opt},
		{"before a partial message", bad + opt[:30], opt[:30]},
		{"partial", bad[:40], bad[:40]},
		{"good ACK", good + opt, good + opt},
		{"not an ACK", strings.Replace(bad, "ACK ", "BYE ", 1), strings.Replace(bad, "ACK ", "BYE ", 1)},
		{"after a body chunk", "dy\r\n" + bad, "dy\r\n" + bad},
		{"junk", "\x16\x03\x01junk", "\x16\x03\x01junk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, cut := streamACKs([]byte(tc.in))
			if string(got) != tc.want || cut != (tc.in != tc.want) {
				t.Errorf("streamACKs(%q) = %q, %v; want %q", tc.in, got, cut, tc.want)
			}
		})
	}
}

// FuzzDatagramFault: the junk filter never panics, and whatever it lets
// through starts with a SIP start line (or is a keepalive); the stream
// check never panics either.
func FuzzDatagramFault(f *testing.F) {
	for _, v := range tortureVectors {
		f.Add([]byte(v.msg))
	}
	f.Add([]byte("ACK sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if kept, _ := streamACKs(b); len(kept) > len(b) {
			t.Errorf("streamACKs grew %q to %q", b, kept)
		}
		if datagramFault(b) != "" || len(strings.Trim(string(b), "\r\n")) == 0 {
			return
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if !sipStartLine([]byte(strings.TrimSuffix(line, "\r"))) {
			t.Errorf("let through %q", b)
		}
	})
}

// FuzzFakeChallenge: a challenge template from the inside never panics
// the rewrite, and a nonce of eight or more characters is never reused.
func FuzzFakeChallenge(f *testing.F) {
	f.Add(`Digest realm="portico.test", nonce="5f1e2d3c4b5a6978", opaque="00aa", qop="auth", algorithm=MD5`)
	f.Add(`Digest nonce=`)
	f.Add(`Digest nonce="`)
	f.Add(`nonce=abc,nonce=def`)
	f.Fuzz(func(t *testing.T, tmpl string) {
		out := fakeChallenge(tmpl, "r")
		if i := strings.Index(tmpl, `nonce="`); i >= 0 && (i == 0 || tmpl[i-1] == ' ' || tmpl[i-1] == ',') {
			v, _, ok := strings.Cut(tmpl[i+len(`nonce="`):], `"`)
			if ok && len(v) >= 8 && strings.Contains(out, `nonce="`+v+`"`) {
				t.Errorf("nonce %q reused in %q", v, out)
			}
		}
	})
}

func TestScannerAgents(t *testing.T) {
	s := &Server{}
	for ua, want := range map[string]bool{"friendly-scanner": true, "sipvicious 0.3.3": true, "SIPVicious": true, "VaxSIPUserAgent/3.1": true,
		"Linphone/5.1": false, "baresip v1.0.0": false, "": false} {
		req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "x"})
		if ua != "" {
			req.AppendHeader(sip.NewHeader("User-Agent", ua))
		}
		if got := s.isScanner(req); got != want {
			t.Errorf("isScanner(%q) = %v", ua, got)
		}
	}
}

// BenchmarkDatagramFault measures the junk filter on an ordinary REGISTER
// datagram, the price every UDP message pays before sipgo parses it.
func BenchmarkDatagramFault(b *testing.B) {
	msg := []byte("REGISTER sip:portico.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n" +
		"Max-Forwards: 70\r\nTo: <sip:alice@portico.test>\r\nFrom: <sip:alice@portico.test>;tag=1928301774\r\n" +
		"Call-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 314159 REGISTER\r\nContact: <sip:alice@192.0.2.10:5060>\r\n" +
		"Expires: 600\r\nUser-Agent: Linphone/5.1\r\nContent-Length: 0\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if datagramFault(msg) != "" {
			b.Fatal("dropped")
		}
	}
}

// BenchmarkStreamACKs measures the stream filter on a chunk holding an
// ACK (the case that is parsed; chunks without "ACK " return at once).
func BenchmarkStreamACKs(b *testing.B) {
	msg := []byte("ACK sip:alice@192.0.2.10:5060 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n" +
		"Max-Forwards: 70\r\nTo: <sip:alice@portico.test>;tag=8321234356\r\nFrom: <sip:bob@portico.test>;tag=1928301774\r\n" +
		"Call-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, cut := streamACKs(msg); cut {
			b.Fatal("cut")
		}
	}
}
