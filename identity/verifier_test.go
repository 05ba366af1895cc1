package identity

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var signingAlgs = []string{"RS256", "PS256", "ES256", "EdDSA"}

// TestVerifyIDToken is the table of ID token rules, run with every allowed key type.
func TestVerifyIDToken(t *testing.T) {
	type tc struct {
		name   string
		header func(h map[string]any)
		claims func(p *idp, c map[string]any)
		opts   func(o *VerifierOptions)
		want   error  // nil: accepted; errExpired: *TokenExpiredError
		msg    string // when set, the error message must contain it
	}
	leeway := DefaultLeeway
	rel := func(name string, d time.Duration) func(p *idp, c map[string]any) {
		return func(p *idp, c map[string]any) { c[name] = p.clock.Now().Add(d).Unix() }
	}
	cases := []tc{
		{name: "valid"},
		{name: "typ absent", header: func(h map[string]any) { delete(h, "typ") }},
		{name: "wrong issuer", claims: func(p *idp, c map[string]any) { c["iss"] = "https://evil.example" }, want: ErrInvalidToken},
		{name: "issuer with trailing slash", claims: func(p *idp, c map[string]any) { c["iss"] = p.issuer + "/" }, want: ErrInvalidToken},
		{name: "issuer missing", claims: func(p *idp, c map[string]any) { delete(c, "iss") }, want: ErrInvalidToken},
		{name: "audience wrong", claims: func(p *idp, c map[string]any) { c["aud"] = "other-client" }, want: ErrInvalidToken},
		{name: "audience missing", claims: func(p *idp, c map[string]any) { delete(c, "aud") }, want: ErrInvalidToken},
		{name: "audience extra untrusted with azp", claims: func(p *idp, c map[string]any) {
			c["aud"], c["azp"] = []string{testClientID, "https://other.example"}, testClientID
		}, want: ErrInvalidToken},
		{name: "audience extra trusted with azp", claims: func(p *idp, c map[string]any) {
			c["aud"], c["azp"] = []string{testClientID, "api"}, testClientID
		}, opts: func(o *VerifierOptions) { o.TrustedAudiences = []string{"api"} }},
		{name: "audience extra trusted without azp", claims: func(p *idp, c map[string]any) {
			c["aud"] = []string{testClientID, "api"}
		}, opts: func(o *VerifierOptions) { o.TrustedAudiences = []string{"api"} }, want: ErrInvalidToken},
		{name: "audience extra trusted with wrong azp", claims: func(p *idp, c map[string]any) {
			c["aud"], c["azp"] = []string{testClientID, "api"}, "api"
		}, opts: func(o *VerifierOptions) { o.TrustedAudiences = []string{"api"} }, want: ErrInvalidToken},
		{name: "azp of another client, single audience", claims: func(p *idp, c map[string]any) { c["azp"] = "other" }, want: ErrInvalidToken},
		{name: "azp equal to client id, single audience", claims: func(p *idp, c map[string]any) { c["azp"] = testClientID }},
		{name: "audience as a number", claims: func(p *idp, c map[string]any) { c["aud"] = 42 }, want: ErrMalformedToken},
		{name: "audience array with a number", claims: func(p *idp, c map[string]any) { c["aud"] = []any{testClientID, 42} }, want: ErrMalformedToken},
		{name: "subject missing", claims: func(p *idp, c map[string]any) { delete(c, "sub") }, want: ErrInvalidToken},
		{name: "subject empty", claims: func(p *idp, c map[string]any) { c["sub"] = "" }, want: ErrInvalidToken},
		{name: "subject a number", claims: func(p *idp, c map[string]any) { c["sub"] = 7 }, want: ErrMalformedToken},
		{name: "iat missing", claims: func(p *idp, c map[string]any) { delete(c, "iat") }, want: ErrInvalidToken},
		{name: "iat in the future beyond leeway", claims: rel("iat", leeway+time.Second), want: ErrInvalidToken},
		{name: "iat in the future at leeway", claims: rel("iat", leeway)},
		{name: "expired", claims: rel("exp", -time.Hour), want: errExpired},
		{name: "expired just beyond leeway", claims: rel("exp", -leeway-time.Second), want: errExpired},
		{name: "expired exactly at leeway", claims: rel("exp", -leeway), want: errExpired},
		{name: "expired within leeway", claims: rel("exp", -leeway+time.Second)},
		{name: "expired, no leeway", claims: rel("exp", -time.Second), opts: func(o *VerifierOptions) { o.Leeway = -1 }, want: errExpired},
		{name: "expired within custom leeway", claims: rel("exp", -4*time.Minute), opts: func(o *VerifierOptions) { o.Leeway = 5 * time.Minute }},
		{name: "exp missing", claims: func(p *idp, c map[string]any) { delete(c, "exp") }, want: ErrInvalidToken},
		{name: "exp a string", claims: func(p *idp, c map[string]any) { c["exp"] = "tomorrow" }, want: ErrMalformedToken},
		{name: "exp huge", claims: func(p *idp, c map[string]any) { c["exp"] = 1e300 }, want: ErrMalformedToken},
		{name: "exp fractional", claims: func(p *idp, c map[string]any) { c["exp"] = float64(p.clock.Now().Unix()) + 60.5 }},
		{name: "nbf in the future beyond leeway", claims: rel("nbf", leeway+time.Second), want: ErrInvalidToken},
		{name: "nbf in the future at leeway", claims: rel("nbf", leeway)},
		{name: "nbf in the past", claims: rel("nbf", -time.Minute)},
		{name: "typ at+jwt", header: func(h map[string]any) { h["typ"] = "at+jwt" }, want: ErrInvalidToken},
		{name: "typ application/at+jwt", header: func(h map[string]any) { h["typ"] = "application/AT+JWT" }, want: ErrInvalidToken},
		{name: "typ logout+jwt", header: func(h map[string]any) { h["typ"] = "logout+jwt" }, want: ErrInvalidToken},
		{name: "typ application/jwt", header: func(h map[string]any) { h["typ"] = "application/jwt" }},
		{name: "logout token events", claims: func(p *idp, c map[string]any) {
			c["events"] = map[string]any{backchannelLogoutEvent: map[string]any{}}
			c["sid"] = "s1"
		}, want: ErrInvalidToken, msg: "logout token"},
		{name: "other security event token", claims: func(p *idp, c map[string]any) {
			c["events"] = map[string]any{"https://schemas.openid.net/secevent/risc/event-type/sessions-revoked": map[string]any{}}
		}, want: ErrInvalidToken, msg: "security event"},
		{name: "keycloak access token (typ Bearer)", claims: func(p *idp, c map[string]any) { c["typ"] = "Bearer" }, want: ErrInvalidToken},
		{name: "keycloak refresh token (typ Refresh)", claims: func(p *idp, c map[string]any) { c["typ"] = "Refresh" }, want: ErrInvalidToken},
		{name: "keycloak id token (typ ID)", claims: func(p *idp, c map[string]any) { c["typ"] = "ID" }},
		{name: "crit header", header: func(h map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 }, want: ErrInvalidToken},
		{name: "crit b64 (understood by go-jose)", header: func(h map[string]any) { h["crit"] = []string{"b64"}; h["b64"] = true }, want: ErrInvalidToken, msg: "crit"},
		{name: "kid absent, one key", header: func(h map[string]any) { delete(h, "kid") }},
		{name: "alg header mismatching the key", header: func(h map[string]any) {
			if h["alg"] == "ES256" {
				h["alg"] = "EdDSA"
			} else {
				h["alg"] = "ES256"
			}
		}, want: ErrInvalidToken},
		{name: "alg not allowed by options", opts: func(o *VerifierOptions) { o.Algorithms = []string{"ES512"} }, want: ErrInvalidToken},
	}
	for _, alg := range signingAlgs {
		key := newKey(t, alg, "k1")
		for _, c := range cases {
			t.Run(alg+"/"+c.name, func(t *testing.T) {
				p := newIDP(t, key)
				h := key.header()
				if c.header != nil {
					c.header(h)
				}
				cl := p.claims()
				if c.claims != nil {
					c.claims(p, cl)
				}
				raw := key.sign(t, h, cl)
				v := p.verifier(t, c.opts)
				id, err := v.VerifyIDToken(context.Background(), raw)
				if c.want == errExpired {
					expiredMatcher(t, err)
					leaksToken(t, raw, err.Error())
					return
				}
				checkErr(t, raw, err, c.want)
				if c.msg != "" && !strings.Contains(err.Error(), c.msg) {
					t.Fatalf("error %q does not say %q", err, c.msg)
				}
				if err == nil && (id.Subject != "bob" || id.Issuer != p.issuer || id.ClientID != testClientID) {
					t.Fatalf("identity %+v", id)
				}
			})
		}
	}
}

