package media

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/testpeer"
)

const sippUAC = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uac with pcap audio">
  <send retrans="500"><![CDATA[
INVITE sip:echo@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:echo@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:echo@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:echo@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/></action></nop>
  <pause milliseconds="8000"/>
  <send retrans="500"><![CDATA[
BYE sip:echo@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:echo@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
`

// The UAS answers with the relay's leg-0 address, so the UAC's RTP goes
// through the relay; -rtp_echo sends it back.
const sippUAS = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uas answering with the relay address">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio RELAYPORT RTP/AVP 8
a=rtpmap:8 PCMA/8000
]]></send>
  <recv request="ACK" optional="true" rtd="true" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
`

// TestSippThroughRelay plays sipp's G.711 pcap from a sipp UAC through the
// relay to a sipp UAS that echoes it, and counts with tshark on loopback
// every hop: UAC→relay, relay→UAS, UAS→relay, relay→UAC.
func TestSippThroughRelay(t *testing.T) {
	bins := testpeer.Require(t, "sipp", "tshark")
	sipp, tshark := bins[0], bins[1]
	r, _ := startRelay(t, testConfig(33000, 33100, 50), Deps{})
	dir := t.TempDir()
	uacMedia, uasMedia := evenFreePort(t, 33400), evenFreePort(t, 33600)
	uasSIP, uacSIP := testpeer.FreePort(t), testpeer.FreePort(t)
	id, infos, err := r.Allocate(SessionConfig{Label: "sipp", Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{
		Kind:   KindAudio,
		Remote: [2]netip.AddrPort{netip.AddrPortFrom(lo, uint16(uacMedia)), netip.AddrPortFrom(lo, uint16(uasMedia))},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	r0, r1 := int(infos[0].Local[0].Port()), int(infos[0].Local[1].Port())
	os.WriteFile(filepath.Join(dir, "uac.xml"), []byte(sippUAC), 0o644)
	os.WriteFile(filepath.Join(dir, "uas.xml"), []byte(strings.Replace(sippUAS, "RELAYPORT", strconv.Itoa(r0), 1)), 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	capt := testpeer.StartCapture(t, fmt.Sprintf("udp and (port %d or port %d)", r0, r1), r0)

	uas := exec.CommandContext(ctx, sipp, "-sf", filepath.Join(dir, "uas.xml"), "-i", "127.0.0.1", "-p", strconv.Itoa(uasSIP),
		"-mi", "127.0.0.1", "-mp", strconv.Itoa(uasMedia), "-rtp_echo", "-m", "1", "-bg", "-trace_err", "-nostdin")
	uas.Dir = dir
	var uasOut bytes.Buffer
	uas.Stdout, uas.Stderr = &uasOut, &uasOut
	if err := uas.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { uas.Process.Kill(); uas.Wait() }()
	time.Sleep(300 * time.Millisecond) // let the UAS bind before the INVITE (retransmitted anyway)
	uac := exec.CommandContext(ctx, sipp, "127.0.0.1:"+strconv.Itoa(uasSIP), "-sf", filepath.Join(dir, "uac.xml"), "-i", "127.0.0.1",
		"-p", strconv.Itoa(uacSIP), "-mi", "127.0.0.1", "-mp", strconv.Itoa(uacMedia), "-m", "1", "-l", "1", "-timeout", "40s", "-nostdin", "-trace_err")
	uac.Dir = dir
	out, err := uac.CombinedOutput()
	if err != nil {
		t.Fatalf("sipp uac: %v\n%s\nuas: %s", err, lastLines(out, 30), uasOut.String())
	}
	// The last echoes: the UAS echoes every packet, so the relay's return
	// leg ends at the count of the outward one.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, err := r.Session(id)
		if err != nil {
			t.Fatal(err)
		}
		if l := st.Streams[0].Legs; l[1].Forwarded >= l[0].Forwarded || time.Now().After(deadline) {
			break // a shortfall is reported below, from the capture
		}
	}
	capt.Stop(t)

	fields, err := exec.Command(tshark, "-r", capt.File, "-T", "fields", "-e", "ip.src", "-e", "udp.srcport", "-e", "udp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark read: %v", err)
	}
	count := map[[2]int]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(fields)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] == testpeer.ProbeIP {
			continue
		}
		s, _ := strconv.Atoi(f[1])
		d, _ := strconv.Atoi(f[2])
		switch {
		case s == r0 || s == r1:
			count[[2]int{s, d}]++
		case s == uacMedia || s == uasMedia:
			count[[2]int{0, d}]++ // into the relay from sipp
		default:
			// Another test of the package, running in parallel, once
			// used these ports (e.g. its STUN checks, which the relay
			// answers): not this call's media.
			count[[2]int{-1, s}]++
		}
	}
	toRelay, toUAS := count[[2]int{0, r0}], count[[2]int{r1, uasMedia}]
	echoed, toUAC := count[[2]int{0, r1}], count[[2]int{r0, uacMedia}]
	t.Logf("tshark: UAC→relay %d, relay→UAS %d, UAS→relay %d, relay→UAC %d", toRelay, toUAS, echoed, toUAC)
	if toRelay < 200 {
		t.Fatalf("sipp sent only %d RTP packets to the relay (pcap has 236)", toRelay)
	}
	if toUAS != toRelay || echoed != toUAS || toUAC != echoed || count[[2]int{r1, uacMedia}]+count[[2]int{r0, uasMedia}] != 0 {
		t.Fatalf("packets lost in the relay: %v", count)
	}
	st, err := r.Release(id)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Streams[0].Legs[0].Forwarded; got != uint64(toRelay) {
		t.Errorf("relay counted %d forwarded from the UAC, tshark saw %d", got, toRelay)
	}
}

func lastLines(b []byte, n int) string {
	l := strings.Split(string(b), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// evenFreePort finds an even port p such that p..p+3 are free for UDP
// (sipp uses p for audio and p+2 for video echo), starting at from.
func evenFreePort(t *testing.T, from int) int {
	for p := from; p < from+200; p += 4 {
		ok := true
		for q := p; q < p+4 && ok; q++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: q})
			if err != nil {
				ok = false
				continue
			}
			c.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free even port block")
	return 0
}
