package ng

import (
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/testpeer"
)

// ngClient returns a function running Debian's rtpengine-ng-client against
// the listener at ngAddr. The function fails t when the client's exit
// status (non-zero on an error reply) is not what refused says.
func ngClient(ngAddr netip.AddrPort, client string) func(t *testing.T, refused bool, args ...string) string {
	return func(t *testing.T, refused bool, args ...string) string {
		t.Helper()
		args = append([]string{"--proxy-address=127.0.0.1", "--proxy-port=" + strconv.Itoa(int(ngAddr.Port()))}, args...)
		out, err := exec.Command(client, args...).CombinedOutput()
		if (err != nil) != refused {
			t.Fatalf("rtpengine-ng-client %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
}

// nothing fails the test when any of conns receives a datagram within
// 100 ms.
func nothing(t *testing.T, what string, conns ...*net.UDPConn) {
	t.Helper()
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, from, err := c.ReadFromUDPAddrPort(make([]byte, 512)); err == nil {
			t.Fatalf("%s: port %d received %d bytes from %v", what, port(c), n, from)
		}
	}
}

// TestClientFlags drives offers and answers with rtpengine-ng-client's
// options and sends media through the relay to show what each one does.
// The caller signals a socket ("signalled") and, like an endpoint behind
// NAT that rebinds its port, may send from another ("sender"); 127.0.0.9
// plays an SDP address that is not the caller's real one (still loopback:
// nothing leaves the machine).
func TestClientFlags(t *testing.T) {
	_, _, ngAddr := start(t, media.LatchNAT, 33600)
	client := ngClient(ngAddr, testpeer.Require(t, "rtpengine-ng-client")[0])
	run := func(t *testing.T, args ...string) string { t.Helper(); return client(t, false, args...) }
	refused := func(t *testing.T, args ...string) string { t.Helper(); return client(t, true, args...) }
	n := 0
	// call sets up a call whose offer carries args and the caller's SDP at
	// ip; it returns the callee's socket and the relay addresses the
	// caller and the callee send to.
	call := func(t *testing.T, ip string, signalled *net.UDPConn, args ...string) (callee *net.UDPConn, toA, toB netip.AddrPort, offerSDP string) {
		t.Helper()
		n++
		id := "flags-" + strconv.Itoa(n)
		out := run(t, append([]string{"offer", "--call-id=" + id, "--from-tag=A", "--sdp=" + sdpAt(ip, port(signalled))}, args...)...)
		toB, _ = relayAddrs(t, out)
		_, offerSDP, _ = strings.Cut(out, "New SDP:")
		callee = udp(t)
		toA, _ = relayAddrs(t, run(t, "answer", "--call-id="+id, "--from-tag=A", "--to-tag=B", "--sdp="+sdpAt("127.0.0.1", port(callee))))
		return callee, toA, toB, offerSDP
	}
	pkt := rtpPacket
	// exchange sends the caller's packet seq from sender through the relay
	// to the callee b, checks it arrives, and has b answer with its own seq.
	exchange := func(t *testing.T, sender, b *net.UDPConn, toA, toB netip.AddrPort, seq uint16) {
		t.Helper()
		sender.WriteToUDPAddrPort(pkt(0xA, seq), toA)
		expect(t, b, pkt(0xA, seq))
		b.WriteToUDPAddrPort(pkt(0xB, seq), toB)
	}

	t.Run("symmetric: replies go to the packet source", func(t *testing.T) {
		signalled, sender := udp(t), udp(t)
		b, toA, toB, _ := call(t, "127.0.0.1", signalled, "--symmetric")
		exchange(t, sender, b, toA, toB, 1)
		expect(t, sender, pkt(0xB, 1))
		nothing(t, "signalled socket", signalled)
		// A continuation of the caller's stream from a new port moves the latch.
		moved := udp(t)
		exchange(t, moved, b, toA, toB, 2)
		expect(t, moved, pkt(0xB, 2))
	})
	t.Run("asymmetric: replies go to the SDP address", func(t *testing.T) {
		signalled, sender := udp(t), udp(t)
		b, toA, toB, _ := call(t, "127.0.0.1", signalled, "--asymmetric")
		exchange(t, sender, b, toA, toB, 1)
		expect(t, signalled, pkt(0xB, 1))
		nothing(t, "sending socket", sender)
	})
	t.Run("symmetric and asymmetric together are refused", func(t *testing.T) {
		out := refused(t, "offer", "--call-id=both", "--from-tag=A", "--symmetric", "--asymmetric", "--sdp="+sdpFor(4000))
		if !strings.Contains(out, "both given") {
			t.Fatalf("offer with both flags:\n%s", out)
		}
	})
	t.Run("strict source: another source is dropped", func(t *testing.T) {
		signalled, sender := udp(t), udp(t)
		b, toA, toB, _ := call(t, "127.0.0.1", signalled, "--strict-source")
		sender.WriteToUDPAddrPort(pkt(0xA, 1), toA)
		expect(t, b, pkt(0xA, 1))
		moved := udp(t)
		moved.WriteToUDPAddrPort(pkt(0xA, 2), toA) // continues the stream: still dropped
		nothing(t, "callee", b)
		b.WriteToUDPAddrPort(pkt(0xB, 1), toB)
		expect(t, sender, pkt(0xB, 1))
		nothing(t, "moved socket", moved)
	})
	t.Run("received-from: media from the SIP source latches", func(t *testing.T) {
		signalled, sender := udp(t), udp(t)
		b, toA, toB, _ := call(t, "127.0.0.9", signalled, "--received-from=IP4", "--received-from=127.0.0.1")
		exchange(t, sender, b, toA, toB, 1)
		expect(t, sender, pkt(0xB, 1))
	})
	t.Run("without received-from the same media is dropped", func(t *testing.T) {
		signalled, sender := udp(t), udp(t)
		b, toA, _, _ := call(t, "127.0.0.9", signalled)
		sender.WriteToUDPAddrPort(pkt(0xA, 1), toA)
		nothing(t, "callee", b)
	})
	t.Run("trust address: received-from is ignored", func(t *testing.T) {
		signalled, sender := udp(t), udp(t)
		b, toA, _, _ := call(t, "127.0.0.9", signalled, "--received-from=IP4", "--received-from=127.0.0.1", "--trust-address")
		sender.WriteToUDPAddrPort(pkt(0xA, 1), toA)
		nothing(t, "callee", b)
	})
	t.Run("SIP source address: media goes to received-from", func(t *testing.T) {
		signalled := udp(t)
		b, _, toB, _ := call(t, "127.0.0.9", signalled, "--received-from=IP4", "--received-from=127.0.0.1", "--sip-source-address")
		b.WriteToUDPAddrPort(pkt(0xB, 1), toB)
		expect(t, signalled, pkt(0xB, 1))
	})
	t.Run("media address replaces the SDP address", func(t *testing.T) {
		signalled := udp(t)
		b, _, toB, _ := call(t, "127.0.0.9", signalled, "--media-address=127.0.0.1")
		b.WriteToUDPAddrPort(pkt(0xB, 1), toB)
		expect(t, signalled, pkt(0xB, 1))
	})
	t.Run("media address that is not an address is refused", func(t *testing.T) {
		out := refused(t, "offer", "--call-id=bad-media", "--from-tag=A", "--media-address=nowhere", "--sdp="+sdpFor(4000))
		if !strings.Contains(out, "media address") {
			t.Fatalf("offer:\n%s", out)
		}
	})
	ice := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=ice-lite\r\na=ice-options:trickle\r\n" +
		"m=audio 4000 RTP/AVP 8\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\n" +
		"a=candidate:1 1 UDP 2130706431 127.0.0.1 4000 typ host\r\na=end-of-candidates\r\na=sendrecv\r\n"
	t.Run("ICE=remove strips session and media ICE attributes", func(t *testing.T) {
		out := run(t, "offer", "--call-id=ice", "--from-tag=A", "--ICE=remove", "--sdp="+ice)
		_, newSDP, ok := strings.Cut(out, "New SDP:")
		if !ok || strings.Contains(newSDP, "a=ice") || strings.Contains(newSDP, "a=candidate") || strings.Contains(newSDP, "end-of-candidates") {
			t.Fatalf("ICE attributes left:\n%s", out)
		}
		if !strings.Contains(newSDP, "a=sendrecv") {
			t.Fatalf("other attributes lost:\n%s", out)
		}
	})
	t.Run("ICE=force is refused", func(t *testing.T) {
		out := refused(t, "offer", "--call-id=ice-force", "--from-tag=A", "--ICE=force", "--sdp="+ice)
		if !strings.Contains(out, "not supported") {
			t.Fatalf("offer:\n%s", out)
		}
	})
	t.Run("replace-origin puts the relay address in o=", func(t *testing.T) {
		sdp := strings.Replace(sdpFor(4000), "o=- 1545997027 1 IN IP4 127.0.0.1", "o=- 1545997027 1 IN IP4 192.0.2.5", 1)
		out := run(t, "offer", "--call-id=origin-kept", "--from-tag=A", "--sdp="+sdp)
		if _, newSDP, _ := strings.Cut(out, "New SDP:"); !strings.Contains(newSDP, "o=- 1545997027 1 IN IP4 192.0.2.5") {
			t.Fatalf("origin changed without replace-origin:\n%s", out)
		}
		out = run(t, "offer", "--call-id=origin", "--from-tag=A", "--replace-origin", "--sdp="+sdp)
		if _, newSDP, _ := strings.Cut(out, "New SDP:"); !strings.Contains(newSDP, "o=- 1545997027 1 IN IP4 127.0.0.1") {
			t.Fatalf("origin not replaced:\n%s", out)
		}
		out = run(t, "offer", "--call-id=origin-flag", "--from-tag=A", "--flags=replace-origin", "--sdp="+sdp)
		if _, newSDP, _ := strings.Cut(out, "New SDP:"); !strings.Contains(newSDP, "o=- 1545997027 1 IN IP4 127.0.0.1") {
			t.Fatalf("origin not replaced by the flag:\n%s", out)
		}
	})
}
