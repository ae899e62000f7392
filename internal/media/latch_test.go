package media

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// udpOn opens a UDP socket on a loopback address of the caller's choice, so
// that a test can play a party on another IP (127.0.0.2 is a stranger).
func udpOn(t testing.TB, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nothingQueued asserts that c holds no datagram. It is called after a
// packet the relay sent later has arrived elsewhere: loopback delivers into
// the receiving socket's queue before sendmmsg returns, so anything the relay
// had sent to c is already queued.
func nothingQueued(t testing.TB, c *net.UDPConn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	buf := make([]byte, 2048)
	if n, from, err := c.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatalf("stranger %v received %d bytes from %v", addr(c), n, from)
	}
}

// TestStrangerNeverLatches plays a stranger (another IP) sending RTP to the
// caller's relay port before the caller, while the call runs, and after the
// caller fell silent for longer than the re-latch interval. The stranger
// must never receive the callee's media, and the caller must keep it.
func TestStrangerNeverLatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode Latching
		// remote returns leg 0's signalled address and signalling source.
		remote func(caller *net.UDPConn) (netip.AddrPort, netip.Addr)
	}{
		{"nat latching, signalled address", LatchNAT, func(c *net.UDPConn) (netip.AddrPort, netip.Addr) { return addr(c), netip.Addr{} }},
		{"strict, signalled address", LatchStrict, func(c *net.UDPConn) (netip.AddrPort, netip.Addr) { return addr(c), netip.Addr{} }},
		{"nat latching, private address, signalling source", LatchNAT, func(c *net.UDPConn) (netip.AddrPort, netip.Addr) {
			return netip.MustParseAddrPort("10.1.2.3:4000"), addr(c).Addr()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(32100, 32200, 20)
			cfg.Latching = tc.mode // RelatchQuiet keeps its 2 s default
			r, _ := startRelay(t, cfg, Deps{})
			caller, callee, stranger := udp(t), udp(t), udpOn(t, "127.0.0.2")
			signalled, source := tc.remote(caller)
			id, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{
				{Kind: KindAudio, RTCPMux: true, Remote: [2]netip.AddrPort{signalled, addr(callee)}, Source: [2]netip.Addr{source}},
			}})
			if err != nil {
				t.Fatal(err)
			}
			in := infos[0]
			seq := uint16(0)
			calleeSays := func() {
				t.Helper()
				seq++
				p := rtpPacket(0xB0B, seq, 172)
				callee.WriteToUDPAddrPort(p, in.Local[1])
				expectNext(t, caller, p)
				nothingQueued(t, stranger)
			}
			strangerSends := func(ssrc uint32, n int) {
				for i := 0; i < n; i++ {
					stranger.WriteToUDPAddrPort(rtpPacket(ssrc, uint16(i+1), 172), in.Local[0])
				}
			}
			// Before the caller's first packet.
			strangerSends(0x5757, 3)
			if signalled == addr(caller) {
				calleeSays() // to the signalled address until a packet latches
			}
			// The caller talks; the stranger keeps trying.
			for i := uint16(1); i <= 3; i++ {
				caller.WriteToUDPAddrPort(rtpPacket(0xCA11, i, 172), in.Local[0])
				expectNext(t, callee, rtpPacket(0xCA11, i, 172))
			}
			strangerSends(0x5757, 3)
			calleeSays()
			// The caller falls silent (hold, DTX) past the re-latch interval.
			time.Sleep(3 * time.Second)
			strangerSends(0x5758, 3)
			calleeSays()
			caller.WriteToUDPAddrPort(rtpPacket(0xCA11, 4, 172), in.Local[0])
			expectNext(t, callee, rtpPacket(0xCA11, 4, 172))
			calleeSays()
			st, err := r.Session(id)
			if err != nil {
				t.Fatal(err)
			}
			leg := st.Streams[0].Legs[0]
			if leg.Peer.Addr() != addr(caller).Addr() || leg.Dropped != 9 || leg.Packets != 4 {
				t.Fatalf("caller leg = peer %v, %d accepted, %d dropped; want the caller, 4 accepted, the stranger's 9 dropped", leg.Peer, leg.Packets, leg.Dropped)
			}
		})
	}
}

