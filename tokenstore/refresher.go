package tokenstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/oidcflow/oidcflow/identity"
)

// Sessions is the part of Store the Refresher uses; *Store implements it.
type Sessions interface {
	Get(ctx context.Context, id string) (Session, error)
	Update(ctx context.Context, s Session) (Session, error)
	Destroy(ctx context.Context, id string) error
}

// IDTokenChecker verifies a refreshed ID token and compares it with the session's original
// identity (OIDC Core section 12.2: same iss, sub and aud). When a refresh returns no ID
// token, RecheckKeptIDToken re-checks the person of the kept one through the userinfo
// endpoint with the new access token, which expires at until. *identity.Verifier
// implements it.
type IDTokenChecker interface {
	VerifyIDToken(ctx context.Context, raw string) (*identity.Identity, error)
	CheckRefreshed(orig, refreshed *identity.Identity) error
	RecheckKeptIDToken(ctx context.Context, idToken, accessToken string, until time.Time) (*identity.Identity, error)
}

// RefresherOptions configures a Refresher.
type RefresherOptions struct {
	// Store holds the sessions (required).
	Store Sessions
	// OAuth2 is the client the sessions' refresh tokens were issued to (required: ClientID;
	// ClientSecret empty for a public client). An empty Endpoint.TokenURL is discovered from
	// Issuer. Sessions of another client are refused.
	OAuth2 oauth2.Config
	// Issuer is the OIDC issuer, used to discover the token and revocation endpoints that are
	// not configured. Required unless both are set.
	Issuer string
	// RevocationURL is the RFC 7009 revocation endpoint. Default: revocation_endpoint from
	// discovery.
	RevocationURL string
	// RevokeClientID and RevokeClientSecret authenticate revocation requests. Default: the
	// OAuth2 client. RFC 7009 section 2.1 lets a server refuse to revoke a token issued to
	// another client, and some (Ory Hydra) answer such a request 200 without revoking, so
	// another client is only useful where the server lets it revoke other clients' tokens.
	RevokeClientID, RevokeClientSecret string
	// Checker verifies each refreshed ID token against the original identity (required
	// unless InsecureSkipIDTokenCheck).
	Checker IDTokenChecker
	// InsecureSkipIDTokenCheck uses refreshed tokens without checking the new ID token. Tests
	// only.
	InsecureSkipIDTokenCheck bool
	// Skew: a session whose access token or ID token is valid for less than Skew is
	// refreshed. Default 30s. It is capped at half the token's lifetime, so that a 5-second
	// token is not refreshed on every use.
	Skew time.Duration
	// RefreshJitter spreads the refreshes of sessions whose tokens were issued together (a
	// burst of logins, or sessions refreshed together once): each session falls due up to
	// RefreshJitter before its skew says, by an amount fixed for the session and its current
	// tokens, so every worker computes the same RefreshDue. It is capped at half the skew (as
	// capped for the token's lifetime). Default: half the skew (15s with the default skew);
	// negative: no jitter.
	RefreshJitter time.Duration
	// RefreshTimeout bounds one token endpoint request. The request does not end when its
	// caller gives up (an activity's timeout, a cancelled context): an answer that comes
	// later is still stored, and the next caller gets it. Keep it generous: a request cut
	// short may lose an answer the identity provider committed, and the refresh token it
	// rotated with it (see RotationGracePeriod). The HTTPClient's own Timeout does not apply
	// to token requests. Default 60s.
	RefreshTimeout time.Duration
	// ClaimTTL is how long one process's refresh claim lasts (see Fresh): no other process
	// refreshes the session before it ends. It must exceed RefreshTimeout: the rest is the
	// time to store the answer, and the tolerance for clock differences between workers.
	// Default RefreshTimeout + 30s.
	ClaimTTL time.Duration
	// RotationGracePeriod is how long the identity provider still accepts a refresh token
	// after rotating it: Ory Hydra's oauth2.grant.refresh_token.rotation_grace_period (at
	// most 5m, 0 by default), Okta's "grace period for token rotation" (0 to 60s, 30s by
	// default), Auth0's "reuse interval" or "rotation overlap period" (the client's
	// refresh_token.leeway, 0 by default), Amazon Cognito's RetryGracePeriodSeconds (0 to
	// 60). Outside it, all of them take a reused refresh token for a stolen one and revoke
	// its family. Set it to the provider's value, never above. After a token request whose outcome is unknown (it timed out, the
	// connection broke, a gateway answered 502 or 504: the provider may have rotated the
	// refresh token and the answer is lost), the claimant retries with the same refresh token
	// only while the first attempt is younger than this period (less a margin for clock
	// differences); otherwise it keeps its claim until the claim ends, so that the refresh
	// token is not presented again while the provider may still be working on the lost
	// request. Default 0: none.
	RotationGracePeriod time.Duration
	// MaxConcurrentRefreshes caps how many sessions this Refresher refreshes at the identity
	// provider at once (token requests, the check of their answers and the Vault writes
	// between); further refreshes wait for a slot before they claim their session, so a
	// stalled identity provider sees a bounded queue from each worker. Default 16.
	MaxConcurrentRefreshes int
	// PollInterval is how often a process waiting for another's refresh re-reads the session.
	// Default 250ms.
	PollInterval time.Duration
	// HTTPClient talks to the identity provider. Its Timeout applies to discovery and
	// revocation, not to token requests (RefreshTimeout bounds them). Default: a client with
	// a 30s timeout.
	HTTPClient *http.Client
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// Logger receives debug and warning records (never a token). Default slog.Default().
	Logger *slog.Logger
	// Owner names this process in refresh claims (stored in Vault, shown in logs). Default
	// "<hostname>/<pid>".
	Owner string
	// AfterIdPAnswer, when set, is called after the identity provider answered a refresh and
	// before the new tokens are written to Vault. Returning an error abandons the refresh
	// as a crash at that point would. Fault-injection tests only.
	AfterIdPAnswer func(ctx context.Context, sessionID string) error
	// OnRefreshed, when set, is called once for every refresh this Refresher made at the
	// identity provider and stored (not for another process's refresh it waited for), so
	// that metrics count what the token endpoint served. Default none.
	OnRefreshed func(ctx context.Context, sessionID string)
}

