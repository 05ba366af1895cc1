package tokenstore

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
)

type env struct {
	fv      *fakeVault
	idp     *fakeIdP
	clock   *fakeClock
	store   *Store
	checker *fakeChecker
	logs    *logBuffer
	errs    []error // every error a test saw, scanned for tokens at the end
}

func newEnv(t *testing.T) *env {
	e := &env{fv: newFakeVault(t), idp: newFakeIdP(t), clock: newFakeClock(), logs: &logBuffer{}}
	e.store = e.fv.store(t, e.clock.Now)
	e.checker = &fakeChecker{iss: e.idp.srv.URL}
	t.Cleanup(func() {
		for _, err := range e.errs {
			if err != nil && strings.Contains(err.Error(), "SECRET") {
				t.Errorf("token in error: %v", err)
			}
		}
		if strings.Contains(e.logs.String(), "SECRET") {
			t.Errorf("token in logs:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *env) refresher(t *testing.T, mod func(*RefresherOptions)) *Refresher {
	opts := RefresherOptions{
		Store: e.store, OAuth2: oauth2.Config{ClientID: "starter"}, Issuer: e.idp.srv.URL,
		Checker: e.checker, Clock: e.clock.Now, Logger: e.logs.logger(), PollInterval: 5 * time.Millisecond,
		RefreshJitter: -1, // exact due times; jitter_test.go tests the jitter
	}
	if mod != nil {
		mod(&opts)
	}
	r, err := NewRefresher(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// session stores a session of a new token family whose access token expires in left.
func (e *env) session(t *testing.T, left time.Duration) Session {
	now := e.clock.Now()
	s := Session{
		Subject: "bob", Issuer: e.idp.srv.URL, Audience: []string{"starter"}, ClientID: "starter",
		AccessToken: "AT-SECRET-initial", IDToken: "IDT-SECRET-bob-0", RefreshToken: e.idp.family(),
		Expiry: now.Add(left), IssuedAt: now.Add(left - 5*time.Minute),
	}
	s, err := e.store.Create(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) fresh(r *Refresher, id string) (Session, error) {
	s, err := r.Fresh(context.Background(), id)
	e.errs = append(e.errs, err)
	return s, err
}

func TestFreshReturnsValidTokenWithoutRefresh(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, time.Minute)
	got, err := e.fresh(r, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "AT-SECRET-initial" {
		t.Fatal("refreshed a valid token")
	}
	if n, _ := e.idp.stats(); n != 0 {
		t.Fatalf("%d refreshes", n)
	}
}

func TestFreshRefreshesAndPersistsRotation(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, 10*time.Second) // within the 30s skew
	e.checker.onCheck = func(raw string) {
		// The first use of the new tokens: they are in Vault already, not yet handed out.
		rec, _ := e.fv.stored(s.ID)
		if rec.IDToken != raw || rec.RefreshToken != e.idp.currentRT(s.RefreshToken) || !rec.PendingCheck {
			t.Error("tokens used before they were stored")
		}
	}
	got, err := e.fresh(r, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken == s.AccessToken || got.RefreshToken == s.RefreshToken {
		t.Fatal("not refreshed")
	}
	rec, _ := e.fv.stored(s.ID)
	if rec.RefreshToken != e.idp.currentRT(s.RefreshToken) || rec.RefreshToken != got.RefreshToken {
		t.Fatal("rotated refresh token not stored")
	}
	if rec.ClaimOwner != "" || rec.PendingCheck || rec.Refreshes != 1 {
		t.Fatalf("record %+v", rec.Refreshes)
	}
	if !got.Expiry.Equal(e.clock.Now().Add(300 * time.Second)) {
		t.Fatalf("expiry %v", got.Expiry)
	}
	if e.checker.calls != 1 {
		t.Fatalf("checker calls %d", e.checker.calls)
	}
	// The new token is fresh: no second refresh.
	if _, err := e.fresh(r, s.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.idp.stats(); n != 1 {
		t.Fatalf("%d refreshes", n)
	}
}

func TestFreshSkewCappedForShortTokens(t *testing.T) {
	e := newEnv(t)
	e.idp.ttl = 5
	r := e.refresher(t, nil)
	s := e.session(t, 0)
	if _, err := e.fresh(r, s.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Second) // 3s left of 5: more than half
	if _, err := e.fresh(r, s.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.idp.stats(); n != 1 {
		t.Fatalf("refreshed a token with 3s of 5 left (%d refreshes)", n)
	}
	e.clock.Advance(1 * time.Second) // 2s left: refresh
	if _, err := e.fresh(r, s.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.idp.stats(); n != 2 {
		t.Fatalf("%d refreshes", n)
	}
}

func TestFreshSingleFlight(t *testing.T) {
	e := newEnv(t)
	e.idp.delay = 50 * time.Millisecond
	r := e.refresher(t, nil)
	s := e.session(t, -time.Second)
	const n = 20
	var wg sync.WaitGroup
	tokens := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			got, err := r.Fresh(context.Background(), s.ID)
			tokens[i], errs[i] = got.AccessToken, err
		})
	}
	wg.Wait()
	e.errs = append(e.errs, errs...)
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if tokens[i] != tokens[0] {
			t.Fatal("callers got different tokens")
		}
	}
	if refreshes, calls := e.idp.stats(); refreshes != 1 || calls != 1 {
		t.Fatalf("%d refreshes, %d token calls; want 1", refreshes, calls)
	}
}

// Two Refreshers stand for two worker processes: the claim in Vault lets only one of them call
// the identity provider, and the other uses its tokens.
func TestFreshAcrossProcessesOneRefreshPerRotation(t *testing.T) {
	e := newEnv(t)
	e.idp.delay = 50 * time.Millisecond
	r1 := e.refresher(t, func(o *RefresherOptions) { o.Owner = "w1" })
	r2 := e.refresher(t, func(o *RefresherOptions) { o.Owner = "w2" })
	s := e.session(t, -time.Second)
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make([]error, 10)
		for i := range 10 {
			r := r1
			if i%2 == 1 {
				r = r2
			}
			wg.Go(func() { _, errs[i] = r.Fresh(context.Background(), s.ID) })
		}
		wg.Wait()
		e.errs = append(e.errs, errs...)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if refreshes, calls := e.idp.stats(); refreshes != round+1 || calls != round+1 {
			t.Fatalf("round %d: %d refreshes, %d token calls", round, refreshes, calls)
		}
		e.clock.Advance(10 * time.Minute)
	}
}

// A writer that wins the check-and-set race (our claim expired, another process refreshed)
// makes our write fail: Fresh re-reads and returns the winner's tokens.
func TestFreshCASConflictUsesWinner(t *testing.T) {
	e := newEnv(t)
	s := e.session(t, -time.Second)
	r := e.refresher(t, func(o *RefresherOptions) {
		o.AfterIdPAnswer = func(ctx context.Context, id string) error {
			cur, err := e.store.Get(ctx, id)
			if err != nil {
				return err
			}
			now := e.clock.Now()
			_, err = e.store.Update(ctx, cur.WithTokens("AT-SECRET-winner", "IDT-SECRET-bob-w", "RT-SECRET-winner", now.Add(time.Hour), now))
			return err
		}
	})
	got, err := e.fresh(r, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "AT-SECRET-winner" || got.RefreshToken != "RT-SECRET-winner" {
		t.Fatal("did not use the winner's tokens")
	}
	rec, _ := e.fv.stored(s.ID)
	if rec.RefreshToken != "RT-SECRET-winner" {
		t.Fatal("winner overwritten")
	}
	if !strings.Contains(e.logs.String(), "lost a check-and-set race") {
		t.Fatal("conflict not logged")
	}
}

func TestFreshInvalidGrantIsReauthRequired(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, -time.Second)
	e.idp.mu.Lock()
	e.idp.revoked["fam1"] = true
	e.idp.mu.Unlock()
	_, err := e.fresh(r, s.ID)
	if !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("err %v", err)
	}
	var ae *temporal.ApplicationError
	if !errors.As(identity.ApplicationError(err), &ae) || !ae.NonRetryable() || ae.Type() != identity.TypeReauthRequired {
		t.Fatalf("application error %v", identity.ApplicationError(err))
	}
	if !strings.Contains(err.Error(), "sign in") {
		t.Fatalf("message does not say what to do: %v", err)
	}
	rec, _ := e.fv.stored(s.ID)
	if rec.ClaimOwner != "" {
		t.Fatal("claim not released")
	}
}

func TestFreshIdPFailuresAreRetryable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		delay  time.Duration
	}{
		{"500", http.StatusInternalServerError, nil, 0},
		{"503", http.StatusServiceUnavailable, nil, 0},
		{"429 seconds", http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		{"429 date", http.StatusTooManyRequests, http.Header{"Retry-After": {newFakeClock().Now().Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{"429 none", http.StatusTooManyRequests, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.refresher(t, nil)
			s := e.session(t, -time.Second)
			e.idp.mu.Lock()
			e.idp.failNext, e.idp.failCount, e.idp.failHeader = tc.status, 1, tc.header
			e.idp.mu.Unlock()
			_, err := e.fresh(r, s.ID)
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, identity.ErrReauthRequired) {
				t.Fatalf("err %v", err)
			}
			if identity.ApplicationError(err) != err {
				t.Fatal("transient error turned into an identity error")
			}
			var rl *RateLimitedError
			if tc.status == http.StatusTooManyRequests {
				if !errors.As(err, &rl) || rl.RetryAfter != tc.delay {
					t.Fatalf("rate limit %v", err)
				}
			}
			// The claim was released: the retry refreshes at once.
			if _, err := e.fresh(r, s.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFreshNetworkErrorIsRetryable(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, func(o *RefresherOptions) {
		o.Issuer = ""
		o.OAuth2.Endpoint.TokenURL = "http://127.0.0.1:1/token"
		o.RevocationURL = "http://127.0.0.1:1/revoke"
	})
	s := e.session(t, -time.Second)
	_, err := e.fresh(r, s.ID)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
}

func TestFreshVaultDownIsRetryable(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, -time.Second)
	e.fv.setFail(http.StatusServiceUnavailable)
	_, err := e.fresh(r, s.ID)
	if !errors.Is(err, ErrUnavailable) || identity.ApplicationError(err) != err {
		t.Fatalf("err %v", err)
	}
	if n, _ := e.idp.stats(); n != 0 {
		t.Fatal("called the IdP without a claim")
	}
}

// An abandoned refresh (a crash between the IdP's answer and the write) leaves the old refresh
// token and the claim; nothing of the answer is used.
func TestFreshPersistsRotatedTokenBeforeUse(t *testing.T) {
	e := newEnv(t)
	s := e.session(t, -time.Second)
	crash := errors.New("simulated crash")
	r := e.refresher(t, func(o *RefresherOptions) {
		o.AfterIdPAnswer = func(ctx context.Context, id string) error {
			rec, _ := e.fv.stored(id)
			if rec.RefreshToken != s.RefreshToken || rec.ClaimOwner == "" {
				t.Error("stored before the hook, or not claimed")
			}
			return crash
		}
	})
	if _, err := e.fresh(r, s.ID); !errors.Is(err, crash) {
		t.Fatalf("err %v", err)
	}
	rec, _ := e.fv.stored(s.ID)
	if rec.RefreshToken != s.RefreshToken || rec.ClaimOwner == "" {
		t.Fatal("abandoned refresh changed the session")
	}

	// Without a rotation grace period the old refresh token is dead after the crash: another
	// process waits for the claim to expire, then gets invalid_grant (ReauthRequired).
	r2 := e.refresher(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := r2.Fresh(ctx, s.ID)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("claim not respected: %v", err)
	}
	e.clock.Advance(defaultRefreshTimeout + defaultClaimMargin + time.Second) // the claim ended
	if _, err := e.fresh(r2, s.ID); !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("after crash without grace: %v", err)
	}
}

func TestFreshAfterCrashWithRotationGrace(t *testing.T) {
	e := newEnv(t)
	e.idp.grace = true
	s := e.session(t, -time.Second)
	r := e.refresher(t, func(o *RefresherOptions) {
		o.AfterIdPAnswer = func(context.Context, string) error { return errors.New("simulated crash") }
	})
	_, err := e.fresh(r, s.ID)
	if err == nil {
		t.Fatal("no error")
	}
	e.clock.Advance(defaultRefreshTimeout + defaultClaimMargin + time.Second) // the claim ended
	got, err := e.fresh(e.refresher(t, nil), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RefreshToken != e.idp.currentRT(s.RefreshToken) {
		t.Fatal("not the current refresh token")
	}
}

func TestFreshRefusesMismatchedIDToken(t *testing.T) {
	e := newEnv(t)
	e.idp.subject = "mallory"
	r := e.refresher(t, nil)
	s := e.session(t, -time.Second)
	_, err := e.fresh(r, s.ID)
	if !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("err %v", err)
	}
	rec, _ := e.fv.stored(s.ID)
	if rec.AccessToken != "" || rec.RefreshToken != "" || rec.IDToken != "" {
		t.Fatal("refused tokens kept")
	}
	if _, err := e.fresh(r, s.ID); !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("second call: %v", err)
	}
}

func TestFreshCheckFailsTransiently(t *testing.T) {
	e := newEnv(t)
	e.checker.fail = errors.New("jwks fetch failed")
	r := e.refresher(t, nil)
	s := e.session(t, -time.Second)
	_, err := e.fresh(r, s.ID)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	rec, _ := e.fv.stored(s.ID)
	if !rec.PendingCheck || rec.RefreshToken != e.idp.currentRT(s.RefreshToken) {
		t.Fatal("refreshed tokens not kept pending")
	}
	e.checker.mu.Lock()
	e.checker.fail = nil
	e.checker.mu.Unlock()
	got, err := e.fresh(r, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RefreshToken != rec.RefreshToken {
		t.Fatal("not the pending tokens")
	}
	if n, _ := e.idp.stats(); n != 1 {
		t.Fatalf("%d refreshes", n)
	}
}

func TestFreshMissingSessionIsReauthRequired(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	_, err := e.fresh(r, NewSessionID())
	if !errors.Is(err, identity.ErrReauthRequired) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v", err)
	}
}

// TestFreshOtherClientIsReauthRequired: a session of another client is refused for good,
// not retried as if it were a transient failure.
func TestFreshOtherClientIsReauthRequired(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, func(o *RefresherOptions) { o.OAuth2.ClientID = "other" })
	s := e.session(t, -time.Second)
	_, err := e.fresh(r, s.ID)
	if !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("err %v", err)
	}
	if _, calls := e.idp.stats(); calls != 0 {
		t.Fatalf("%d calls to the IdP", calls)
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, time.Minute)
	if err := r.Revoke(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	if len(e.idp.revocations) != 1 || e.idp.revocations[0] != s.RefreshToken {
		t.Fatal("refresh token not revoked")
	}
	if f := e.idp.revokeForms[0]; !strings.Contains(f, "client_id=starter") || !strings.Contains(f, "token_type_hint=refresh_token") {
		t.Fatalf("form %s", strings.ReplaceAll(f, "SECRET", "x"))
	}
	if _, ok := e.fv.stored(s.ID); ok {
		t.Fatal("secret not destroyed")
	}
	if err := r.Revoke(context.Background(), s.ID); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if len(e.idp.revocations) != 1 {
		t.Fatal("revoked twice")
	}
	if _, err := e.fresh(r, s.ID); !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("fresh after revoke: %v", err)
	}
}

func TestRevokeUnavailableKeepsSecret(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, time.Minute)
	e.idp.mu.Lock()
	e.idp.failNext, e.idp.failCount = http.StatusServiceUnavailable, 1
	e.idp.mu.Unlock()
	err := r.Revoke(context.Background(), s.ID)
	e.errs = append(e.errs, err)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	if _, ok := e.fv.stored(s.ID); !ok {
		t.Fatal("secret destroyed before revocation")
	}
	if err := r.Revoke(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := newFakeClock().Now()
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"junk", 0}, {"999999", time.Hour},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
	} {
		if got := retryAfter(http.Header{"Retry-After": {tc.v}}, now); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.v, got, tc.want)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	f.Add("120")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT")
	f.Fuzz(func(t *testing.T, v string) {
		if d := retryAfter(http.Header{"Retry-After": {v}}, time.Now()); d < 0 || d > time.Hour {
			t.Fatalf("%q: %v", v, d)
		}
	})
}

// *identity.Verifier is the IDTokenChecker the worker uses.
var _ IDTokenChecker = (*identity.Verifier)(nil)
