package identity

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestClaimsPreset(t *testing.T) {
	for _, tc := range []struct {
		name, namespace string
		want            ClaimMapping
	}{
		{"", "", GenericClaims()},
		{"generic", "", GenericClaims()},
		{"hydra", "", HydraClaims()},
		{"keycloak", "", KeycloakClaims("starter")}, // default: the client id
		{"keycloak", "backend", KeycloakClaims("backend")},
		{"okta", "", OktaClaims()},
		{"entra", "", EntraIDClaims()},
		{"auth0", "https://example.com/", Auth0Claims("https://example.com/")},
		{"google", "", GoogleClaims()},
	} {
		got, err := ClaimsPreset(tc.name, tc.namespace, "starter")
		if err != nil {
			t.Errorf("ClaimsPreset(%q, %q): %v", tc.name, tc.namespace, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ClaimsPreset(%q, %q) = %+v, want %+v", tc.name, tc.namespace, got, tc.want)
		}
	}
	for _, name := range ClaimsPresets {
		if name == "auth0" {
			continue
		}
		if _, err := ClaimsPreset(name, "", "starter"); err != nil {
			t.Errorf("listed preset %q: %v", name, err)
		}
	}
	for _, bad := range []struct{ name, namespace string }{{"auth0", ""}, {"azure", ""}, {"Generic", ""}} {
		if _, err := ClaimsPreset(bad.name, bad.namespace, "starter"); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ClaimsPreset(%q, %q): err = %v, want ErrBadConfig", bad.name, bad.namespace, err)
		}
	}
}

func TestParseHierarchy(t *testing.T) {
	want := Hierarchy{RoleImplies: map[string][]string{"admin": {"db-approver"}}, GroupImplies: map[string][]string{"sre": {"engineer"}}}
	inline := `{"role_implies": {"admin": ["db-approver"]}, "group_implies": {"sre": ["engineer"]}}`
	file := filepath.Join(t.TempDir(), "personas.json")
	if err := os.WriteFile(file, []byte(`{"personas": [], "hierarchy": `+inline+`}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{inline, "@" + file} {
		got, err := ParseHierarchy(spec)
		if err != nil {
			t.Fatalf("ParseHierarchy(%.20q): %v", spec, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ParseHierarchy(%.20q) = %+v, want %+v", spec, got, want)
		}
	}
	if h, err := ParseHierarchy(""); err != nil || h.RoleImplies != nil || h.GroupImplies != nil {
		t.Errorf("ParseHierarchy(\"\") = %+v, %v; want empty", h, err)
	}
	for _, bad := range []string{"{", "[1]", "@" + filepath.Join(t.TempDir(), "missing.json")} {
		if _, err := ParseHierarchy(bad); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ParseHierarchy(%q): err = %v, want ErrBadConfig", bad, err)
		}
	}
}
