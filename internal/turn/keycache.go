package turn

import (
	"sync"
	"time"
)

// keyCacheTTL is how long a key the user store returned is used without
// asking the store again: a deleted user or a changed password takes
// effect within it. Failed look-ups are not cached, so a new user can
// authenticate at once.
const keyCacheTTL = 5 * time.Second

// keyCacheMax bounds the cache; when full it is emptied and refilled.
const keyCacheMax = 8192

// keyCache holds long-term keys by username, so that the requests of one
// client (Allocate, then Refresh, CreatePermission and ChannelBind for the
// life of the allocation) cost one store look-up per user per
// keyCacheTTL rather than one each, and a TURN REST username's key
// (HMAC-SHA1, base64 and MD5) is derived once. Keys derived from the REST
// secret are exact and kept until the secret changes or the cache fills;
// the secret they came from is recorded with them.
type keyCache struct {
	mu sync.Mutex
	m  map[string]cachedKey
}

type cachedKey struct {
	key    []byte
	realm  string
	secret string    // REST keys: the shared secret they were derived from
	until  time.Time // store keys: when to ask the store again
}

// rest returns the REST key of username under secret, deriving it once.
func (c *keyCache) rest(secret, realm, username string) []byte {
	c.mu.Lock()
	e, ok := c.m["r"+username]
	c.mu.Unlock()
	if ok && e.secret == secret && e.realm == realm {
		return e.key
	}
	key := LongTermKey(username, realm, RESTPassword(secret, username))
	c.put("r"+username, cachedKey{key: key, realm: realm, secret: secret})
	return key
}

// stored returns the cached store key of username in realm, if still
// fresh.
func (c *keyCache) stored(realm, username string, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m["s"+username]
	if !ok || e.realm != realm || !now.Before(e.until) {
		return nil, false
	}
	return e.key, true
}

func (c *keyCache) putStored(realm, username string, key []byte, now time.Time) {
	c.put("s"+username, cachedKey{key: key, realm: realm, until: now.Add(keyCacheTTL)})
}

func (c *keyCache) put(k string, e cachedKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= keyCacheMax {
		c.m = make(map[string]cachedKey)
	}
	c.m[k] = e
}
