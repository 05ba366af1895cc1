package tokenstore_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// stallSessions, stallHold and callerTimeout shape TestIntegrationIdPStallUnderLoad.
const (
	stallSessions = 50
	// stallHold: under load Hydra stalled for about 20 s at a time; the proxy holds the
	// answers longer than that, and far longer than a caller waits.
	stallHold = 25 * time.Second
	// callerTimeout is how long one caller (an activity attempt) waits for a fresh session
	// before it gives up and retries.
	callerTimeout = 2 * time.Second
)

// TestIntegrationIdPStallUnderLoad: 50 sessions with short access tokens fall due at once and
// are refreshed by two workers (two Refreshers), two callers per session, each giving up
// after 2 s and retrying, the way activity attempts do. In front of Hydra's token endpoint a
// proxy holds every answer for 25 s, after Hydra committed it. Every rotation must cost
// exactly one grant at Hydra (the proxy's count of 200 answers and the login/consent app's
// count of token hook calls both equal the rotations stored in Vault), no family may be
// revoked (no invalid_grant, no ReauthRequired), and every session must refresh again
// afterwards.
//
// Before the fix the refresher cut its token request after 20 s, released its claim, and the
// next caller presented the old refresh token, which Hydra had already rotated: Hydra's
// reuse detection revoked the family and the session ended in ReauthRequired.
func TestIntegrationIdPStallUnderLoad(t *testing.T) {
	s := testharness.Load(t)
	if testing.Short() {
		t.Skip("a minute or two against the dev stack")
	}
	ctx := context.Background()
	cl := s.NewClient(t, testharness.ClientOptions{AccessTokenTTL: 20 * time.Second})
	v, err := identity.NewVerifier(ctx, identity.VerifierOptions{Issuer: s.Env("OIDCFLOW_ISSUER"), ClientID: cl.ID, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t, s, vaultClient(t, s, false))
	ids := make([]string, stallSessions)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	var setupErr atomic.Value
	for i := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tok, err := testharness.PersonaLogin(ctx, cl.Config, s.Env("OIDCFLOW_LOGIN_URL"), "bob")
			if err != nil {
				setupErr.Store(err)
				return
			}
			raw, _ := tok.Extra("id_token").(string)
			orig, err := v.VerifyIDToken(ctx, raw)
			if err != nil {
				setupErr.Store(err)
				return
			}
			sess, err := st.Create(ctx, tokenstore.NewSession(orig, cl.ID, tok, time.Now()))
			if err != nil {
				setupErr.Store(err)
				return
			}
			ids[i] = sess.ID
		})
	}
	wg.Wait()
	if err, _ := setupErr.Load().(error); err != nil {
		t.Fatalf("login: %v", err)
	}
	t.Cleanup(func() {
		for _, id := range ids {
			_ = st.Destroy(context.Background(), id)
		}
	})

	proxy := testharness.NewTokenProxy(t, s.Endpoint().TokenURL)
	hooks := newLogCount(t, filepath.Join(filepath.Dir(s.EnvFile()), "logs", "idp.log"))
	workers := make([]*tokenstore.Refresher, 2)
	for i := range workers {
		o := tokenstore.RefresherOptions{
			Store: st, OAuth2: *cl.Config, Issuer: s.Env("OIDCFLOW_ISSUER"), Checker: v,
			Owner: "stall-worker-" + string(rune('a'+i)),
		}
		o.OAuth2.Endpoint.TokenURL = proxy.URL
		r, err := tokenstore.NewRefresher(o)
		if err != nil {
			t.Fatal(err)
		}
		workers[i] = r
	}
	waitAllDue(t, st, workers[0], ids)

	// Round 1: the IdP stalls while every session refreshes at once.
	proxy.Stall(stallHold)
	var gaveUp atomic.Int64
	reauth := refreshAll(t, workers, ids, &gaveUp)
	c := proxy.Counts()
	t.Logf("stalled round: %d token requests, %d grants, %d invalid_grant, %d answers held, %d lost; callers gave up %d times",
		c.Requests, c.Grants, c.InvalidGrant, c.Held, c.Lost, gaveUp.Load())
	if gaveUp.Load() == 0 || c.Held == 0 {
		t.Error("the stall did not outlast the callers: the test did not test anything")
	}
	if reauth > 0 {
		t.Errorf("%d sessions ended in ReauthRequired after a stall", reauth)
	}

	// Round 2: the families are alive, and refresh once more, without a stall.
	waitAllDue(t, st, workers[0], ids)
	if n := refreshAll(t, workers, ids, &gaveUp); n > 0 {
		t.Errorf("%d sessions ended in ReauthRequired after the stall", n)
	}

	c = proxy.Counts()
	rotations := 0
	for _, id := range ids {
		got, err := st.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		rotations += got.Refreshes
		if got.Refreshes < 2 {
			t.Errorf("session %s: %d refreshes stored over two rounds", id, got.Refreshes)
		}
	}
	granted := hooks.count(t, "msg=\"idp: token hook\"", "client_id="+cl.ID+" ", "grant_types=[refresh_token]")
	t.Logf("%d rotations stored; proxy: %d grants, %d invalid_grant, %d lost answers; Hydra's token hook: %d refresh grants",
		rotations, c.Grants, c.InvalidGrant, c.Lost, granted)
	if c.Grants != rotations || granted != rotations {
		t.Errorf("%d rotations stored, but Hydra granted %d refreshes (token hook: %d): not one grant per rotation",
			rotations, c.Grants, granted)
	}
	if c.InvalidGrant > 0 {
		t.Errorf("Hydra refused %d refreshes with invalid_grant: a refresh token was reused", c.InvalidGrant)
	}
}

