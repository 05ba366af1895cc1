package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

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
	h, err := Hierarchy(env.String("OIDCFLOW_ROLE_HIERARCHY"))
	if err != nil {
		return nil, err
	}
	claims, err := ClaimMapping(env.String("OIDCFLOW_CLAIMS"), env.String("OIDCFLOW_CLAIMS_NAMESPACE"), env.String("OIDCFLOW_CLIENT_ID"))
	if err != nil {
		return nil, err
	}
	return identity.NewVerifier(ctx, identity.VerifierOptions{
		Issuer:    issuer,
		ClientID:  env.String("OIDCFLOW_CLIENT_ID"),
		Leeway:    leeway,
		Claims:    &claims,
		Hierarchy: h,
	})
}

// ClaimMapping returns the claim mapping preset named by OIDCFLOW_CLAIMS. namespace is
// Auth0's claim namespace, or the Keycloak client whose roles count (default: clientID).
func ClaimMapping(preset, namespace, clientID string) (identity.ClaimMapping, error) {
	switch preset {
	case "generic", "":
		return identity.GenericClaims(), nil
	case "hydra":
		return identity.HydraClaims(), nil
	case "keycloak":
		if namespace == "" {
			namespace = clientID
		}
		return identity.KeycloakClaims(namespace), nil
	case "okta":
		return identity.OktaClaims(), nil
	case "entra":
		return identity.EntraIDClaims(), nil
	case "auth0":
		if namespace == "" {
			return identity.ClaimMapping{}, fmt.Errorf("app: OIDCFLOW_CLAIMS=auth0 needs OIDCFLOW_CLAIMS_NAMESPACE (e.g. https://example.com/)")
		}
		return identity.Auth0Claims(namespace), nil
	case "google":
		return identity.GoogleClaims(), nil
	}
	return identity.ClaimMapping{}, fmt.Errorf("app: OIDCFLOW_CLAIMS=%q; use generic, hydra, keycloak, okta, entra, auth0 or google", preset)
}

// Hierarchy parses nested-role configuration: inline JSON, or @path of a JSON file, shaped
// {"role_implies": {"admin": ["db-approver"]}, "group_implies": {"sre": ["engineer"]}}.
// A file with a top-level "hierarchy" object (the dev personas file) works too.
func Hierarchy(spec string) (identity.Hierarchy, error) {
	if spec == "" {
		return identity.Hierarchy{}, nil
	}
	raw := []byte(spec)
	if path, ok := strings.CutPrefix(spec, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return identity.Hierarchy{}, fmt.Errorf("app: OIDCFLOW_ROLE_HIERARCHY: %w", err)
		}
		raw = b
	}
	type hierarchy struct {
		RoleImplies  map[string][]string `json:"role_implies"`
		GroupImplies map[string][]string `json:"group_implies"`
	}
	var doc struct {
		hierarchy
		Hierarchy *hierarchy `json:"hierarchy"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return identity.Hierarchy{}, fmt.Errorf("app: OIDCFLOW_ROLE_HIERARCHY is not valid JSON: %w", err)
	}
	h := doc.hierarchy
	if doc.Hierarchy != nil {
		h = *doc.Hierarchy
	}
	return identity.Hierarchy{RoleImplies: h.RoleImplies, GroupImplies: h.GroupImplies}, nil
}
