package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestVerifyKeptIDToken: a kept ID token past its exp verifies while the caller vouches for
// it (until), with every other ID token rule still applied; it never becomes good for
// VerifyIDToken, not even through the cache.
func TestVerifyKeptIDToken(t *testing.T) {
	key := newKey(t, "ES256", "k1")
	p := newIDP(t, key)
	v := p.verifier(t, nil) // cache on
	ctx := context.Background()
	expired := func(mod func(map[string]any)) map[string]any {
		c := p.claims()
		now := p.clock.Now().Unix()
		c["iat"], c["exp"] = now-7200, now-3600
		if mod != nil {
			mod(c)
		}
		return c
	}
	raw := key.sign(t, nil, expired(nil))
	until := p.clock.Now().Add(5 * time.Minute)

	var te *TokenExpiredError
	if _, err := v.VerifyIDToken(ctx, raw); !errors.As(err, &te) {
		t.Fatalf("VerifyIDToken(expired) = %v, want TokenExpiredError", err)
	}
	id, err := v.VerifyKeptIDToken(ctx, raw, until)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "bob" || !id.HasRole("engineer") || !id.Expiry.Equal(until) {
		t.Fatalf("kept identity %+v", id)
	}
	if _, err := v.VerifyIDToken(ctx, raw); !errors.As(err, &te) {
		t.Fatalf("VerifyIDToken after VerifyKeptIDToken = %v: the kept verification made an expired token good", err)
	}
	// A kept token that is still valid reports its own, later exp.
	fresh := p.claims()
	if id, err := v.VerifyKeptIDToken(ctx, key.sign(t, nil, fresh), until); err != nil || id.Expiry.Before(until.Add(time.Minute)) {
		t.Fatalf("fresh kept token: %+v, %v", id, err)
	}

	for _, c := range []struct {
		name  string
		raw   string
		until time.Time
		want  error
	}{
		{"until passed", raw, p.clock.Now().Add(-2 * time.Minute), ErrUnauthenticated},
		{"until zero", raw, time.Time{}, ErrUnauthenticated},
		{"bad signature", raw[:len(raw)-4] + "AAAA", until, ErrUnauthenticated},
		{"other audience", key.sign(t, nil, expired(func(c map[string]any) { c["aud"] = "other" })), until, ErrInvalidToken},
		{"other issuer", key.sign(t, nil, expired(func(c map[string]any) { c["iss"] = "https://evil.example" })), until, ErrInvalidToken},
		{"access token type", key.sign(t, map[string]any{"alg": "ES256", "kid": "k1", "typ": "at+jwt"}, expired(nil)), until, ErrInvalidToken},
		{"no exp", key.sign(t, nil, expired(func(c map[string]any) { delete(c, "exp") })), until, ErrInvalidToken},
		{"iat in the future", key.sign(t, nil, expired(func(c map[string]any) { c["iat"] = p.clock.Now().Unix() + 3600 })), until, ErrInvalidToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.VerifyKeptIDToken(ctx, c.raw, c.until)
			checkErr(t, c.raw, err, c.want)
		})
	}
}

// TestRecheckKeptIDToken: the userinfo answer for the fresh access token must name the same
// person and, for each authorization claim it carries, the same values as the kept token.
func TestRecheckKeptIDToken(t *testing.T) {
	key := newKey(t, "ES256", "k1")
	p := newIDP(t, key)
	answers := map[string]func(w http.ResponseWriter){}
	answer := func(status int, body map[string]any) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(body)
		}
	}
	ui := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if a, ok := answers[tok]; ok {
			a(w)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer ui.Close()
	v := p.verifier(t, func(o *VerifierOptions) { o.UserInfoURL = ui.URL })
	c := p.claims()
	now := p.clock.Now().Unix()
	c["iat"], c["exp"] = now-7200, now-3600
	kept := key.sign(t, nil, c)
	until := p.clock.Now().Add(5 * time.Minute)
	same := map[string]any{"sub": "bob", "roles": []string{"engineer"}, "permissions": []string{"can_request_db"},
		"groups": []string{"staff"}, "department": "engineering"}
	with := func(k string, val any) map[string]any {
		m := map[string]any{}
		for k, v := range same {
			m[k] = v
		}
		if val == nil {
			delete(m, k)
		} else {
			m[k] = val
		}
		return m
	}
	answers["AT-same"] = answer(200, same)
	answers["AT-sub-only"] = answer(200, map[string]any{"sub": "bob", "email": "bob@example.com"})
	answers["AT-ext"] = answer(200, map[string]any{"sub": "bob", "ext": map[string]any{"roles": []string{"engineer"}}})
	answers["AT-alice"] = answer(200, with("sub", "alice"))
	answers["AT-nosub"] = answer(200, with("sub", nil))
	answers["AT-role-lost"] = answer(200, with("roles", []string{}))
	answers["AT-role-gained"] = answer(200, with("roles", []string{"engineer", "contractor"}))
	answers["AT-ext-role-lost"] = answer(200, map[string]any{"sub": "bob", "ext": map[string]any{"roles": []string{"viewer"}}})
	answers["AT-permission"] = answer(200, with("permissions", []string{}))
	answers["AT-group"] = answer(200, with("groups", []string{"staff", "admins"}))
	answers["AT-department"] = answer(200, with("department", "finance"))
	answers["AT-tenant"] = answer(200, with("tenant", "other"))
	answers["AT-forbidden"] = answer(403, map[string]any{"error": "insufficient_scope"})
	answers["AT-down"] = answer(503, map[string]any{})

	ctx := context.Background()
	for _, c := range []struct {
		name, idToken, at string
		want              error
	}{
		{"same claims", kept, "AT-same", nil},
		{"answer carries only sub", kept, "AT-sub-only", nil},
		{"same roles under ext", kept, "AT-ext", nil},
		{"other subject", kept, "AT-alice", ErrInvalidToken},
		{"no subject", kept, "AT-nosub", ErrInvalidToken},
		{"role lost", kept, "AT-role-lost", ErrInvalidToken},
		{"role gained", kept, "AT-role-gained", ErrInvalidToken},
		{"role lost under ext", kept, "AT-ext-role-lost", ErrInvalidToken},
		{"permission lost", kept, "AT-permission", ErrInvalidToken},
		{"group gained", kept, "AT-group", ErrInvalidToken},
		{"department changed", kept, "AT-department", ErrInvalidToken},
		{"tenant changed", kept, "AT-tenant", ErrInvalidToken},
		{"access token refused", kept, "AT-unknown", ErrInvalidToken},
		{"userinfo forbidden", kept, "AT-forbidden", ErrInvalidToken},
		{"userinfo down", kept, "AT-down", ErrProviderUnavailable},
		{"kept token forged", kept[:len(kept)-4] + "AAAA", "AT-same", ErrUnauthenticated},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, err := v.RecheckKeptIDToken(ctx, c.idToken, c.at, until)
			checkErr(t, c.at, err, c.want)
			if err == nil && (id.Subject != "bob" || !id.Expiry.Equal(until) || !id.HasRole("engineer")) {
				t.Fatalf("identity %+v", id)
			}
		})
	}

	t.Run("no userinfo endpoint", func(t *testing.T) {
		v := p.verifier(t, nil) // the test IdP advertises none
		_, err := v.RecheckKeptIDToken(ctx, kept, "AT-same", until)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("err %v, want ErrInvalidConfig", err)
		}
	})
}
