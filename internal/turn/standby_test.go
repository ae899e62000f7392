package turn

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// standbyRig is a node holding a peer node's allocation as a standby copy
// (as internal/hasync imports it) and the copy's client, a raw STUN client
// on loopback that allocated on the peer node.
type standbyRig struct {
	s      *runningServer
	client *rawClient
	peer   *nonceKeeper // the peer node's nonces, which issued the client's
}

func newStandbyRig(t *testing.T) *standbyRig {
	t.Helper()
	cfg := testConfig()
	s := runServer(t, cfg)
	server := netip.MustParseAddrPort(net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
	c := dialRaw(t, "udp", "127.0.0.1:0", server.String())
	peer, err := newNonceKeeper(time.Now)
	if err != nil {
		t.Fatal(err)
	}
	st := AllocationState{
		Client:   netip.MustParseAddrPort(c.conn.LocalAddr().String()),
		Server:   server,
		User:     testUser,
		Username: testUser,
		Realm:    testRealm,
		Key:      LongTermKey(testUser, testRealm, testPass),
		Relay:    netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(cfg.Relay.PortMin+7)),
		Expires:  time.Now().Add(10 * time.Minute),
	}
	if err := s.ImportAllocation(st); err != nil {
		t.Fatal(err)
	}
	// The client holds the nonce the peer node bound to its address.
	n, _ := peer.Generate()
	nonce := []byte(n)
	peer.bind(nonce, st.Client.Addr())
	c.nonce, c.realm = string(nonce), testRealm
	return &standbyRig{s: s, client: c, peer: peer}
}

// refresh sends one Refresh asking for lifetime with the client's nonce
// and returns the answer, without retrying on 438.
func (r *standbyRig) refresh(t *testing.T, lifetime uint32) *stun.Message {
	t.Helper()
	req := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest),
		stun.RawAttribute{Type: stun.AttrLifetime, Value: binary.BigEndian.AppendUint32(nil, lifetime)},
		stun.NewUsername(testUser), stun.NewRealm(testRealm), stun.NewNonce(r.client.nonce),
		stun.NewLongTermIntegrity(testUser, testRealm, testPass))
	r.client.send(req.Raw)
	return r.readFor(t, req.TransactionID)
}

func (r *standbyRig) readFor(t *testing.T, tid [stun.TransactionIDSize]byte) *stun.Message {
	t.Helper()
	resp := r.client.read()
	for resp.TransactionID != tid {
		resp = r.client.read()
	}
	return resp
}

// staleNonce asserts resp is 438 Stale Nonce with a fresh nonce and
// returns the nonce.
func staleNonce(t *testing.T, resp *stun.Message, what string) string {
	t.Helper()
	var n stun.Nonce
	if got := errorCode(resp); got != 438 || n.GetFrom(resp) != nil {
		t.Fatalf("%s: type %s code %d, want 438 with a nonce", what, resp.Type, got)
	}
	return n.String()
}

// TestStandbyChecksNonces: a standby copy answers its client's requests
// with this node's nonces, as the node's own allocations do. A request
// with the nonce the failed node issued (or a capture of one, replayed)
// gets 438 Stale Nonce and a nonce of this node, with which the client's
// retry is answered; a nonce this node issued to another address is
// refused the same way.
func TestStandbyChecksNonces(t *testing.T) {
	r := newStandbyRig(t)

	resp := r.refresh(t, 900)
	fresh := staleNonce(t, resp, "Refresh with the failed node's nonce")
	captured := append([]byte(nil), r.client.last...)

	r.client.nonce = fresh
	resp = r.refresh(t, 900)
	lt, _ := resp.Get(stun.AttrLifetime)
	if resp.Type.Class != stun.ClassSuccessResponse || len(lt) != 4 || binary.BigEndian.Uint32(lt) != 900 {
		t.Fatalf("Refresh with this node's nonce: type %s code %d lifetime %x, want success, 900 s", resp.Type, errorCode(resp), lt)
	}
	if err := stun.NewLongTermIntegrity(testUser, testRealm, testPass).Check(resp); err != nil {
		t.Errorf("Refresh answer without valid MESSAGE-INTEGRITY: %v", err)
	}

	// The captured Refresh with the failed node's nonce, replayed.
	r.client.send(captured)
	var m stun.Message
	m.Raw = captured
	if err := m.Decode(); err != nil {
		t.Fatal(err)
	}
	staleNonce(t, r.readFor(t, m.TransactionID), "replayed Refresh with the failed node's nonce")

	// This node's nonce, issued to another address.
	n, _ := r.s.nonces.Generate()
	other := []byte(n)
	r.s.nonces.bind(other, netip.MustParseAddr("127.0.0.2"))
	r.client.nonce = string(other)
	staleNonce(t, r.refresh(t, 900), "Refresh with a nonce issued to 127.0.0.2")

	// A lifetime of 0 with a foreign nonce does not end the copy.
	r.client.nonce = string(r.peerNonce())
	staleNonce(t, r.refresh(t, 0), "Refresh (lifetime 0) with the failed node's nonce")
	if n := len(r.s.StandbyAllocations()); n != 1 {
		t.Errorf("%d standby copies after a refused Refresh of lifetime 0, want 1", n)
	}
}

// peerNonce is a nonce the peer node issued to the client.
func (r *standbyRig) peerNonce() []byte {
	n, _ := r.peer.Generate()
	b := []byte(n)
	r.peer.bind(b, netip.MustParseAddr("127.0.0.1"))
	return b
}