// Refresher hands out sessions whose access token is fresh, refreshing them when needed. It
// is safe for concurrent use; use one per process.
type Refresher struct {
	store       Sessions
	cfg         oauth2.Config
	ep          *endpoints
	revokeID    string
	revokeSec   string
	checker     IDTokenChecker
	skew        time.Duration
	jitter      time.Duration
	claimTTL    time.Duration
	timeout     time.Duration
	grace       time.Duration
	poll        time.Duration
	hc          *http.Client // discovery, revocation
	tokenHC     *http.Client // token requests: hc without its Timeout
	now         func() time.Time
	log         *slog.Logger
	owner       string
	afterAnswer func(context.Context, string) error
	onRefreshed func(context.Context, string)
	group       singleflight.Group
	slots       chan struct{} // one per refresh in progress at the identity provider
}

// Defaults of RefresherOptions.
const (
	defaultSkew           = 30 * time.Second
	defaultRefreshTimeout = 60 * time.Second
	defaultClaimMargin    = 30 * time.Second
	defaultMaxRefreshes   = 16
)

// graceMargin is kept off the end of RotationGracePeriod: the identity provider's clock
// starts the period when it rotated the token, which may be a little after our first
// attempt by its clock, or before by ours.
const graceMargin = 5 * time.Second

