package cli

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeIdP is a small OpenID provider for unit tests: discovery, JWKS, an authorization
// endpoint that approves at once (like a logged-in browser session), a token endpoint with
// PKCE checks and single-use rotating refresh tokens, device authorization, and RFC 7009
// revocation. Keys are generated per test.
type fakeIdP struct {
	t        *testing.T
	srv      *httptest.Server
	key      *rsa.PrivateKey
	clientID string

	mu        sync.Mutex
	subject   string
	claims    map[string]any
	codes     map[string]authReq // code -> request
	refresh   map[string]bool    // live refresh tokens
	revoked   []string
	issued    []string // every token handed out, to check none leaks
	refreshes int
	// knobs
	device      bool          // advertise device_authorization_endpoint
	badNonce    bool          // put a wrong nonce in ID tokens
	accessTTL   time.Duration // default 1h
	refreshDown bool          // token endpoint answers 503 for refresh grants
}

type authReq struct {
	challenge, nonce, redirect string
}

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIdP{t: t, key: key, clientID: "starter", subject: "bob",
		claims: map[string]any{"name": "Bob Builder", "email": "bob@example.test", "roles": []string{"engineer"},
			"department": "engineering", "groups": []string{"dev"}},
		codes: map[string]authReq{}, refresh: map[string]bool{}, accessTTL: time.Hour}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", f.discovery)
	mux.HandleFunc("/jwks", f.jwks)
	mux.HandleFunc("/authorize", f.authorize)
	mux.HandleFunc("/token", f.token)
	mux.HandleFunc("/device", f.deviceAuth)
	mux.HandleFunc("/revoke", f.revoke)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIdP) issuer() string { return f.srv.URL }

func (f *fakeIdP) discovery(w http.ResponseWriter, _ *http.Request) {
	md := map[string]any{
		"issuer": f.issuer(), "authorization_endpoint": f.issuer() + "/authorize",
		"token_endpoint": f.issuer() + "/token", "jwks_uri": f.issuer() + "/jwks",
		"revocation_endpoint":                   f.issuer() + "/revoke",
		"id_token_signing_alg_values_supported": []string{"RS256"},
	}
	f.mu.Lock()
	if f.device {
		md["device_authorization_endpoint"] = f.issuer() + "/device"
	}
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(md)
}

func (f *fakeIdP) jwks(w http.ResponseWriter, _ *http.Request) {
	_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
}

func (f *fakeIdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != f.clientID || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := random()
	f.mu.Lock()
	f.codes[code] = authReq{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
	f.mu.Unlock()
	u, _ := url.Parse(q.Get("redirect_uri"))
	v := url.Values{"code": {code}, "state": {q.Get("state")}}
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (f *fakeIdP) deviceAuth(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	code := "dev-" + random()
	f.mu.Lock()
	f.codes[code] = authReq{}
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{
		"device_code": code, "user_code": "ABCD-EFGH", "verification_uri": f.issuer() + "/activate",
		"expires_in": 60, "interval": 1,
	})
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (f *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if r.PostForm.Get("client_id") != f.clientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	nonce := ""
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		req, ok := f.codes[r.PostForm.Get("code")]
		delete(f.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge || r.PostForm.Get("redirect_uri") != req.redirect {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		nonce = req.nonce
	case "urn:ietf:params:oauth:grant-type:device_code":
		if _, ok := f.codes[r.PostForm.Get("device_code")]; !ok {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		delete(f.codes, r.PostForm.Get("device_code"))
	case "refresh_token":
		if f.refreshDown {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		rt := r.PostForm.Get("refresh_token")
		if !f.refresh[rt] {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		delete(f.refresh, rt) // single use
		f.refreshes++
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	if f.badNonce {
		nonce = "not-the-nonce"
	}
	at, rt := "at-"+random(), "rt-"+random()
	f.refresh[rt] = true
	id := f.idToken(nonce)
	f.issued = append(f.issued, at, rt, id)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": at, "token_type": "bearer", "expires_in": int(f.accessTTL.Seconds()),
		"refresh_token": rt, "id_token": id, "scope": "openid offline_access profile email",
	})
}

func (f *fakeIdP) idToken(nonce string) string {
	now := time.Now()
	c := map[string]any{"iss": f.issuer(), "sub": f.subject, "aud": f.clientID, "iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "auth_time": now.Unix()}
	if nonce != "" {
		c["nonce"] = nonce
	}
	for k, v := range f.claims {
		c[k] = v
	}
	return f.sign(c)
}

func (f *fakeIdP) sign(claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: f.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := signer.Sign(b)
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fakeIdP) revoke(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if r.PostForm.Get("client_id") != f.clientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := r.PostForm.Get("token")
	f.revoked = append(f.revoked, tok)
	delete(f.refresh, tok)
	w.WriteHeader(http.StatusOK)
}

// secrets returns every token the IdP issued.
func (f *fakeIdP) secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.issued...)
}

func random() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var _ = fmt.Sprint
