package turn

import (
	"net"
	"strings"
	"testing"
	"time"

	pturn "github.com/pion/turn/v5"
)

// TestReload: a running server takes a new peer policy, quota and REST
// secret for the requests that follow, keeps its allocations, and refuses
// an invalid config without changing anything.
func TestReload(t *testing.T) {
	cfg := testConfig()
	cfg.Quota.PerUser = 1
	ts := startServer(t, cfg, nil)
	c := allocated(t, ts)
	if _, err := newClient(t, ts.udp.LocalAddr(), testUser, testPass).Allocate(); err == nil || !strings.Contains(err.Error(), "486") {
		t.Fatalf("second allocation under quota 1: %v, want 486", err)
	}
	peer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	if err := c.CreatePermission(peer); err != nil {
		t.Fatalf("loopback peer allowed at start: %v", err)
	}
	oldUser, oldPass, _ := ts.MintCredentials("carol", time.Hour)

	next := cfg
	next.Quota.PerUser = 2
	next.Peers = PeerPolicy{} // loopback no longer allowed
	next.Auth.Secret = "a-new-shared-secret"
	if restart, err := ts.Reload(next); err != nil || len(restart) != 0 {
		t.Fatalf("Reload = %v, %v; want everything applied live", restart, err)
	}
	if err := c.CreatePermission(peer); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("loopback peer after the policy reload: %v, want 403", err)
	}
	r2, err := newClient(t, ts.udp.LocalAddr(), testUser, testPass).Allocate()
	if err != nil {
		t.Fatalf("second allocation under quota 2: %v", err)
	}
	defer r2.Close()
	if n := len(ts.Allocations()); n != 2 {
		t.Errorf("%d allocations after the reload, want the first kept and the second made", n)
	}
	if _, err := newClient(t, ts.udp.LocalAddr(), oldUser, oldPass).Allocate(); err == nil {
		t.Error("a credential minted with the old secret still works")
	}
	u, p, _ := ts.MintCredentials("carol", time.Hour)
	r3, err := newClient(t, ts.udp.LocalAddr(), u, p).Allocate()
	if err != nil {
		t.Fatalf("credential minted with the new secret: %v", err)
	}
	r3.Close()

	bad := next
	bad.Peers.Allow = []string{"not-a-network"}
	if _, err := ts.Reload(bad); err == nil {
		t.Fatal("Reload accepted an invalid allow list")
	}
	if ts.live.Load().Auth.Secret != "a-new-shared-secret" || ts.live.Load().Quota.PerUser != 2 {
		t.Error("a refused Reload changed the running configuration")
	}

	// Bind-time fields keep their running values and are named.
	moved := next
	moved.Realm = "elsewhere"
	moved.Relay.PortMin++
	restart, err := ts.Reload(moved)
	if err != nil || strings.Join(restart, ",") != "turn.realm,turn.relay.port_min" {
		t.Errorf("Reload of bind-time fields = %v, %v", restart, err)
	}
}

// allocated returns a long-term client of ts holding one UDP allocation,
// released when the test ends.
func allocated(t *testing.T, ts *testServer) *pturn.Client {
	t.Helper()
	c := newClient(t, ts.udp.LocalAddr(), testUser, testPass)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	return c
}
