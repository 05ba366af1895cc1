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
	return identity.NewVerifier(ctx, identity.VerifierOptions{
		Issuer:    issuer,
		ClientID:  env.String("OIDCFLOW_CLIENT_ID"),
		Leeway:    leeway,
		Hierarchy: h,
	})
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
