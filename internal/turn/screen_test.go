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

// FuzzScreen feeds arbitrary client messages to the request screen, which
// reads them before the engine: it must not panic, and when it answers a
// request itself the answer is a 403 to that request.
func FuzzScreen(f *testing.F) {
	peer := netip.MustParseAddrPort("127.0.0.1:3478")
	cfg := testConfig()
	cfg.Listen.UDP = []string{peer.String()}
	users := NewMemoryUsers()
	users.Set(testRealm, testUser, testPass)
	s, err := New(cfg, Deps{Logger: testLogger(f), Users: users})
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range stunSeeds(f) {
		f.Add(b)
	}
	// Requests that pass authentication, so that the seeds reach the 403.
	n, _ := s.nonces.Generate()
	nonce := []byte(n)
	s.nonces.bind(nonce, netip.MustParseAddr("127.0.0.1"))
	for _, m := range []stun.Method{stun.MethodCreatePermission, stun.MethodChannelBind, stun.MethodConnect} {
		f.Add(stun.MustBuild(stun.TransactionID, stun.NewType(m, stun.ClassRequest), channelAttr(0x4001), peerAttr(peer),
			stun.NewUsername(testUser), stun.NewRealm(testRealm), stun.NewNonce(string(nonce)),
			stun.NewLongTermIntegrity(testUser, testRealm, testPass)).Raw)
	}
	client := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(nil), b...)
		var answer []byte
		if s.screen(b, client, replyFunc(func(r []byte) { answer = append([]byte(nil), r...) })) {
			return
		}
		m := &stun.Message{Raw: answer}
		req := &stun.Message{Raw: in}
		if req.Decode() != nil || m.Decode() != nil || req.TransactionID != m.TransactionID || m.Type.Class != stun.ClassErrorResponse {
			t.Fatalf("answer %x to %x is not for that request", answer, in)
		}
		// 403 to a peer it denies, or 401 with realm and nonce to an
		// Allocate without MESSAGE-INTEGRITY.
		challenge := req.Type.Method == stun.MethodAllocate && !req.Contains(stun.AttrMessageIntegrity) &&
			errorCode(m) == 401 && m.Contains(stun.AttrRealm) && m.Contains(stun.AttrNonce)
		if errorCode(m) != 403 && !challenge {
			t.Fatalf("screen answered %x with %x", in, answer)
		}
	})
}

// TestOwnCheckAllocatesNothing: the own-address check runs for every
// relayed datagram.
func TestOwnCheckAllocatesNothing(t *testing.T) {
	cfg := testConfig()
	cfg.Own.Listeners = []string{"0.0.0.0:5060", "127.0.0.1:9443"}
	s, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	own := s.own.Load()
	for _, tc := range []struct {
		addr string
		want bool
	}{{"127.0.0.1:9443", true}, {"127.0.0.9:5060", true}, {"127.0.0.1:9444", false}, {"9.9.9.9:5060", false}} {
		a := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.addr))
		if got := own.hasAddr(a); got != tc.want {
			t.Errorf("own %s = %v, want %v", tc.addr, got, tc.want)
		}
		if n := testing.AllocsPerRun(100, func() { own.hasAddr(a) }); n != 0 {
			t.Errorf("own check of %s allocates %v times", tc.addr, n)
		}
	}
}

// TestAllocateChallenge: the sockets answer an Allocate without
// MESSAGE-INTEGRITY themselves, as the engine would, with 401, the realm
// and a nonce bound to the sender's address; malformed and authenticated
// Allocate requests go to the engine.
func TestAllocateChallenge(t *testing.T) {
	s, err := New(testConfig(), Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	client := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 7), Port: 4000}
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	plain, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport)
	authed, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport,
		stun.NewUsername(testUser), stun.NewRealm(testRealm), stun.NewNonce("x"), stun.NewLongTermIntegrity(testUser, testRealm, testPass))
	malformed := append([]byte(nil), plain.Raw...)
	malformed[stunHeaderLen+3] = 0xff // REQUESTED-TRANSPORT runs past the end

	var replies [][]byte
	reply := replyFunc(func(b []byte) { replies = append(replies, append([]byte(nil), b...)) })
	if s.screen(plain.Raw, client, reply) || len(replies) != 1 {
		t.Fatalf("unauthenticated Allocate went to the engine (%d replies)", len(replies))
	}
	resp := &stun.Message{Raw: replies[0]}
	var (
		realm stun.Realm
		nonce stun.Nonce
	)
	if err := resp.Decode(); err != nil || errorCode(resp) != 401 || resp.Type != stun.NewType(stun.MethodAllocate, stun.ClassErrorResponse) ||
		resp.TransactionID != plain.TransactionID || realm.GetFrom(resp) != nil || nonce.GetFrom(resp) != nil {
		t.Fatalf("challenge %v (%v)", resp, err)
	}
	if realm.String() != testRealm {
		t.Errorf("realm %q, want %q", realm, testRealm)
	}
	if s.nonces.Validate(nonce.String()) != nil || !s.nonces.check([]byte(nonce.String()), clientIP(client)) {
		t.Error("the nonce is not valid for the client's address")
	}
	if s.nonces.check([]byte(nonce.String()), netip.MustParseAddr("127.0.0.8")) {
		t.Error("the nonce is valid for another address")
	}
	for name, b := range map[string][]byte{"authenticated": authed.Raw, "malformed": malformed} {
		if !s.screen(b, client, reply) || len(replies) != 1 {
			t.Errorf("%s Allocate was answered by the sockets", name)
		}
	}
}
