package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrBadConfig is wrapped by the errors of ClaimsPreset and ParseHierarchy: the setting they
// were given cannot be used. The caller adds the name of the setting it came from.
var ErrBadConfig = errors.New("identity: bad configuration")

// ClaimsPresets lists the names ClaimsPreset knows, in the order the documentation shows them.
var ClaimsPresets = []string{"generic", "hydra", "keycloak", "okta", "entra", "auth0", "google"}

// ClaimsPreset returns the claim mapping of a named identity provider preset: "generic" (or
// ""), "hydra", "keycloak", "okta", "entra", "auth0" or "google" (see the functions
// GenericClaims ... GoogleClaims). namespace is Auth0's namespace of custom claims (required
// for "auth0"), or for "keycloak" the client whose roles count (default clientID); the other
// presets ignore it. It does not check that the provider really sends those claims.
func ClaimsPreset(name, namespace, clientID string) (ClaimMapping, error) {
	switch name {
	case "generic", "":
		return GenericClaims(), nil
	case "hydra":
		return HydraClaims(), nil
	case "keycloak":
		if namespace == "" {
			namespace = clientID
		}
		return KeycloakClaims(namespace), nil
	case "okta":
		return OktaClaims(), nil
	case "entra":
		return EntraIDClaims(), nil
	case "auth0":
		if namespace == "" {
			return ClaimMapping{}, fmt.Errorf("%w: the auth0 claims preset needs the namespace of custom claims (e.g. https://example.com/)", ErrBadConfig)
		}
		return Auth0Claims(namespace), nil
	case "google":
		return GoogleClaims(), nil
	}
	return ClaimMapping{}, fmt.Errorf("%w: unknown claims preset %q; use %s", ErrBadConfig, name, strings.Join(ClaimsPresets, ", "))
}

// ParseHierarchy parses nested-role configuration: inline JSON, or "@" and the path of a
// JSON file, shaped {"role_implies": {"admin": ["db-approver"]}, "group_implies": {"sre":
// ["engineer"]}}. A document whose top-level "hierarchy" object holds those two (the dev
// stack's personas file) works too. An empty spec is an empty Hierarchy. It does not check
// that the roles it names exist anywhere.
func ParseHierarchy(spec string) (Hierarchy, error) {
	if spec == "" {
		return Hierarchy{}, nil
	}
	raw := []byte(spec)
	if path, ok := strings.CutPrefix(spec, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return Hierarchy{}, fmt.Errorf("%w: role hierarchy: %w", ErrBadConfig, err)
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
		return Hierarchy{}, fmt.Errorf("%w: the role hierarchy is not valid JSON: %w", ErrBadConfig, err)
	}
	h := doc.hierarchy
	if doc.Hierarchy != nil {
		h = *doc.Hierarchy
	}
	return Hierarchy(h), nil
}
