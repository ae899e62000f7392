package turn

import (
	"context"
	"crypto/hmac"
	"crypto/md5"  //nolint:gosec // RFC 8489 §9.2.2 defines the long-term key as MD5.
	"crypto/sha1" //nolint:gosec // TURN REST API passwords are HMAC-SHA1 by definition.
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"
)

// UserStore holds long-term credentials. TURNKey returns the key
// MD5(username ":" realm ":" password) (RFC 8489 §9.2.2) of a user, or an
// error wrapping ErrUnknownUser. It is called for every authenticated
// request, so it should be fast; it must be safe for concurrent use.
type UserStore interface {
	TURNKey(ctx context.Context, realm, username string) ([]byte, error)
}

// LongTermKey computes the RFC 8489 §9.2.2 long-term key for a user.
func LongTermKey(username, realm, password string) []byte {
	h := md5.Sum([]byte(username + ":" + realm + ":" + password)) //nolint:gosec
	return h[:]
}

// MemoryUsers is an in-memory UserStore, for tests and small setups.
type MemoryUsers struct {
	mu   sync.RWMutex
	keys map[string][]byte // realm + "\x00" + username
}

var _ UserStore = (*MemoryUsers)(nil)

// NewMemoryUsers returns an empty MemoryUsers.
func NewMemoryUsers() *MemoryUsers { return &MemoryUsers{keys: map[string][]byte{}} }

// Set adds or replaces a user's password in realm.
func (m *MemoryUsers) Set(realm, username, password string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[realm+"\x00"+username] = LongTermKey(username, realm, password)
}

// Delete removes a user.
func (m *MemoryUsers) Delete(realm, username string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, realm+"\x00"+username)
}

// TURNKey implements UserStore.
func (m *MemoryUsers) TURNKey(_ context.Context, realm, username string) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k, ok := m.keys[realm+"\x00"+username]
	if !ok {
		return nil, ErrUnknownUser
	}
	return k, nil
}

// RESTPassword returns base64(HMAC-SHA1(secret, username)), the TURN REST
// API password for an ephemeral username.
func RESTPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// RESTCredentials returns an ephemeral username "expiry:user" and its
// password for secret, expiring at expires.
func RESTCredentials(secret, user string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	return username, RESTPassword(secret, username)
}

// maxUsernameLen caps what is parsed; RFC 8489 §14.3 allows 509 bytes.
const maxUsernameLen = 513

// parseRESTUsername splits "expiry:user". ok is false when the username has
// no decimal expiry prefix.
func parseRESTUsername(username string) (expiry time.Time, user string, ok bool) {
	if len(username) > maxUsernameLen {
		return time.Time{}, "", false
	}
	ts, user, found := strings.Cut(username, ":")
	if !found || ts == "" || len(ts) > 12 {
		return time.Time{}, "", false
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return time.Time{}, "", false
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(n, 0), user, true
}