// NewRefresher returns a Refresher for opts.
func NewRefresher(opts RefresherOptions) (*Refresher, error) {
	if opts.Store == nil {
		return nil, errors.New("tokenstore: RefresherOptions.Store is required")
	}
	if opts.OAuth2.ClientID == "" {
		return nil, errors.New("tokenstore: RefresherOptions.OAuth2.ClientID is required")
	}
	if opts.Checker == nil && !opts.InsecureSkipIDTokenCheck {
		return nil, errors.New("tokenstore: RefresherOptions.Checker is required (or InsecureSkipIDTokenCheck)")
	}
	if opts.Issuer == "" && (opts.OAuth2.Endpoint.TokenURL == "" || opts.RevocationURL == "") {
		return nil, errors.New("tokenstore: RefresherOptions.Issuer is required unless the token and revocation URLs are set")
	}
	if opts.RotationGracePeriod < 0 || opts.MaxConcurrentRefreshes < 0 {
		return nil, errors.New("tokenstore: RefresherOptions.RotationGracePeriod and MaxConcurrentRefreshes must not be negative")
	}
	r := &Refresher{
		store: opts.Store, cfg: opts.OAuth2, checker: opts.Checker,
		skew: opts.Skew, jitter: opts.RefreshJitter, claimTTL: opts.ClaimTTL, timeout: opts.RefreshTimeout,
		grace: opts.RotationGracePeriod, poll: opts.PollInterval,
		hc: opts.HTTPClient, now: opts.Clock, log: opts.Logger, owner: opts.Owner,
		afterAnswer: opts.AfterIdPAnswer, onRefreshed: opts.OnRefreshed,
		revokeID: opts.RevokeClientID, revokeSec: opts.RevokeClientSecret,
	}
	if opts.InsecureSkipIDTokenCheck {
		r.checker = nil
	}
	if r.skew <= 0 {
		r.skew = defaultSkew
	}
	switch {
	case r.jitter == 0:
		r.jitter = r.skew / 2
	case r.jitter < 0:
		r.jitter = 0
	}
	if r.timeout <= 0 {
		r.timeout = defaultRefreshTimeout
	}
	if r.claimTTL <= 0 {
		r.claimTTL = r.timeout + defaultClaimMargin
	}
	if r.claimTTL <= r.timeout {
		// A claim that ends while its token request runs lets another process present the
		// same refresh token: the identity provider's reuse detection then revokes the family.
		return nil, fmt.Errorf("tokenstore: RefresherOptions.ClaimTTL (%s) must exceed RefreshTimeout (%s)", r.claimTTL, r.timeout)
	}
	if r.poll <= 0 {
		r.poll = 250 * time.Millisecond
	}
	if r.hc == nil {
		r.hc = &http.Client{Timeout: 30 * time.Second}
	}
	tokenHC := *r.hc
	tokenHC.Timeout = 0
	r.tokenHC = &tokenHC
	n := opts.MaxConcurrentRefreshes
	if n == 0 {
		n = defaultMaxRefreshes
	}
	r.slots = make(chan struct{}, n)
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.owner == "" {
		host, _ := os.Hostname()
		r.owner = host + "/" + strconv.Itoa(os.Getpid())
	}
	if r.revokeID == "" {
		r.revokeID, r.revokeSec = r.cfg.ClientID, r.cfg.ClientSecret
	}
	if r.cfg.Endpoint.AuthStyle == oauth2.AuthStyleAutoDetect {
		// Auto-detection may send a failing first request; say how to authenticate.
		if r.cfg.ClientSecret == "" {
			r.cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		} else {
			r.cfg.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
		}
	}
	r.ep = &endpoints{issuer: opts.Issuer, httpClient: r.hc, token: r.cfg.Endpoint.TokenURL, revocation: opts.RevocationURL}
	return r, nil
}

// usable reports whether s's tokens are valid for longer than the skew (capped at half
// their lifetime) and checked.
func (r *Refresher) usable(s Session) bool {
	if s.AccessToken == "" || s.pendingCheck {
		return false
	}
	return r.now().Before(r.RefreshDue(s))
}

