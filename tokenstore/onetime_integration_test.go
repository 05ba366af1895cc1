package tokenstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// rootVault returns a Vault client of the stack with the root token (test administration
// only: the worker's policy is the deployment's business, TestIntegrationOneTimePolicy checks
// the one OneTime documents).
func rootVault(tb testing.TB, s *testharness.Stack) *vault.Client {
	tb.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = s.Env("VAULT_ADDR")
	c, err := vault.NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	c.SetToken(s.Env("VAULT_TOKEN"))
	return c
}

// testPrefix is a folder of its own for one test, removed at the end.
func testPrefix(tb testing.TB, s *testharness.Stack) string {
	tb.Helper()
	prefix := "onetime-test/" + strings.ToLower(rand.Text()[:12])
	tb.Cleanup(func() {
		o, err := tokenstore.NewOneTime(tokenstore.OneTimeOptions{Client: rootVault(tb, s),
			Mount: s.Env("OIDCFLOW_VAULT_KV_MOUNT"), Prefix: prefix,
			Clock: func() time.Time { return time.Now().Add(7 * 24 * time.Hour) }})
		if err == nil {
			_, err = o.Sweep(context.Background())
		}
		if err != nil {
			tb.Logf("cleanup of %s: %v", prefix, err)
		}
	})
	return prefix
}

type settableClock struct{ ns atomic.Int64 }

