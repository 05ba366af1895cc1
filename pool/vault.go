package pool

import (
	"context"
	"fmt"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/tokenstore/vaultauth"
)

// vaultLogin returns a Vault client logged in as the worker (Config.VaultAuth) and the
// vaultauth.Session that keeps its token alive; Run runs it for the life of the pool.
func vaultLogin(ctx context.Context, c Config) (*vault.Client, *vaultauth.Session, error) {
	cfg := vault.DefaultConfig()
	cfg.Address = c.VaultAddress
	vc, err := vault.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("pool: vault client: %w", err)
	}
	vc.ClearToken() // only the login's token, never one from the environment
	s, err := vaultauth.New(vaultauth.Options{
		Client: vc, Method: vaultauth.Method(c.VaultAuth), Logger: c.Logger,
		RoleID: c.VaultRoleID, SecretID: c.VaultSecretID, Token: c.VaultToken, KubernetesRole: c.VaultKubernetesRole,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := s.Login(ctx); err != nil {
		return nil, nil, fmt.Errorf("pool: log in to Vault at %s with %s: %w", c.VaultAddress, c.VaultAuth, err)
	}
	return vc, s, nil
}
