package tokenstore_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// sharedSessions returns SharedSessions over rs's store and a refresher of it, with holder
// lists in a folder of the test's own, so that Sweep sees no other test's sessions.
func sharedSessions(t *testing.T, s *testharness.Stack, rs realSession, onFresh func(context.Context, string, error)) *tokenstore.SharedSessions {
	t.Helper()
	return sharedSessionsAt(t, s, rs, "sessions/test-holders/"+rand.Text()[:10], onFresh)
}

// sharedSessionsAt is sharedSessions with its holder lists in prefix.
func sharedSessionsAt(t *testing.T, s *testharness.Stack, rs realSession, prefix string, onFresh func(context.Context, string, error)) *tokenstore.SharedSessions {
	t.Helper()
	key := make([]byte, tokenstore.MinSessionIDKeySize)
	rand.Read(key)
	shared, err := tokenstore.NewSharedSessions(tokenstore.SharedSessionsOptions{
		Store: rs.store, Refresher: rs.refresher(t, s, nil, nil, "w1"), IDKey: key,
		HoldersPrefix: prefix, OnFresh: onFresh,
	})
	if err != nil {
		t.Fatal(err)
	}
	return shared
}

// verified returns rs's identity as the worker verified it.
func (rs realSession) identity(t *testing.T) *identity.Identity {
	t.Helper()
	raw, _ := rs.login.Extra("id_token").(string)
	id, err := rs.verifier.VerifyIDToken(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Two runs started from one login share one session; the first to end leaves the refresh
// token alive, the last one revokes it at the IdP and destroys the session.
func TestIntegrationSharedSessionsLastHolderRevokes(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	rs := loginSession(t, s, time.Minute)
	var mu sync.Mutex
	var checks []error
	shared := sharedSessions(t, s, rs, func(_ context.Context, _ string, err error) {
		mu.Lock()
		defer mu.Unlock()
		checks = append(checks, err)
	})
	bob := rs.identity(t)
	a, err := shared.Deposit(ctx, bob, rs.login, "run-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := shared.Deposit(ctx, bob, rs.login, "run-b/update/u1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.store.Destroy(context.Background(), a) })
	if a != b || a != shared.SessionID(rs.login.RefreshToken) {
		t.Fatalf("deposits of one refresh token got sessions %s and %s", a, b)
	}
	if h, err := shared.Holders(ctx, a); err != nil || !slices.Equal(h, []string{"run-a", "run-b/update/u1"}) {
		t.Fatalf("holders = %q, %v", h, err)
	}
	if raw, kept, err := shared.CurrentIDToken(ctx, a); err != nil || raw == "" || !kept.IsZero() {
		t.Fatalf("CurrentIDToken: %v (kept until %v)", err, kept)
	}
	if len(checks) != 1 || checks[0] != nil {
		t.Errorf("OnFresh saw %v, want one nil", checks)
	}
	if err := shared.End(ctx, a, "run-a"); err != nil {
		t.Fatal(err)
	}
	if in := s.Introspect(t, rs.login.RefreshToken); !in.Active {
		t.Fatal("the first holder's End revoked the refresh token another run still holds")
	}
	if err := shared.End(ctx, a, "run-b/update/u1"); err != nil {
		t.Fatal(err)
	}
	if in := s.Introspect(t, rs.login.RefreshToken); in.Active {
		t.Fatal("refresh token still active after the last holder ended")
	}
	if _, err := rs.store.Get(ctx, a); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("session after the last End: %v", err)
	}
	if err := shared.End(ctx, a, "run-b/update/u1"); err != nil {
		t.Fatalf("End again (a retry): %v", err)
	}
}

// A deposit of a refresh token already held by another subject is refused, and its holder is
// not left on that session's holder list (a stale holder would keep the session from ever
// being revoked).
func TestIntegrationSharedSessionsDepositRefusedLeavesNoHolder(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	rs := loginSession(t, s, time.Minute)
	shared := sharedSessions(t, s, rs, nil)
	tok := (&oauth2.Token{AccessToken: "at", RefreshToken: "rt-" + rand.Text()}).WithExtra(map[string]any{"id_token": "id"})
	alice := &identity.Identity{Subject: "alice", Issuer: "https://issuer.example"}
	sid, err := shared.Deposit(ctx, alice, tok, "run-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.store.Destroy(context.Background(), sid) })
	mallory := &identity.Identity{Subject: "mallory", Issuer: alice.Issuer}
	if _, err := shared.Deposit(ctx, mallory, tok, "run-m"); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("deposit for another subject: err = %v, want ErrUnauthenticated", err)
	}
	if h, err := shared.Holders(ctx, sid); err != nil || !slices.Equal(h, []string{"run-a"}) {
		t.Errorf("holders = %q, %v; want [run-a]", h, err)
	}
}