// RefreshDue returns when s stops being usable for Fresh: the earlier of the access token's
// and the ID token's expiry, each minus the skew (capped at half the token's lifetime, as
// far as IssuedAt tells it), and minus the session's jitter (RefresherOptions.RefreshJitter).
// It is the time to schedule the next refresh at.
//
// The ID token counts because the activities verify it: an identity provider whose ID
// tokens live shorter than its access tokens would otherwise fail them between two
// refreshes. It does not count when unknown (no exp readable) or kept (IDTokenKept): a
// refresh returned none, so no refresh is sure to renew it, and the session's identity is
// vouched for until the access token's expiry instead (see Fresh).
func (r *Refresher) RefreshDue(s Session) time.Time {
	due := r.due(s.ID, s.Expiry, s.IssuedAt)
	if s.IDTokenKept {
		return due
	}
	if exp := s.idTokenExpiry(); !exp.IsZero() {
		if d := r.due(s.ID, exp, s.IssuedAt); d.Before(due) {
			due = d
		}
	}
	return due
}

// due returns exp minus the skew, capped at half the lifetime from issued (when known), and
// minus the jitter of session id for this exp (at most half that skew).
func (r *Refresher) due(id string, exp, issued time.Time) time.Time {
	skew := r.skew
	if !issued.IsZero() {
		if life := exp.Sub(issued); life > 0 && skew > life/2 {
			skew = life / 2
		}
	}
	return exp.Add(-skew - jitter(id, exp, min(r.jitter, skew/2)))
}

// jitter returns a duration in [0, limit) fixed by the session id and the expiry it is
// computed for: the same on every worker, and new with every rotation. It spreads sessions
// whose tokens were issued together; it is no secret and needs no unpredictability.
func jitter(id string, exp time.Time, limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(exp.UnixNano()))
	h.Write(b[:])
	return time.Duration(h.Sum64() % uint64(limit))
}

// get reads a session; a missing session means the person must consent again.
func (r *Refresher) get(ctx context.Context, id string) (Session, error) {
	s, err := r.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Session{}, fmt.Errorf("%w: it was revoked or never stored; the person must sign in again: %w", err, identity.ErrReauthRequired)
	}
	return s, err
}

// Fresh returns session id with an access token and an ID token valid for longer than the
// skew (see RefreshDue), refreshing it first if needed:
//
//   - Within the process, concurrent calls for one session share one refresh (single-flight,
//     per session: refreshes of different sessions never wait for each other, except for a
//     slot of MaxConcurrentRefreshes).
//   - Across processes, the refresher first claims the refresh in Vault (a check-and-set
//     write of a claim with a deadline, ClaimTTL); only the claimant calls the identity
//     provider, the others re-read until the new tokens are there or the claim expired. So
//     the identity provider sees one refresh per rotation and never a reused refresh token.
//   - The refresh runs detached from ctx: a caller that gives up (ctx done) gets an error,
//     while the token request goes on for up to RefreshTimeout, and its answer is stored for
//     the next caller. The claim outlasts the request (ClaimTTL > RefreshTimeout), so no
//     other process presents the same refresh token while it may still be answered.
//   - The new tokens (with the rotated refresh token) are written to Vault with check-and-set
//     before they are returned or used. A crash between the identity provider's answer and
//     the write loses them; so does a request whose outcome is unknown (it timed out, the
//     connection broke, a gateway answered 502 or 504). The next refresh then presents the
//     old refresh token again, which succeeds only if the provider had not rotated it, or
//     within its rotation grace period: the claimant retries an unknown outcome at once while
//     RotationGracePeriod allows, and otherwise keeps its claim until it ends, so that the
//     provider has finished with the lost request before the token is presented again.
//   - A refreshed ID token is checked against the original identity (OIDC Core section 12.2)
//     right after the write; until it passed, the tokens are not handed out.
//   - A refresh that returns no ID token (OIDC Core 12.2 makes it optional) keeps the last
//     verified one and marks the session IDTokenKept. Right after the write, the person is
//     re-checked through the userinfo endpoint with the new access token
//     (IDTokenChecker.RecheckKeptIDToken: same subject, same authorization claims where
//     userinfo shows them); until that passed, the tokens are not handed out. The session's
//     identity is then vouched for until the access token's expiry, when the next refresh
//     is due: the kept token's exp neither makes a refresh due (no refresh could renew it,
//     so that would refresh on every call) nor ends the session. Readers verify a kept
//     token with identity.Verifier.VerifyKeptIDToken until Expiry.
//   - A CAS conflict means another writer won: re-read and use its tokens.
//
// Errors: identity.ErrReauthRequired (wrapped) when the identity provider refuses the refresh
// token (invalid_grant), the refreshed ID token does not match (or userinfo refuses the
// person of a kept one), or the session is gone;
// ErrUnavailable (wrapped; *RateLimitedError for 429) for transient failures of Vault or the
// identity provider; ctx's error when it ends first. Errors never contain a token.
func (r *Refresher) Fresh(ctx context.Context, id string) (Session, error) {
	if err := ValidateSessionID(id); err != nil {
		return Session{}, err
	}
	s, err := r.get(ctx, id)
	if err != nil {
		return Session{}, err
	}
	if r.usable(s) {
		return s, nil
	}
	ch := r.group.DoChan(id, func() (any, error) {
		// Detached from the caller, whose context may end at any time (and keeps its values
		// for OnRefreshed). The bound is for waiting: for another process's claim, for a
		// slot. Once claimed, a refresh runs on its own deadlines (see refreshClaimed).
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*r.claimTTL+r.timeout)
		defer cancel()
		return r.refresh(wctx, s)
	})
	select {
	case <-ctx.Done():
		return Session{}, fmt.Errorf("tokenstore: waiting for the refresh of session %s (it goes on): %w", id, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return Session{}, res.Err
		}
		return res.Val.(Session).clone(), nil
	}
}

