package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

func TestVerifyAccessTokenJWT(t *testing.T) {
	key := newKey(t, "ES256", "k1")
	const resource = "https://api.example.com"
	atClaims := func(p *idp) map[string]any {
		c := p.claims()
		c["aud"] = resource
		c["client_id"] = testClientID
		c["scope"] = "openid"
		c["jti"] = "j1"
		return c
	}
	at := map[string]any{"alg": "ES256", "kid": "k1", "typ": "at+jwt"}
	withResource := func(o *VerifierOptions) { o.AccessTokenAudience = resource }
	hydraLike := func(o *VerifierOptions) { o.AccessTokenTypes = []string{"at+jwt", "JWT"} }
	for _, c := range []struct {
		name   string
		header map[string]any
		claims func(p *idp, c map[string]any)
		opts   func(o *VerifierOptions)
		want   error
	}{
		{name: "valid at+jwt", header: at, opts: withResource},
		{name: "typ application/at+jwt", header: map[string]any{"alg": "ES256", "kid": "k1", "typ": "application/at+jwt"}, opts: withResource},
		{name: "resource missing from aud", header: at, claims: func(p *idp, c map[string]any) { c["aud"] = "https://other.example" }, opts: withResource, want: ErrInvalidToken},
		{name: "aud missing", header: at, claims: func(p *idp, c map[string]any) { delete(c, "aud") }, opts: withResource, want: ErrInvalidToken},
		{name: "ID token (typ JWT) as access token", header: nil, opts: withResource, want: ErrInvalidToken},
		{name: "logout token as access token", header: at, claims: func(p *idp, c map[string]any) {
			c["events"] = map[string]any{backchannelLogoutEvent: map[string]any{}}
		}, opts: withResource, want: ErrInvalidToken},
		{name: "keycloak ID token (typ ID) as access token", header: at, claims: func(p *idp, c map[string]any) { c["typ"] = "ID" }, opts: withResource, want: ErrInvalidToken},
		{name: "expired", header: at, claims: func(p *idp, c map[string]any) { c["exp"] = p.clock.Now().Add(-time.Hour).Unix() }, opts: withResource, want: errExpired},
		{name: "wrong issuer", header: at, claims: func(p *idp, c map[string]any) { c["iss"] = "https://evil.example" }, opts: withResource, want: ErrInvalidToken},
		{name: "no sub", header: at, claims: func(p *idp, c map[string]any) { delete(c, "sub") }, opts: withResource, want: ErrInvalidToken},
		// Without AccessTokenAudience: issued to our client, only trusted audiences.
		{name: "hydra-like: typ JWT, client_id ours, no aud", header: nil, claims: func(p *idp, c map[string]any) { c["aud"] = []string{} }, opts: hydraLike},
		{name: "hydra-like: client_id of another client", header: nil, claims: func(p *idp, c map[string]any) { c["client_id"] = "other" }, opts: hydraLike, want: ErrInvalidToken},
		{name: "hydra-like: untrusted audience", header: nil, claims: func(p *idp, c map[string]any) { c["aud"] = "https://other.example" }, opts: hydraLike, want: ErrInvalidToken},
		{name: "hydra-like: ID token (no client_id) as access token", header: nil, claims: func(p *idp, c map[string]any) {
			delete(c, "client_id")
			c["aud"] = testClientID
		}, opts: hydraLike, want: ErrInvalidToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newIDP(t, key)
			cl := atClaims(p)
			if c.claims != nil {
				c.claims(p, cl)
			}
			raw := key.sign(t, c.header, cl)
			v := p.verifier(t, c.opts)
			id, err := v.VerifyAccessToken(context.Background(), raw)
			if c.want == errExpired {
				expiredMatcher(t, err)
				return
			}
			checkErr(t, raw, err, c.want)
			if err == nil && (id.Subject != "bob" || id.ClientID != testClientID || !id.HasRole("engineer")) {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

// TestTokenKindsDoNotShareCache: a token verified as an ID token is not served from the
// cache as an access token.
func TestTokenKindsDoNotShareCache(t *testing.T) {
	key := newKey(t, "ES256", "k1")
	p := newIDP(t, key)
	v := p.verifier(t, nil)
	raw := key.sign(t, nil, p.claims())
	if _, err := v.VerifyIDToken(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	_, err := v.VerifyAccessToken(context.Background(), raw)
	checkErr(t, raw, err, ErrInvalidToken)
}

// introspector is an RFC 7662 endpoint answering with resp for the token "opaque-1".
func introspector(t *testing.T, resp func() map[string]any, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "worker" || secret != "s3cret" {
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.PostFormValue("token") == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if status != 0 {
			http.Error(w, "boom", status)
			return
		}
		if r.PostFormValue("token") != "ory_at_opaque.1" {
			json.NewEncoder(w).Encode(map[string]any{"active": false})
			return
		}
		json.NewEncoder(w).Encode(resp())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestIntrospection(t *testing.T) {
	p := newIDP(t, newKey(t, "RS256", "k1"))
	good := func() map[string]any {
		now := p.clock.Now().Unix()
		return map[string]any{
			"active": true, "iss": p.issuer, "sub": "dave", "client_id": testClientID,
			"exp": now + 600, "iat": now, "token_use": "access_token", "aud": []string{},
			"ext": map[string]any{"roles": []string{"finance-approver"}, "permissions": []string{"can_approve_invoice"}, "department": "finance"},
		}
	}
	with := func(mod func(m map[string]any)) func() map[string]any {
		return func() map[string]any { m := good(); mod(m); return m }
	}
	for _, c := range []struct {
		name   string
		raw    string
		resp   func() map[string]any
		status int
		want   error
	}{
		{name: "active", raw: "ory_at_opaque.1", resp: good},
		{name: "inactive", raw: "ory_at_other.2", resp: good, want: ErrInvalidToken},
		{name: "refresh token", raw: "ory_at_opaque.1", resp: with(func(m map[string]any) { m["token_use"] = "refresh_token" }), want: ErrInvalidToken},
		{name: "other issuer", raw: "ory_at_opaque.1", resp: with(func(m map[string]any) { m["iss"] = "https://evil.example" }), want: ErrInvalidToken},
		{name: "other client", raw: "ory_at_opaque.1", resp: with(func(m map[string]any) { m["client_id"] = "other" }), want: ErrInvalidToken},
		{name: "no sub", raw: "ory_at_opaque.1", resp: with(func(m map[string]any) { delete(m, "sub") }), want: ErrInvalidToken},
		{name: "expired", raw: "ory_at_opaque.1", resp: with(func(m map[string]any) { m["exp"] = p.clock.Now().Add(-time.Hour).Unix() }), want: errExpired},
		{name: "active as a string", raw: "ory_at_opaque.1", resp: with(func(m map[string]any) { m["active"] = "true" }), want: ErrInvalidToken},
		{name: "server error", raw: "ory_at_opaque.1", resp: good, status: http.StatusInternalServerError, want: ErrProviderUnavailable},
		{name: "over the size cap", raw: "ory_at_opaque." + string(make([]byte, DefaultMaxTokenSize)), resp: good, want: ErrMalformedToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := introspector(t, c.resp, c.status)
			v := p.verifier(t, func(o *VerifierOptions) {
				o.IntrospectionURL, o.IntrospectionClientID, o.IntrospectionClientSecret = srv.URL, "worker", "s3cret"
			})
			id, err := v.VerifyAccessToken(context.Background(), c.raw)
			if c.want == errExpired {
				expiredMatcher(t, err)
				return
			}
			checkErr(t, c.raw, err, c.want)
			if err == nil {
				want := &Identity{Subject: "dave", Issuer: p.issuer, Audience: []string{}, Roles: []string{"finance-approver"},
					Permissions: []string{"can_approve_invoice"}, Department: "finance", ClientID: testClientID,
					Expiry: p.clock.Now().Add(600 * time.Second)}
				if !reflect.DeepEqual(id, want) {
					t.Fatalf("got %+v\nwant %+v", id, want)
				}
			}
		})
	}
	t.Run("not configured", func(t *testing.T) {
		v := p.verifier(t, nil)
		_, err := v.VerifyAccessToken(context.Background(), "ory_at_opaque.1")
		checkErr(t, "ory_at_opaque.1", err, ErrMalformedToken)
	})
}

func TestUserInfo(t *testing.T) {
	p := newIDP(t, newKey(t, "RS256", "k1"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer opaque-good":
			json.NewEncoder(w).Encode(map[string]any{"sub": "erin", "email": "erin@example.com"})
		case "Bearer opaque-nosub":
			json.NewEncoder(w).Encode(map[string]any{"email": "x@example.com"})
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	v := p.verifier(t, func(o *VerifierOptions) { o.UserInfo, o.UserInfoURL = true, srv.URL })
	id, err := v.VerifyAccessToken(context.Background(), "opaque-good")
	if err != nil || id.Subject != "erin" || id.Email != "erin@example.com" || id.Issuer != p.issuer {
		t.Fatalf("got %+v, %v", id, err)
	}
	_, err = v.VerifyAccessToken(context.Background(), "opaque-bad")
	checkErr(t, "opaque-bad", err, ErrInvalidToken)
	_, err = v.VerifyAccessToken(context.Background(), "opaque-nosub")
	checkErr(t, "opaque-nosub", err, ErrInvalidToken)
}

func TestCheckRefreshed(t *testing.T) {
	orig := &Identity{Subject: "bob", Issuer: "https://idp", Audience: []string{"starter", "api"}, ClientID: "starter", Roles: []string{"engineer"}}
	change := func(mod func(id *Identity)) *Identity { c := orig.clone(); mod(c); return c }
	v := &Verifier{}
	for _, c := range []struct {
		name      string
		refreshed *Identity
		want      error
	}{
		{"same", orig.clone(), nil},
		{"roles changed (allowed)", change(func(id *Identity) { id.Roles = nil }), nil},
		{"audience reordered", change(func(id *Identity) { id.Audience = []string{"api", "starter"} }), nil},
		{"issuer changed", change(func(id *Identity) { id.Issuer = "https://idp/" }), ErrInvalidToken},
		{"subject changed", change(func(id *Identity) { id.Subject = "alice" }), ErrInvalidToken},
		{"audience added", change(func(id *Identity) { id.Audience = append(id.Audience, "other") }), ErrInvalidToken},
		{"audience removed", change(func(id *Identity) { id.Audience = id.Audience[:1] }), ErrInvalidToken},
		{"authorized party changed", change(func(id *Identity) { id.ClientID = "other" }), ErrInvalidToken},
		{"nil", nil, ErrInvalidToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := v.CheckRefreshed(orig, c.refreshed)
			if (err == nil) != (c.want == nil) || (err != nil && !errors.Is(err, c.want)) {
				t.Fatalf("want %v, got %v", c.want, err)
			}
		})
	}
}

// TestCheckRefreshedTokens runs CheckRefreshed on verified tokens: a refreshed token whose
// iss, sub or aud differs is refused even though it verifies on its own.
func TestCheckRefreshedTokens(t *testing.T) {
	key := newKey(t, "EdDSA", "k1")
	p := newIDP(t, key)
	v := p.verifier(t, func(o *VerifierOptions) { o.TrustedAudiences = []string{"api"} })
	ctx := context.Background()
	orig, err := v.VerifyIDToken(ctx, key.sign(t, nil, p.claims()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mod  func(c map[string]any)
		want error
	}{
		{"same person", func(c map[string]any) { c["roles"] = []string{} }, nil},
		{"other subject", func(c map[string]any) { c["sub"] = "alice" }, ErrInvalidToken},
		{"extra audience", func(c map[string]any) { c["aud"], c["azp"] = []string{testClientID, "api"}, testClientID }, ErrInvalidToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.clock.Add(time.Minute)
			cl := p.claims()
			c.mod(cl)
			refreshed, err := v.VerifyIDToken(ctx, key.sign(t, nil, cl))
			if err != nil {
				t.Fatal(err)
			}
			err = v.CheckRefreshed(orig, refreshed)
			if (err == nil) != (c.want == nil) || (err != nil && !errors.Is(err, c.want)) {
				t.Fatalf("want %v, got %v", c.want, err)
			}
		})
	}
}

// TestCacheNeverServesExpired: a cached token is not returned once its exp has passed, even
// within the cache TTL.
func TestCacheNeverServesExpired(t *testing.T) {
	key := newKey(t, "EdDSA", "k1")
	p := newIDP(t, key)
	v := p.verifier(t, func(o *VerifierOptions) { o.Leeway = -1; o.CacheTTL = time.Hour })
	c := p.claims()
	c["exp"] = p.clock.Now().Add(30 * time.Second).Unix()
	raw := key.sign(t, nil, c)
	ctx := context.Background()
	if _, err := v.VerifyIDToken(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if v.cache.len() != 1 {
		t.Fatal("token not cached")
	}
	p.clock.Add(29 * time.Second)
	if _, err := v.VerifyIDToken(ctx, raw); err != nil {
		t.Fatal(err)
	}
	p.clock.Add(time.Second)
	_, err := v.VerifyIDToken(ctx, raw)
	expiredMatcher(t, err)
}

// TestCacheTTL: an entry ends after the TTL even when the token lives longer; then the token
// is verified again (and here refused, because its key is gone from the JWKS).
func TestCacheTTL(t *testing.T) {
	key := newKey(t, "EdDSA", "k1")
	p := newIDP(t, key)
	v := p.verifier(t, func(o *VerifierOptions) { o.CacheTTL = time.Minute; o.JWKSCooldown = time.Second })
	raw := key.sign(t, nil, p.claims())
	ctx := context.Background()
	if _, err := v.VerifyIDToken(ctx, raw); err != nil {
		t.Fatal(err)
	}
	// Simulate the key's removal: the verifier's key set drops it at its next refetch.
	p.setKeys()
	v.keys.mu.Lock()
	v.keys.keys = nil
	v.keys.mu.Unlock()
	p.clock.Add(59 * time.Second)
	id, err := v.VerifyIDToken(ctx, raw)
	if err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	id.Roles[0] = "admin" // callers cannot change the cached copy
	again, _ := v.VerifyIDToken(ctx, raw)
	if again.Roles[0] != "engineer" {
		t.Fatal("the cached identity was changed through a returned copy")
	}
	p.clock.Add(time.Second)
	_, err = v.VerifyIDToken(ctx, raw)
	checkErr(t, raw, err, ErrInvalidToken)
}

func TestCacheBounded(t *testing.T) {
	c := newTokenCache(time.Minute, 10)
	now := time.Now()
	for i := range 100 {
		var k [32]byte
		k[0], k[1] = byte(i), byte(i>>8)
		c.put(k, &Identity{Subject: "s", Expiry: now.Add(time.Hour)}, now)
		if c.len() > 10 {
			t.Fatalf("cache holds %d entries, cap 10", c.len())
		}
	}
	var k [32]byte
	k[0] = 99
	if _, ok := c.get(k, now); !ok {
		t.Fatal("the newest entry is missing")
	}
	if _, ok := c.get(k, now.Add(time.Minute)); ok {
		t.Fatal("entry served at the end of its TTL")
	}
	// Already expired identities are not stored.
	k[0] = 200
	c.put(k, &Identity{Expiry: now}, now)
	if _, ok := c.get(k, now.Add(-time.Second)); ok {
		t.Fatal("an expired identity was cached")
	}
}
