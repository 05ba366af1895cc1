package tokenstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
)

// gateway stands in front of the fake IdP's token endpoint like a load balancer: it passes
// each request on (the IdP answers and rotates the refresh token, whatever the caller does),
// can lose the next answers after the IdP gave them, by breaking the connection or by
// answering with a status of its own, and counts the requests in flight.
type gateway struct {
	srv *httptest.Server
	idp *fakeIdP

	mu          sync.Mutex
	lose        int           // lose this many answers
	loseWith    int           // 0: break the connection; else answer this status
	hold        time.Duration // before passing a request on
	inFlight    int
	maxInFlight int
}

func newGateway(t *testing.T, idp *fakeIdP) *gateway {
	g := &gateway{idp: idp}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) tokenURL() string { return g.srv.URL + "/token" }

func (g *gateway) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.inFlight++
	g.maxInFlight = max(g.maxInFlight, g.inFlight)
	hold := g.hold
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	time.Sleep(hold)
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, g.idp.srv.URL+"/token", bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	g.mu.Lock()
	lose, with := g.lose > 0, g.loseWith
	if lose {
		g.lose--
	}
	g.mu.Unlock()
	if lose {
		if with != 0 {
			w.WriteHeader(with)
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

func (g *gateway) peak() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.maxInFlight
}

// An answer lost after the IdP rotated the refresh token (a broken connection, a gateway's
// 504), at an IdP with a rotation grace period (Okta's default of 30 s): the claimant retries
// at once with the same refresh token, within the grace period, and the caller gets fresh
// tokens from its first call; the family lives on. Before the fix the call failed and
// released the claim, and a caller retrying after the grace period (Temporal's backoff, a
// busy worker) presented the rotated token: the IdP revoked the family, ReauthRequired.
func TestLostAnswerRetriedWithinRotationGrace(t *testing.T) {
	for _, tc := range []struct {
		name string
		with int
	}{{"connection broken", 0}, {"gateway timeout", http.StatusGatewayTimeout}, {"bad gateway", http.StatusBadGateway}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.now = e.clock.Now
			e.idp.grace, e.idp.graceFor = true, 30*time.Second
			gw := newGateway(t, e.idp)
			gw.lose, gw.loseWith = 1, tc.with
			r := e.refresher(t, func(o *RefresherOptions) {
				o.OAuth2.Endpoint.TokenURL = gw.tokenURL()
				o.RotationGracePeriod = 30 * time.Second
			})
			s := e.session(t, -time.Second)
			got, err := e.fresh(r, s.ID)
			if err != nil {
				// What a caller sees and does: retry later, once the claim ended.
				t.Errorf("first call: %v", err)
				e.clock.Advance(defaultRefreshTimeout + defaultClaimMargin + time.Minute)
				if got, err = e.fresh(r, s.ID); err != nil {
					t.Fatalf("retry after the claim: %v", err)
				}
			}
			if got.RefreshToken != e.idp.currentRT(s.RefreshToken) {
				t.Fatal("stored refresh token is not the family's current one")
			}
			if !strings.Contains(e.logs.String(), "retrying within the rotation grace period") {
				t.Error("retry not logged")
			}
			// The family is alive: the next rotation, outside any grace period, works.
			e.clock.Advance(time.Hour)
			if _, err := e.fresh(r, s.ID); err != nil {
				t.Fatalf("next rotation: %v", err)
			}
		})
	}
}

// An answer lost without a grace period: the claimant keeps its claim, so no worker presents
// the refresh token again while the IdP may still be working on the lost request (another
// worker waits instead). Before the fix the claim was released at once and the next caller
// presented the rotated token, which made the IdP revoke the family. After the claim ends,
// the old token is tried: that works if the IdP had not rotated it, and here, where it had,
// only a new consent helps (TestLostAnswerRetriedWithinRotationGrace is the remedy).
func TestLostAnswerWithoutGraceKeepsClaim(t *testing.T) {
	e := newEnv(t)
	gw := newGateway(t, e.idp)
	gw.lose = 1
	tokenAt := func(o *RefresherOptions) { o.OAuth2.Endpoint.TokenURL = gw.tokenURL() }
	r1, r2 := e.refresher(t, tokenAt), e.refresher(t, tokenAt)
	s := e.session(t, -time.Second)
	_, err := e.fresh(r1, s.ID)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errOutcomeUnknown) || errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("lost answer: %v", err)
	}
	if rec, _ := e.fv.stored(s.ID); rec.ClaimOwner == "" || rec.RefreshToken != s.RefreshToken {
		t.Fatal("claim released after an unknown outcome")
	}
	for _, r := range []*Refresher{r1, r2} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := r.Fresh(ctx, s.ID)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("retry during the claim: %v", err)
		}
	}
	if _, calls := e.idp.stats(); calls != 1 {
		t.Fatalf("%d token requests: the refresh token was presented again during the claim", calls)
	}
	e.clock.Advance(defaultRefreshTimeout + defaultClaimMargin + time.Second)
	if _, err := e.fresh(r2, s.ID); !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("after the claim, without grace: %v", err)
	}
}