// errRetry asks refresh to re-read and decide again.
var errRetry = errors.New("tokenstore: retry")

// refresh refreshes session s (as just read) unless another process did; it re-reads the
// session whenever it must decide again.
func (r *Refresher) refresh(ctx context.Context, s Session) (Session, error) {
	id := s.ID
	slot := false
	defer func() {
		if slot {
			<-r.slots
		}
	}()
	for read := true; ; read = false {
		if err := ctx.Err(); err != nil {
			return Session{}, fmt.Errorf("tokenstore: refresh session %s: %w: %w", id, ErrUnavailable, err)
		}
		if !read {
			var err error
			if s, err = r.get(ctx, id); err != nil {
				return Session{}, err
			}
		}
		if s.pendingCheck && s.claimOwner == "" {
			out, err := r.check(ctx, s)
			if errors.Is(err, errRetry) || errors.Is(err, ErrConflict) {
				continue
			}
			if err != nil {
				return Session{}, err
			}
			if r.usable(out) {
				return out, nil
			}
			continue
		}
		if r.usable(s) {
			return s, nil
		}
		if s.RefreshToken == "" {
			return Session{}, fmt.Errorf("tokenstore: session %s has no refresh token; the person must sign in again: %w", id, identity.ErrReauthRequired)
		}
		if s.ClientID != "" && s.ClientID != r.cfg.ClientID {
			// No retry changes the client; a re-consent through this pool's client does.
			return Session{}, fmt.Errorf("tokenstore: session %s belongs to client %q, this refresher serves %q; "+
				"the person must sign in again through %q: %w", id, s.ClientID, r.cfg.ClientID, r.cfg.ClientID, identity.ErrReauthRequired)
		}
		now := r.now()
		if s.claimOwner != "" && now.Before(s.claimUntil) {
			// Another process is refreshing: wait for its write, or for its claim to expire,
			// without holding a slot that a refresh of another session could use.
			if slot {
				<-r.slots
				slot = false
			}
			r.log.DebugContext(ctx, "tokenstore: waiting for another refresh", "session", id, "claimant", s.claimOwner)
			if err := sleep(ctx, r.poll); err != nil {
				return Session{}, fmt.Errorf("tokenstore: refresh session %s: waiting for %s: %w: %w", id, s.claimOwner, ErrUnavailable, err)
			}
			continue
		}
		if !slot {
			// Take a slot before claiming, so that no claim ages in the queue; after a wait,
			// decide again on what is stored by now.
			select {
			case r.slots <- struct{}{}:
				slot = true
			default:
				r.log.DebugContext(ctx, "tokenstore: waiting for a refresh slot", "session", id, "slots", cap(r.slots))
				select {
				case r.slots <- struct{}{}:
				case <-ctx.Done():
					return Session{}, fmt.Errorf("tokenstore: refresh session %s: waiting for one of %d refresh slots: %w: %w",
						id, cap(r.slots), ErrUnavailable, ctx.Err())
				}
				slot = true
				continue
			}
		}
		if s.claimOwner != "" {
			r.log.WarnContext(ctx, "tokenstore: taking over an expired refresh claim", "session", id, "claimant", s.claimOwner)
		}
		c, err := r.claim(ctx, s)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return Session{}, err
		}
		out, err := r.refreshClaimed(context.WithoutCancel(ctx), c)
		if errors.Is(err, errRetry) {
			continue
		}
		return out, err
	}
}

