package sipedge

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// strayOK is a 2xx to an INVITE Portico's internal side would have sent,
// for a call Portico does not know, from a callee at contact.
func strayOK(viaHost string, viaPort int, callID, contact string) string {
	return fmt.Sprintf("SIP/2.0 200 OK\r\n"+
		"Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-stray-%s;rport\r\n"+
		"From: <sip:alice@example.com>;tag=ptag1\r\n"+
		"To: <sip:bob@example.com>;tag=btag1\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 7 INVITE\r\n"+
		"Contact: <sip:bob@%s;transport=udp>\r\n"+
		"Content-Length: 0\r\n\r\n", viaHost, viaPort, callID, callID, contact)
}

// readRequests reads the SIP requests conn receives within d.
func readRequests(t *testing.T, conn *net.UDPConn, d time.Duration) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 65535)
	end := time.Now().Add(d)
	for {
		_ = conn.SetReadDeadline(end)
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			return out
		}
		out = append(out, string(buf[:n]))
	}
}

func method(msg string) string {
	m, _, _ := strings.Cut(msg, " ")
	return m
}

// TestStrayAnswerEnded: a 2xx on the internal side for an INVITE no call
// knows (a call that was ringing on a failed HA peer) is acknowledged and
// its dialog ended with one BYE; its retransmission gets the ACK again but
// no second BYE; the same 2xx on the external side gets nothing.
func TestStrayAnswerEnded(t *testing.T) {
	callee, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(insideIP)})
	if err != nil {
		t.Fatal(err)
	}
	defer callee.Close()
	// The callee's socket stands in for the call server too: the test
	// plays the inside by hand (a raw 2xx), no real peer sends a stray one.
	p := startPortico(t, Config{CallServers: []CallServer{{Address: callee.LocalAddr().String(), Transport: "udp"}}})
	contact := callee.LocalAddr().String()
	ok := strayOK(p.s.int.host, int(p.intUDP.Port()), "stray-1", contact)
	intAddr := net.UDPAddrFromAddrPort(p.intUDP)
	if _, err := callee.WriteToUDP([]byte(ok), intAddr); err != nil {
		t.Fatal(err)
	}
	got := readRequests(t, callee, 2*time.Second)
	var acks, byes int
	for _, m := range got {
		switch method(m) {
		case "ACK":
			acks++
			if !strings.Contains(m, "CSeq: 7 ACK") || !strings.Contains(m, "tag=btag1") {
				t.Errorf("ACK not for the 2xx's dialog:\n%s", m)
			}
		case "BYE":
			byes++
			if !strings.Contains(m, "Call-ID: stray-1") || !strings.Contains(m, "tag=btag1") || !strings.Contains(m, "CSeq: 8 BYE") {
				t.Errorf("BYE not in the 2xx's dialog:\n%s", m)
			}
		}
	}
	if acks != 1 || byes < 1 {
		t.Fatalf("after a stray 2xx the callee got %d ACK and %d BYE, want 1 and at least 1: %q", acks, byes, got)
	}

	// The retransmitted 2xx: ACK again, no new BYE transaction (the BYE
	// already sent may still be retransmitted; answer it to stop that).
	for _, m := range got {
		if method(m) == "BYE" {
			answerBye(t, callee, intAddr, m)
			break
		}
	}
	if _, err := callee.WriteToUDP([]byte(ok), intAddr); err != nil {
		t.Fatal(err)
	}
	acks, byes = 0, 0
	for _, m := range readRequests(t, callee, time.Second) {
		switch method(m) {
		case "ACK":
			acks++
		case "BYE":
			byes++
		}
	}
	if acks != 1 || byes != 0 {
		t.Errorf("after the 2xx's retransmission: %d ACK and %d BYE, want 1 and 0", acks, byes)
	}

	// Outside, the same 2xx is dropped.
	outside, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(outsideIP)})
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	okOut := strayOK(p.s.ext.host, int(p.extUDP.Port()), "stray-2", outside.LocalAddr().String())
	if _, err := outside.WriteToUDP([]byte(okOut), net.UDPAddrFromAddrPort(p.extUDP)); err != nil {
		t.Fatal(err)
	}
	if got := readRequests(t, outside, time.Second); len(got) != 0 {
		t.Errorf("a stray 2xx from outside drew %d requests: %q", len(got), got)
	}
	if n := testutil.ToFloat64(p.s.m.strayDialogs); n != 2 {
		t.Errorf("portico_sip_stray_answers_total = %v, want 2", n)
	}
}

// answerBye sends 200 to the BYE msg.
func answerBye(t *testing.T, conn *net.UDPConn, to *net.UDPAddr, msg string) {
	t.Helper()
	var hdrs []string
	for _, line := range strings.Split(msg, "\r\n") {
		for _, h := range []string{"Via:", "From:", "To:", "Call-ID:", "CSeq:"} {
			if strings.HasPrefix(line, h) {
				hdrs = append(hdrs, line)
			}
		}
	}
	res := "SIP/2.0 200 OK\r\n" + strings.Join(hdrs, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
	if _, err := conn.WriteToUDP([]byte(res), to); err != nil {
		t.Fatal(err)
	}
}
