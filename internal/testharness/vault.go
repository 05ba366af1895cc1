package testharness

import (
	"context"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// VaultRoot is a Vault client of the stack with its root token.
func (s *Stack) VaultRoot(t testing.TB) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = s.env["VAULT_ADDR"]
	vc, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatalf("testharness: vault client: %v", err)
	}
	vc.SetToken(s.env["VAULT_TOKEN"])
	return vc
}

// TransitKey creates an aes256-gcm96 key named prefix and a random suffix in the stack's
// Transit mount ("transit"), deleted when t ends, and returns the root client and its name.
func (s *Stack) TransitKey(t testing.TB, prefix string) (*vault.Client, string) {
	t.Helper()
	vc := s.VaultRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := prefix + "-" + random()[:12]
	path := "transit/keys/" + name
	if _, err := vc.Logical().WriteWithContext(ctx, path, map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatalf("testharness: create Transit key: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = vc.Logical().WriteWithContext(ctx, path+"/config", map[string]any{"deletion_allowed": true})
		_, _ = vc.Logical().DeleteWithContext(ctx, path)
	})
	return vc, name
}
