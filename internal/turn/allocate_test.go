package turn

import (
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// benchAllocation makes one allocation as a TURN client does and deletes
// it: Allocate → 401 → authenticated Allocate → Refresh with LIFETIME 0,
// from a new UDP socket (a new 5-tuple) each time.
func benchAllocation(b *testing.B, server net.Addr, buf []byte) {
	c, err := net.DialUDP("udp4", nil, server.(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	roundTrip := func(m *stun.Message) *stun.Message {
		if _, err := c.Write(m.Raw); err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		resp := &stun.Message{Raw: buf[:n]}
		if err := resp.Decode(); err != nil {
			b.Fatal(err)
		}
		return resp
	}
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	resp := roundTrip(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport, stun.Fingerprint))
	var (
		nonce stun.Nonce
		realm stun.Realm
	)
	if errorCode(resp) != 401 || nonce.GetFrom(resp) != nil || realm.GetFrom(resp) != nil {
		b.Fatalf("first Allocate: %v", resp)
	}
	// resp's attributes point into buf, which the next response overwrites.
	nonce, realm = append(stun.Nonce(nil), nonce...), append(stun.Realm(nil), realm...)
	auth := []stun.Setter{stun.NewUsername(testUser), realm, nonce, stun.NewLongTermIntegrity(testUser, realm.String(), testPass), stun.Fingerprint}
	resp = roundTrip(stun.MustBuild(append([]stun.Setter{stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport}, auth...)...))
	if resp.Type.Class != stun.ClassSuccessResponse {
		b.Fatalf("Allocate: error %d", errorCode(resp))
	}
	resp = roundTrip(stun.MustBuild(append([]stun.Setter{stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest),
		stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}}, auth...)...))
	if resp.Type.Class != stun.ClassSuccessResponse {
		b.Fatalf("Refresh: error %d", errorCode(resp))
	}
}

// BenchmarkAllocate measures a whole allocation (challenge, Allocate,
// Refresh 0) against a server on loopback; allocs/op counts the client's
// and the server's allocations together.
func BenchmarkAllocate(b *testing.B) {
	cfg := testConfig()
	cfg.Quota = Quota{PerUser: -1, Total: -1}
	cfg.RateLimit = RateLimit{PerSecond: -1}
	ts := startServer(b, cfg, nil)
	buf := make([]byte, 1600)
	benchAllocation(b, ts.udp.LocalAddr(), buf)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		benchAllocation(b, ts.udp.LocalAddr(), buf)
	}
}
