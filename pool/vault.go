package app

import (
	"context"
	"fmt"
	"log/slog"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/tokenstore/vaultauth"
)

// VaultClient returns a Vault client logged in as the worker (OIDCFLOW_VAULT_AUTH) and the
// authenticator that keeps its token alive; run its Run method for the life of the worker.
func VaultClient(ctx context.Context, env *config.Env, logger *slog.Logger) (*vault.Client, *vaultauth.Session, error) {
	cfg := vault.DefaultConfig()
	cfg.Address = env.String("VAULT_ADDR")
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("app: vault client: %w", err)
	}
	opts := vaultauth.Options{Client: c, Method: vaultauth.Method(env.String("OIDCFLOW_VAULT_AUTH")), Logger: logger}
	switch opts.Method {
	case vaultauth.Token:
		if opts.Token, err = env.Required("VAULT_TOKEN"); err != nil {
			return nil, nil, err
		}
	case vaultauth.AppRole:
		if opts.RoleID, err = env.Required("OIDCFLOW_VAULT_ROLE_ID"); err != nil {
			return nil, nil, err
		}
		opts.SecretID = env.String("OIDCFLOW_VAULT_SECRET_ID")
	case vaultauth.Kubernetes:
		if opts.KubernetesRole, err = env.Required("OIDCFLOW_VAULT_K8S_ROLE"); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("app: OIDCFLOW_VAULT_AUTH=%q; use approle, token or kubernetes", opts.Method)
	}
	auth, err := vaultauth.New(opts)
	if err != nil {
		return nil, nil, err
	}
	if err := auth.Login(ctx); err != nil {
		return nil, nil, fmt.Errorf("app: log in to Vault at %s with %s: %w", cfg.Address, opts.Method, err)
	}
	return c, auth, nil
}
