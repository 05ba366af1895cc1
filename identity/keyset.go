package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSKeys bounds how many keys of a JWKS are kept (and so how many a token without kid
// can be tried against).
const maxJWKSKeys = 64

// keySet is the oidc.KeySet the Verifier gives go-oidc. Unlike oidc.RemoteKeySet, which
// refetches the JWKS for every unknown kid, it refetches at most once per cooldown (fetches
// are single-flight, and a failed fetch counts too), so a flood of tokens with random kids
// costs the IdP one request per cooldown. Between fetches an unknown kid fails closed with
// the retryable ErrKeyNotYetKnown (it may be a key the IdP just rotated in), and keys
// already known keep verifying while the JWKS endpoint is down. It never reads jku,
// x5u, x5c or jwk from a token (RFC 8725 section 3.10). Static key sets never fetch.
//
// Keys the JWKS publishes but that may not verify a signature here (marked for encryption,
// an algorithm not allowed, symmetric or unsupported) are not used; their kids are kept
// with the reason, so a token naming one is refused as such, without a refetch.
type keySet struct {
	url      string // "" for a static key set
	client   *http.Client
	now      func() time.Time
	cooldown time.Duration
	maxBody  int64
	algs     []jose.SignatureAlgorithm

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	unusable  map[string]string // kid -> why the published key is not used
	attempted bool              // a fetch was started at least once
	lastFetch time.Time         // start of the last fetch attempt (successful or not)
	inflight  *fetchCall

	fetches atomic.Int64 // JWKS requests made, for tests and metrics
}

type fetchCall struct {
	done chan struct{}
	set  jwks
	err  error
}

// jwks is what a fetch keeps of a JWKS: the usable keys, and why the others are not used.
type jwks struct {
	keys     []jose.JSONWebKey
	unusable map[string]string
}

// sigErrKey carries a *error from Verifier to keySet through go-oidc, which flattens the
// key set's error with %v: the Verifier reads the typed error from there.
type sigErrKey struct{}

func newStaticKeySet(keys map[string]crypto.PublicKey, algs []jose.SignatureAlgorithm) (*keySet, error) {
	ks := &keySet{algs: algs, attempted: true}
	for kid, k := range keys {
		switch k.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			return nil, configError("static key %q has unsupported type %T; use an RSA, ECDSA or Ed25519 public key", kid, k)
		}
		ks.keys = append(ks.keys, jose.JSONWebKey{Key: k, KeyID: kid})
	}
	if len(ks.keys) == 0 {
		return nil, configError("no static keys; set VerifierOptions.StaticKeys, JWKSURL or leave both empty for discovery")
	}
	return ks, nil
}

var _ oidc.KeySet = (*keySet)(nil)

// VerifySignature implements oidc.KeySet.
func (ks *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	payload, err := ks.verify(ctx, raw)
	if err != nil {
		if slot, ok := ctx.Value(sigErrKey{}).(*error); ok {
			*slot = err
		}
	}
	return payload, err
}

