package identity_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
)

// TestFaultHydraKeyRotation rotates Hydra's ID token signing key (a new key in the
// hydra.openid.id-token set, which Hydra signs with from then on; the old key stays
// published) while a Verifier holds the JWKS from before: the first token under the new key
// is refused retryably (identity.ErrKeyNotYetKnown, which identity.ApplicationError leaves
// alone, so Temporal retries a start), and accepted once the JWKS cooldown has passed. The
// Verifier's clock is moved past the cooldown instead of waiting for it.
//
// It runs with the fault tests (OIDCFLOW_FAULTS=1, `make test` runs them alone): Hydra signs
// an ID token whose login began before a rotation and ended after it under a header that
// names one key and a signature by another, so another test's login at that moment would get
// a token no verifier accepts.
func TestFaultHydraKeyRotation(t *testing.T) {
	if os.Getenv("OIDCFLOW_FAULTS") == "" {
		t.Skip("changes the IdP's signing key under every other test; runs with the fault tests (OIDCFLOW_FAULTS=1)")
	}
	s := testharness.Load(t)
	ctx := context.Background()
	const cooldown = 10 * time.Second
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	v, err := identity.NewVerifier(ctx, identity.VerifierOptions{
		Issuer: s.Env("OIDCFLOW_ISSUER"), ClientID: s.Env("OIDCFLOW_CLIENT_ID"),
		JWKSCooldown: cooldown, CacheTTL: -1, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	before := idToken(t, s.Login(t, "bob").Extra("id_token"))
	if _, err := v.VerifyIDToken(ctx, before); err != nil {
		t.Fatalf("token before the rotation: %v", err)
	}
	oldKid := kidOf(t, before)

	kid := rotate(t, s)
	after := idToken(t, s.Login(t, "bob").Extra("id_token"))
	if got := kidOf(t, after); got != kid {
		t.Fatalf("Hydra signed the token after the rotation with key %q (before: %q), not with the new key %q", got, oldKid, kid)
	}

	// Within the cooldown of the Verifier's only JWKS fetch: refused, retryably.
	_, err = v.VerifyIDToken(ctx, after)
	switch {
	case err == nil:
		t.Fatal("a token under a key the Verifier does not hold yet was accepted within the cooldown")
	case !errors.Is(err, identity.ErrKeyNotYetKnown):
		t.Fatalf("want ErrKeyNotYetKnown, got %v", err)
	case errors.Is(err, identity.ErrUnauthenticated), identity.ApplicationError(err) != err:
		t.Fatalf("the refusal %v is not retryable", err)
	case !strings.Contains(err.Error(), kid):
		t.Errorf("error %q does not name the key", err)
	}
	if strings.Contains(err.Error(), after) {
		t.Error("error contains the token")
	}
	if n := v.JWKSFetches(); n != 1 {
		t.Fatalf("%d JWKS fetches within the cooldown, want 1", n)
	}

	// After the cooldown: one refetch, and both the new and the old key verify.
	skew.Add(int64(cooldown))
	if _, err := v.VerifyIDToken(ctx, after); err != nil {
		t.Fatalf("token under the new key after the cooldown: %v", err)
	}
	if _, err := v.VerifyIDToken(ctx, before); err != nil {
		t.Fatalf("token under the old key after the rotation: %v", err)
	}
	if n := v.JWKSFetches(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2", n)
	}
}

// rotate creates a new RS256 signing key in Hydra's ID token key set and returns its kid.
// The key is left in place: removing it would make tokens other tests got meanwhile
// unverifiable, and older keys stay published, so tests running alongside keep working.
func rotate(t *testing.T, s *testharness.Stack) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	kid := "rotation-test-" + hex.EncodeToString(b)
	body, _ := json.Marshal(map[string]string{"alg": "RS256", "use": "sig", "kid": kid})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimRight(s.Env("OIDCFLOW_IDP_ADMIN_URL"), "/")+"/admin/keys/hydra.openid.id-token", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("create key: Hydra answered %s", resp.Status)
	}
	return kid
}

func idToken(t *testing.T, v any) string {
	t.Helper()
	raw, _ := v.(string)
	if raw == "" {
		t.Fatal("no ID token")
	}
	return raw
}

// kidOf reads the kid of a compact JWS's header (unverified).
func kidOf(t *testing.T, raw string) string {
	t.Helper()
	head, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}
