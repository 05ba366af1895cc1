package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
)

func newCache(t *testing.T) *Cache {
	t.Helper()
	c, err := NewCache(CacheOptions{Path: filepath.Join(t.TempDir(), "cfg", "oidcflow", FileName)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func session(exp time.Time) Session {
	return Session{Issuer: "https://idp.test", ClientID: "starter", Subject: "bob", Audience: []string{"starter"},
		AccessToken: "at-0", RefreshToken: "rt-0", IDToken: "id-0", Expiry: exp, IDTokenExpiry: exp}
}

func TestSaveLoadModesAndAtomicity(t *testing.T) {
	c := newCache(t)
	if _, err := c.Load(); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("empty cache: %v", err)
	}
	want := session(time.Now().Add(time.Hour).UTC().Truncate(time.Second))
	if err := c.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := c.Load()
	if err != nil || got.RefreshToken != "rt-0" || !got.Expiry.Equal(want.Expiry) {
		t.Fatalf("Load = %v, %v", got, err)
	}
	fi, _ := os.Stat(c.Path())
	di, _ := os.Stat(filepath.Dir(c.Path()))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("modes: file %v, dir %v", fi.Mode().Perm(), di.Mode().Perm())
	}
	// Overwrites leave no temporary files behind.
	for i := range 5 {
		want.AccessToken = fmt.Sprint("at-", i)
		if err := c.Save(want); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(c.Path()))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("leftover %s", e.Name())
		}
	}
	// A cache readable by others is refused.
	if err := os.Chmod(c.Path(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("0644 cache: %v", err)
	}
	if err := c.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("after Delete: %v", err)
	}
	if err := c.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestCorruptCacheDoesNotEchoContents(t *testing.T) {
	c := newCache(t)
	if err := c.Save(session(time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Path(), []byte(`{"access_token": "secret-at`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := c.Load()
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("corrupt cache: %v", err)
	}
}

func TestSessionStringRedacts(t *testing.T) {
	s := session(time.Now())
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		for _, secret := range []string{"at-0", "rt-0", "id-0"} {
			if strings.Contains(out, secret) {
				t.Errorf("%q shows %s", out, secret)
			}
		}
	}
}

// fakeVerifier accepts ID tokens "id-<n>" for subject bob, or the subject after "id-as-".
type fakeVerifier struct{ now func() time.Time }

func (v fakeVerifier) VerifyIDToken(_ context.Context, raw string) (*identity.Identity, error) {
	sub := "bob"
	if s, ok := strings.CutPrefix(raw, "id-as-"); ok {
		sub = s
	}
	return &identity.Identity{Issuer: "https://idp.test", Subject: sub, Audience: []string{"starter"}, Expiry: v.now().Add(time.Hour)}, nil
}

func (v fakeVerifier) CheckRefreshed(orig, refreshed *identity.Identity) error {
	if orig.Subject != refreshed.Subject {
		return fmt.Errorf("identity: invalid token: subject differs: %w", identity.ErrInvalidToken)
	}
	return nil
}

// tokenServer is a token endpoint with single-use, rotating refresh tokens.
type tokenServer struct {
	srv       *httptest.Server
	mu        sync.Mutex
	live      map[string]bool
	n         int
	calls     atomic.Int32
	status    int    // non-zero: answer with this status
	idTokenAs string // non-empty: issue ID tokens for another subject
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{live: map[string]bool{"rt-0": true}}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.calls.Add(1)
		_ = r.ParseForm()
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if ts.status != 0 {
			w.WriteHeader(ts.status)
			return
		}
		rt := r.PostForm.Get("refresh_token")
		if r.PostForm.Get("grant_type") != "refresh_token" || !ts.live[rt] {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"reused"}`))
			return
		}
		delete(ts.live, rt)
		ts.n++
		next := fmt.Sprint("rt-", ts.n)
		ts.live[next] = true
		id := fmt.Sprint("id-", ts.n)
		if ts.idTokenAs != "" {
			id = "id-as-" + ts.idTokenAs
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprint("at-", ts.n), "token_type": "bearer",
			"expires_in": 3600, "refresh_token": next, "id_token": id})
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func newSource(t *testing.T, c *Cache, srv *tokenServer, now func() time.Time) *TokenSource {
	t.Helper()
	ts, err := NewTokenSource(context.Background(), SourceOptions{
		Cache: c, Config: &oauth2.Config{ClientID: "starter", Endpoint: oauth2.Endpoint{TokenURL: srv.srv.URL, AuthStyle: oauth2.AuthStyleInParams}},
		Verifier: fakeVerifier{now}, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestTokenSourceFreshTokenNoRefresh(t *testing.T) {
	c := newCache(t)
	srv := newTokenServer(t)
	_ = c.Save(session(time.Now().Add(time.Hour)))
	tok, err := newSource(t, c, srv, time.Now).Token()
	if err != nil || tok.AccessToken != "at-0" || tok.Extra("id_token") != "id-0" {
		t.Fatalf("Token = %v, %v", tok, err)
	}
	if srv.calls.Load() != 0 {
		t.Errorf("refreshed a fresh token")
	}
}

func TestTokenSourceRefreshesAndWritesRotatedTokenFirst(t *testing.T) {
	c := newCache(t)
	srv := newTokenServer(t)
	_ = c.Save(session(time.Now().Add(30 * time.Second))) // within the default skew
	ts := newSource(t, c, srv, time.Now)
	tok, err := ts.Token()
	if err != nil || tok.AccessToken != "at-1" || tok.RefreshToken != "rt-1" || tok.Extra("id_token") != "id-1" {
		t.Fatalf("Token = %v, %v", tok, err)
	}
	s, _ := c.Load()
	if s.RefreshToken != "rt-1" || s.AccessToken != "at-1" {
		t.Errorf("cache after refresh: %v", s)
	}
	// Later: a second refresh uses the rotated token (the first is single-use).
	s.Expiry = time.Now().Add(-time.Minute)
	_ = c.Save(s)
	ts.cur = nil
	if tok, err = ts.Token(); err != nil || tok.RefreshToken != "rt-2" {
		t.Fatalf("second refresh: %v, %v", tok, err)
	}
	// A second process (another TokenSource on the same file) picks up the rotation.
	other := newSource(t, c, srv, time.Now)
	if tok, err = other.Token(); err != nil || tok.AccessToken != "at-2" {
		t.Fatalf("other source: %v, %v", tok, err)
	}
}

func TestTokenSourceConcurrentRefreshIsSingle(t *testing.T) {
	c := newCache(t)
	srv := newTokenServer(t)
	_ = c.Save(session(time.Now().Add(-time.Minute)))
	sources := []*TokenSource{newSource(t, c, srv, time.Now), newSource(t, c, srv, time.Now)}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := sources[i%2].Token(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.calls.Load(); n != 1 {
		t.Errorf("%d refresh requests, want 1", n)
	}
}

func TestTokenSourceErrors(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*Session, *tokenServer)
		want   error
		substr string
	}{
		{"invalid_grant", func(s *Session, _ *tokenServer) { s.RefreshToken = "rt-stale" }, ErrSessionExpired,
			"login: session expired (the identity provider refused the refresh token: invalid_grant)"},
		{"no refresh token", func(s *Session, _ *tokenServer) { s.RefreshToken = "" }, ErrSessionExpired, "no refresh token"},
		{"server error", func(_ *Session, ts *tokenServer) { ts.status = http.StatusBadGateway }, ErrIdPUnreachable, "502"},
		{"other subject", func(_ *Session, ts *tokenServer) { ts.idTokenAs = "mallory" }, ErrSessionExpired, "refreshed ID token was refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			srv := newTokenServer(t)
			s := session(time.Now().Add(-time.Minute))
			tt.setup(&s, srv)
			_ = c.Save(s)
			_, err := newSource(t, c, srv, time.Now).Token()
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.substr) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.want, tt.substr)
			}
			for _, secret := range []string{"rt-0", "at-0", "id-0", "rt-stale", "rt-1"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a token: %v", err)
				}
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		c := newCache(t)
		srv := newTokenServer(t)
		srv.srv.Close()
		_ = c.Save(session(time.Now().Add(-time.Minute)))
		if _, err := newSource(t, c, srv, time.Now).Token(); !errors.Is(err, ErrIdPUnreachable) {
			t.Fatalf("err = %v", err)
		}
		// The session is kept for a later attempt.
		if s, err := c.Load(); err != nil || s.RefreshToken != "rt-0" {
			t.Errorf("session after a failed refresh: %v %v", s, err)
		}
	})
	t.Run("not logged in", func(t *testing.T) {
		c := newCache(t)
		if _, err := newSource(t, c, newTokenServer(t), time.Now).Token(); !errors.Is(err, ErrNotLoggedIn) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestTokenSourceNeverRefreshesAHandedOverToken: once a start envelope carried the refresh
// token to the worker pool, the cache must not use it (a second holder of a rotating refresh
// token trips the IdP's reuse detection), and says to log in again.
func TestTokenSourceNeverRefreshesAHandedOverToken(t *testing.T) {
	c := newCache(t)
	srv := newTokenServer(t)
	_ = c.Save(session(time.Now().Add(time.Hour)))
	ts := newSource(t, c, srv, time.Now)
	if err := ts.HandOver(); err != nil {
		t.Fatal(err)
	}
	if tok, err := ts.Token(); err != nil || tok.AccessToken == "" {
		t.Fatalf("a fresh access token stays usable after the hand-over: %v, %v", tok, err)
	}
	s, _ := c.Load()
	if s.HandedOver.IsZero() {
		t.Fatal("hand-over not saved")
	}
	s.Expiry = time.Now().Add(-time.Minute)
	_ = c.Save(s)
	ts.cur = nil
	_, err := ts.Token()
	if !errors.Is(err, ErrSessionExpired) || !strings.Contains(err.Error(), "handed to your running workflows") {
		t.Fatalf("refresh after hand-over: %v; want a session-expired error naming the hand-over", err)
	}
	if after, _ := c.Load(); after.RefreshToken != s.RefreshToken {
		t.Error("the handed-over refresh token was used")
	}
}
