package identity

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// FuzzVerifyIDToken feeds arbitrary strings to VerifyIDToken: it must never panic, never
// accept anything but a token signed by the issuer for bob, and never echo the input.
func FuzzVerifyIDToken(f *testing.F) {
	key := newKey(f, "EdDSA", "k1")
	p := newIDP(f, key)
	v := p.verifier(f, func(o *VerifierOptions) { o.CacheTTL = -1 })
	valid := key.sign(f, nil, p.claims())
	parts := strings.Split(valid, ".")
	for _, s := range []string{
		valid, "", ".", "..", "...", "a.b.c", parts[0] + "." + parts[1] + ".",
		b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".",
		b64([]byte(`{"alg":"EdDSA","kid":"k1","crit":["b64"],"b64":false}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"EdDSA","kid":"k1","typ":"at+jwt"}`)) + "." + parts[1] + "." + parts[2],
		key.sign(f, nil, []byte(`{"aud":1}`)),
		key.sign(f, nil, []byte(`{"exp":"x","iat":1e999}`)),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := v.VerifyIDToken(context.Background(), raw)
		if err == nil {
			if id.Subject != "bob" || id.Issuer != p.issuer {
				t.Fatalf("accepted %+v", id)
			}
			return
		}
		if len(raw) >= 24 && strings.Contains(err.Error(), raw) {
			t.Fatalf("error echoes the input: %v", err)
		}
	})
}

// FuzzParseHeader fuzzes the pre-signature parser directly with a large cap.
func FuzzParseHeader(f *testing.F) {
	f.Add(b64([]byte(`{"alg":"RS256","kid":"k","typ":"JWT"}`)) + ".e30.sig")
	f.Add(b64([]byte(`{"alg":"RS256","ALG":"none"}`)) + "..")
	f.Add("....")
	f.Fuzz(func(t *testing.T, raw string) {
		h, err := parseHeader(raw, 1<<20)
		if err == nil && strings.Count(raw, ".") != 2 {
			t.Fatalf("accepted %d parts", strings.Count(raw, ".")+1)
		}
		_ = h
	})
}

// FuzzMapClaims maps arbitrary JSON claims with every preset and a hierarchy: no panic,
// roles sorted and unique.
func FuzzMapClaims(f *testing.F) {
	f.Add([]byte(`{"realm_access":{"roles":["a","b"]},"resource_access":{"c.d":{"roles":["x"]}},"groups":["g"]}`), "resource_access.c.d.roles")
	f.Add([]byte(`{"ext":{"roles":"r"},"roles":[1,2,null],"https://n/roles":["z"]}`), "https://n/roles")
	f.Add([]byte(`{"a":{"a":{"a":{"a":"x"}}},"a.a":{"a.a":"y"}}`), "a.a.a.a")
	h := Hierarchy{RoleImplies: map[string][]string{"a": {"b"}, "b": {"a", "c"}}, GroupImplies: map[string][]string{"g": {"a"}}}
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		var claims map[string]any
		if json.Unmarshal(data, &claims) != nil {
			return
		}
		for _, m := range []ClaimMapping{GenericClaims(), KeycloakClaims("c.d"), OktaClaims(), EntraIDClaims(),
			Auth0Claims("https://n"), GoogleClaims(), {Roles: []string{path}, Name: []string{path}}} {
			id := MapClaims(claims, m, h)
			for _, l := range [][]string{id.Roles, id.Groups, id.Permissions} {
				if !slices.IsSorted(l) || len(slices.Compact(slices.Clone(l))) != len(l) {
					t.Fatalf("list not sorted and unique: %q", l)
				}
			}
		}
	})
}
