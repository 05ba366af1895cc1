package identity

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestKidAbsent(t *testing.T) {
	k1, k2, k3 := newKey(t, "RS256", "k1"), newKey(t, "ES256", "k2"), newKey(t, "EdDSA", "k3")
	stranger := newKey(t, "ES256", "stranger")
	noKid := func(k *testKey) map[string]any { return map[string]any{"alg": k.alg, "typ": "JWT"} }

	t.Run("one key", func(t *testing.T) {
		p := newIDP(t, k1)
		v := p.verifier(t, nil)
		raw := k1.sign(t, noKid(k1), p.claims())
		_, err := v.VerifyIDToken(context.Background(), raw)
		checkErr(t, raw, err, nil)
	})
	t.Run("several keys, signed by one of them", func(t *testing.T) {
		p := newIDP(t, k1, k2, k3, newKey(t, "ES256", "k4"))
		v := p.verifier(t, nil)
		raw := k2.sign(t, noKid(k2), p.claims())
		_, err := v.VerifyIDToken(context.Background(), raw)
		checkErr(t, raw, err, nil)
	})
	t.Run("several keys, signed by none", func(t *testing.T) {
		p := newIDP(t, k1, k2, k3)
		v := p.verifier(t, nil)
		raw := stranger.sign(t, noKid(stranger), p.claims())
		_, err := v.VerifyIDToken(context.Background(), raw)
		checkErr(t, raw, err, ErrInvalidToken)
		// Retried at once: no second fetch within the cooldown.
		_, err = v.VerifyIDToken(context.Background(), raw)
		checkErr(t, raw, err, ErrInvalidToken)
		if n := p.fetches.Load(); n != 1 {
			t.Fatalf("%d JWKS fetches, want 1", n)
		}
	})
}

// TestRotation: a new kid causes one refetch (once the cooldown since the last fetch has
// passed), then tokens under it verify without further fetches; the old key is gone.
func TestRotation(t *testing.T) {
	old, next := newKey(t, "RS256", "2026-02"), newKey(t, "RS256", "2026-03")
	p := newIDP(t, old)
	v := p.verifier(t, nil)
	ctx := context.Background()
	if _, err := v.VerifyIDToken(ctx, old.sign(t, nil, p.claims())); err != nil {
		t.Fatal(err)
	}
	p.setKeys(next)

	// Within the cooldown of the first fetch: refused, no request, but retryable: the kid
	// may be new, and a retry after the cooldown refetches.
	p.clock.Add(DefaultJWKSCooldown / 2)
	raw := next.sign(t, nil, p.claims())
	_, err := v.VerifyIDToken(ctx, raw)
	checkRetryableUnknownKey(t, raw, err, "2026-03")
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches within the cooldown, want 1", n)
	}

	// After the cooldown: one refetch, then accepted.
	p.clock.Add(DefaultJWKSCooldown / 2)
	for i := range 5 {
		raw := next.sign(t, nil, p.claims())
		if _, err := v.VerifyIDToken(ctx, raw); err != nil {
			t.Fatalf("token %d under the new key: %v", i, err)
		}
	}
	if n := p.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (initial + one refetch)", n)
	}
	// The retired key no longer verifies: retryably within the cooldown of the refetch,
	// for good once a refetch shows it gone.
	raw = old.sign(t, nil, p.claims())
	_, err = v.VerifyIDToken(ctx, raw)
	checkRetryableUnknownKey(t, raw, err, "2026-02")
	p.clock.Add(DefaultJWKSCooldown)
	_, err = v.VerifyIDToken(ctx, raw)
	checkErr(t, raw, err, ErrInvalidToken)
}

