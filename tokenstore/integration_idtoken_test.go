package tokenstore_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// A Hydra client whose ID tokens live 12 s and access tokens an hour: the refresh happens
// when the ID token is due, while the access token is still fresh, and the new ID token
// verifies. (The calls that must not refresh come within half an ID token's life, six
// seconds, of its issue, even on a busy machine.)
func TestIntegrationRefreshWhenIDTokenDue(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	rs := loginSessionWith(t, s, testharness.ClientOptions{AccessTokenTTL: time.Hour, IDTokenTTL: 12 * time.Second}, 0)
	var refreshes atomic.Int32
	r := rs.refresher(t, s, nil, nil, "w1", func(o *tokenstore.RefresherOptions) {
		o.OnRefreshed = func(context.Context, string) { refreshes.Add(1) }
	})
	if rs.session.IDTokenExpiry.IsZero() || !rs.session.IDTokenExpiry.Before(rs.session.Expiry.Add(-30*time.Minute)) {
		t.Fatalf("ID token exp %v, access token expiry %v: want the ID token to live shorter", rs.session.IDTokenExpiry, rs.session.Expiry)
	}
	due := r.RefreshDue(rs.session)
	if !due.Before(rs.session.IDTokenExpiry) {
		t.Fatalf("RefreshDue %v is not before the ID token's exp %v", due, rs.session.IDTokenExpiry)
	}
	got, err := r.Fresh(ctx, rs.session.ID)
	if err != nil {
		t.Fatal(err)
	}
	if refreshes.Load() != 0 || got.AccessToken != rs.login.AccessToken {
		t.Fatal("refreshed a fresh session")
	}

	time.Sleep(time.Until(due) + 100*time.Millisecond)
	if left := time.Until(rs.session.Expiry); left < 50*time.Minute {
		t.Fatalf("access token has only %v left: the test would not show a refresh for the ID token", left)
	}
	got, err = r.Fresh(ctx, rs.session.ID)
	if err != nil {
		t.Fatal(err)
	}
	if refreshes.Load() != 1 || got.Refreshes != 1 || got.IDToken == rs.session.IDToken || got.IDTokenKept {
		t.Fatalf("%d refreshes (session: %d), kept=%v; want one refresh with a new ID token", refreshes.Load(), got.Refreshes, got.IDTokenKept)
	}
	id, err := rs.verifier.VerifyIDToken(ctx, got.IDToken)
	if err != nil {
		t.Fatalf("new ID token: %v", err)
	}
	if id.Subject != rs.session.Subject || !got.IDTokenExpiry.Equal(id.Expiry) || !got.IDTokenExpiry.After(rs.session.IDTokenExpiry) {
		t.Fatalf("new ID token: sub %s exp %v, session records exp %v", id.Subject, id.Expiry, got.IDTokenExpiry)
	}
	// The new ID token is fresh again: no refresh on the next call.
	if _, err := r.Fresh(ctx, rs.session.ID); err != nil {
		t.Fatal(err)
	}
	if refreshes.Load() != 1 {
		t.Fatalf("%d refreshes after the new ID token", refreshes.Load())
	}
}

// Hydra's refreshes arrive without an ID token: the verified one is kept, bob is re-checked
// through Hydra's real userinfo endpoint with the fresh access token, and once the kept
// token's exp passed it still verifies as kept (until the access token's expiry), while the
// session is not refreshed again and again for it.
func TestIntegrationRefreshWithoutIDToken(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	// No leeway, so that the kept token is expired for VerifyIDToken within seconds.
	rs := loginSessionWith(t, s, testharness.ClientOptions{AccessTokenTTL: time.Hour, IDTokenTTL: 4 * time.Second}, -1)
	proxy := testharness.WithoutIDTokens(t, s.OAuth2Config().Endpoint.TokenURL)
	var refreshes atomic.Int32
	r := rs.refresher(t, s, nil, nil, "w1", func(o *tokenstore.RefresherOptions) {
		o.OAuth2.Endpoint.TokenURL = proxy
		o.OnRefreshed = func(context.Context, string) { refreshes.Add(1) }
	})
	time.Sleep(time.Until(r.RefreshDue(rs.session)) + 100*time.Millisecond)
	got, err := r.Fresh(ctx, rs.session.ID)
	if err != nil {
		t.Fatal(err)
	}
	if refreshes.Load() != 1 || !got.IDTokenKept || got.IDToken != rs.session.IDToken || got.AccessToken == rs.login.AccessToken {
		t.Fatalf("%d refreshes, kept=%v, same ID token %v; want one refresh that kept the ID token",
			refreshes.Load(), got.IDTokenKept, got.IDToken == rs.session.IDToken)
	}
	if in := s.Introspect(t, got.AccessToken); !in.Active || in.Subject != "bob" {
		t.Fatalf("new access token: %+v", in)
	}

	time.Sleep(time.Until(rs.session.IDTokenExpiry) + time.Second)
	var expired *identity.TokenExpiredError
	if _, err := rs.verifier.VerifyIDToken(ctx, got.IDToken); !errors.As(err, &expired) {
		t.Fatalf("VerifyIDToken(kept token past its exp) = %v, want TokenExpiredError", err)
	}
	for range 3 {
		if got, err = r.Fresh(ctx, rs.session.ID); err != nil {
			t.Fatal(err)
		}
	}
	if refreshes.Load() != 1 {
		t.Fatalf("%d refreshes: the kept ID token's exp keeps making refreshes due", refreshes.Load())
	}
	id, err := rs.verifier.VerifyKeptIDToken(ctx, got.IDToken, got.Expiry)
	if err != nil {
		t.Fatalf("VerifyKeptIDToken: %v", err)
	}
	if id.Subject != "bob" || !id.Expiry.Equal(got.Expiry) {
		t.Fatalf("kept identity %s until %v, want bob until %v", id.Subject, id.Expiry, got.Expiry)
	}
}
