package sipedge

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// Torture messages written for Portico after the descriptions in RFC 4475
// (not copied from it). %s is replaced by the sender's address and %d by a
// unique number. want lists the acceptable answers: a status code, 400 or 0
// (dropped) for invalid messages.
var tortureVectors = []struct {
	name  string
	valid bool
	want  []int
	msg   string
}{
	{name: "wsinv: whitespace, folding, case", valid: true, want: []int{403}, msg: "INVITE sip:vivekg@portico.test;unknownparam SIP/2.0\r\n" +
		"TO :\r\n sip:vivekg@portico.test ;   tag    = 1918181833n\r\n" +
		"from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n" +
		"MaX-fOrWaRdS: 0068\r\nCall-ID: wsinv.ndaksdj%d\r\nContent-Length   : 0\r\n" +
		"cseq: 0009\r\n  INVITE\r\nVia  : SIP  /   2.0\r\n /UDP\r\n    %s;branch=z9hG4bKkdjuw%d\r\n" +
		"s :\r\nNewFangledHeader:   newfangled value\r\n continued newfangled value\r\nUnknownHeaderWithUnusualValue: ;;,,;;,;\r\n" +
		"Contact: <sip:jdrosen@example.com>\r\n\r\n"},
	{name: "intmeth: unknown method token", valid: true, want: []int{405, 481}, msg: "!interesting-Method0123456789_*+`.%%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@portico.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK-.!%%66*_+`'~%d\r\nTo: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@portico.test>\r\n" +
		"From: token1~` token2'+_ token3*%%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%%=\"\xD1\x80\xD0\xB0\xD0\xB1\xD0\xBE\xD1\x82\xD0\xB0\xD1\x8E\xD1\x89\xD0\xB8\xD0\xB9\";tag=_token~1'+`*%%!-.\r\n" +
		"Call-ID: intmeth.word%%ZK-!.*_+'@word`~)(><:\\/\"][?}{%d\r\nCSeq: 139122385 !interesting-Method0123456789_*+`.%%indeed'~\r\nMax-Forwards: 255\r\nContent-Length: 0\r\n\r\n"},
	{name: "esc01: escaped user part", valid: true, want: []int{403}, msg: "INVITE sip:sips%%3Auser%%40example.com@portico.test SIP/2.0\r\n" +
		"To: sip:%%75se%%72@portico.test\r\nFrom: <sip:I%%20have%%20spaces@example.net>;tag=938\r\nMax-Forwards: 87\r\n" +
		"i: esc01.239409asdfakjkn23onasd0-3234%d\r\nCSeq: 234234 INVITE\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKnash%d\r\n" +
		"m: <sip:cal%%6Cer@example.net;%%6C%%72;n%%61me=v%%61lue%%25%%34%%31>\r\nl: 0\r\n\r\n"},
	{name: "compact headers and OPTIONS", valid: true, want: []int{200}, msg: "OPTIONS sip:portico.test SIP/2.0\r\n" +
		"v: SIP/2.0/UDP %s;branch=z9hG4bKcomp%d\r\nf: <sip:a@example.com>;tag=1\r\nt: <sip:portico.test>\r\ni: compact%d\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"},
	{name: "longreq: long header values", valid: true, want: []int{403}, msg: "INVITE sip:user@portico.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKlong%d\r\nTo: \"I have a user name of " + strings.Repeat("extreme", 60) + " proportion\"<sip:user@portico.test>\r\n" +
		"From: sip:caller@example.net;tag=12" + strings.Repeat("982", 40) + "\r\nCall-ID: longreq.one%d\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n" +
		"Contact: <sip:amazinglylongcallername" + strings.Repeat("a", 300) + "@example.net>\r\nX-Long: " + strings.Repeat("x", 3000) + "\r\nContent-Length: 0\r\n\r\n"},
	{name: "unksm: unknown URI scheme", valid: true, want: []int{403, 404, 416}, msg: "INVITE nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKunk%d\r\nTo: sip:user@portico.test\r\nFrom: <sip:caller@example.net>;tag=384\r\nCall-ID: unksm.%d\r\n" +
		"CSeq: 3923239 INVITE\r\nMax-Forwards: 7\r\nContact: <sip:caller@example.net>\r\nContent-Length: 0\r\n\r\n"},
	{name: "zeromf: Max-Forwards 0", valid: true, want: []int{483, 403}, msg: "INVITE sip:1500@portico.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKzmf%d\r\nTo: <sip:1500@portico.test>\r\nFrom: <sip:caller@example.net>;tag=1\r\nCall-ID: zeromf.%d\r\n" +
		"CSeq: 1 INVITE\r\nMax-Forwards: 0\r\nContact: <sip:caller@example.net>\r\nContent-Length: 0\r\n\r\n"},
	{name: "clerr: Content-Length larger than body", want: []int{0, 400}, msg: "INVITE sip:user@portico.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKcl%d\r\nTo: <sip:user@portico.test>\r\nFrom: <sip:caller@example.net>;tag=1\r\nCall-ID: clerr.%d\r\n" +
		"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:caller@example.net>\r\nContent-Type: application/sdp\r\nContent-Length: 9999\r\n\r\nv=0\r\n"},
	{name: "ncl: negative Content-Length", want: []int{0, 400}, msg: "INVITE sip:user@portico.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKncl%d\r\nTo: <sip:user@portico.test>\r\nFrom: <sip:caller@example.net>;tag=1\r\nCall-ID: ncl.%d\r\n" +
		"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: -999\r\n\r\n"},
	{name: "scalar02: overflowing CSeq", want: []int{0, 400}, msg: "REGISTER sip:portico.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKsc%d\r\nTo: <sip:user@portico.test>\r\nFrom: <sip:user@portico.test>;tag=1\r\nCall-ID: scalar.%d\r\n" +
		"CSeq: 36893488147419103232 REGISTER\r\nMax-Forwards: 300\r\nExpires: 1000000000000000000000\r\nContact: <sip:user@example.net>\r\nContent-Length: 0\r\n\r\n"},
	{name: "insuf: missing Call-ID and From", want: []int{0, 400}, msg: "INVITE sip:user@portico.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKins%d\r\nTo: <sip:user@portico.test>\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nX-N: %d\r\nContent-Length: 0\r\n\r\n"},
	{name: "badvers: SIP/7.0", want: []int{0, 400, 505}, msg: "OPTIONS sip:t.watson@portico.test SIP/7.0\r\n" +
		"Via: SIP/7.0/UDP %s;branch=z9hG4bKbv%d\r\nTo: <sip:t.watson@portico.test>\r\nFrom: <sip:caller@example.net>;tag=1\r\nCall-ID: badvers.%d\r\n" +
		"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"},
	{name: "mismatch01: CSeq method differs", want: []int{0, 400}, msg: "OPTIONS sip:user@portico.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKmm%d\r\nTo: <sip:user@portico.test>\r\nFrom: <sip:caller@example.net>;tag=1\r\nCall-ID: mismatch.%d\r\n" +
		"CSeq: 8 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"},
	{name: "quotbal: unterminated quoted display name", want: []int{0, 400}, msg: "INVITE sip:user@portico.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKqb%d\r\nTo: \"Mr. J. User <sip:j.user@portico.test>\r\nFrom: <sip:caller@example.net>;tag=1\r\nCall-ID: quotbal.%d\r\n" +
		"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"},
	{name: "ltgtruri: Request-URI in angle brackets", want: []int{0, 400}, msg: "INVITE <sip:user@portico.test> SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKlt%d\r\nTo: <sip:user@portico.test>\r\nFrom: <sip:caller@example.net>;tag=1\r\nCall-ID: ltgt.%d\r\n" +
		"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"},
	{name: "badsdp: INVITE with garbage SDP", want: []int{400, 403, 488}, msg: "INVITE sip:user@portico.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKbs%d\r\nTo: <sip:user@portico.test>\r\nFrom: <sip:caller@example.net>;tag=1\r\nCall-ID: badsdp.%d\r\n" +
		"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:c@example.net>\r\nContent-Type: application/sdp\r\nContent-Length: 12\r\n\r\nv=9\r\nm=x y z"},
	{name: "garbage datagram", want: []int{0}, msg: "\x00\x01\x02 not sip at all %s %d %d"},
}

