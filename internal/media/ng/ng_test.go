package ng

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/media/ng/bencode"
	"github.com/portico-edge/portico/internal/media/rtp"
	"github.com/portico-edge/portico/internal/testpeer"
)

var lo = netip.MustParseAddr("127.0.0.1")

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs a relay and an ng listener on loopback; it returns the
// listener's address.
func start(t *testing.T, latching media.Latching, base int) (*media.Relay, *Server, netip.AddrPort) {
	t.Helper()
	return startWith(t, latching, base, Config{Interfaces: [2]string{"external", "internal"}})
}

// startWith is start with the listener's configuration given.
func startWith(t *testing.T, latching media.Latching, base int, cfg Config) (*media.Relay, *Server, netip.AddrPort) {
	t.Helper()
	r, err := media.New(media.Config{
		Interfaces: map[string]media.InterfaceConfig{
			"external": {Addr: lo, PortMin: base, PortMax: base + 99},
			"internal": {Addr: lo, PortMin: base + 100, PortMax: base + 199},
		},
		Latching: latching,
	}, media.Deps{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, Deps{Relay: r, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { r.Run(ctx); done <- struct{}{} }()
	go func() {
		if err := srv.Serve(ctx, pc); err != nil {
			t.Errorf("Serve: %v", err)
		}
		done <- struct{}{}
	}()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return r, srv, pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func udp(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

func expect(t *testing.T, c *net.UDPConn, want []byte) netip.AddrPort {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("read on %d: %v", port(c), err)
	}
	if string(buf[:n]) != string(want) {
		t.Fatalf("read %x..., want %x...", buf[:min(n, 12)], want[:12])
	}
	return from
}

var (
	reM    = regexp.MustCompile(`(?m)^m=audio (\d+) RTP/AVP`)
	reC    = regexp.MustCompile(`(?m)^c=IN IP4 (\S+)`)
	reRTCP = regexp.MustCompile(`(?m)^a=rtcp:(\d+)`)
)

// relayAddrs extracts the RTP and RTCP addresses from the "New SDP" the
// client printed.
func relayAddrs(t *testing.T, out string) (rtpAddr, rtcpAddr netip.AddrPort) {
	t.Helper()
	_, newSDP, ok := strings.Cut(out, "New SDP:")
	if !ok {
		t.Fatalf("no rewritten SDP in client output:\n%s", out)
	}
	m, c, rc := reM.FindStringSubmatch(newSDP), reC.FindStringSubmatch(newSDP), reRTCP.FindStringSubmatch(newSDP)
	if m == nil || c == nil || rc == nil {
		t.Fatalf("rewritten SDP lacks m=/c=/a=rtcp:\n%s", newSDP)
	}
	a := netip.MustParseAddr(c[1])
	p, _ := strconv.Atoi(m[1])
	rp, _ := strconv.Atoi(rc[1])
	return netip.AddrPortFrom(a, uint16(p)), netip.AddrPortFrom(a, uint16(rp))
}

func sdpFor(p int) string {
	return "v=0\r\no=- 1545997027 1 IN IP4 127.0.0.1\r\ns=tester\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(p) + " RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
}

// TestRtpengineNGClient drives the listener with Debian's rtpengine-ng-client
// (the Perl client rtpengine ships) and then sends media through the ports
// the rewritten SDP names.
func TestRtpengineNGClient(t *testing.T) {
	r, _, ngAddr := start(t, media.LatchNAT, 32000)
	client := ngClient(ngAddr, testpeer.Require(t, "rtpengine-ng-client")[0])
	run := func(args ...string) string { t.Helper(); return client(t, false, args...) }
	if out := run("ping"); !strings.Contains(out, "pong") {
		t.Fatalf("ping: %s", out)
	}

	// Caller A signals port pa but sends from another port (a NAT rebinding
	// its source port); callee B sends from what it signals.
	aSignalled, a, aRTCP := udp(t), udp(t), udp(t)
	_ = aRTCP
	offerSDP := sdpFor(port(aSignalled))
	out := run("offer", "--call-id=call-1", "--from-tag=tagA", "--sdp="+offerSDP)
	toB, toBRTCP := relayAddrs(t, out) // what B sends to
	if strings.Contains(strings.SplitN(out, "New SDP:", 2)[1], "m=audio "+strconv.Itoa(port(aSignalled))) {
		t.Fatalf("offer SDP still shows the caller's port:\n%s", out)
	}
	if !strings.Contains(out, "a=rtpmap:101 telephone-event/8000") {
		t.Fatalf("attributes not kept:\n%s", out)
	}
	// B's RTCP socket must be B's RTP port + 1 (no a=rtcp in B's answer).
	b, bRTCP := evenPair(t)
	out = run("answer", "--call-id=call-1", "--from-tag=tagA", "--to-tag=tagB", "--sdp="+sdpFor(port(b)))
	toA, toARTCP := relayAddrs(t, out) // what A sends to

	pa, pb := rtpPacket(0x1111, 1), rtpPacket(0x2222, 1)
	a.WriteToUDPAddrPort(pa, toA)
	if from := expect(t, b, pa); from != toB {
		t.Errorf("B got RTP from %v, want the relay's %v", from, toB)
	}
	b.WriteToUDPAddrPort(pb, toB)
	expect(t, a, pb) // latched: back to A's real source port, not the signalled one

	// RTCP both ways on the a=rtcp ports: A latches its RTCP socket too.
	sr := rtp.AppendSR(nil, 0x1111, rtp.SenderInfo{NTP: 1 << 32, PacketCount: 1}, nil)
	aRTCP.WriteToUDPAddrPort(sr, toARTCP)
	expect(t, bRTCP, sr)
	rr := rtp.AppendRR(nil, 0x2222, []rtp.ReportBlock{{SSRC: 0x1111, TotalLost: 2, Jitter: 40}})
	bRTCP.WriteToUDPAddrPort(rr, toBRTCP)
	expect(t, aRTCP, rr)

	// A stranger on A's relay port is dropped; A's next packet still flows.
	stranger := udp(t)
	stranger.WriteToUDPAddrPort(rtpPacket(0x6666, 1), toA)
	a.WriteToUDPAddrPort(rtpPacket(0x1111, 2), toA)
	expect(t, b, rtpPacket(0x1111, 2))

	out = run("query", "--call-id=call-1")
	if !regexp.MustCompile(`'?errors'? => '?1'?`).MatchString(out) {
		t.Errorf("query does not count the stranger's packet as an error:\n%s", out)
	}
	sessions := r.Sessions()
	if len(sessions) != 1 || sessions[0].Streams[0].Legs[0].Dropped != 1 || sessions[0].Streams[0].Legs[1].Lost != 2 {
		t.Fatalf("relay stats = %+v", sessions)
	}
	out = run("list")
	if !strings.Contains(out, "call-1") {
		t.Errorf("list lacks call-1:\n%s", out)
	}
	out = run("delete", "--call-id=call-1", "--from-tag=tagA")
	if !strings.Contains(out, "created =>") {
		t.Errorf("delete reply lacks stats:\n%s", out)
	}
	if len(r.Sessions()) != 0 {
		t.Fatal("session still allocated after delete")
	}
	a.WriteToUDPAddrPort(rtpPacket(0x1111, 3), toA) // relay gone: nothing comes back to B
	b.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := b.ReadFromUDPAddrPort(make([]byte, 100)); err == nil {
		t.Fatalf("B received %d bytes after delete", n)
	}
}

// evenPair opens RTP and RTCP sockets on consecutive ports.
func evenPair(t *testing.T) (*net.UDPConn, *net.UDPConn) {
	t.Helper()
	for i := 0; i < 100; i++ {
		c := udp(t)
		p := port(c)
		c2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		if err == nil {
			t.Cleanup(func() { c2.Close() })
			return c, c2
		}
	}
	t.Fatal("no consecutive ports")
	return nil, nil
}

func rtpPacket(ssrc uint32, seq uint16) []byte {
	b := rtp.AppendHeader(nil, rtp.Header{PayloadType: 8, Sequence: seq, SSRC: ssrc})
	return append(b, make([]byte, 160)...)
}

func TestHandle(t *testing.T) {
	r, srv, _ := start(t, media.LatchStrict, 32400)
	_ = r
	req := func(cookie string, v map[string]any) map[string]any {
		t.Helper()
		body, err := bencode.Append(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		out := srv.Handle(append([]byte(cookie+" "), body...))
		rest, ok := strings.CutPrefix(string(out), cookie+" ")
		if !ok {
			t.Fatalf("reply %q lacks cookie", out)
		}
		d, err := bencode.Parse([]byte(rest))
		if err != nil {
			t.Fatal(err)
		}
		return d.(map[string]any)
	}
	for _, tc := range []struct {
		name, cookie string
		req          map[string]any
		result       string
		reason       string
	}{
		{"ping", "1", map[string]any{"command": "ping"}, "pong", ""},
		{"unknown", "2", map[string]any{"command": "frobnicate"}, "error", "unknown command"},
		{"offer without sdp", "3", map[string]any{"command": "offer", "call-id": "x", "from-tag": "f"}, "error", "needs"},
		{"bad sdp", "4", map[string]any{"command": "offer", "call-id": "x", "from-tag": "f", "sdp": "garbage"}, "error", "malformed SDP"},
		{"answer unknown call", "5", map[string]any{"command": "answer", "call-id": "nope", "sdp": sdpFor(4000)}, "error", "Unknown call-id"},
		{"delete unknown", "6", map[string]any{"command": "delete", "call-id": "nope"}, "error", "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := req(tc.cookie, tc.req)
			if got["result"] != tc.result || !strings.Contains(str(got, "error-reason"), tc.reason) {
				t.Fatalf("reply = %v", got)
			}
		})
	}
	t.Run("retransmission answered from cache", func(t *testing.T) {
		offer := map[string]any{"command": "offer", "call-id": "c", "from-tag": "f", "sdp": sdpFor(4000)}
		a, b := req("77", offer), req("77", offer)
		if a["sdp"] != b["sdp"] || len(r.Sessions()) != 1 {
			t.Fatalf("retransmitted offer allocated again: %d sessions", len(r.Sessions()))
		}
	})
	t.Run("json", func(t *testing.T) {
		out := srv.Handle([]byte(`j1 {"command":"ping"}`))
		if string(out) != `j1 {"result":"pong"}` {
			t.Fatalf("json reply %q", out)
		}
	})
	if srv.Handle([]byte("no-cookie")) != nil {
		t.Fatal("answered a datagram without cookie")
	}
}

func TestRewriteSDP(t *testing.T) {
	info := []media.StreamInfo{
		{Local: [2]netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("198.51.100.1:50000")},
			LocalRTCP: [2]netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:40001"), netip.MustParseAddrPort("198.51.100.1:50001")}},
		{Disabled: true},
		{Local: [2]netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:40002"), netip.MustParseAddrPort("198.51.100.1:50002")},
			LocalRTCP: [2]netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:40002"), netip.MustParseAddrPort("198.51.100.1:50002")}},
	}
	in := "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/SAVP 0\r\na=rtcp:4001\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\na=candidate:1 1 UDP 2130706431 10.0.0.5 4000 typ host\r\na=ice-ufrag:abcd\r\n" +
		"m=video 0 RTP/AVP 96\r\n" +
		"m=video 4002 RTP/AVP 96\r\nc=IN IP4 10.0.0.6\r\na=rtcp-mux\r\na=content:slides\r\na=sendonly\r\n"
	doc, err := parseSDP(in)
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := doc.streams(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfgs[0].Secure || cfgs[0].Kind != media.KindAudio || cfgs[0].Remote[0] != netip.MustParseAddrPort("10.0.0.5:4000") || cfgs[0].RemoteRTCP[0] != netip.MustParseAddrPort("10.0.0.5:4001") {
		t.Errorf("stream 0 = %+v", cfgs[0])
	}
	if !cfgs[1].Disabled {
		t.Errorf("stream 1 not disabled")
	}
	if cfgs[2].Kind != media.KindContent || !cfgs[2].Hold || cfgs[2].Remote[0] != netip.MustParseAddrPort("10.0.0.6:4002") || cfgs[2].RemoteRTCP[0] != cfgs[2].Remote[0] {
		t.Errorf("stream 2 = %+v", cfgs[2])
	}
	got := doc.rewrite(info, cfgs, 1, true)
	want := "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n" +
		"m=audio 50000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\na=rtcp:50001\r\n" +
		"m=video 0 RTP/AVP 96\r\n" +
		"m=video 50002 RTP/AVP 96\r\nc=IN IP4 198.51.100.1\r\na=rtcp-mux\r\na=content:slides\r\na=sendonly\r\na=rtcp:50002\r\n"
	if got != want {
		t.Fatalf("rewrite:\n%s\nwant:\n%s", got, want)
	}
}

func FuzzParseSDP(f *testing.F) {
	f.Add(sdpFor(4000))
	f.Add("v=0\nc=IN IP6 ::1\nm=application 9 TCP/BFCP *\na=setup:passive\n")
	f.Fuzz(func(t *testing.T, s string) {
		doc, err := parseSDP(s)
		if err != nil {
			return
		}
		cfgs, err := doc.streams(0, nil)
		if err != nil {
			return
		}
		infos := make([]media.StreamInfo, len(cfgs))
		doc.rewrite(infos, cfgs, 1, true)
	})
}
