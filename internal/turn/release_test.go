package turn

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// refreshRequest builds a Refresh as a client with c's nonce would, with
// extra attributes before the credentials.
func refreshRequest(c *rawClient, user, pass string, lifetime uint32, extra ...stun.Setter) []byte {
	setters := []stun.Setter{stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest),
		rawAttr(stun.AttrLifetime, []byte{byte(lifetime >> 24), byte(lifetime >> 16), byte(lifetime >> 8), byte(lifetime)})}
	setters = append(setters, extra...)
	setters = append(setters, stun.NewUsername(user), stun.NewRealm(c.realm), stun.NewNonce(c.nonce),
		stun.NewLongTermIntegrity(user, c.realm, pass), stun.Fingerprint)
	return stun.MustBuild(setters...).Raw
}

// TestRefreshZeroReleases: a UDP client's Refresh with LIFETIME 0 is
// answered by the listener socket (release.go): the engine deletes the
// allocation before the success response (LIFETIME 0, MESSAGE-INTEGRITY
// with the user's key) leaves, so the same 5-tuple allocates again at
// once. Refreshes it must not handle (another lifetime, a bad
// MESSAGE-INTEGRITY, another user's credentials, an attribute it does not
// read, a nonce issued to another address, a client without an
// allocation) go to the engine, which answers them as before.
func TestRefreshZeroReleases(t *testing.T) {
	ts := startServer(t, testConfig(), nil)
	server := ts.udp.LocalAddr().String()
	ts.mu.Lock()
	lpc := ts.locals[server][0]
	ts.mu.Unlock()

	c := dialRaw(t, "udp", "", server)
	c.allocate(17)
	from := c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	user2, pass2 := RESTCredentials(testSecret, "bob", time.Now().Add(time.Hour))

	otherNonce := []byte(c.nonce)
	ts.nonces.bind(otherNonce, netip.MustParseAddr("127.0.0.9"))
	for _, tc := range []struct {
		name string
		req  func() []byte
		from netip.AddrPort
	}{
		{"lifetime 600", func() []byte { return refreshRequest(c, testUser, testPass, 600) }, from},
		{"bad integrity", func() []byte { return refreshRequest(c, testUser, "not-"+testPass, 0) }, from},
		{"another user", func() []byte { return refreshRequest(c, user2, pass2, 0) }, from},
		{"address family", func() []byte {
			return refreshRequest(c, testUser, testPass, 0, rawAttr(stun.AttrRequestedAddressFamily, []byte{1, 0, 0, 0}))
		}, from},
		{"foreign nonce", func() []byte {
			saved := c.nonce
			c.nonce = string(otherNonce)
			defer func() { c.nonce = saved }()
			return refreshRequest(c, testUser, testPass, 0)
		}, from},
		{"no allocation", func() []byte { return refreshRequest(c, testUser, testPass, 0) }, netip.AddrPortFrom(from.Addr(), from.Port()+1)},
	} {
		if lpc.release(tc.req(), tc.from) {
			t.Errorf("%s: released by the socket", tc.name)
		}
	}
	if len(ts.Allocations()) != 1 {
		t.Fatalf("%d allocations after the refused releases, want 1", len(ts.Allocations()))
	}

	req := refreshRequest(c, testUser, testPass, 0)
	if !lpc.release(append([]byte(nil), req...), from) {
		t.Fatal("a valid Refresh with LIFETIME 0 was not released by the socket")
	}
	resp := c.read()
	if n := len(ts.Allocations()); n != 0 {
		t.Errorf("the response came with %d allocations still listed", n)
	}
	var lt stun.RawAttribute
	if v, err := resp.Get(stun.AttrLifetime); err == nil {
		lt = stun.RawAttribute{Value: v}
	}
	if resp.Type != stun.NewType(stun.MethodRefresh, stun.ClassSuccessResponse) || string(lt.Value) != "\x00\x00\x00\x00" ||
		resp.TransactionID != [12]byte(req[8:20]) {
		t.Fatalf("response %v, LIFETIME %x", resp, lt.Value)
	}
	if err := stun.NewLongTermIntegrity(testUser, c.realm, testPass).Check(resp); err != nil {
		t.Fatalf("response integrity: %v", err)
	}

	// The same 5-tuple allocates again, and releases over the wire.
	c.allocate(17)
	if got := errorCode(c.do(stun.MethodRefresh, rawAttr(stun.AttrLifetime, []byte{0, 0, 0, 0}))); got != 0 {
		t.Fatalf("Refresh 0 over the wire: code %d", got)
	}
	if n := len(ts.Allocations()); n != 0 {
		t.Errorf("%d allocations after the release over the wire", n)
	}
}

// TestRefreshZeroLeavesStandbyCopies: a standby copy (standby.go) has no
// engine allocation behind it, so the sockets' release never takes its
// Refresh with LIFETIME 0, even a valid one: the copy answers it itself.
func TestRefreshZeroLeavesStandbyCopies(t *testing.T) {
	r := newStandbyRig(t)
	server := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.s.port))
	r.s.mu.Lock()
	lpc := r.s.locals[server][0]
	r.s.mu.Unlock()
	n, _ := r.s.nonces.Generate()
	nonce := []byte(n)
	from := netip.MustParseAddrPort(r.client.conn.LocalAddr().String())
	r.s.nonces.bind(nonce, from.Addr())
	r.client.nonce = string(nonce)
	if lpc.release(refreshRequest(r.client, testUser, testPass, 0), from) {
		t.Fatal("the sockets released a standby copy")
	}
	if n := len(r.s.StandbyAllocations()); n != 1 {
		t.Fatalf("%d standby copies, want 1", n)
	}
	// Over the wire the copy answers and ends.
	resp := r.refresh(t, 0)
	if resp.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Refresh 0 of the standby copy: %s code %d", resp.Type, errorCode(resp))
	}
}