// claim writes (or renews) this process's refresh claim on s: ClaimTTL from now.
func (r *Refresher) claim(ctx context.Context, s Session) (Session, error) {
	c := s
	c.claimOwner = r.owner + "/" + randomHex(6)
	c.claimUntil = r.now().Add(r.claimTTL)
	return r.store.Update(ctx, c)
}

// refreshClaimed calls the identity provider for the claimed session c and stores the
// result. ctx carries no deadline: each step has its own, within the claim.
func (r *Refresher) refreshClaimed(ctx context.Context, c Session) (Session, error) {
	first := r.now()
	var tok *oauth2.Token
	for backoff := time.Second; ; backoff = min(2*backoff, 10*time.Second) {
		var err error
		tok, err = r.exchange(ctx, c)
		if err == nil {
			break
		}
		if !errors.Is(err, errOutcomeUnknown) {
			r.release(ctx, c)
			return Session{}, err
		}
		// The identity provider may have rotated the refresh token, and its answer is lost.
		if r.now().Add(backoff + graceMargin).After(first.Add(r.grace)) {
			// Outside the grace period, the old refresh token is dead if the provider rotated
			// it. Keep the claim (nobody presents the token while the provider may still be
			// working on the request); the next refresh after the claim tries it.
			r.log.WarnContext(ctx, "tokenstore: token request outcome unknown; refresh claim kept until it ends",
				"session", c.ID, "claim_until", c.claimUntil, "grace", r.grace, "err", err)
			return Session{}, err
		}
		r.log.WarnContext(ctx, "tokenstore: token request outcome unknown; retrying within the rotation grace period",
			"session", c.ID, "grace", r.grace, "err", err)
		if serr := sleep(ctx, backoff); serr != nil {
			return Session{}, err
		}
		// Renew the claim for the new request; failing that, the claim stays as it is.
		nc, cerr := r.claim(ctx, c)
		if cerr != nil {
			r.log.WarnContext(ctx, "tokenstore: renewing the refresh claim failed; not retrying", "session", c.ID, "err", cerr)
			return Session{}, err
		}
		c = nc
	}
	if r.afterAnswer != nil {
		if err := r.afterAnswer(ctx, c.ID); err != nil {
			return Session{}, fmt.Errorf("tokenstore: refresh session %s abandoned before the write: %w", c.ID, err)
		}
	}
	now := r.now()
	n := c
	n.AccessToken = tok.AccessToken
	n.TokenType = tok.TokenType
	if tok.RefreshToken != "" {
		n.RefreshToken = tok.RefreshToken
	}
	switch {
	case tok.ExpiresIn > 0:
		n.Expiry = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	case !tok.Expiry.IsZero():
		n.Expiry = tok.Expiry
	default:
		// RFC 6749 section 5.1 makes expires_in optional; assume the old lifetime.
		n.Expiry = now.Add(max(c.Expiry.Sub(c.IssuedAt), time.Minute))
	}
	n.IssuedAt, n.Refreshed = now, now
	n.Refreshes++
	n.claimOwner, n.claimUntil = "", time.Time{}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		// Until the check read the verified exp, the payload's is the best guess.
		n.IDToken, n.IDTokenExpiry, n.IDTokenKept = raw, payloadExpiry(raw), false
	} else {
		n.IDTokenKept = true
	}
	n.pendingCheck = r.checker != nil
	n, err := r.write(ctx, n, c.claimUntil)
	if err != nil {
		return Session{}, err
	}
	if r.onRefreshed != nil {
		r.onRefreshed(ctx, n.ID)
	}
	r.log.DebugContext(ctx, "tokenstore: session refreshed", "session", n)
	if n.pendingCheck {
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		defer cancel()
		out, err := r.check(cctx, n)
		if errors.Is(err, ErrConflict) {
			return Session{}, errRetry
		}
		return out, err
	}
	return n, nil
}

