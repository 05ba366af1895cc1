package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const testClientID = "starter"

// testKey is a generated signing key with its JWS algorithm and kid.
type testKey struct {
	alg  string
	kid  string
	priv crypto.Signer
}

var (
	keyMu    sync.Mutex
	keyCache = map[string]*testKey{}
)

// newKey generates (once per name, to keep tests fast) a key for alg.
func newKey(t testing.TB, alg, kid string) *testKey {
	t.Helper()
	keyMu.Lock()
	defer keyMu.Unlock()
	if k, ok := keyCache[alg+"/"+kid]; ok {
		return k
	}
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256", "PS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key type for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	k := &testKey{alg: alg, kid: kid, priv: priv}
	keyCache[alg+"/"+kid] = k
	return k
}

func (k *testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// header returns the default header of k: alg, kid, typ JWT.
func (k *testKey) header() map[string]any {
	return map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"}
}

// sign builds a compact JWS over header and claims (nil header: k.header()).
func (k *testKey) sign(t testing.TB, header map[string]any, claims any) string {
	t.Helper()
	if header == nil {
		header = k.header()
	}
	var payload []byte
	switch c := claims.(type) {
	case []byte:
		payload = c
	case string:
		payload = []byte(c)
	default:
		payload = mustJSON(t, claims)
	}
	input := b64(mustJSON(t, header)) + "." + b64(payload)
	return input + "." + b64(k.signInput(t, input))
}

func (k *testKey) signInput(t testing.TB, input string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(input))
	switch k.alg {
	case "RS256":
		sig, err := rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case "PS256":
		sig, err := rsa.SignPSS(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig
	case "EdDSA":
		return ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(input))
	}
	t.Fatalf("cannot sign %s", k.alg)
	return nil
}

// hmacSign signs header.claims with HS256 and secret.
func hmacSign(t testing.TB, header map[string]any, claims any, secret []byte) string {
	input := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, claims))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil))
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// idp is a test IdP: discovery and a JWKS whose keys can change, counting JWKS requests.
type idp struct {
	srv     *httptest.Server
	issuer  string
	clock   *fakeClock
	fetches atomic.Int64
	down    atomic.Bool

	mu    sync.Mutex
	keys  []*testKey
	extra []any // further JWKS entries, published as they are
}

func newIDP(t testing.TB, keys ...*testKey) *idp {
	t.Helper()
	p := &idp{clock: &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}, keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                p.issuer,
			"jwks_uri":                              p.issuer + "/jwks",
			"authorization_endpoint":                p.issuer + "/auth",
			"token_endpoint":                        p.issuer + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		var set []any
		for _, k := range p.keys {
			set = append(set, k.jwk())
		}
		set = append(set, p.extra...)
		p.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"keys": set})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL
	return p
}

func (p *idp) setKeys(keys ...*testKey) {
	p.mu.Lock()
	p.keys = keys
	p.mu.Unlock()
}

// setExtra publishes entries (jose.JSONWebKey values or raw JSON) after the keys.
func (p *idp) setExtra(entries ...any) {
	p.mu.Lock()
	p.extra = entries
	p.mu.Unlock()
}

// verifier returns a Verifier using discovery, with opts applied by mod.
func (p *idp) verifier(t testing.TB, mod func(*VerifierOptions)) *Verifier {
	t.Helper()
	o := VerifierOptions{Issuer: p.issuer, ClientID: testClientID, Now: p.clock.Now, HTTPClient: p.srv.Client()}
	if mod != nil {
		mod(&o)
	}
	v, err := NewVerifier(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// claims returns valid ID token claims for now.
func (p *idp) claims() map[string]any {
	now := p.clock.Now().Unix()
	return map[string]any{
		"iss":         p.issuer,
		"sub":         "bob",
		"aud":         testClientID,
		"exp":         now + 3600,
		"iat":         now,
		"name":        "Bob",
		"email":       "bob@example.com",
		"roles":       []string{"engineer"},
		"permissions": []string{"can_request_db"},
		"department":  "engineering",
		"groups":      []string{"staff"},
	}
}

// checkErr asserts err matches want (nil: success) and holds no part of raw.
func checkErr(t *testing.T, raw string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want %v, got success", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("want %v, got %v", want, err)
	}
	if !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrProviderUnavailable) && !errors.Is(err, ErrKeyNotYetKnown) {
		t.Errorf("error %v wraps none of ErrUnauthenticated, ErrProviderUnavailable, ErrKeyNotYetKnown", err)
	}
	leaksToken(t, raw, err.Error())
}

// leaksToken fails when msg contains the token or one of its parts.
func leaksToken(t *testing.T, raw, msg string) {
	t.Helper()
	for _, part := range strings.Split(raw, ".") {
		if len(part) >= 16 && strings.Contains(msg, part) {
			t.Errorf("error message contains a token part: %.80s...", msg)
		}
	}
	if len(msg) > 1024 {
		t.Errorf("error message is %d bytes long", len(msg))
	}
}

var errExpired = errors.New("expired")

func expiredMatcher(t *testing.T, err error) {
	t.Helper()
	var te *TokenExpiredError
	if !errors.As(err, &te) {
		t.Fatalf("want *TokenExpiredError, got %v", err)
	}
}
