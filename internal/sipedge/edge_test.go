package sipedge

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func kamailioServer(k *kamailio) []CallServer {
	return []CallServer{{Address: k.addr.String(), Transport: "udp"}}
}

// TestRegisteredCallsBothWays: sipp outside registers through Portico to
// Kamailio and calls an inside sipp UAS; another outside sipp registers and
// is called from inside. RTP flows through the relay both ways; history and
// the topology-hiding capture are checked.
func TestRegisteredCallsBothWays(t *testing.T) {
	inside := startSippUAS(t)
	k := startKamailio(t, 64, `MCU_URI="sip:`+inside+`"`)
	p := startPortico(t, Config{CallServers: kamailioServer(k)})
	dir := sippDir(t)

	t.Run("outside calls inside", func(t *testing.T) {
		capt := startCapture(t, p.portLo, p.portHi)
		r := startSipp(t, dir, "-sf", "reg_call.xml", "-key", "user", "alice", "-s", "1001",
			"-i", outsideIP, "-p", freePort(t), "-mp", freePort(t), "-m", "1", "-d", "1500", p.extUDP.String())
		r.wait(t, "reg_call")
		calls := p.hist.waitCalls(t, 1)
		c := calls[0]
		if c.CallType != CallRegistered || c.EndedBy != endedByCaller || c.Disposition != "normal" || c.Status != 200 {
			t.Errorf("call record = %+v", c)
		}
		if c.AnsweredAt.IsZero() || c.DurationMs <= 0 || len(c.Streams) != 1 {
			t.Fatalf("call record = %+v", c)
		}
		st := c.Streams[0]
		if st.PacketsIn == 0 || st.PacketsOut == 0 {
			t.Errorf("media not relayed both ways: %+v", st)
		}
		t.Logf("relayed %d packets from the caller, %d back from the inside echo", st.PacketsIn, st.PacketsOut)
		// tshark counts the RTP on both sides of the relay.
		counts := capt.rtpCounts(t)
		for _, pair := range []string{outsideIP + ">" + extIP, intIP + ">" + insideIP, insideIP + ">" + intIP, extIP + ">" + outsideIP} {
			if counts[pair] < 10 {
				t.Errorf("tshark saw %d RTP packets %s; all: %v", counts[pair], pair, counts)
			}
		}
		t.Logf("tshark RTP packets: %v", counts)
		_, regs := p.hist.snapshot()
		if !hasKind(regs, "alice", "registered") {
			t.Errorf("no registered event: %+v", regs)
		}
		found := false
		for _, r := range p.s.Registrations() {
			if strings.Contains(r.AOR, "alice") && r.Transport == "udp" && r.FlowToken != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("alice not in Registrations(): %+v", p.s.Registrations())
		}
	})

	t.Run("inside calls outside", func(t *testing.T) {
		port := freePort(t)
		if code := registerFrom(t, p.extUDP.String(), "bob", outsideIP+":"+port, 3600); code != 200 {
			t.Fatalf("REGISTER answered %d", code)
		}
		waitRegistered(t, p, "bob")
		bob := startSipp(t, dir, "-sn", "uas", "-i", outsideIP, "-p", port, "-mp", freePort(t), "-rtp_echo", "-m", "1")
		caller := startSipp(t, dir, "-sn", "uac_pcap", "-s", "bob", "-i", insideIP, "-p", freePort(t), "-mp", freePort(t),
			"-m", "1", "-d", "1500", k.addr.String())
		caller.wait(t, "inside uac")
		bob.wait(t, "outside uas")
		calls := p.hist.waitCalls(t, 2)
		c := calls[1]
		if c.CallType != CallInbound || c.EndedBy != endedByCaller || c.Status != 200 || len(c.Streams) != 1 {
			t.Fatalf("call record = %+v", c)
		}
		if c.Streams[0].PacketsIn == 0 || c.Streams[0].PacketsOut == 0 {
			t.Errorf("media not relayed both ways: %+v", c.Streams[0])
		}
	})
	assertNoInside(t, p.tap)
}

// registerFrom sends one REGISTER from local (which the test then hands to
// a sipp UAS: the flow Portico keeps is that address) and returns the
// final status.
func registerFrom(t *testing.T, server, user, local string, expires int) int {
	t.Helper()
	la, err := net.ResolveUDPAddr("udp", local)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", la)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ra, _ := net.ResolveUDPAddr("udp", server)
	msg := fmt.Sprintf("REGISTER sip:portico.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%d;rport\r\n"+
		"From: <sip:%s@portico.test>;tag=%d\r\nTo: <sip:%s@portico.test>\r\nCall-ID: reg%d@x\r\nCSeq: 1 REGISTER\r\n"+
		"Contact: <sip:%s@%s>\r\nExpires: %d\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		local, time.Now().UnixNano(), user, time.Now().UnixNano(), user, time.Now().UnixNano(), user, local, expires)
	buf := make([]byte, 4096)
	for try := 0; try < 5; try++ {
		c.WriteToUDP([]byte(msg), ra)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				break
			}
			var code int
			if _, err := fmt.Sscanf(string(buf[:n]), "SIP/2.0 %d", &code); err == nil && code >= 200 {
				return code
			}
		}
	}
	return 0
}

func waitRegistered(t *testing.T, p *portico, user string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range p.s.Registrations() {
			if strings.Contains(r.AOR, user) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never registered; have %+v", user, p.s.Registrations())
}

// startSippUAS runs an inside sipp UAS with RTP echo on 127.0.0.5 that
// answers any number of calls until the test ends.
func startSippUAS(t *testing.T) string {
	t.Helper()
	port := freePort(t)
	startSipp(t, t.TempDir(), "-sn", "uas", "-i", insideIP, "-p", port, "-mp", freePort(t), "-rtp_echo")
	time.Sleep(200 * time.Millisecond)
	return insideIP + ":" + port
}
