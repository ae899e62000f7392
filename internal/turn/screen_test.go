package turn

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/pion/stun/v4"
)

// TestChannelBindDeniedPeerIs403 binds a channel to peers the default
// policy denies: the answer is 403 Forbidden (RFC 8656 §12.2), as for
// CreatePermission, not 401, which sends a client back to its credentials.
// Nothing is sent to the peers.
func TestChannelBindDeniedPeerIs403(t *testing.T) {
	cfg := testConfig()
	cfg.Peers = PeerPolicy{}
	s := runServer(t, cfg)
	c := dialRaw(t, "udp", "", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
	c.allocate(17)
	for i, peer := range []string{"10.1.2.3:5000", "192.168.1.1:5000", "127.0.0.1:5000", "203.0.113.5:5000"} {
		t.Run(peer, func(t *testing.T) {
			resp := c.do(stun.MethodChannelBind, channelAttr(0x4001+uint16(i)), peerAttr(netip.MustParseAddrPort(peer)))
			if got := errorCode(resp); got != 403 {
				t.Fatalf("ChannelBind to %s: code %d, want 403", peer, got)
			}
			if err := stun.NewLongTermIntegrity(testUser, c.realm, testPass).Check(resp); err != nil {
				t.Errorf("403 without valid MESSAGE-INTEGRITY: %v", err)
			}
		})
	}
}

// TestAllocateReplayFromAnotherAddress sends an authenticated Allocate
// captured from one client again from another address (127.0.0.2): the
// nonce was issued to the first client, so the copy gets 438 Stale Nonce
// and no allocation. A fresh nonce then works from the new address.
func TestAllocateReplayFromAnotherAddress(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := runServer(t, testConfig())
			server := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
			victim := dialRaw(t, network, "127.0.0.1:0", server)
			victim.allocate(17)
			captured := append([]byte(nil), victim.last...)

			attacker := dialRaw(t, network, "127.0.0.2:0", server)
			attacker.send(captured)
			resp := attacker.read()
			if got := errorCode(resp); got != 438 {
				t.Fatalf("replayed Allocate: type %s code %d, want 438", resp.Type, got)
			}
			if n := len(s.Allocations()); n != 1 {
				t.Errorf("%d allocations after the replay, want 1", n)
			}
			// The fresh nonce works from the address it was issued to.
			var nonce stun.Nonce
			if err := nonce.GetFrom(resp); err != nil {
				t.Fatal(err)
			}
			attacker.nonce, attacker.realm = nonce.String(), testRealm
			attacker.allocate(17)
			if n := len(s.Allocations()); n != 2 {
				t.Errorf("%d allocations, want 2", n)
			}
		})
	}
}
