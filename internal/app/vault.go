package app

import (
	"context"
	"fmt"
	"log/slog"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/internal/config"
)

// VaultClient returns a Vault client logged in as the worker (OIDCFLOW_VAULT_AUTH).
func VaultClient(ctx context.Context, env *config.Env, logger *slog.Logger) (*vault.Client, error) {
	cfg := vault.DefaultConfig()
	cfg.Address = env.String("VAULT_ADDR")
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("app: vault client: %w", err)
	}
	switch method := env.String("OIDCFLOW_VAULT_AUTH"); method {
	case "token":
		tok, err := env.Required("VAULT_TOKEN")
		if err != nil {
			return nil, err
		}
		c.SetToken(tok)
	case "approle":
		roleID, err := env.Required("OIDCFLOW_VAULT_ROLE_ID")
		if err != nil {
			return nil, err
		}
		secretID, err := env.Required("OIDCFLOW_VAULT_SECRET_ID")
		if err != nil {
			return nil, err
		}
		sec, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID})
		if err != nil || sec == nil || sec.Auth == nil {
			return nil, fmt.Errorf("app: Vault AppRole login at %s failed; check OIDCFLOW_VAULT_ROLE_ID/SECRET_ID: %v", cfg.Address, err)
		}
		c.SetToken(sec.Auth.ClientToken)
	default:
		return nil, fmt.Errorf("app: OIDCFLOW_VAULT_AUTH=%q is not supported (approle, token, kubernetes)", method)
	}
	return c, nil
}
