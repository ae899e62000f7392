package turn

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingUsers counts the look-ups that reach the store.
type countingUsers struct {
	*MemoryUsers
	n atomic.Int64
}

func (c *countingUsers) TURNKey(ctx context.Context, realm, username string) ([]byte, error) {
	c.n.Add(1)
	return c.MemoryUsers.TURNKey(ctx, realm, username)
}

// TestKeyCacheStoreLookups makes allocations with pion's client and checks
// that the store is asked once per user per keyCacheTTL, that a failed
// look-up is not cached, and that a deleted user is refused once the
// cached key has expired.
func TestKeyCacheStoreLookups(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	users := &countingUsers{MemoryUsers: NewMemoryUsers()}
	users.Set(testRealm, testUser, testPass)
	cfg := testConfig()
	cfg.Auth = Auth{}
	ts := startServer(t, cfg, func(d *Deps) { d.Users = users; d.Now = clock })

	for i := 0; i < 3; i++ {
		c := newClient(t, ts.udp.LocalAddr(), testUser, testPass)
		relay, err := c.Allocate()
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if err := relay.Close(); err != nil {
			t.Fatalf("refresh 0 of allocation %d: %v", i, err)
		}
	}
	if n := users.n.Load(); n != 1 {
		t.Errorf("3 allocations asked the store %d times, want 1", n)
	}

	// A user added after a failed attempt authenticates at once.
	if _, err := newClient(t, ts.udp.LocalAddr(), "late", "late-pass").Allocate(); err == nil {
		t.Fatal("unknown user allocated")
	}
	users.Set(testRealm, "late", "late-pass")
	if _, err := newClient(t, ts.udp.LocalAddr(), "late", "late-pass").Allocate(); err != nil {
		t.Fatalf("user added after a failed attempt: %v", err)
	}

	// A deleted user works from the cache until keyCacheTTL has passed.
	users.Delete(testRealm, testUser)
	advance(keyCacheTTL)
	if _, err := newClient(t, ts.udp.LocalAddr(), testUser, testPass).Allocate(); err == nil {
		t.Error("deleted user still allocates after keyCacheTTL")
	}
}

func TestKeyCacheREST(t *testing.T) {
	var c keyCache
	user := "1900000000:alice"
	want := LongTermKey(user, testRealm, RESTPassword("s1", user))
	if got := c.rest("s1", testRealm, user); !bytes.Equal(got, want) {
		t.Fatalf("rest key %x, want %x", got, want)
	}
	if got := c.rest("s1", testRealm, user); !bytes.Equal(got, want) {
		t.Fatalf("cached rest key %x, want %x", got, want)
	}
	// A new secret or realm derives again.
	if got, want := c.rest("s2", testRealm, user), LongTermKey(user, testRealm, RESTPassword("s2", user)); !bytes.Equal(got, want) {
		t.Errorf("after a secret change: %x, want %x", got, want)
	}
	if got, want := c.rest("s2", "other.realm", user), LongTermKey(user, "other.realm", RESTPassword("s2", user)); !bytes.Equal(got, want) {
		t.Errorf("after a realm change: %x, want %x", got, want)
	}
	// The cache stays bounded.
	for i := 0; i < keyCacheMax+10; i++ {
		c.putStored(testRealm, string(rune('a'+i%26))+time.Duration(i).String(), want, time.Now())
	}
	if n := len(c.m); n > keyCacheMax {
		t.Errorf("cache holds %d keys, bound %d", n, keyCacheMax)
	}
}
