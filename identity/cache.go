package identity

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers verified tokens by the SHA-256 of kind and token (the token itself is
// not kept). An entry lives until the earlier of the token's exp and its TTL, and is never
// served at or after that instant; the clock is the Verifier's. When full, expired entries
// are swept first, then arbitrary ones are dropped. Revocation at the IdP is noticed only
// when an entry ends, so keep the TTL short.
type tokenCache struct {
	ttl time.Duration
	max int

	mu sync.RWMutex
	m  map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	id    *Identity
	until time.Time
}

func newTokenCache(ttl time.Duration, max int) *tokenCache {
	return &tokenCache{ttl: ttl, max: max, m: make(map[[sha256.Size]byte]cacheEntry)}
}

func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (*Identity, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if !now.Before(e.until) { // check:cache-expiry
		return nil, false
	}
	return e.id.clone(), true
}

func (c *tokenCache) put(key [sha256.Size]byte, id *Identity, now time.Time) {
	until := now.Add(c.ttl)
	if !id.Expiry.IsZero() && id.Expiry.Before(until) { // check:cache-exp
		until = id.Expiry
	}
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = cacheEntry{id: id, until: until}
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
