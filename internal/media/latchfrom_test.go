package media

import (
	"net/netip"
	"testing"
)

// TestInternalLatchFrom: an internal leg whose peer is behind a tunnel
// (signalled at an inside address the relay cannot reach) latches on to
// media arriving from the interface's LatchFrom address and answers there;
// a stranger on another IP still cannot latch, and strict latching ignores
// LatchFrom.
func TestInternalLatchFrom(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    Latching
		latches bool
	}{
		{"nat latching", LatchNAT, true},
		{"strict", LatchStrict, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(32300, 32400, 20)
			ic := cfg.Interfaces["internal"]
			ic.LatchFrom = netip.MustParseAddr("127.0.0.9")
			cfg.Interfaces["internal"] = ic
			cfg.Latching = tc.mode
			r, _ := startRelay(t, cfg, Deps{})
			caller, tunnel, stranger := udp(t), udpOn(t, "127.0.0.9"), udpOn(t, "127.0.0.2")
			inside := netip.MustParseAddrPort("10.1.2.3:4000") // what the inside endpoint signalled
			_, infos, err := r.Allocate(SessionConfig{Interfaces: [2]string{"external", "internal"}, Streams: []StreamConfig{
				{Kind: KindAudio, RTCPMux: true, Remote: [2]netip.AddrPort{addr(caller), inside}},
			}})
			if err != nil {
				t.Fatal(err)
			}
			in := infos[0]
			stranger.WriteToUDPAddrPort(rtpPacket(0x5, 1, 172), in.Local[1])
			p := rtpPacket(0x1, 1, 172)
			tunnel.WriteToUDPAddrPort(p, in.Local[1])
			if !tc.latches {
				q := rtpPacket(0xA, 1, 172)
				caller.WriteToUDPAddrPort(q, in.Local[0])
				nothingQueued(t, tunnel)
				return
			}
			expectNext(t, caller, p)
			q := rtpPacket(0xA, 1, 172)
			caller.WriteToUDPAddrPort(q, in.Local[0])
			expectNext(t, tunnel, q)
			nothingQueued(t, stranger)
		})
	}
}