func (c *settableClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *settableClock) now() time.Time  { return time.Unix(0, c.ns.Load()) }
func newSettableClock() *settableClock   { c := &settableClock{}; c.set(time.Now()); return c }
func newID() string                      { return rand.Text()[:22] }
func mustOneTime(tb testing.TB, opts tokenstore.OneTimeOptions) *tokenstore.OneTime {
	tb.Helper()
	o, err := tokenstore.NewOneTime(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

// TestIntegrationOneTimeSpendOnce replays one id 50 times at once against the real Vault, as
// 50 pool members would: exactly one Spend succeeds, 49 are ErrReplayed.
func TestIntegrationOneTimeSpendOnce(t *testing.T) {
	s := testharness.Load(t)
	o := mustOneTime(t, tokenstore.OneTimeOptions{Client: rootVault(t, s),
		Mount: s.Env("OIDCFLOW_VAULT_KV_MOUNT"), Prefix: testPrefix(t, s)})
	id := newID()
	until := time.Now().Add(15 * time.Minute)
	var ok, replayed atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			switch err := o.Spend(context.Background(), id, anyOwner(), until); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, tokenstore.ErrReplayed) && errors.Is(err, identity.ErrUnauthenticated):
				replayed.Add(1)
			default:
				t.Errorf("Spend: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != 49 {
		t.Fatalf("%d spends succeeded and %d were refused as replays, want 1 and 49", ok.Load(), replayed.Load())
	}
	if err := o.Spend(context.Background(), id, anyOwner(), until); !errors.Is(err, tokenstore.ErrReplayed) {
		t.Fatalf("a later Spend: %v", err)
	}
}

// TestIntegrationOneTimeSweep: on the real Vault, Sweep removes the buckets whose hour has
// ended and only those, and a swept id can be spent again.
func TestIntegrationOneTimeSweep(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	clock := newSettableClock()
	o := mustOneTime(t, tokenstore.OneTimeOptions{Client: rootVault(t, s),
		Mount: s.Env("OIDCFLOW_VAULT_KV_MOUNT"), Prefix: testPrefix(t, s), Clock: clock.now})
	now := time.Now()
	past := []string{newID(), newID(), newID()}
	kept := []string{newID(), newID()}
	// Spent three hours ago, recorded until two hours ago (and one until an hour and a half
	// ago): past buckets.
	clock.set(now.Add(-3 * time.Hour))
	for i, id := range past {
		if err := o.Spend(ctx, id, anyOwner(), now.Add(-2*time.Hour+time.Duration(i)*15*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	// Spent now, recorded until the next hour and beyond: future buckets.
	clock.set(now)
	for i, id := range kept {
		if err := o.Spend(ctx, id, anyOwner(), now.Add(time.Hour+time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := o.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(past) {
		t.Fatalf("Sweep removed %d records, want %d", n, len(past))
	}
	for i, id := range kept {
		if err := o.Spend(ctx, id, anyOwner(), now.Add(time.Hour+time.Duration(i)*time.Hour)); !errors.Is(err, tokenstore.ErrReplayed) {
			t.Fatalf("a kept id after Sweep: %v", err)
		}
	}
	// A swept id is gone for good: spent again, it is accepted once more. This is why until
	// must lie beyond the envelope's maximum age.
	if err := o.Spend(ctx, past[0], anyOwner(), now.Add(-2*time.Hour+time.Minute)); err == nil {
		t.Fatal("Spend accepted an until in the past")
	}
	if err := o.Spend(ctx, past[0], anyOwner(), now.Add(time.Hour)); err != nil {
		t.Fatalf("Spend of a swept id: %v", err)
	}
	if n, err := o.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second Sweep: %d, %v", n, err)
	}
}

// TestIntegrationOneTimePolicy runs OneTime under exactly the policy its documentation names
// (create, read and update on data, list and delete on metadata, for its prefix only): Spend, a
// replay, and Sweep all behave; and a write outside the prefix is denied.
func TestIntegrationOneTimePolicy(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	root := rootVault(t, s)
	mount := s.Env("OIDCFLOW_VAULT_KV_MOUNT")
	prefix := testPrefix(t, s)
	name := "oidcflow-onetime-test-" + strings.ToLower(rand.Text()[:8])
	policy := fmt.Sprintf(`path "%[1]s/data/%[2]s/*" { capabilities = ["create", "read", "update"] }
path "%[1]s/metadata/%[2]s/*" { capabilities = ["list", "delete"] }
`, mount, prefix)
	if err := root.Sys().PutPolicyWithContext(ctx, name, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Sys().DeletePolicyWithContext(context.Background(), name) })
	sec, err := root.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{
		Policies: []string{name}, NoDefaultPolicy: true, TTL: "10m", NoParent: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Auth().Token().RevokeOrphanWithContext(context.Background(), sec.Auth.ClientToken) })
	c, err := root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(sec.Auth.ClientToken)

	clock := newSettableClock()
	o := mustOneTime(t, tokenstore.OneTimeOptions{Client: c, Mount: mount, Prefix: prefix, Clock: clock.now})
	id := newID()
	now := time.Now()
	clock.set(now.Add(-3 * time.Hour))
	if err := o.Spend(ctx, id, anyOwner(), now.Add(-2*time.Hour)); err != nil {
		t.Fatalf("Spend under the documented policy: %v", err)
	}
	if err := o.Spend(ctx, id, anyOwner(), now.Add(-2*time.Hour)); !errors.Is(err, tokenstore.ErrReplayed) {
		t.Fatalf("replay under the documented policy: %v", err)
	}
	clock.set(now)
	if n, err := o.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep under the documented policy: %d, %v", n, err)
	}
	other := mustOneTime(t, tokenstore.OneTimeOptions{Client: c, Mount: mount, Prefix: "sessions"})
	if err := other.Spend(ctx, newID(), anyOwner(), now.Add(time.Hour)); err == nil || errors.Is(err, tokenstore.ErrReplayed) {
		t.Fatalf("a write outside the prefix: %v", err)
	}
}

// BenchmarkIntegrationOneTimeSpend measures one Spend of a fresh id on the real Vault (one
// create-only KV v2 write), the cost one-time checking adds to each envelope a worker opens.
func BenchmarkIntegrationOneTimeSpend(b *testing.B) {
	s := testharness.Load(b)
	o := mustOneTime(b, tokenstore.OneTimeOptions{Client: rootVault(b, s),
		Mount: s.Env("OIDCFLOW_VAULT_KV_MOUNT"), Prefix: testPrefix(b, s)})
	until := time.Now().Add(15 * time.Minute)
	ctx := context.Background()
	for b.Loop() {
		if err := o.Spend(ctx, newID(), anyOwner(), until); err != nil {
			b.Fatal(err)
		}
	}
}

func anyOwner() string { return rand.Text() }
