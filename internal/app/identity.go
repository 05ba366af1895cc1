package app

import (
	"context"
	"fmt"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/config"
)

// NewVerifier builds the ID token verifier from the environment: OIDCFLOW_ISSUER,
// OIDCFLOW_CLIENT_ID, OIDCFLOW_LEEWAY and OIDCFLOW_ROLE_HIERARCHY.
func NewVerifier(ctx context.Context, env *config.Env) (*identity.Verifier, error) {
	issuer, err := env.Required("OIDCFLOW_ISSUER")
	if err != nil {
		return nil, err
	}
	leeway, err := env.Duration("OIDCFLOW_LEEWAY")
	if err != nil {
		return nil, err
	}
	h, err := identity.ParseHierarchy(env.String("OIDCFLOW_ROLE_HIERARCHY"))
	if err != nil {
		return nil, fmt.Errorf("app: OIDCFLOW_ROLE_HIERARCHY: %w", err)
	}
	claims, err := identity.ClaimsPreset(env.String("OIDCFLOW_CLAIMS"), env.String("OIDCFLOW_CLAIMS_NAMESPACE"), env.String("OIDCFLOW_CLIENT_ID"))
	if err != nil {
		return nil, fmt.Errorf("app: OIDCFLOW_CLAIMS: %w", err)
	}
	return identity.NewVerifier(ctx, identity.VerifierOptions{
		Issuer:    issuer,
		ClientID:  env.String("OIDCFLOW_CLIENT_ID"),
		Leeway:    leeway,
		Claims:    &claims,
		Hierarchy: h,
	})
}