// fakeRuns says which workflows are closed.
type fakeRuns map[string]bool

func (f fakeRuns) Closed(_ context.Context, workflowID, _ string) (bool, error) {
	return f[workflowID], nil
}

// Sweep releases the holds of closed workflows (updates of them included) and ends the
// session once no open workflow holds it; holds of open workflows stay.
func TestIntegrationSharedSessionsSweep(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	rs := loginSession(t, s, time.Minute)
	shared := sharedSessions(t, s, rs, nil)
	sid, err := shared.Deposit(ctx, rs.identity(t), rs.login, "wf-dead")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.store.Destroy(context.Background(), sid) })
	if _, err := shared.Deposit(ctx, rs.identity(t), rs.login, "wf-live/update/u1"); err != nil {
		t.Fatal(err)
	}
	runs := fakeRuns{"wf-dead": true}
	if n, err := shared.Sweep(ctx, runs); err != nil || n != 0 {
		t.Fatalf("sweep with a live holder: %d, %v; want 0", n, err)
	}
	if h, _ := shared.Holders(ctx, sid); !slices.Equal(h, []string{"wf-live/update/u1"}) {
		t.Fatalf("holders after the sweep = %q, want the live one only", h)
	}
	if in := s.Introspect(t, rs.login.RefreshToken); !in.Active {
		t.Fatal("the sweep revoked a session a live workflow holds")
	}
	runs["wf-live"] = true
	if n, err := shared.Sweep(ctx, runs); err != nil || n != 1 {
		t.Fatalf("sweep after the last holder closed: %d, %v; want 1", n, err)
	}
	if in := s.Introspect(t, rs.login.RefreshToken); in.Active {
		t.Fatal("refresh token still active after the sweep ended its session")
	}
}

// A holder list in real Vault carries its format; once a newer worker rewrites it in a newer
// format, neither End nor Sweep of this build revokes the session (the refresh token stays
// active at the identity provider) or writes the list.
func TestIntegrationSharedSessionsNewerHolderListIsLeftAlone(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	rs := loginSession(t, s, time.Minute)
	prefix := "sessions/test-holders/" + rand.Text()[:10]
	shared := sharedSessionsAt(t, s, rs, prefix, nil)
	sid, err := shared.Deposit(ctx, rs.identity(t), rs.login, "wf-dead")
	if err != nil {
		t.Fatal(err)
	}
	kv := vaultClient(t, s, true).KVv2(s.Env("OIDCFLOW_VAULT_KV_MOUNT"))
	t.Cleanup(func() {
		_ = rs.store.Destroy(context.Background(), sid)
		_ = kv.DeleteMetadata(context.Background(), prefix+"/"+sid)
	})
	sec, err := kv.Get(ctx, prefix+"/"+sid)
	if err != nil {
		t.Fatal(err)
	}
	if f := sec.Data["format"]; f != json.Number(strconv.Itoa(tokenstore.HolderListFormat)) {
		t.Fatalf("stored holder list format = %#v, want %d", f, tokenstore.HolderListFormat)
	}
	newer := map[string]any{"format": tokenstore.HolderListFormat + 1, "holders": []string{"wf-dead"}}
	if _, err := kv.Put(ctx, prefix+"/"+sid, newer, vault.WithCheckAndSet(sec.VersionMetadata.Version)); err != nil {
		t.Fatal(err)
	}
	if err := shared.End(ctx, sid, "wf-dead"); !errors.Is(err, tokenstore.ErrUnsupportedFormat) {
		t.Fatalf("End over a newer holder list = %v, want ErrUnsupportedFormat", err)
	}
	if n, err := shared.Sweep(ctx, fakeRuns{"wf-dead": true}); n != 0 || !errors.Is(err, tokenstore.ErrUnsupportedFormat) {
		t.Fatalf("Sweep over a newer holder list = %d, %v; want 0 and ErrUnsupportedFormat", n, err)
	}
	if in := s.Introspect(t, rs.login.RefreshToken); !in.Active {
		t.Fatal("a session whose holder list is of a newer format was revoked")
	}
	if sec, err := kv.Get(ctx, prefix+"/"+sid); err != nil || sec.VersionMetadata.Version != 2 {
		t.Fatalf("the newer holder list was written over: %v", err)
	}
}