// TestJWKSDown: known keys keep working while the JWKS endpoint fails; unknown kids fail
// closed (retryable ErrProviderUnavailable for the fetch that failed, the retryable
// ErrKeyNotYetKnown during the cooldown after it).
func TestJWKSDown(t *testing.T) {
	known, unknown := newKey(t, "ES256", "known"), newKey(t, "ES256", "unknown")
	p := newIDP(t, known)
	v := p.verifier(t, func(o *VerifierOptions) { o.CacheTTL = -1 })
	ctx := context.Background()
	if _, err := v.VerifyIDToken(ctx, known.sign(t, nil, p.claims())); err != nil {
		t.Fatal(err)
	}
	p.down.Store(true)
	p.setKeys(known, unknown)
	p.clock.Add(time.Hour)
	for i := range 3 {
		if _, err := v.VerifyIDToken(ctx, known.sign(t, nil, p.claims())); err != nil {
			t.Fatalf("known key while JWKS down (%d): %v", i, err)
		}
	}
	raw := unknown.sign(t, nil, p.claims())
	_, err := v.VerifyIDToken(ctx, raw)
	checkErr(t, raw, err, ErrProviderUnavailable)
	if errors.Is(err, ErrUnauthenticated) {
		t.Error("a JWKS outage must stay retryable, not ErrUnauthenticated")
	}
	if ae := ApplicationError(err); ae != err {
		t.Error("ApplicationError must leave ErrProviderUnavailable retryable")
	}
	_, err = v.VerifyIDToken(ctx, raw)
	checkRetryableUnknownKey(t, raw, err, "unknown")
	if n := p.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// Recovery after the cooldown.
	p.down.Store(false)
	p.clock.Add(DefaultJWKSCooldown)
	raw = unknown.sign(t, nil, p.claims())
	if _, err := v.VerifyIDToken(ctx, raw); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestKidFlood: 10,000 tokens with random kids, from 8 goroutines, while the clock moves 300
// seconds, make at most one JWKS fetch per cooldown (as counted by the JWKS server).
func TestKidFlood(t *testing.T) {
	key := newKey(t, "EdDSA", "k1")
	p := newIDP(t, key)
	v := p.verifier(t, nil)
	ctx := context.Background()
	if _, err := v.VerifyIDToken(ctx, key.sign(t, nil, p.claims())); err != nil {
		t.Fatal(err)
	}
	const n, workers = 10000, 8
	const step = 30 * time.Millisecond // 10,000 * 30 ms = 300 s = 10 cooldowns
	tokens := make(chan string, 64)
	go func() {
		defer close(tokens)
		for range n {
			b := make([]byte, 8)
			rand.Read(b)
			h := map[string]any{"alg": "EdDSA", "kid": hex.EncodeToString(b), "typ": "JWT"}
			tokens <- key.sign(t, h, p.claims())
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range workers {
		wg.Go(func() {
			for raw := range tokens {
				p.clock.Add(step)
				if _, err := v.VerifyIDToken(ctx, raw); err == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Duration(n) * step
	max := int64(1 + elapsed/DefaultJWKSCooldown) // the initial fetch + one per cooldown
	got := p.fetches.Load()
	t.Logf("%d tokens with random kids over %s: %d JWKS fetches (limit %d)", n, elapsed, got, max)
	if got > max {
		t.Fatalf("%d JWKS fetches, want at most %d", got, max)
	}
	if accepted != 0 {
		t.Fatalf("%d tokens with random kids accepted", accepted)
	}
	// Without the clock moving, a second flood makes no fetch at all.
	before := p.fetches.Load()
	p.clock.Add(DefaultJWKSCooldown)
	for i := range 2000 {
		h := map[string]any{"alg": "EdDSA", "kid": fmt.Sprint("r", i), "typ": "JWT"}
		v.VerifyIDToken(ctx, key.sign(t, h, p.claims()))
	}
	if got := p.fetches.Load() - before; got != 1 {
		t.Fatalf("%d fetches for 2000 random kids within one cooldown, want 1", got)
	}
}

func TestStaticKeys(t *testing.T) {
	k := newKey(t, "ES256", "s1")
	p := newIDP(t) // serves no keys; static configuration must not ask it
	v, err := NewVerifier(context.Background(), VerifierOptions{
		Issuer: p.issuer, ClientID: testClientID, Now: p.clock.Now,
		StaticKeys: map[string]crypto.PublicKey{"s1": k.priv.Public()},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw := k.sign(t, nil, p.claims())
	if _, err := v.VerifyIDToken(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	other := newKey(t, "ES256", "other")
	raw = other.sign(t, nil, p.claims())
	_, err = v.VerifyIDToken(context.Background(), raw)
	checkErr(t, raw, err, ErrInvalidToken)
	if n := p.fetches.Load(); n != 0 {
		t.Fatalf("static key set fetched %d times", n)
	}
	if _, err := NewVerifier(context.Background(), VerifierOptions{Issuer: "x", ClientID: "y",
		StaticKeys: map[string]crypto.PublicKey{"h": []byte("secret")}}); err == nil {
		t.Fatal("a symmetric static key was accepted")
	}
}

func TestDiscovery(t *testing.T) {
	p := newIDP(t, newKey(t, "RS256", "k1"))
	ctx := context.Background()
	for _, issuer := range []string{p.issuer + "/", p.issuer + "/other"} {
		if _, err := NewVerifier(ctx, VerifierOptions{Issuer: issuer, ClientID: "c", HTTPClient: p.srv.Client()}); err == nil {
			t.Errorf("discovery accepted issuer %q for a provider that names %q", issuer, p.issuer)
		} else if !errors.Is(err, ErrInvalidConfig) || errors.Is(err, ErrProviderUnavailable) {
			t.Errorf("discovery error %v does not wrap ErrInvalidConfig only", err)
		}
	}
	if _, err := NewVerifier(ctx, VerifierOptions{Issuer: p.issuer}); err == nil {
		t.Error("no client id accepted")
	}
	if _, err := NewVerifier(ctx, VerifierOptions{ClientID: "c"}); err == nil {
		t.Error("no issuer accepted")
	}
	// A discovery document over the response cap is refused.
	_, err := NewVerifier(ctx, VerifierOptions{Issuer: p.issuer, ClientID: "c", HTTPClient: p.srv.Client(), MaxResponseSize: 10})
	if err == nil {
		t.Error("a discovery document over MaxResponseSize was accepted")
	}
}

// TestFilteredKey: a token whose kid the issuer publishes, but on a key the Verifier may not
// use for signatures (marked for encryption, an algorithm not allowed, a symmetric or
// unsupported key), is refused with a message that says so, not "not in the JWKS", and
// without a refetch per token: the key is known, only unusable.
func TestFilteredKey(t *testing.T) {
	rs := newKey(t, "RS256", "filtered")
	es := newKey(t, "ES256", "filtered")
	with := func(k *testKey, mod func(*jose.JSONWebKey)) jose.JSONWebKey {
		j := k.jwk()
		mod(&j)
		return j
	}
	for _, c := range []struct {
		name   string
		signer *testKey
		entry  any
		msg    string
	}{
		{"marked for encryption", rs, with(rs, func(j *jose.JSONWebKey) { j.Use = "enc" }), "use=enc"},
		{"marked for encryption, no alg", es, with(es, func(j *jose.JSONWebKey) { j.Use, j.Algorithm = "enc", "" }), "use=enc"},
		{"algorithm not allowed", rs, with(rs, func(j *jose.JSONWebKey) { j.Algorithm = "RS384" }), "alg=RS384"},
		{"algorithm for encryption", rs, with(rs, func(j *jose.JSONWebKey) { j.Algorithm, j.Use = "RSA-OAEP", "" }), "alg=RSA-OAEP"},
		{"symmetric key", rs, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "filtered", Use: "sig"}, "kty=oct"},
		{"unsupported key type", rs, json.RawMessage(`{"kty":"OKP","crv":"X448","kid":"filtered","x":"AAAA"}`), "kty=OKP"},
		{"broken key", rs, json.RawMessage(`{"kty":"RSA","kid":"filtered","use":"sig","n":"AQAB"}`), "kty=RSA"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newIDP(t, newKey(t, "ES256", "current"))
			p.setExtra(c.entry)
			v := p.verifier(t, func(o *VerifierOptions) { o.CacheTTL = -1 })
			ctx := context.Background()
			for i := range 3 {
				raw := c.signer.sign(t, nil, p.claims())
				_, err := v.VerifyIDToken(ctx, raw)
				checkErr(t, raw, err, ErrInvalidToken)
				msg := err.Error()
				if !strings.Contains(msg, `key "filtered" is published but not usable for signatures`) || !strings.Contains(msg, c.msg) {
					t.Fatalf("attempt %d: error %q does not say that the key is published but unusable (%s)", i, msg, c.msg)
				}
				if strings.Contains(msg, "not in the") {
					t.Fatalf("attempt %d: error %q says the key is not published", i, msg)
				}
				p.clock.Add(DefaultJWKSCooldown)
			}
			if n := p.fetches.Load(); n != 1 {
				t.Fatalf("%d JWKS fetches for a published, unusable key, want 1", n)
			}
		})
	}
	// A usable key with the same kid wins over an unusable one.
	t.Run("usable and unusable under one kid", func(t *testing.T) {
		p := newIDP(t, rs)
		p.setExtra(with(rs, func(j *jose.JSONWebKey) { j.Use = "enc" }))
		v := p.verifier(t, nil)
		raw := rs.sign(t, nil, p.claims())
		_, err := v.VerifyIDToken(context.Background(), raw)
		checkErr(t, raw, err, nil)
	})
}

// checkRetryableUnknownKey asserts that err is the cooldown's refusal of kid: retryable (no
// identity error, left alone by ApplicationError), and saying what to do.
func checkRetryableUnknownKey(t *testing.T, raw string, err error, kid string) {
	t.Helper()
	if err == nil {
		t.Fatal("a token under a key not yet known was accepted")
	}
	for _, e := range []error{ErrUnauthenticated, ErrInvalidToken, ErrMalformedToken, ErrForbidden, ErrReauthRequired} {
		if errors.Is(err, e) {
			t.Fatalf("the cooldown's refusal %q is %v: a start right after a key rotation would fail for good", err, e)
		}
	}
	if ApplicationError(err) != err {
		t.Fatalf("ApplicationError changed the retryable %q", err)
	}
	checkErr(t, raw, err, ErrKeyNotYetKnown)
	for _, want := range []string{`"` + kid + `"`, "unknown", "retry", "JWKSCooldown"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestUnknownKidCooldownRetryable: a kid-less token that no known key verifies stays a
// definite refusal within the cooldown (nothing names a new key), and a kid that is still
// unknown after the refetch is refused for good.
func TestUnknownKidCooldownRetryable(t *testing.T) {
	known, stranger := newKey(t, "ES256", "known"), newKey(t, "ES256", "stranger")
	p := newIDP(t, known)
	v := p.verifier(t, func(o *VerifierOptions) { o.CacheTTL = -1; o.JWKSCooldown = time.Minute })
	ctx := context.Background()
	if _, err := v.VerifyIDToken(ctx, known.sign(t, nil, p.claims())); err != nil {
		t.Fatal(err)
	}
	raw := stranger.sign(t, nil, p.claims())
	p.clock.Add(59 * time.Second)
	_, err := v.VerifyIDToken(ctx, raw)
	checkRetryableUnknownKey(t, raw, err, "stranger")
	if !strings.Contains(err.Error(), "1m0s") {
		t.Errorf("error %q does not name the configured cooldown", err)
	}
	// After the cooldown: refetched, still unknown: refused for good.
	p.clock.Add(time.Second)
	_, err = v.VerifyIDToken(ctx, raw)
	checkErr(t, raw, err, ErrInvalidToken)
	if !strings.Contains(err.Error(), "even after a refetch") {
		t.Errorf("error %q", err)
	}
	// Without kid, within the cooldown: refused as before, not retryable.
	noKid := stranger.sign(t, map[string]any{"alg": "ES256"}, p.claims())
	_, err = v.VerifyIDToken(ctx, noKid)
	checkErr(t, noKid, err, ErrInvalidToken)
	if n := p.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}