// TestVerifyIDTokenForgeries covers tokens that are not signed by the issuer's key.
func TestVerifyIDTokenForgeries(t *testing.T) {
	rsaKey := newKey(t, "RS256", "k1")
	attacker := newKey(t, "RS256", "attacker")
	p := newIDP(t, rsaKey, newKey(t, "ES256", "e1"), newKey(t, "EdDSA", "d1"))
	valid := rsaKey.sign(t, nil, p.claims())
	parts := strings.Split(valid, ".")

	// alg none, with and without a signature part.
	noneHeader := map[string]any{"alg": "none", "typ": "JWT", "kid": "k1"}
	none := b64(mustJSON(t, noneHeader)) + "." + parts[1] + "."
	noneWithSig := b64(mustJSON(t, noneHeader)) + "." + parts[1] + "." + parts[2]
	noneCase := b64(mustJSON(t, map[string]any{"alg": "None", "kid": "k1"})) + "." + parts[1] + "."

	// HS256 keyed with the RSA public key, in the forms an attacker would try.
	der, _ := x509.MarshalPKIXPublicKey(rsaKey.priv.Public())
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, _ := json.Marshal(rsaKey.jwk())
	hs := map[string]any{"alg": "HS256", "kid": "k1", "typ": "JWT"}

	// Signature flipped, payload swapped, signed by another key under our kid.
	sig := []byte(parts[2])
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	flipped := parts[0] + "." + parts[1] + "." + string(sig)
	other := p.claims()
	other["sub"] = "alice"
	swapped := parts[0] + "." + b64(mustJSON(t, other)) + "." + parts[2]
	attackerHeader := rsaKey.header()
	underOurKid := attacker.sign(t, attackerHeader, p.claims())
	// Signature of an ES256 token presented with the RS256 kid.
	esToken := newKey(t, "ES256", "e1").sign(t, nil, p.claims())
	esParts := strings.Split(esToken, ".")
	crossKey := b64(mustJSON(t, map[string]any{"alg": "ES256", "kid": "k1"})) + "." + esParts[1] + "." + esParts[2]

	// PS256 signature by the RS256 key: go-jose would verify it, the JWK's alg says no.
	psKey := &testKey{alg: "PS256", kid: "k1", priv: rsaKey.priv}
	psUnderRS := psKey.sign(t, nil, p.claims())

	for _, c := range []struct {
		name, raw string
		want      error
	}{
		{"valid", valid, nil},
		{"PS256 signature under a key published for RS256", psUnderRS, ErrInvalidToken},
		{"alg none", none, ErrInvalidToken},
		{"alg none with signature", noneWithSig, ErrInvalidToken},
		{"alg None", noneCase, ErrInvalidToken},
		{"HS256 with RSA public key PEM", hmacSign(t, hs, p.claims(), pemKey), ErrInvalidToken},
		{"HS256 with RSA public key DER", hmacSign(t, hs, p.claims(), der), ErrInvalidToken},
		{"HS256 with RSA JWK", hmacSign(t, hs, p.claims(), jwkJSON), ErrInvalidToken},
		{"signature flipped", flipped, ErrInvalidToken},
		{"payload swapped", swapped, ErrInvalidToken},
		{"signed by another key under our kid", underOurKid, ErrInvalidToken},
		{"ES256 signature under an RSA kid", crossKey, ErrInvalidToken},
		{"signature stripped", parts[0] + "." + parts[1] + ".", ErrInvalidToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := p.verifier(t, nil)
			_, err := v.VerifyIDToken(context.Background(), c.raw)
			checkErr(t, c.raw, err, c.want)
		})
	}
}

