package tokenstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingRefresher counts the calls that reach the Refresher behind a FreshCache, and can
// hold a Fresh call until released.
type countingRefresher struct {
	next    SessionRefresher
	fresh   atomic.Int64
	revokes atomic.Int64
	hold    chan struct{} // when set, Fresh waits for it after the Refresher answered
	entered chan struct{}
}

func (c *countingRefresher) Fresh(ctx context.Context, id string) (Session, error) {
	c.fresh.Add(1)
	s, err := c.next.Fresh(ctx, id)
	if c.hold != nil {
		c.entered <- struct{}{}
		<-c.hold
	}
	return s, err
}

func (c *countingRefresher) Revoke(ctx context.Context, id string) error {
	c.revokes.Add(1)
	return c.next.Revoke(ctx, id)
}

func (e *env) freshCache(t *testing.T, r *Refresher, maxAge time.Duration) (*FreshCache, *countingRefresher) {
	t.Helper()
	cr := &countingRefresher{next: r}
	c, err := NewFreshCache(FreshCacheOptions{Refresher: cr, Due: r.RefreshDue, MaxAge: maxAge, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c, cr
}

func TestFreshCacheOptions(t *testing.T) {
	if _, err := NewFreshCache(FreshCacheOptions{Due: func(Session) time.Time { return time.Time{} }}); err == nil {
		t.Error("no Refresher: accepted")
	}
	if _, err := NewFreshCache(FreshCacheOptions{Refresher: &countingRefresher{}}); err == nil {
		t.Error("no Due: accepted")
	}
}

// TestFreshCacheServesUntilDue: a fresh session is served from the cache, with no Vault read,
// until its refresh is due; then the Refresher refreshes it at the identity provider exactly
// as without the cache (a role removed at the IdP arrives with that refresh). Without the
// Due bound the stale session would be served past its refresh time and the IdP would see
// no refresh.
func TestFreshCacheServesUntilDue(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil) // skew 30s
	s := e.session(t, 10*time.Minute)
	c, cr := e.freshCache(t, r, time.Hour) // MaxAge out of the way
	ctx := context.Background()
	for range 3 {
		got, err := c.Fresh(ctx, s.ID)
		if err != nil || got.AccessToken != "AT-SECRET-initial" {
			t.Fatalf("Fresh = %v, %v", got, err)
		}
	}
	if n := cr.fresh.Load(); n != 1 {
		t.Errorf("three calls reached the Refresher %d times, want 1", n)
	}
	e.clock.Advance(10*time.Minute - 29*time.Second) // inside the skew: the refresh is due
	got, err := c.Fresh(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if refreshes, _ := e.idp.stats(); refreshes != 1 || got.AccessToken == "AT-SECRET-initial" {
		t.Errorf("at the refresh time: %d IdP refreshes, access token %q; want one refresh and a new token", refreshes, got.AccessToken)
	}
	if n := cr.fresh.Load(); n != 2 {
		t.Errorf("calls reaching the Refresher: %d, want 2", n)
	}
}

// TestFreshCacheMaxAge: a change another process made (here: the session destroyed in Vault
// behind this cache's back) reaches this process within MaxAge. Without the MaxAge bound the
// destroyed session would be served until its refresh time.
func TestFreshCacheMaxAge(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, time.Hour)
	c, cr := e.freshCache(t, r, 30*time.Second)
	ctx := context.Background()
	if _, err := c.Fresh(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Destroy(ctx, s.ID); err != nil { // another worker's last holder left
		t.Fatal(err)
	}
	if _, err := c.Fresh(ctx, s.ID); err != nil {
		t.Fatalf("within MaxAge: %v", err)
	}
	e.clock.Advance(30 * time.Second)
	_, err := c.Fresh(ctx, s.ID)
	e.errs = append(e.errs, err)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("after MaxAge: %v; want the destroyed session refused", err)
	}
	if n := cr.fresh.Load(); n != 2 {
		t.Errorf("calls reaching the Refresher: %d, want 2", n)
	}
}

// TestFreshCacheForgetsFailures: a refused session is asked again every time, never
// served from an earlier success. Without forgetting, a session whose refresh failed would
// keep being served.
func TestFreshCacheForgetsFailures(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, 10*time.Minute)
	c, cr := e.freshCache(t, r, time.Hour)
	ctx := context.Background()
	if _, err := c.Fresh(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Minute) // expired: the refresh is due
	e.idp.mu.Lock()
	// The IdP refuses the session's refresh token family from now on.
	e.idp.revoked[strings.TrimSuffix(strings.TrimPrefix(s.RefreshToken, "RT-SECRET-"), "-0")] = true
	e.idp.mu.Unlock()
	for range 2 {
		_, err := c.Fresh(ctx, s.ID)
		e.errs = append(e.errs, err)
		if err == nil {
			t.Fatal("a refused refresh answered from the cache")
		}
	}
	if n := cr.fresh.Load(); n != 3 {
		t.Errorf("calls reaching the Refresher: %d, want 3", n)
	}
	if c.Len() != 0 {
		t.Errorf("%d sessions remembered after failures", c.Len())
	}
}

