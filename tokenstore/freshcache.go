package tokenstore

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultFreshCacheMaxAge is FreshCacheOptions.MaxAge's default.
const DefaultFreshCacheMaxAge = 30 * time.Second

// DefaultFreshCacheSize is FreshCacheOptions.MaxEntries's default.
const DefaultFreshCacheSize = 10000

// FreshCacheOptions configure NewFreshCache.
type FreshCacheOptions struct {
	// Refresher answers what the cache does not: Fresh on a miss, Revoke always. Required.
	Refresher SessionRefresher
	// Due returns when a session stops being usable without a refresh: the Refresher's
	// RefreshDue. Required.
	Due func(Session) time.Time
	// MaxAge bounds how long one answer is served, so that a change this process did not make
	// (another worker's refresh with a larger skew, a session destroyed elsewhere) reaches it
	// within MaxAge. Default DefaultFreshCacheMaxAge; at most the time until Due.
	MaxAge time.Duration
	// MaxEntries bounds the sessions remembered; past it, expired entries are dropped first,
	// then any. Default DefaultFreshCacheSize.
	MaxEntries int
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
}

// FreshCache is a SessionRefresher that remembers, in this process, each session its
// Refresher's Fresh returned, and serves it again until the session's refresh is due (Due)
// or MaxAge passed, whichever is first. Within that time Fresh would have returned Vault's
// copy without refreshing it, and only a refresh changes a session's tokens, so the copy is
// as fresh as Vault's: an activity's identity check then costs no Vault read. At Due the
// next call goes to the Refresher, which refreshes as before (single-flight, claims, CAS).
//
// Not done: failed calls are not remembered (a refused or unavailable session is asked
// again every time); Revoke forgets the session in this process only, so a session revoked
// or destroyed by another process stays served here for at most MaxAge; the copies hold the
// session's tokens in memory (as the Refresher's answers do while they are used), never on
// disk or in a log.
type FreshCache struct {
	next    SessionRefresher
	due     func(Session) time.Time
	maxAge  time.Duration
	size    int
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]freshEntry
	revokes uint64 // Revoke calls so far: a Fresh that overlapped one does not store
}

type freshEntry struct {
	s     Session
	until time.Time
}

// NewFreshCache returns the FreshCache of opts.
func NewFreshCache(opts FreshCacheOptions) (*FreshCache, error) {
	if opts.Refresher == nil || opts.Due == nil {
		return nil, errors.New("tokenstore: FreshCacheOptions needs Refresher and Due")
	}
	c := &FreshCache{next: opts.Refresher, due: opts.Due, maxAge: opts.MaxAge, size: opts.MaxEntries,
		now: opts.Clock, entries: map[string]freshEntry{}}
	if c.maxAge <= 0 {
		c.maxAge = DefaultFreshCacheMaxAge
	}
	if c.size <= 0 {
		c.size = DefaultFreshCacheSize
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Fresh returns the remembered session while it is served (see FreshCache), else the
// Refresher's answer, which it then remembers.
func (c *FreshCache) Fresh(ctx context.Context, id string) (Session, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[id]
	revokes := c.revokes
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.s.clone(), nil
	}
	s, err := c.next.Fresh(ctx, id)
	if err != nil {
		c.forget(id)
		return s, err
	}
	c.store(s, now, revokes)
	return s, nil
}

// store remembers s, answered by a call that began at now when revokes Revoke calls had
// been made, unless a Revoke overlapped the call or s is already due.
func (c *FreshCache) store(s Session, now time.Time, revokes uint64) {
	// MaxAge counts from before the call, Due from the answer.
	until := now.Add(c.maxAge)
	if d := c.due(s); d.Before(until) {
		until = d
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revokes != revokes || !c.now().Before(until) {
		delete(c.entries, s.ID)
		return
	}
	if _, ok := c.entries[s.ID]; !ok && len(c.entries) >= c.size {
		c.evict()
	}
	c.entries[s.ID] = freshEntry{s: s.clone(), until: until}
}

// Remember runs create, which writes a new session to the store, and remembers the session
// it returns as Fresh would have: that is the copy Vault now holds, so the run's first
// activity need not read it back. A Revoke that overlaps the call leaves nothing remembered.
func (c *FreshCache) Remember(create func() (Session, error)) (Session, error) {
	now := c.now()
	c.mu.Lock()
	revokes := c.revokes
	c.mu.Unlock()
	s, err := create()
	if err != nil {
		return s, err
	}
	c.store(s, now, revokes)
	return s, nil
}

// Revoke forgets the session and revokes it through the Refresher.
func (c *FreshCache) Revoke(ctx context.Context, id string) error {
	c.mu.Lock()
	c.revokes++
	delete(c.entries, id)
	c.mu.Unlock()
	return c.next.Revoke(ctx, id)
}

// Len returns the number of sessions remembered (served or not yet dropped).
func (c *FreshCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *FreshCache) forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}

// evict makes room for one entry: every expired entry goes, else one entry. c.mu is held.
func (c *FreshCache) evict() {
	now := c.now()
	for id, e := range c.entries {
		if !now.Before(e.until) {
			delete(c.entries, id)
		}
	}
	for id := range c.entries {
		if len(c.entries) < c.size {
			return
		}
		delete(c.entries, id)
	}
}