// waitAllDue sleeps until every session is due for a refresh.
func waitAllDue(t *testing.T, st *tokenstore.Store, r *tokenstore.Refresher, ids []string) {
	t.Helper()
	var last time.Time
	for _, id := range ids {
		s, err := st.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if due := r.RefreshDue(s); due.After(last) {
			last = due
		}
	}
	time.Sleep(time.Until(last) + 200*time.Millisecond)
}

// refreshAll has two callers per session (one on each worker) ask for a fresh session until
// they get one, each call giving up after callerTimeout and retrying a second later, as
// activity attempts do. It returns how many sessions ended in ReauthRequired.
func refreshAll(t *testing.T, workers []*tokenstore.Refresher, ids []string, gaveUp *atomic.Int64) int {
	t.Helper()
	var reauth atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(4 * time.Minute)
	for _, id := range ids {
		var once sync.Once
		for _, r := range workers {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					ctx, cancel := context.WithTimeout(context.Background(), callerTimeout)
					_, err := r.Fresh(ctx, id)
					cancel()
					switch {
					case err == nil:
						return
					case errors.Is(err, identity.ErrReauthRequired):
						once.Do(func() { reauth.Add(1) })
						return
					case errors.Is(err, context.DeadlineExceeded):
						gaveUp.Add(1)
					default:
						t.Logf("session %s: %v", id, err)
					}
					time.Sleep(time.Second)
				}
				t.Errorf("session %s: no fresh tokens in 4 minutes", id)
			})
		}
	}
	wg.Wait()
	return int(reauth.Load())
}

// logCount counts the lines a log file gains after it was opened.
type logCount struct {
	path   string
	offset int64
}

func newLogCount(t *testing.T, path string) *logCount {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the dev stack's log: %v", err)
	}
	return &logCount{path: path, offset: fi.Size()}
}

// count returns how many new lines contain every one of parts.
func (l *logCount) count(t *testing.T, parts ...string) int {
	t.Helper()
	f, err := os.Open(l.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(l.offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
lines:
	for sc.Scan() {
		for _, p := range parts {
			if !strings.Contains(sc.Text(), p) {
				continue lines
			}
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
