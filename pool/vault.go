package pool

import (
	"context"
	"fmt"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/payloadcodec"
	"github.com/oidcflow/oidcflow/tokenstore/vaultauth"
)

// LoginVault logs in to Vault as a pool member does (VaultAddress, VaultAuth and its
// settings: AppRole, token or Kubernetes) and returns the client and the session that keeps
// its token alive: run session.Run for the life of the process. Processes that work beside
// the pool with its Vault identity use it (the codec server). It checks no other setting.
func (c Config) LoginVault(ctx context.Context) (*vault.Client, *vaultauth.Session, error) {
	return vaultLogin(ctx, c.withDefaults())
}

// NewPayloadCodec returns the payload codec of c (PayloadTransitKey, in Transit's default
// mount) over a client logged in as the worker (LoginVault, Parts.Vault). It calls Vault only
// when it first encodes or decodes.
func (c Config) NewPayloadCodec(vc *vault.Client) (*payloadcodec.Codec, error) {
	c = c.withDefaults()
	return payloadcodec.New(payloadcodec.Options{
		Transit: payloadcodec.NewVaultTransit(vc, payloadcodec.DefaultTransitMount), Key: c.PayloadTransitKey,
	})
}

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