// The HTTP client's Timeout (30 s by default, shorter here) does not cut a token request:
// RefreshTimeout bounds it. Before the fix a slow answer timed out in the client, the claim
// was released, and the retry presented the rotated refresh token.
func TestHTTPClientTimeoutDoesNotCutTokenRequests(t *testing.T) {
	e := newEnv(t)
	e.idp.delay = 300 * time.Millisecond
	r := e.refresher(t, func(o *RefresherOptions) { o.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond} })
	s := e.session(t, -time.Second)
	if _, err := e.fresh(r, s.ID); err != nil {
		t.Fatalf("slow answer: %v", err)
	}
	if n, calls := e.idp.stats(); n != 1 || calls != 1 {
		t.Fatalf("%d refreshes in %d token requests", n, calls)
	}
}

// A caller that gives up before the IdP answers gets an error; the refresh goes on, its
// answer is stored, and the next caller uses it without another refresh.
func TestCallerGivingUpDoesNotLoseTheAnswer(t *testing.T) {
	e := newEnv(t)
	e.idp.delay = 300 * time.Millisecond
	r := e.refresher(t, nil)
	s := e.session(t, -time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := r.Fresh(ctx, s.ID)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: %v", err)
	}
	got, err := e.fresh(r, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n, calls := e.idp.stats(); n != 1 || calls != 1 || got.Refreshes != 1 {
		t.Fatalf("%d refreshes in %d token requests, %d stored", n, calls, got.Refreshes)
	}
}

// A claim that could end while its token request runs would let another worker present the
// same refresh token: NewRefresher refuses ClaimTTL <= RefreshTimeout.
func TestClaimMustOutlastTheTokenRequest(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		claim, timeout time.Duration
		ok             bool
	}{
		{0, 0, true},
		{0, 5 * time.Minute, true},
		{30 * time.Second, 0, false}, // the old default claim with the new default timeout
		{20 * time.Second, 20 * time.Second, false},
		{3 * time.Second, 2 * time.Second, true},
	} {
		r, err := NewRefresher(RefresherOptions{Store: e.store, OAuth2: oauth2.Config{ClientID: "starter"}, Issuer: e.idp.srv.URL,
			Checker: e.checker, ClaimTTL: tc.claim, RefreshTimeout: tc.timeout})
		if (err == nil) != tc.ok {
			t.Errorf("ClaimTTL %s, RefreshTimeout %s: %v", tc.claim, tc.timeout, err)
		}
		if err == nil && r.claimTTL <= r.timeout {
			t.Errorf("ClaimTTL %s <= RefreshTimeout %s", r.claimTTL, r.timeout)
		}
	}
}