// TestFreshCacheRevokeForgets: a session this process revoked is never served again.
func TestFreshCacheRevokeForgets(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, time.Hour)
	c, cr := e.freshCache(t, r, time.Hour)
	ctx := context.Background()
	if _, err := c.Fresh(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	_, err := c.Fresh(ctx, s.ID)
	e.errs = append(e.errs, err)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("after Revoke: %v; want the session gone", err)
	}
	if cr.revokes.Load() != 1 || cr.fresh.Load() != 2 {
		t.Errorf("revokes %d, fresh calls %d; want 1 and 2", cr.revokes.Load(), cr.fresh.Load())
	}
}

// TestFreshCacheRevokeDuringFresh: an answer the Refresher gave before a Revoke of this
// process is not remembered after it. Without the check, a Fresh that overlapped the last
// holder's Revoke would bring the revoked session back into the cache.
func TestFreshCacheRevokeDuringFresh(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, time.Hour)
	c, cr := e.freshCache(t, r, time.Hour)
	cr.hold, cr.entered = make(chan struct{}), make(chan struct{})
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := c.Fresh(ctx, s.ID); err != nil {
			t.Error(err)
		}
	})
	<-cr.entered // the Refresher answered; the cache has not stored it yet
	if err := c.Revoke(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	close(cr.hold)
	wg.Wait()
	cr.hold = nil
	_, err := c.Fresh(ctx, s.ID)
	e.errs = append(e.errs, err)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("after a Revoke that overlapped a Fresh: %v; want the session gone", err)
	}
}

// TestFreshCacheCopies: callers cannot change what the cache serves to others.
func TestFreshCacheCopies(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, time.Hour)
	c, _ := e.freshCache(t, r, time.Hour)
	ctx := context.Background()
	if _, err := c.Fresh(ctx, s.ID); err != nil { // remembered
		t.Fatal(err)
	}
	a, err := c.Fresh(ctx, s.ID) // served from the cache
	if err != nil {
		t.Fatal(err)
	}
	a.Audience[0], a.IDToken = "mallory", "changed"
	b, err := c.Fresh(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Audience[0] != "starter" || b.IDToken != "IDT-SECRET-bob-0" {
		t.Errorf("the cached session changed with a caller's copy: %v %q", b.Audience, b.IDToken)
	}
}

// TestFreshCacheBounded: the cache never holds more than MaxEntries sessions.
func TestFreshCacheBounded(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	c, err := NewFreshCache(FreshCacheOptions{Refresher: r, Due: r.RefreshDue, MaxEntries: 2, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := c.Fresh(context.Background(), e.session(t, time.Hour).ID); err != nil {
			t.Fatal(err)
		}
		if c.Len() > 2 {
			t.Fatalf("%d sessions remembered, MaxEntries 2", c.Len())
		}
	}
}

// TestFreshCacheRemember: a session remembered as it was created is served without reaching
// the Refresher (the run's first check reads no Vault) until its refresh is due; a failed
// create and a create that a Revoke overlapped are not remembered. Without the overlap
// check, a deposit racing the last holder's end would bring the revoked session back.
func TestFreshCacheRemember(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil) // skew 30s
	c, cr := e.freshCache(t, r, time.Hour)
	ctx := context.Background()
	var s Session
	got, err := c.Remember(func() (Session, error) { s = e.session(t, 10*time.Minute); return s, nil })
	if err != nil || got.ID != s.ID {
		t.Fatalf("Remember = %v, %v", got, err)
	}
	if got, err := c.Fresh(ctx, s.ID); err != nil || got.AccessToken != "AT-SECRET-initial" {
		t.Fatalf("Fresh = %v, %v", got, err)
	}
	if n := cr.fresh.Load(); n != 0 {
		t.Errorf("a remembered session reached the Refresher %d times, want 0", n)
	}
	e.clock.Advance(10*time.Minute - 29*time.Second) // due: the Refresher refreshes it
	if _, err := c.Fresh(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if n := cr.fresh.Load(); n != 1 {
		t.Errorf("a due session reached the Refresher %d times, want 1", n)
	}

	failed := errors.New("conflict")
	if _, err := c.Remember(func() (Session, error) { return Session{ID: "x"}, failed }); !errors.Is(err, failed) {
		t.Errorf("a failed create: %v", err)
	}
	var other Session
	_, err = c.Remember(func() (Session, error) {
		other = e.session(t, time.Hour)
		if err := c.Revoke(ctx, other.ID); err != nil { // the last holder ends it meanwhile
			t.Fatal(err)
		}
		return other, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 {
		t.Errorf("%d sessions remembered; want only the first (not a failed or revoked one)", c.Len())
	}
	_, err = c.Fresh(ctx, other.ID)
	e.errs = append(e.errs, err)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("a create that a Revoke overlapped: %v; want the session gone", err)
	}
}
