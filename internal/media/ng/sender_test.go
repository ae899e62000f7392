package ng

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/media/ng/bencode"
)

// call runs one bencoded request through srv.Handle and returns the reply.
func request(t *testing.T, srv *Server, req map[string]any) map[string]any {
	t.Helper()
	body, err := bencode.Append(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	out := srv.Handle(append([]byte("k"+strconv.Itoa(int(time.Now().UnixNano()))+" "), body...))
	_, rest, _ := cutSpace(out)
	v, err := bencode.Parse(rest)
	if err != nil {
		t.Fatalf("reply %q: %v", out, err)
	}
	d := v.(map[string]any)
	if d["result"] != "ok" {
		t.Fatalf("reply %v", d)
	}
	return d
}

func cutSpace(b []byte) ([]byte, []byte, bool) {
	for i, c := range b {
		if c == ' ' {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// sdpRelay returns the RTP address a rewritten SDP points at.
func sdpRelay(t *testing.T, sdp string) netip.AddrPort {
	t.Helper()
	m, c := reM.FindStringSubmatch(sdp), reC.FindStringSubmatch(sdp)
	if m == nil || c == nil {
		t.Fatalf("no m=/c= in\n%s", sdp)
	}
	p, _ := strconv.Atoi(m[1])
	return netip.AddrPortFrom(netip.MustParseAddr(c[1]), uint16(p))
}

func sdpAt(ip string, p int) string {
	return "v=0\r\no=- 1 1 IN IP4 " + ip + "\r\ns=-\r\nc=IN IP4 " + ip + "\r\nt=0 0\r\nm=audio " + strconv.Itoa(p) + " RTP/AVP 8\r\na=rtcp-mux\r\n"
}

// TestSenderFlags checks what an offer says about the caller's media
// source: received-from lets media from the SIP source latch a leg whose
// SDP shows a private address, SIP-source-address sends media there, and
// asymmetric keeps sending to the signalled address whatever the source.
func TestSenderFlags(t *testing.T) {
	_, srv, _ := start(t, media.LatchNAT, 33400)
	for i, tc := range []struct {
		name string
		// sdpIP is the caller's SDP address; the caller's sockets are on
		// 127.0.0.1, so 127.0.0.9 plays a private address behind NAT
		// (still loopback: what goes there stays on this machine).
		sdpIP        string
		receivedFrom bool
		flags        []any
		// callerFirst sends from the caller's sending socket before the callee talks.
		callerFirst bool
		// want: which caller socket receives the callee's packet ("send",
		// "signalled"); "" means neither.
		want string
	}{
		{"other SDP address, received-from latches", "127.0.0.9", true, nil, true, "send"},
		{"other SDP address, no received-from: nothing latches", "127.0.0.9", false, nil, true, ""},
		{"SIP-source-address sends to the SIP source", "127.0.0.9", true, []any{"SIP-source-address"}, false, "signalled"},
		{"asymmetric never latches", "127.0.0.1", false, []any{"asymmetric"}, true, "signalled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signalled, sender, callee, stranger := udp(t), udp(t), udp(t), clientOn(t, "127.0.0.2")
			callID := "sender-" + strconv.Itoa(i)
			offer := map[string]any{"command": "offer", "call-id": callID, "from-tag": "A", "sdp": sdpAt(tc.sdpIP, port(signalled))}
			if tc.receivedFrom {
				offer["received-from"] = []any{"IP4", "127.0.0.1"}
			}
			if tc.flags != nil {
				offer["flags"] = tc.flags
			}
			toCallee := sdpRelay(t, request(t, srv, offer)["sdp"].(string))
			answer := map[string]any{"command": "answer", "call-id": callID, "from-tag": "A", "to-tag": "B", "sdp": sdpAt("127.0.0.1", port(callee))}
			toCaller := sdpRelay(t, request(t, srv, answer)["sdp"].(string))
			stranger.WriteToUDPAddrPort(rtpPacket(0x5757, 1), toCaller)
			if tc.callerFirst {
				sender.WriteToUDPAddrPort(rtpPacket(0xA, 1), toCaller)
				if tc.want != "" {
					expect(t, callee, rtpPacket(0xA, 1))
				}
			}
			callee.WriteToUDPAddrPort(rtpPacket(0xB, 1), toCallee)
			socks := map[string]*net.UDPConn{"send": sender, "signalled": signalled}
			if tc.want != "" {
				expect(t, socks[tc.want], rtpPacket(0xB, 1))
			}
			for name, c := range map[string]*net.UDPConn{"send": sender, "signalled": signalled, "stranger": stranger} {
				if name == tc.want {
					continue
				}
				c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if n, _, err := c.ReadFromUDPAddrPort(make([]byte, 512)); err == nil {
					t.Fatalf("%s socket received %d bytes", name, n)
				}
			}
		})
	}
}