// TestVerifyIDTokenHostileHeaders: jku, x5u, x5c and jwk headers are never followed or used,
// and hostile kid values cost at most one JWKS fetch and stay out of messages in full.
func TestVerifyIDTokenHostileHeaders(t *testing.T) {
	key := newKey(t, "RS256", "k1")
	attacker := newKey(t, "RS256", "attacker")
	var outbound atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outbound.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{attacker.jwk()}})
	}))
	defer evil.Close()
	p := newIDP(t, key)
	longKid := strings.Repeat("A", 4000)
	for _, c := range []struct {
		name   string
		signer *testKey
		header map[string]any
		want   error
	}{
		{"jku to attacker, attacker key", attacker, map[string]any{"alg": "RS256", "kid": "attacker", "jku": evil.URL + "/jwks"}, ErrInvalidToken},
		{"x5u to attacker, attacker key", attacker, map[string]any{"alg": "RS256", "kid": "attacker", "x5u": evil.URL + "/cert"}, ErrInvalidToken},
		{"jwk embedded attacker key", attacker, map[string]any{"alg": "RS256", "kid": "attacker", "jwk": attacker.jwk()}, ErrInvalidToken},
		{"jwk embedded, no kid", attacker, map[string]any{"alg": "RS256", "jwk": attacker.jwk()}, ErrInvalidToken},
		{"jku on a genuine token is ignored", key, map[string]any{"alg": "RS256", "kid": "k1", "jku": evil.URL + "/jwks"}, nil},
		{"kid path traversal", attacker, map[string]any{"alg": "RS256", "kid": "../../../../dev/null"}, ErrInvalidToken},
		{"kid sql", attacker, map[string]any{"alg": "RS256", "kid": "' OR '1'='1"}, ErrInvalidToken},
		{"kid url", attacker, map[string]any{"alg": "RS256", "kid": evil.URL + "/key"}, ErrInvalidToken},
		{"kid control characters", attacker, map[string]any{"alg": "RS256", "kid": "k1\x00\n\r\u202e"}, ErrInvalidToken},
		{"kid very long", attacker, map[string]any{"alg": "RS256", "kid": longKid}, ErrInvalidToken},
		{"kid a number", attacker, map[string]any{"alg": "RS256", "kid": 1}, ErrMalformedToken},
		{"kid an object", attacker, map[string]any{"alg": "RS256", "kid": map[string]any{"$ne": ""}}, ErrMalformedToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.fetches.Store(0)
			v := p.verifier(t, nil)
			raw := c.signer.sign(t, c.header, p.claims())
			_, err := v.VerifyIDToken(context.Background(), raw)
			checkErr(t, raw, err, c.want)
			if err != nil && strings.Contains(err.Error(), longKid) {
				t.Error("error repeats the whole hostile kid")
			}
			if n := p.fetches.Load(); n > 1 {
				t.Errorf("%d JWKS fetches, want at most 1", n)
			}
		})
	}
	if n := outbound.Load(); n != 0 {
		t.Fatalf("%d requests reached the URL named in jku/x5u/kid, want 0", n)
	}
}

