package tokenstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/tokenstore"
	"github.com/oidcflow/oidcflow/tokenstore/vaultauth"
)

// vaultClient returns a Vault client of the stack logged in as the worker (AppRole), or with
// the root token when root is true (test administration only).
func vaultClient(t *testing.T, s *testharness.Stack, root bool) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = s.Env("VAULT_ADDR")
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	if root {
		c.SetToken(s.Env("VAULT_TOKEN"))
		return c
	}
	a, err := vaultauth.New(vaultauth.Options{Client: c, RoleID: s.Env("OIDCFLOW_VAULT_ROLE_ID"), SecretID: s.Env("OIDCFLOW_VAULT_SECRET_ID")})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

func newStore(t *testing.T, s *testharness.Stack, c *vault.Client) *tokenstore.Store {
	t.Helper()
	st, err := tokenstore.NewStore(tokenstore.StoreOptions{Client: c, Mount: s.Env("OIDCFLOW_VAULT_KV_MOUNT")})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestIntegrationStoreCheckAndSet(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	st := newStore(t, s, vaultClient(t, s, false))
	sess, err := st.Create(ctx, tokenstore.Session{Subject: "bob", Issuer: "iss", ClientID: "c",
		AccessToken: "at", RefreshToken: "rt", Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Destroy(context.Background(), sess.ID) })
	if _, err := st.Create(ctx, sess); !errors.Is(err, tokenstore.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	a, err := st.Get(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := st.Get(ctx, sess.ID)
	if _, err := st.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(ctx, b); !errors.Is(err, tokenstore.ErrConflict) {
		t.Fatalf("stale update against real Vault: %v", err)
	}
	if err := st.Destroy(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, sess.ID); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("after destroy: %v", err)
	}
	if err := st.Destroy(ctx, sess.ID); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
}

type realSession struct {
	store    *tokenstore.Store
	verifier *identity.Verifier
	client   *testharness.Client
	session  tokenstore.Session
	login    *oauth2.Token
}

// loginSession logs bob in through a fresh client with ttl access tokens and stores the
// session.
func loginSession(t *testing.T, s *testharness.Stack, ttl time.Duration) realSession {
	t.Helper()
	return loginSessionWith(t, s, testharness.ClientOptions{AccessTokenTTL: ttl}, 0)
}

// loginSessionWith logs bob in through a fresh client with opts and stores the session. Its
// verifier allows leeway on exp, nbf and iat (0: the default).
func loginSessionWith(t *testing.T, s *testharness.Stack, opts testharness.ClientOptions, leeway time.Duration) realSession {
	t.Helper()
	ctx := context.Background()
	cl := s.NewClient(t, opts)
	tok := cl.Login(t, "bob")
	v, err := identity.NewVerifier(ctx, identity.VerifierOptions{Issuer: s.Env("OIDCFLOW_ISSUER"), ClientID: cl.ID, CacheTTL: -1, Leeway: leeway})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	orig, err := v.VerifyIDToken(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t, s, vaultClient(t, s, false))
	sess, err := st.Create(ctx, tokenstore.NewSession(orig, cl.ID, tok, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Destroy(context.Background(), sess.ID) })
	return realSession{store: st, verifier: v, client: cl, session: sess, login: tok}
}

func (rs realSession) refresher(t *testing.T, s *testharness.Stack, logs *strings.Builder, mu *sync.Mutex, owner string, mods ...func(*tokenstore.RefresherOptions)) *tokenstore.Refresher {
	t.Helper()
	var log *slog.Logger
	if logs != nil {
		log = slog.New(slog.NewJSONHandler(lockedWriter{logs, mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts := tokenstore.RefresherOptions{
		Store: rs.store, OAuth2: *rs.client.Config, Issuer: s.Env("OIDCFLOW_ISSUER"), Checker: rs.verifier,
		Logger: log, Owner: owner, PollInterval: 50 * time.Millisecond,
	}
	for _, m := range mods {
		m(&opts)
	}
	r, err := tokenstore.NewRefresher(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A worker that dies between Hydra's answer and the Vault write (the test hook) loses the
// rotated refresh token. Once the dead one's claim expired, the next worker presents the old
// refresh token: without a rotation grace period (the dev stack's default) it gets
// invalid_grant: ReauthRequired, not a loop; within one (OIDCFLOW_REFRESH_ROTATION_GRACE,
// which the stack's env file names) that works.
func TestIntegrationCrashBeforeWrite(t *testing.T) {
	s := testharness.Load(t)
	grace, _ := time.ParseDuration(s.Env("OIDCFLOW_REFRESH_ROTATION_GRACE")) // absent: an older stack, 0s
	ctx := context.Background()
	rs := loginSession(t, s, 2*time.Second)
	// A short claim keeps the wait for the dead one's claim short; the token endpoint still
	// gets seconds to answer on a busy machine.
	short := func(o *tokenstore.RefresherOptions) { o.ClaimTTL, o.RefreshTimeout = 8*time.Second, 5*time.Second }
	crash := errors.New("worker killed")
	dying := rs.refresher(t, s, nil, nil, "dying", short, func(o *tokenstore.RefresherOptions) {
		o.AfterIdPAnswer = func(context.Context, string) error { return crash }
	})
	time.Sleep(time.Until(dying.RefreshDue(rs.session)) + 100*time.Millisecond)
	if _, err := dying.Fresh(ctx, rs.session.ID); !errors.Is(err, crash) {
		t.Fatalf("err %v", err)
	}
	next := rs.refresher(t, s, nil, nil, "next", short)
	_, err := next.Fresh(ctx, rs.session.ID)
	if grace > 0 {
		if err != nil {
			t.Fatalf("after the crash, with a %s grace period: %v", grace, err)
		}
		return
	}
	if !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("after the crash: %v", err)
	}
	stored, err := rs.store.Get(ctx, rs.session.ID)
	if err != nil {
		t.Fatalf("session lost: %v", err)
	}
	if stored.RefreshToken != rs.login.RefreshToken {
		t.Fatal("stored refresh token changed")
	}
}

type lockedWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// A real Hydra refresh: 10-second access tokens, refreshed when less than half is left; the
// rotated refresh token is stored, the old one is dead, the new access token is active. (The
// first call must come within half the token's life of the login, five seconds even on a
// busy machine.)
func TestIntegrationRefreshWithHydra(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	rs := loginSession(t, s, 10*time.Second)
	var logs strings.Builder
	var mu sync.Mutex
	r := rs.refresher(t, s, &logs, &mu, "w1")

	got, err := r.Fresh(ctx, rs.session.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != rs.login.AccessToken {
		t.Fatal("refreshed a fresh token")
	}
	time.Sleep(time.Until(r.RefreshDue(got)) + 100*time.Millisecond)
	got, err = r.Fresh(ctx, rs.session.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken == rs.login.AccessToken || got.RefreshToken == rs.login.RefreshToken || got.Refreshes != 1 {
		t.Fatalf("not refreshed: %v", got)
	}
	stored, err := rs.store.Get(ctx, rs.session.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.RefreshToken != got.RefreshToken {
		t.Fatal("rotated refresh token not stored")
	}
	if in := s.Introspect(t, got.AccessToken); !in.Active || in.Subject != rs.session.Subject {
		t.Fatalf("new access token: %+v", in)
	}
	if in := s.Introspect(t, rs.login.RefreshToken); in.Active {
		t.Fatal("old refresh token still active")
	}
	for _, secret := range []string{rs.login.AccessToken, rs.login.RefreshToken, got.AccessToken, got.RefreshToken, got.IDToken} {
		if strings.Contains(logs.String(), secret) {
			t.Fatal("token in logs")
		}
	}
}

// Two refreshers (two worker processes) with ten callers each hit one stale session: Hydra
// sees one refresh, every caller gets the same new token, and the family stays alive (no
// reuse detection). The tokens live 8 seconds, so that the refreshed one stays fresh (4
// seconds) until the last of the twenty callers read it, even on a busy machine.
func TestIntegrationConcurrentRefreshOneRotation(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	rs := loginSession(t, s, 8*time.Second)
	r1 := rs.refresher(t, s, nil, nil, "w1")
	r2 := rs.refresher(t, s, nil, nil, "w2")
	time.Sleep(time.Until(r1.RefreshDue(rs.session)) + 100*time.Millisecond)

	var wg sync.WaitGroup
	tokens := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		r := r1
		if i%2 == 1 {
			r = r2
		}
		wg.Go(func() {
			got, err := r.Fresh(ctx, rs.session.ID)
			tokens[i], errs[i] = got.AccessToken, err
		})
	}
	wg.Wait()
	for i := range 20 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if tokens[i] != tokens[0] {
			t.Fatal("callers got different tokens: more than one refresh")
		}
	}
	stored, err := rs.store.Get(ctx, rs.session.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Refreshes != 1 {
		t.Fatalf("%d refreshes", stored.Refreshes)
	}
	// The family is alive: the next rotation works.
	time.Sleep(time.Until(r1.RefreshDue(stored)) + 100*time.Millisecond)
	if _, err := r2.Fresh(ctx, rs.session.ID); err != nil {
		t.Fatalf("next rotation: %v", err)
	}
}

// Revoke: Hydra's introspection says the refresh and access tokens are inactive, and the
// secret is gone from Vault.
func TestIntegrationRevoke(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	rs := loginSession(t, s, time.Minute)
	r := rs.refresher(t, s, nil, nil, "w1")
	if in := s.Introspect(t, rs.login.RefreshToken); !in.Active {
		t.Fatal("refresh token inactive before revocation")
	}
	if err := r.Revoke(ctx, rs.session.ID); err != nil {
		t.Fatal(err)
	}
	if in := s.Introspect(t, rs.login.RefreshToken); in.Active {
		t.Fatal("refresh token still active")
	}
	if in := s.Introspect(t, rs.login.AccessToken); in.Active {
		t.Fatal("access token still active")
	}
	if _, err := rs.store.Get(ctx, rs.session.ID); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("secret: %v", err)
	}
	if err := r.Revoke(ctx, rs.session.ID); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := r.Fresh(ctx, rs.session.ID); !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("fresh after revoke: %v", err)
	}
}

// A refresh token revoked at the IdP makes Fresh report ReauthRequired (invalid_grant).
func TestIntegrationInvalidGrant(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	rs := loginSession(t, s, 2*time.Second)
	r := rs.refresher(t, s, nil, nil, "w1")
	// Use the refresh token outside the store: Hydra rotates it, the stored one is dead.
	rs.client.Refresh(t, rs.login)
	time.Sleep(time.Until(r.RefreshDue(rs.session)) + 100*time.Millisecond)
	_, err := r.Fresh(ctx, rs.session.ID)
	if !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), rs.login.RefreshToken) {
		t.Fatal("token in error")
	}
}

// TestIntegrationVaultTokenRenewal: with a 10-second Vault token TTL (and a 25-second max TTL, so the
// token must also be re-acquired), a worker keeps reading and writing its sessions for 60 s.
func TestIntegrationVaultTokenRenewal(t *testing.T) {
	s := testharness.Load(t)
	if testing.Short() {
		t.Skip("60 s test")
	}
	ctx := context.Background()
	root := vaultClient(t, s, true)
	role := fmt.Sprintf("auth/approle/role/oidcflow-test-%d", time.Now().UnixNano())
	if _, err := root.Logical().Write(role, map[string]any{
		"token_policies": []string{"oidcflow-worker"}, "token_ttl": "10s", "token_max_ttl": "25s",
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = root.Logical().Delete(role) })
	rid, err := root.Logical().Read(role + "/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().Write(role+"/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := vault.DefaultConfig()
	cfg.Address = s.Env("VAULT_ADDR")
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	var logs strings.Builder
	var mu sync.Mutex
	a, err := vaultauth.New(vaultauth.Options{Client: c, RoleID: fmt.Sprint(rid.Data["role_id"]), SecretID: fmt.Sprint(sid.Data["secret_id"]),
		Logger: slog.New(slog.NewJSONHandler(lockedWriter{&logs, &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.Login(rctx); err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Run(rctx) }()

	st := newStore(t, s, c)
	sess, err := st.Create(ctx, tokenstore.Session{Subject: "bob", Issuer: "iss", ClientID: "c", AccessToken: "at", Expiry: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Destroy(context.Background(), sess.ID) })
	tokens := map[string]bool{}
	ok := 0
	var lastOutage, lastOK time.Time
	start := time.Now()
	end := start.Add(62 * time.Second)
	for time.Now().Before(end) {
		time.Sleep(time.Second)
		got, err := st.Get(ctx, sess.ID)
		if err == nil {
			_, err = st.Update(ctx, got)
		}
		if errors.Is(err, tokenstore.ErrUnavailable) {
			// Vault itself down (the stack restarted): not a token problem.
			t.Logf("vault unavailable: %v", err)
			lastOutage = time.Now()
			continue
		}
		if err != nil && time.Since(lastOutage) < 15*time.Second {
			// The token may have expired during the outage; the next login replaces it.
			t.Logf("right after an outage: %v", err)
			continue
		}
		if err != nil {
			// A 403 here would be an expired worker token.
			t.Fatalf("after %d logins: %v", a.Logins(), err)
		}
		ok++
		lastOK = time.Now()
		tokens[c.Token()] = true
	}
	// How many rounds fit in the minute depends on how busy the machine is; what counts is
	// that the worker still reads and writes after its token had to be re-acquired twice.
	t.Logf("%d successful rounds, %d logins", ok, a.Logins())
	if ok == 0 || lastOK.Before(start.Add(50*time.Second)) {
		t.Fatalf("no successful round after the second max TTL (%d in all, the last at %s of 62 s)",
			ok, lastOK.Sub(start).Round(time.Second))
	}
	if a.Logins() < 3 {
		t.Fatalf("%d logins in 60 s with a 25 s max TTL", a.Logins())
	}
	for tok := range tokens {
		if strings.Contains(logs.String(), tok) {
			t.Fatal("vault token in logs")
		}
	}
}