// write stores the refreshed session, retrying transient Vault failures: until the claim
// ends, no other process refreshes, and the rotated refresh token exists only here. It goes
// on for another ClaimTTL after that: until another process claims the session (then the
// check-and-set fails), the write still saves the rotation.
func (r *Refresher) write(ctx context.Context, n Session, until time.Time) (Session, error) {
	until = until.Add(r.claimTTL)
	ctx, cancel := context.WithTimeout(ctx, until.Sub(r.now()))
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		out, err := r.store.Update(ctx, n)
		switch {
		case err == nil:
			return out, nil
		case errors.Is(err, ErrConflict):
			// Someone took over (our claim expired) or the session was replaced: our tokens
			// are lost, the session now holds the winner's.
			r.log.WarnContext(ctx, "tokenstore: refreshed tokens lost a check-and-set race; using the stored ones", "session", n.ID)
			return Session{}, errRetry
		case errors.Is(err, ErrUnavailable) && r.now().Add(backoff).Before(until):
			r.log.WarnContext(ctx, "tokenstore: vault write of refreshed tokens failed; retrying", "session", n.ID, "err", err)
			if serr := sleep(ctx, backoff); serr != nil {
				return Session{}, err
			}
			backoff = min(2*backoff, 5*time.Second)
		default:
			r.log.ErrorContext(ctx, "tokenstore: rotated refresh token could not be stored", "session", n.ID, "err", err)
			return Session{}, err
		}
	}
}

// release clears our claim after a failed refresh, best effort (it expires anyway).
func (r *Refresher) release(ctx context.Context, c Session) {
	c.claimOwner, c.claimUntil = "", time.Time{}
	if _, err := r.store.Update(ctx, c); err != nil {
		r.log.DebugContext(ctx, "tokenstore: releasing refresh claim failed", "session", c.ID, "err", err)
	}
}

// exchange sends the refresh grant of the claimed session c. The request may take until
// RefreshTimeout after the claim was taken (the claim's end less its margin), whatever ctx's
// caller does. An error wrapping errOutcomeUnknown means the request may have reached the
// identity provider and been answered, the answer lost.
func (r *Refresher) exchange(ctx context.Context, c Session) (*oauth2.Token, error) {
	tokenURL, _, err := r.ep.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("tokenstore: refresh session %s: %w", c.ID, err)
	}
	if tokenURL == "" {
		return nil, fmt.Errorf("tokenstore: refresh session %s: the identity provider names no token endpoint", c.ID)
	}
	left := c.claimUntil.Add(r.timeout - r.claimTTL).Sub(r.now())
	if left <= 0 {
		// The claim write took all the time the request had: not sent.
		return nil, fmt.Errorf("tokenstore: refresh session %s: no time left in the claim for the token request: %w", c.ID, ErrUnavailable)
	}
	cfg := r.cfg
	cfg.Endpoint.TokenURL = tokenURL
	tctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, r.tokenHC), left)
	defer cancel()
	// An access token that is already expired makes the source refresh at once.
	tok, err := cfg.TokenSource(tctx, &oauth2.Token{RefreshToken: c.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return nil, classifyTokenError(c.ID, err, r.now())
	}
	return tok, nil
}

