package turn

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	pturn "github.com/pion/turn/v5"
	"github.com/portico-edge/portico/internal/guard"
	"github.com/portico-edge/portico/internal/policy"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// bindingRequest is a STUN Binding request (RFC 5389 section 6).
func bindingRequest() []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], 0x0001)
	binary.BigEndian.PutUint32(b[4:], 0x2112A442)
	rand.Read(b[8:])
	return b
}

// answered sends a Binding request from a fresh socket on ip and reports
// whether an answer came, with a barrier: a request from 127.0.0.9 sent
// after it is answered first, so the first was read and dropped by then.
func answered(t *testing.T, server net.Addr, ip string) bool {
	t.Helper()
	c, err := net.ListenPacket("udp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteTo(bindingRequest(), server)
	barrier, err := net.ListenPacket("udp4", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	defer barrier.Close()
	barrier.WriteTo(bindingRequest(), server)
	barrier.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	if _, _, err := barrier.ReadFrom(buf); err != nil {
		t.Fatalf("barrier Binding unanswered: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) // already arrived, if it was answered
	_, _, err = c.ReadFrom(buf)
	return err == nil
}

// TestGuardBlocksTURNGuessers: refused credentials count against the
// client, which is then dropped unread; an ACL-denied network is never
// answered.
func TestGuardBlocksTURNGuessers(t *testing.T) {
	g, err := guard.New(guard.Config{Limits: map[string]guard.Limit{"turn_auth_failure": {Count: 3, Window: time.Hour}}}, guard.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	acl, err := policy.NewACL("policy.acl.turn", policy.ACLConfig{Deny: []string{"127.0.0.7"}})
	if err != nil {
		t.Fatal(err)
	}
	var live policy.LiveACL
	live.Set(acl)
	ts := startServer(t, testConfig(), func(d *Deps) { d.Guard = g; d.ACL = &live })
	server := ts.udp.LocalAddr()
	if !answered(t, server, "127.0.0.1") {
		t.Fatal("Binding unanswered before any failure")
	}
	for i, user := range []string{testUser, "mallory", testUser} {
		c := newClient(t, server, user, "wrong")
		if relay, err := c.Allocate(); err == nil {
			relay.Close()
			t.Fatalf("attempt %d allocated", i)
		}
	}
	if !g.Blocked(netip.MustParseAddr("127.0.0.1")) {
		t.Fatal("three refused credentials did not block the client")
	}
	if answered(t, server, "127.0.0.1") {
		t.Fatal("a blocked client was answered")
	}
	if answered(t, server, "127.0.0.7") {
		t.Fatal("an ACL-denied client was answered")
	}
}

// TestAllocateRateLimitAction: an Allocate over turn's rate limit is
// answered 486 when guard.rate_limits.action is reject, and not answered
// at all (every retransmission dropped) when it is drop; both are counted.
func TestAllocateRateLimitAction(t *testing.T) {
	tests := []struct {
		name   string
		action string
		drop   bool
	}{
		{name: "reject", action: "reject"},
		{name: "drop", action: "drop", drop: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := guard.New(guard.Config{RateLimits: guard.RateLimits{Action: tc.action}}, guard.Deps{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig()
			cfg.RateLimit = RateLimit{PerSecond: 0.001, Burst: 1}
			ts := startServer(t, cfg, func(d *Deps) { d.Guard = g })
			first, err := newClient(t, ts.udp.LocalAddr(), testUser, testPass).Allocate()
			if err != nil {
				t.Fatalf("allocation within the limit: %v", err)
			}
			defer first.Close()
			conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// A short retransmission timer: the dropped case waits for
			// all seven transmissions to go unanswered.
			c, err := pturn.NewClient(&pturn.ClientConfig{
				STUNServerAddr: ts.udp.LocalAddr().String(), TURNServerAddr: ts.udp.LocalAddr().String(),
				Username: testUser, Password: testPass, Realm: testRealm, Conn: conn, RTO: 10 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Listen(); err != nil {
				t.Fatal(err)
			}
			relay, err := c.Allocate()
			if err == nil {
				relay.Close()
				t.Fatal("allocation over the rate limit succeeded")
			}
			if got := strings.Contains(err.Error(), "486"); got == tc.drop {
				t.Errorf("over the limit with action %s: %v", tc.action, err)
			}
			answeredN, droppedN := testutil.ToFloat64(ts.m.rejRate), testutil.ToFloat64(ts.m.rejRateDrop)
			if tc.drop && (answeredN != 0 || droppedN < 1) {
				t.Errorf("drop counted as answered %v, dropped %v", answeredN, droppedN)
			}
			if !tc.drop && (answeredN != 1 || droppedN != 0) {
				t.Errorf("reject counted as answered %v, dropped %v", answeredN, droppedN)
			}
		})
	}
}
