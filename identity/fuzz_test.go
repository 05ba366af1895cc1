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
		// Other spellings of the valid token, and text that decodes to U+FFFD.
		valid + "\n", " " + valid, parts[0] + "." + parts[1] + "." + parts[2][:10] + " " + parts[2][10:],
		parts[0] + "\r\n." + parts[1] + "." + parts[2], valid + "==", respell(valid, 2),
		key.signParts(f, []byte(`{"alg":"EdDSA","kid":"k1"}`), []byte(strings.Replace(string(mustJSON(f, p.claims())), `"bob"`, "\"\xffbob\"", 1))),
		key.signParts(f, []byte(`{"alg":"EdDSA","kid":"k1"}`), []byte(strings.Replace(string(mustJSON(f, p.claims())), `"bob"`, `"\ud800bob"`, 1))),
		key.signParts(f, []byte("{\"alg\":\"EdDSA\",\"kid\":\"k1\xff\"}"), mustJSON(f, p.claims())),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := v.VerifyIDToken(context.Background(), raw)
		if err == nil {
			if id.Subject != "bob" || id.Issuer != p.issuer {
				t.Fatalf("accepted %+v", id)
			}
			if strings.IndexFunc(raw, notCompact) >= 0 {
				t.Fatalf("accepted a token that is not strictly compact JWS: %q", raw)
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

// FuzzCheckText: text that checkText accepts decodes without any U+FFFD that its bytes do
// not spell out (literally or as \ufffd), so no two accepted texts collide through
// encoding/json's replacements.
func FuzzCheckText(f *testing.F) {
	for _, s := range []string{`"bob"`, "\"\xffbob\"", `"\ud800"`, `"\udc00\ud800"`, `"\ud83d\ude00"`, `"\\ud800"`,
		`"\ufffd"`, "\"\ufffd\"", `"\uD83D\uDE00\uD83D"`, `"\u12"`, `{"a":"\ud800\u0041"}`, `"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		if checkText(b) != nil || json.Unmarshal(b, &v) != nil {
			return
		}
		spelled := strings.Count(string(b), "\ufffd") + strings.Count(strings.ToLower(string(b)), `\ufffd`)
		out, _ := json.Marshal(v) // Marshal escapes nothing it need not; U+FFFD stays literal
		if got := strings.Count(string(out), "\ufffd"); got > spelled {
			t.Fatalf("checkText accepted %q, which decodes with %d U+FFFD (%d spelled out)", b, got, spelled)
		}
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
