// Package testjwks serves a JWKS with one generated RSA key and signs tokens with it, for
// tests of the claim mapper and the authorizing server.
package testjwks

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

// Issuer is a JWKS endpoint and the key behind it, with an OIDC discovery document.
type Issuer struct {
	// URL is the issuer: {URL}/.well-known/openid-configuration names it and the
	// endpoints {URL}/auth, {URL}/token and the JWKS.
	URL string
	// JWKSURL serves {"keys":[...]} with the public key.
	JWKSURL string
	// KID is the key id put in every token's header.
	KID string
	key *rsa.PrivateKey
	srv *httptest.Server
}

// New generates a 2048-bit RSA key and starts its JWKS endpoint on loopback.
func New() (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	i := &Issuer{KID: "test-key-1", key: key}
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": i.KID,
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}}})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                i.URL,
			"authorization_endpoint":                i.URL + "/auth",
			"token_endpoint":                        i.URL + "/token",
			"jwks_uri":                              i.JWKSURL,
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	i.srv = httptest.NewServer(mux)
	i.URL = i.srv.URL
	i.JWKSURL = i.srv.URL + "/.well-known/jwks.json"
	return i, nil
}

// Close stops the JWKS endpoint.
func (i *Issuer) Close() { i.srv.Close() }

// Token signs claims with RS256 and the issuer's kid; exp and iat default to now+10m and
// now when absent.
func (i *Issuer) Token(claims map[string]any) string {
	c := jwt.MapClaims{}
	for k, v := range claims {
		c[k] = v
	}
	now := time.Now()
	if _, ok := c["exp"]; !ok {
		c["exp"] = now.Add(10 * time.Minute).Unix()
	}
	if _, ok := c["iat"]; !ok {
		c["iat"] = now.Unix()
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = i.KID
	s, err := t.SignedString(i.key)
	if err != nil {
		panic(err)
	}
	return s
}

// TokenWithKey signs like Token with a different, unpublished key under the same kid.
func (i *Issuer) TokenWithKey(key *rsa.PrivateKey, claims map[string]any) string {
	o := *i
	o.key = key
	return o.Token(claims)
}
