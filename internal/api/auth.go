package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/netip"
	"sync"
	"time"
)

// tokenPrefix marks Portico secrets so leaked ones are easy to find.
const tokenPrefix = "pt_"

// newSecret returns a random bearer secret, its storage hash and an ID.
func newSecret() (secret string, hash []byte, id string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("api: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	secret = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(secret))
	var idb [8]byte
	rand.Read(idb[:])
	return secret, h[:], hex.EncodeToString(idb[:])
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// limiter rate-limits login attempts per client address and locks accounts
// after repeated failures. Unknown user names are tracked like real ones, so
// the answers do not tell which names exist.
type limiter struct {
	mu          sync.Mutex
	perMinute   int
	maxFailures int
	lockout     time.Duration
	attempts    map[netip.Addr][]time.Time
	failures    map[string]*failState
}

type failState struct {
	count       int
	lockedUntil time.Time
	last        time.Time
}

func newLimiter(perMinute, maxFailures int, lockout time.Duration) *limiter {
	return &limiter{
		perMinute: perMinute, maxFailures: maxFailures, lockout: lockout,
		attempts: map[netip.Addr][]time.Time{}, failures: map[string]*failState{},
	}
}

// allow records an attempt from addr and reports whether it is within the rate,
// and if not, how long until the next is allowed.
func (l *limiter) allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	window := now.Add(-time.Minute)
	ts := l.attempts[addr]
	kept := ts[:0]
	for _, t := range ts {
		if t.After(window) {
			kept = append(kept, t)
		}
	}
	if len(kept) >= l.perMinute {
		l.attempts[addr] = kept
		return false, kept[0].Sub(window)
	}
	l.attempts[addr] = append(kept, now)
	if len(l.attempts) > 100000 { // bound memory under a spray from many addresses
		for a, v := range l.attempts {
			if len(v) == 0 || !v[len(v)-1].After(window) {
				delete(l.attempts, a)
			}
		}
	}
	return true, 0
}

// locked reports whether user is locked out now.
func (l *limiter) locked(user string, now time.Time) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.failures[user]; f != nil && now.Before(f.lockedUntil) {
		return true, f.lockedUntil
	}
	return false, time.Time{}
}

// fail records a failed login and reports whether the account is now locked.
func (l *limiter) fail(user string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failures[user]
	if f == nil || now.Sub(f.last) > l.lockout {
		f = &failState{}
		l.failures[user] = f
	}
	f.count++
	f.last = now
	if f.count >= l.maxFailures {
		f.lockedUntil = now.Add(l.lockout)
		f.count = 0
		return true
	}
	return false
}

func (l *limiter) succeed(user string) {
	l.mu.Lock()
	delete(l.failures, user)
	l.mu.Unlock()
}

func constantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