// TestVerifyMalformed: malformed input is refused with ErrMalformedToken, cheaply.
func TestVerifyMalformed(t *testing.T) {
	key := newKey(t, "EdDSA", "k1")
	p := newIDP(t, key)
	valid := key.sign(t, nil, p.claims())
	parts := strings.Split(valid, ".")
	h := parts[0]
	dots := strings.Repeat(".", 100000)
	for _, c := range []struct {
		name    string
		raw     string
		maxSize int
		want    error // default ErrMalformedToken
		msg     string
	}{
		{name: "empty", raw: ""},
		{name: "two parts", raw: parts[0] + "." + parts[1]},
		{name: "one part", raw: parts[0]},
		{name: "four parts", raw: valid + ".x", msg: "4 parts"},
		{name: "five parts (JWE)", raw: valid + ".x.y", msg: "encrypted JWT (JWE)"},
		{name: "six parts", raw: valid + ".x.y.z"},
		{name: "100k dots, default cap", raw: dots},
		{name: "100k dots, raised cap", raw: dots, maxSize: 1 << 21, msg: "100001 parts"},
		{name: "100k dots after a valid token, raised cap", raw: valid + dots, maxSize: 1 << 21},
		{name: "1 MiB", raw: strings.Repeat("a", 1<<20)},
		{name: "1 MiB of a valid-looking token, raised cap", raw: h + "." + strings.Repeat("a", 1<<20) + "." + parts[2], maxSize: 2 << 20, want: ErrInvalidToken},
		{name: "8 KiB + 1", raw: h + "." + strings.Repeat("a", DefaultMaxTokenSize-len(h)-len(parts[2])-1) + "." + parts[2]},
		{name: "bad base64 header", raw: "!!!." + parts[1] + "." + parts[2]},
		{name: "padded header", raw: h + "==." + parts[1] + "." + parts[2]},
		{name: "standard base64 alphabet", raw: strings.ReplaceAll(h, "-", "+") + "+/." + parts[1] + "." + parts[2]},
		{name: "header not JSON", raw: b64([]byte("not json")) + "." + parts[1] + "." + parts[2]},
		{name: "header JSON array", raw: b64([]byte(`["RS256"]`)) + "." + parts[1] + "." + parts[2]},
		{name: "header JSON null", raw: b64([]byte(`null`)) + "." + parts[1] + "." + parts[2]},
		{name: "alg a number", raw: b64([]byte(`{"alg":256}`)) + "." + parts[1] + "." + parts[2]},
		{name: "payload bad base64", raw: h + ".!!!." + parts[2]},
		{name: "payload not JSON, signed", raw: key.sign(t, nil, []byte("not json"))},
		{name: "payload JSON array, signed", raw: key.sign(t, nil, []byte(`["sub"]`))},
		{name: "payload JSON null, signed", raw: key.sign(t, nil, []byte(`null`))},
		{name: "payload trailing data, signed", raw: key.sign(t, nil, append(mustJSON(t, p.claims()), []byte(` {}`)...))},
		{name: "whitespace around", raw: " " + valid + " "},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := p.verifier(t, func(o *VerifierOptions) { o.MaxTokenSize = c.maxSize })
			want := c.want
			if want == nil {
				want = ErrMalformedToken
			}
			_, err := v.VerifyIDToken(context.Background(), c.raw)
			if err == nil || !errors.Is(err, want) {
				t.Fatalf("want %v, got %v", want, err)
			}
			leaksToken(t, c.raw, err.Error())
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not say %q", err, c.msg)
			}
			if n := p.fetches.Load(); n != 0 && want == ErrMalformedToken && !strings.HasSuffix(c.name, ", signed") {
				t.Errorf("%d JWKS fetches for a malformed token", n)
			}
			p.fetches.Store(0)
		})
	}
	// Algorithms that must never be configurable.
	for _, alg := range []string{"none", "HS256", "HS512", ""} {
		_, err := NewVerifier(context.Background(), VerifierOptions{Issuer: p.issuer, ClientID: "c", Algorithms: []string{alg}, JWKSURL: p.issuer + "/jwks"})
		if err == nil {
			t.Errorf("NewVerifier accepted algorithm %q", alg)
		}
	}
}