// check verifies the stored, refreshed ID token of s (or, when the refresh kept the old one,
// re-checks its person through userinfo with the new access token) and clears
// pendingCheck. A definite refusal wipes the tokens (so nothing uses them) and reports
// ErrReauthRequired.
func (r *Refresher) check(ctx context.Context, s Session) (Session, error) {
	if r.checker == nil {
		s.pendingCheck = false
		return r.store.Update(ctx, s)
	}
	orig := &identity.Identity{Subject: s.Subject, Issuer: s.Issuer, Audience: s.Audience, ClientID: s.AuthorizedParty}
	if len(orig.Audience) == 0 && s.ClientID != "" {
		orig.Audience = []string{s.ClientID}
	}
	var refreshed *identity.Identity
	var err error
	if s.IDTokenKept {
		refreshed, err = r.checker.RecheckKeptIDToken(ctx, s.IDToken, s.AccessToken, s.Expiry)
	} else {
		refreshed, err = r.checker.VerifyIDToken(ctx, s.IDToken)
	}
	if err == nil {
		err = r.checker.CheckRefreshed(orig, refreshed)
	}
	if err != nil {
		if errors.Is(err, identity.ErrInvalidConfig) {
			// No userinfo endpoint to re-check a kept ID token with: retrying does not help,
			// configuring one does. The tokens stay pending, neither used nor wiped.
			return Session{}, fmt.Errorf("tokenstore: checking the refreshed tokens of session %s: %w", s.ID, err)
		}
		if !isIdentityError(err) {
			return Session{}, fmt.Errorf("tokenstore: checking the refreshed ID token of session %s: %w: %w", s.ID, ErrUnavailable, err)
		}
		w := s
		w.AccessToken, w.IDToken, w.RefreshToken = "", "", ""
		w.pendingCheck = false
		if _, werr := r.store.Update(ctx, w); werr != nil {
			r.log.WarnContext(ctx, "tokenstore: wiping refused tokens failed", "session", s.ID, "err", werr)
		}
		what := "refreshed ID token"
		if s.IDTokenKept {
			what = "person of the kept ID token"
		}
		r.log.WarnContext(ctx, "tokenstore: "+what+" refused", "session", s.ID, "err", err)
		return Session{}, fmt.Errorf("tokenstore: the %s of session %s was refused (%v); the person must sign in again: %w",
			what, s.ID, err, identity.ErrReauthRequired)
	}
	if !s.IDTokenKept {
		s.IDTokenExpiry = refreshed.Expiry
	}
	s.pendingCheck = false
	return r.store.Update(ctx, s)
}

func isIdentityError(err error) bool {
	for _, e := range []error{identity.ErrUnauthenticated, identity.ErrInvalidToken,
		identity.ErrMalformedToken, identity.ErrForbidden, identity.ErrReauthRequired} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Revoke ends session id: it revokes the refresh token at the identity provider (RFC 7009;
// the provider then also invalidates the access tokens of the grant, section 2.1) and
// destroys the Vault secret. Revoking a missing session succeeds. If revocation fails, the
// secret is kept so that a retry can revoke; the error wraps ErrUnavailable when retrying
// helps.
func (r *Refresher) Revoke(ctx context.Context, id string) error {
	if err := ValidateSessionID(id); err != nil {
		return err
	}
	s, err := r.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.RefreshToken != "" {
		_, endpoint, err := r.ep.get(ctx)
		if err != nil {
			return fmt.Errorf("tokenstore: revoke session %s: %w", id, err)
		}
		if endpoint == "" {
			return fmt.Errorf("tokenstore: revoke session %s: the identity provider names no revocation endpoint", id)
		}
		if err := revoke(ctx, r.hc, endpoint, r.revokeID, r.revokeSec, s.RefreshToken, "refresh_token"); err != nil {
			return fmt.Errorf("tokenstore: revoke session %s: %w", id, err)
		}
	}
	if err := r.store.Destroy(ctx, id); err != nil {
		return err
	}
	r.log.InfoContext(ctx, "tokenstore: session revoked and destroyed", "session", id)
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