// MaxConcurrentRefreshes bounds how many token requests one Refresher has in flight when
// many sessions fall due at once; every session is still refreshed exactly once.
func TestMaxConcurrentRefreshes(t *testing.T) {
	e := newEnv(t)
	gw := newGateway(t, e.idp)
	gw.hold = 50 * time.Millisecond
	r := e.refresher(t, func(o *RefresherOptions) {
		o.OAuth2.Endpoint.TokenURL = gw.tokenURL()
		o.MaxConcurrentRefreshes = 3
	})
	ids := make([]string, 12)
	for i := range ids {
		ids[i] = e.session(t, -time.Second).ID
	}
	var wg sync.WaitGroup
	errs := make([]error, 2*len(ids))
	for i, id := range append(append([]string(nil), ids...), ids...) {
		wg.Go(func() { _, errs[i] = r.Fresh(context.Background(), id) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, calls := e.idp.stats(); n != len(ids) || calls != len(ids) {
		t.Fatalf("%d refreshes in %d token requests for %d sessions", n, calls, len(ids))
	}
	if p := gw.peak(); p > 3 {
		t.Fatalf("%d token requests in flight at once; the cap is 3", p)
	}
	if d := e.refresher(t, nil); cap(d.slots) != defaultMaxRefreshes {
		t.Fatalf("default cap %d", cap(d.slots))
	}
}

// Sessions whose tokens were issued together do not fall due together: RefreshDue moves each
// one earlier by up to half the skew, the same amount on every worker, a new one with every
// rotation. Before the fix they all fell due at the same instant.
func TestRefreshJitterSpreadsAlignedSessions(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	r1 := e.refresher(t, func(o *RefresherOptions) { o.RefreshJitter = 0 }) // the default: skew/2
	r2 := e.refresher(t, func(o *RefresherOptions) { o.RefreshJitter = 0 })
	for _, life := range []time.Duration{time.Hour, 10 * time.Second} {
		skew := min(30*time.Second, life/2)
		latest, earliest := now.Add(life-skew), now.Add(life-skew-skew/2)
		dues := map[time.Time]bool{}
		rotated := 0
		for range 200 {
			s := Session{ID: NewSessionID(), Expiry: now.Add(life), IssuedAt: now}
			due := r1.RefreshDue(s)
			if !due.Equal(r2.RefreshDue(s)) || !due.Equal(r1.RefreshDue(s)) {
				t.Fatal("workers disagree on RefreshDue")
			}
			if due.After(latest) || !due.After(earliest) {
				t.Fatalf("life %s: due %s outside (%s, %s]", life, due, earliest, latest)
			}
			dues[due] = true
			next := s
			next.Expiry, next.IssuedAt = s.Expiry.Add(life), s.Expiry
			if r1.RefreshDue(next).Sub(next.Expiry) != due.Sub(s.Expiry) {
				rotated++
			}
		}
		if rotated < 150 {
			t.Fatalf("life %s: the jitter of %d of 200 sessions stayed the same after a rotation", life, 200-rotated)
		}
		if len(dues) < 150 {
			t.Fatalf("life %s: 200 sessions issued together fall due at %d instants", life, len(dues))
		}
	}
	off := e.refresher(t, nil) // RefreshJitter -1
	if s := (Session{ID: NewSessionID(), Expiry: now.Add(time.Hour), IssuedAt: now}); !off.RefreshDue(s).Equal(now.Add(time.Hour - 30*time.Second)) {
		t.Fatal("negative RefreshJitter still jitters")
	}
}

// An IdP whose discovery names no revocation endpoint is asked once, not at every refresh
// (each of which waited behind the one before, under one lock, for a network round trip).
func TestDiscoveryOnceWithoutRevocationEndpoint(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	hits := 0
	var disc *httptest.Server
	disc = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": disc.URL, "token_endpoint": e.idp.srv.URL + "/token"})
	}))
	t.Cleanup(disc.Close)
	r := e.refresher(t, func(o *RefresherOptions) { o.Issuer = disc.URL })
	var wg sync.WaitGroup
	for range 5 {
		id := e.session(t, -time.Second).ID
		wg.Go(func() {
			if _, err := r.Fresh(context.Background(), id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := e.fresh(r, e.session(t, -time.Second).ID); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 1 {
		t.Fatalf("%d discovery requests for 6 refreshes", hits)
	}
}

// Which failures of a token request leave its outcome unknown.
func TestClassifyTokenErrorOutcome(t *testing.T) {
	answer := func(status int, code string) error {
		return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, ErrorCode: code}
	}
	dial := &url.Error{Op: "Post", URL: "http://idp/token", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	reset := &url.Error{Op: "Post", URL: "http://idp/token", Err: &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}}
	for _, tc := range []struct {
		name    string
		err     error
		unknown bool
	}{
		{"invalid_grant", answer(400, "invalid_grant"), false},
		{"429", answer(429, ""), false},
		{"500", answer(500, ""), false},
		{"503", answer(503, ""), false},
		{"502", answer(502, ""), true},
		{"504", answer(504, ""), true},
		{"refused", dial, false},
		{"reset", reset, true},
		{"deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), true},
		{"body cut off", errors.New("oauth2: cannot fetch token: unexpected EOF"), true},
	} {
		err := classifyTokenError("sid", tc.err, time.Now())
		if errors.Is(err, errOutcomeUnknown) != tc.unknown {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.name != "invalid_grant" && !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: not retryable: %v", tc.name, err)
		}
	}
}

// A refresh costs four Vault operations: the read that finds the session due, the claim, the
// rotated tokens (pending their check), the check's result. Before, the refresh read the
// session a second time right after Fresh had read it.
func TestVaultOperationsPerRefresh(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.session(t, -time.Second)
	e.fv.mu.Lock()
	e.fv.reads, e.fv.writes = 0, 0
	e.fv.mu.Unlock()
	if _, err := e.fresh(r, s.ID); err != nil {
		t.Fatal(err)
	}
	e.fv.mu.Lock()
	defer e.fv.mu.Unlock()
	if e.fv.reads != 1 || e.fv.writes != 3 {
		t.Fatalf("one refresh: %d Vault reads, %d writes; want 1 and 3", e.fv.reads, e.fv.writes)
	}
}