// TestRelatchOnEvidence checks who may take over a latched leg: the same
// party continuing its RTP from a new address (NAT rebinding, a new IP),
// the signalled or signalling IP after silence, and nobody else.
func TestRelatchOnEvidence(t *testing.T) {
	cfg := testConfig(32300, 32400, 40)
	cfg.Latching = LatchNAT
	cfg.RelatchQuiet = 200 * time.Millisecond
	r, _ := startRelay(t, cfg, Deps{})
	alloc := func(t *testing.T, remote netip.AddrPort, source netip.Addr, asym bool, callee *net.UDPConn) StreamInfo {
		t.Helper()
		_, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{{Kind: KindAudio, RTCPMux: true,
			Remote: [2]netip.AddrPort{remote, addr(callee)}, Source: [2]netip.Addr{source}, Asymmetric: [2]bool{asym}}}})
		if err != nil {
			t.Fatal(err)
		}
		return infos[0]
	}
	// reply sends one packet from the callee and returns who got it.
	reply := func(t *testing.T, in StreamInfo, callee *net.UDPConn, seq uint16, want, other *net.UDPConn) {
		t.Helper()
		p := rtpPacket(0xB0B, seq, 100)
		callee.WriteToUDPAddrPort(p, in.Local[1])
		expectNext(t, want, p)
		nothingQueued(t, other)
	}
	t.Run("same SSRC continuing from a new IP re-latches at once", func(t *testing.T) {
		a, moved, callee := udp(t), udpOn(t, "127.0.0.3"), udp(t)
		in := alloc(t, addr(a), netip.Addr{}, false, callee)
		for i := uint16(1); i <= 3; i++ {
			a.WriteToUDPAddrPort(rtpPacket(0xCA11, i, 100), in.Local[0])
			expectNext(t, callee, rtpPacket(0xCA11, i, 100))
		}
		// Another SSRC, or the SSRC going backwards (a replay), from the new IP: dropped.
		moved.WriteToUDPAddrPort(rtpPacket(0xBAD, 4, 100), in.Local[0])
		moved.WriteToUDPAddrPort(rtpPacket(0xCA11, 2, 100), in.Local[0])
		moved.WriteToUDPAddrPort(rtpPacket(0xCA11, 3+maxDropout+1, 100), in.Local[0])
		reply(t, in, callee, 1, a, moved)
		moved.WriteToUDPAddrPort(rtpPacket(0xCA11, 5, 100), in.Local[0]) // one packet lost on the way
		expectNext(t, callee, rtpPacket(0xCA11, 5, 100))
		reply(t, in, callee, 2, moved, a)
	})
	t.Run("signalling IP re-latches a new port only after silence", func(t *testing.T) {
		a, a2, callee := udp(t), udp(t), udp(t)
		in := alloc(t, netip.MustParseAddrPort("192.168.7.7:5000"), lo, false, callee)
		a.WriteToUDPAddrPort(rtpPacket(1, 1, 100), in.Local[0])
		expectNext(t, callee, rtpPacket(1, 1, 100))
		a2.WriteToUDPAddrPort(rtpPacket(2, 1, 100), in.Local[0]) // not silent yet: dropped
		reply(t, in, callee, 1, a, a2)
		time.Sleep(3 * cfg.RelatchQuiet)
		a2.WriteToUDPAddrPort(rtpPacket(2, 2, 100), in.Local[0])
		expectNext(t, callee, rtpPacket(2, 2, 100))
		reply(t, in, callee, 2, a2, a)
	})
	t.Run("asymmetric leg never latches", func(t *testing.T) {
		signalled, sender, stranger, callee := udp(t), udp(t), udpOn(t, "127.0.0.2"), udp(t)
		in := alloc(t, addr(signalled), netip.Addr{}, true, callee)
		sender.WriteToUDPAddrPort(rtpPacket(1, 1, 100), in.Local[0]) // same IP, another port: accepted
		expectNext(t, callee, rtpPacket(1, 1, 100))
		stranger.WriteToUDPAddrPort(rtpPacket(1, 2, 100), in.Local[0]) // even continuing the SSRC: dropped
		reply(t, in, callee, 1, signalled, sender)
		nothingQueued(t, stranger)
	})
}

// TestTCPStrangerRefused plays a stranger connecting to the caller's
// passive TCP media port (BFCP) first: with NAT latching the connection is
// closed, and the caller (signalled IP) connects and reaches the callee.
func TestTCPStrangerRefused(t *testing.T) {
	cfg := testConfig(32500, 32600, 20)
	cfg.Latching = LatchNAT
	r, _ := startRelay(t, cfg, Deps{})
	ln, id, infos := tcpSession(t, r)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	sc, err := d.Dial("tcp4", infos[0].Local[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// The relay closes the stranger's connection: the read ends with EOF
	// (or a reset), never with data.
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := sc.Read(make([]byte, 16)); err == nil || isTimeout(err) {
		t.Fatalf("stranger's connection stayed open (read %d, %v)", n, err)
	}
	ca, err := net.DialTimeout("tcp4", infos[0].Local[0].String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	cb, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	ca.Write([]byte("floor"))
	buf := make([]byte, 16)
	cb.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := cb.Read(buf); err != nil || string(buf[:n]) != "floor" {
		t.Fatalf("callee read %q, %v", buf[:n], err)
	}
	st, _ := r.Session(id)
	if got := st.Streams[0].Legs[0].Dropped; got != 1 {
		t.Fatalf("caller leg dropped %d connections, want the stranger's 1", got)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