// TestTorture sends each vector from outside; valid ones get the expected
// answer, invalid ones 400 or nothing, and Portico keeps answering.
func TestTorture(t *testing.T) {
	_, cs := fakeCallServer(t, "cs")
	p := startPortico(t, Config{CallServers: []CallServer{cs}, ProbeInterval: -1})
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(outsideIP)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst := udpAddr(p.extUDP.String())
	local := c.LocalAddr().String()
	buf := make([]byte, 65535)
	for i, v := range tortureVectors {
		t.Run(v.name, func(t *testing.T) {
			uniq := fmt.Sprint(1000000 + i*1000 + int(time.Now().UnixNano()%1000))
			msg := strings.Replace(v.msg, "%s", local, 1)
			msg = strings.ReplaceAll(msg, "%d", uniq)
			msg = strings.ReplaceAll(msg, "%%", "%")
			c.WriteToUDP([]byte(msg), dst)
			code := 0
			c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
			for {
				n, _, err := c.ReadFromUDP(buf)
				if err != nil {
					break
				}
				var got int
				if !strings.Contains(string(buf[:n]), uniq) {
					continue // a retransmission answering an earlier vector
				}
				if _, err := fmt.Sscanf(string(buf[:n]), "SIP/2.0 %d", &got); err == nil && got >= 200 {
					code = got
					break
				}
			}
			ok := false
			for _, w := range v.want {
				ok = ok || w == code
			}
			if !ok {
				t.Errorf("answered %d, want one of %v", code, v.want)
			}
			if err := optionsPing(p.extUDP.String()); err != nil {
				t.Fatalf("Portico stopped answering after %s: %v", v.name, err)
			}
		})
	}
}
