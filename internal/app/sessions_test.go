package app

import (
	"context"
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// TestDepositRefusedLeavesNoHolder: a deposit of a refresh token already held by another
// subject is refused, and its holder is not left on that session's holder list (a stale
// holder would keep the session from ever being revoked).
func TestDepositRefusedLeavesNoHolder(t *testing.T) {
	st := testharness.Load(t)
	ctx := context.Background()
	cfg := vault.DefaultConfig()
	cfg.Address = st.Env("VAULT_ADDR")
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(st.Env("VAULT_TOKEN"))
	mount := st.Env("OIDCFLOW_VAULT_KV_MOUNT")
	store, err := tokenstore.NewStore(tokenstore.StoreOptions{Client: c, Mount: mount})
	if err != nil {
		t.Fatal(err)
	}
	s := &sessions{store: store, kv: c.KVv2(mount), prefix: "sessions/holders", idKey: []byte(rand.Text())}
	contents := (&oauth2.Token{AccessToken: "at", RefreshToken: "rt-" + rand.Text()}).WithExtra(map[string]any{"id_token": "id"})

	alice := &identity.Identity{Subject: "alice", Issuer: "https://issuer.example"}
	sid, err := s.Deposit(ctx, alice, contents, "run-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = store.Destroy(ctx, sid)
		_ = s.kv.DeleteMetadata(ctx, s.prefix+"/"+sid)
	})
	mallory := &identity.Identity{Subject: "mallory", Issuer: alice.Issuer}
	if _, err := s.Deposit(ctx, mallory, contents, "run-m"); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("deposit for another subject: err = %v, want ErrUnauthenticated", err)
	}
	h, err := s.holders(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.list) != 1 || h.list[0] != "run-a" {
		t.Errorf("holders = %q, want [run-a]", h.list)
	}
}

// Workers that start at once, each seeding from another envelope key (a rotation between
// their starts), agree on one session-id key on the real Vault, logged in as the worker:
// the losers of the create-only write read the winner's.
func TestIntegrationSessionIDKeyOneForThePool(t *testing.T) {
	st := testharness.Load(t)
	ctx := context.Background()
	cfg := vault.DefaultConfig()
	cfg.Address = st.Env("VAULT_ADDR")
	root, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(st.Env("VAULT_TOKEN"))
	mount := st.Env("OIDCFLOW_VAULT_KV_MOUNT")
	path := strings.TrimSuffix(SessionIDKeyPath, "session-id-key") + "test-" + rand.Text()[:8]
	t.Cleanup(func() { _ = root.KVv2(mount).DeleteMetadata(context.Background(), path) })

	keys := make([][]byte, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			c, err := vault.NewClient(cfg)
			if err != nil {
				errs[i] = err
				return
			}
			login, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
				"role_id": st.Env("OIDCFLOW_VAULT_ROLE_ID"), "secret_id": st.Env("OIDCFLOW_VAULT_SECRET_ID")})
			if err != nil {
				errs[i] = err
				return
			}
			c.SetToken(login.Auth.ClientToken)
			keys[i], errs[i] = LoadSessionIDKey(ctx, c, mount, path, []byte("envelope key of worker "+strconv.Itoa(i)))
		})
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		if string(keys[i]) != string(keys[0]) {
			t.Fatalf("workers 0 and %d disagree on the session-id key", i)
		}
	}
}