// TestParseHeader checks the pre-signature parser on its own, including its size cap.
func TestParseHeader(t *testing.T) {
	hdr := b64([]byte(`{"alg":"ES256","kid":"k","typ":"JWT"}`))
	if h, err := parseHeader(hdr+".e30.c2ln", 100); err != nil || h.Alg != "ES256" || h.Kid != "k" || h.Typ != "JWT" || h.Crit {
		t.Fatalf("got %+v, %v", h, err)
	}
	if _, err := parseHeader(hdr+".e30.c2ln", 10); !errors.Is(err, ErrMalformedToken) {
		t.Fatalf("over the cap: %v", err)
	}
	dup := b64([]byte(`{"alg":"ES256","ALG":"none","Alg":"HS256"}`))
	if h, err := parseHeader(dup+".e30.c2ln", 100); err != nil || h.Alg != "ES256" {
		t.Fatalf("case variants of alg: got %+v, %v", h, err)
	}
}

// TestDecodeClaims checks the claims decoder on its own (go-oidc refuses trailing data
// before it, so the Verifier tests cannot see this check).
func TestDecodeClaims(t *testing.T) {
	for _, in := range []string{`{} {}`, `{}x`, `null`, `[]`, `"s"`, ``} {
		if _, err := decodeClaims([]byte(in)); !errors.Is(err, ErrMalformedToken) {
			t.Errorf("decodeClaims(%q) = %v, want ErrMalformedToken", in, err)
		}
	}
	c, err := decodeClaims([]byte(`{"exp": 1700000000.5, "aud": ["a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if exp, ok, err := c.time("exp"); !ok || err != nil || exp.UnixMilli() != 1700000000500 {
		t.Fatalf("exp = %v %v %v", exp, ok, err)
	}
}