func (ks *keySet) verify(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, ks.algs) // parseHeader already refused every other form
	if err != nil {
		return nil, malformed("not a signed JWT with an allowed algorithm")
	}
	if len(jws.Signatures) != 1 {
		return nil, malformed("token carries %d signatures, want 1", len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	kid, alg := h.KeyID, h.Algorithm

	set := ks.cached()
	payload, known, err := tryKeys(jws, set.keys, kid, alg)
	if err == nil {
		return payload, nil
	}
	if known {
		// The kid names a key we hold and that key says no: a bad signature, not a
		// rotation. No refetch.
		return nil, err
	}
	if err := set.check(kid); err != nil {
		return nil, err // published but unusable: a refetch would not help either
	}
	set, err = ks.refresh(ctx, kid)
	if err != nil {
		return nil, err
	}
	payload, known, err = tryKeys(jws, set.keys, kid, alg)
	if err == nil {
		return payload, nil
	}
	if !known && kid != "" {
		if err := set.check(kid); err != nil {
			return nil, err
		}
		return nil, invalid("signing key %s is not in the issuer's JWKS, even after a refetch; the token was signed by someone else", quote(kid))
	}
	return nil, err
}

// check reports a kid that names a published key the Verifier does not use.
func (s jwks) check(kid string) error {
	if why, ok := s.unusable[kid]; ok && kid != "" { // check:unusable-key
		return invalid("key %s is published but not usable for signatures: %s; the token was not signed with a key the issuer publishes for signatures (or VerifierOptions.Algorithms lacks its algorithm)", quote(kid), why)
	}
	return nil
}

// tryKeys verifies jws with the keys matching kid (every key when kid is empty) that can
// serve alg. known reports whether a key with that kid exists (kid != "") — then a failure
// is a bad signature, and refetching would not help.
func tryKeys(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid, alg string) (payload []byte, known bool, err error) {
	tried := 0
	for i := range keys {
		k := &keys[i]
		if kid != "" && k.KeyID != kid { // check:kid-match
			continue
		}
		if kid != "" {
			known = true
		}
		if k.Algorithm != "" && k.Algorithm != alg { // check:key-alg
			continue
		}
		tried++
		if p, err := jws.Verify(k); err == nil {
			return p, known, nil
		}
	}
	switch {
	case tried > 0 && kid != "":
		return nil, known, invalid("signature does not verify with key %s; the token was altered or not signed by the issuer", quote(kid))
	case tried > 0:
		return nil, known, invalid("signature does not verify with any of the issuer's %d %s keys (the token has no kid); the token was altered or not signed by the issuer", tried, alg)
	case known:
		return nil, known, invalid("key %s is not for algorithm %s; the token was not signed by the issuer", quote(kid), alg)
	case kid != "":
		return nil, false, invalid("signing key %s is unknown", quote(kid))
	default:
		return nil, false, invalid("the issuer has no %s key and the token has no kid", alg)
	}
}

func (ks *keySet) cached() jwks {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return jwks{keys: ks.keys, unusable: ks.unusable}
}

// refresh returns the JWKS after a refetch, or fails closed when the cooldown since the last
// attempt has not passed: retryably (ErrKeyNotYetKnown) for a token naming kid, definitely
// for a token without kid, which names no key that could be new. Concurrent callers share
// one fetch.
func (ks *keySet) refresh(ctx context.Context, kid string) (jwks, error) {
	ks.mu.Lock()
	if ks.url == "" {
		ks.mu.Unlock()
		return jwks{}, invalid("signing key unknown and the key set is static (VerifierOptions.StaticKeys); add the key to the configuration")
	}
	call := ks.inflight
	if call == nil {
		now := ks.now()
		if ks.attempted && now.Before(ks.lastFetch.Add(ks.cooldown)) { // check:cooldown
			last := ks.lastFetch
			ks.mu.Unlock()
			if kid == "" { // check:no-kid-cooldown
				return jwks{}, invalid("no known key verifies the token, which has no kid; the JWKS was requested at %s and is requested at most every %s (VerifierOptions.JWKSCooldown)",
					last.UTC().Format(time.RFC3339), ks.cooldown)
			}
			return jwks{}, fmt.Errorf("identity: signing key %s is unknown: the JWKS was last requested at %s and is requested at most every %s (VerifierOptions.JWKSCooldown); retry from %s, when a refetch is allowed again (the IdP may just have rotated its keys): %w",
				quote(kid), last.UTC().Format(time.RFC3339), ks.cooldown, last.Add(ks.cooldown).UTC().Format(time.RFC3339), ErrKeyNotYetKnown)
		}
		ks.attempted, ks.lastFetch = true, now
		call = &fetchCall{done: make(chan struct{})}
		ks.inflight = call
		ks.mu.Unlock()

		// Detached from the caller's cancellation so one impatient caller does not fail
		// every waiter; the http.Client's timeout bounds it.
		call.set, call.err = ks.fetch(context.WithoutCancel(ctx))

		ks.mu.Lock()
		if call.err == nil {
			ks.keys, ks.unusable = call.set.keys, call.set.unusable
		}
		ks.inflight = nil
		ks.mu.Unlock()
		close(call.done)
	} else {
		ks.mu.Unlock()
	}
	select {
	case <-ctx.Done():
		return jwks{}, fmt.Errorf("identity: waiting for the JWKS: %w", ctx.Err())
	case <-call.done:
	}
	if call.err != nil {
		return jwks{}, call.err
	}
	return call.set, nil
}

// fetch GETs the JWKS (RFC 7517 section 5) with a bounded body. Keys that cannot serve an
// allowed algorithm are dropped, and their kids noted with the reason: "use": "enc" keys,
// keys whose "alg" is not allowed, symmetric ("oct") keys, and key types go-jose does not
// know or cannot read.
func (ks *keySet) fetch(ctx context.Context) (jwks, error) {
	ks.fetches.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return jwks{}, fmt.Errorf("identity: JWKS URL: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	body, err := doBounded(ks.client, req, ks.maxBody)
	if err != nil {
		return jwks{}, unavailable("fetching the JWKS failed (%v); known keys keep working, unknown ones are refused until it recovers", err)
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return jwks{}, unavailable("the JWKS is not a JSON key set: %v", err)
	}
	allowed := make(map[string]bool, len(ks.algs))
	for _, a := range ks.algs {
		allowed[string(a)] = true
	}
	set := jwks{unusable: map[string]string{}}
	for _, r := range raw.Keys {
		if len(set.keys) == maxJWKSKeys {
			break
		}
		var k jose.JSONWebKey
		var why string
		switch err := k.UnmarshalJSON(r); {
		case err != nil:
			why = "kty=" + printable(keyType(r)) + " cannot be read here (unsupported type or curve, or a broken key)"
		case k.Use == "enc":
			why = "use=enc (an encryption key)"
		case k.Algorithm != "" && !allowed[k.Algorithm]:
			why = "alg=" + printable(k.Algorithm) + " is not an allowed signature algorithm"
		}
		if why == "" {
			switch k.Key.(type) {
			case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
				k = k.Public()
			case []byte:
				why = "kty=oct (a symmetric key)"
			default:
				why = fmt.Sprintf("key type %T is not supported", k.Key)
			}
		}
		if why == "" {
			set.keys = append(set.keys, k)
			continue
		}
		if kid := keyID(r); kid != "" && len(set.unusable) < maxJWKSKeys {
			set.unusable[kid] = why
		}
	}
	return set, nil
}

// keyID reads the kid of a JWKS entry that go-jose may not be able to read.
func keyID(r json.RawMessage) string {
	var k struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(r, &k)
	return k.Kid
}

// keyType reads the kty of a JWKS entry that go-jose may not be able to read.
func keyType(r json.RawMessage) string {
	var k struct {
		Kty string `json:"kty"`
	}
	_ = json.Unmarshal(r, &k)
	return k.Kty
}

// printable returns a short JWKS value as it is for a message, or a placeholder when it is
// long or not printable ASCII.
func printable(s string) string {
	if len(s) > 32 || strings.IndexFunc(s, func(c rune) bool { return c <= ' ' || c > '~' }) >= 0 {
		return "(unprintable)"
	}
	return s
}

// doBounded performs req and returns a 200 response body of at most max bytes.
func doBounded(c *http.Client, req *http.Request, max int64) ([]byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > max {
		return nil, &tooLargeError{max}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{url: req.URL.Redacted(), code: resp.StatusCode}
	}
	return body, nil
}

// tooLargeError is an IdP answer over the size cap.
type tooLargeError struct{ max int64 }

func (e *tooLargeError) Error() string { return fmt.Sprintf("response larger than %d bytes", e.max) }

// statusError is an IdP endpoint's non-200 answer (the body is not kept: it may echo input).
type statusError struct {
	url  string
	code int
}

func (e *statusError) Error() string { return fmt.Sprintf("%s answered %d", e.url, e.code) }
