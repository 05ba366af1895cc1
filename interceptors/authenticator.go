package interceptors

import (
	"context"
	"crypto/hmac"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// TokenVerifier verifies ID tokens; *identity.Verifier is one. VerifyKeptIDToken verifies one
// that a session kept past its exp and vouches for until until (see
// SessionStore.CurrentIDToken); it is used for session tokens only, never for a token from an
// envelope.
type TokenVerifier interface {
	VerifyIDToken(ctx context.Context, raw string) (*identity.Identity, error)
	// VerifyIDTokenAt judges exp, nbf and iat at `at` instead of the clock.
	VerifyIDTokenAt(ctx context.Context, raw string, at time.Time) (*identity.Identity, error)
	VerifyKeptIDToken(ctx context.Context, raw string, until time.Time) (*identity.Identity, error)
}

// SessionStore keeps a person's tokens between steps; *tokenstore.SharedSessions is one.
type SessionStore interface {
	// Deposit stores the tokens of a verified identity for holder (a workflow, or an update
	// of one) and returns the session id. Deposits of the same refresh token share one
	// session, so that one refresh serves every run started from one login.
	Deposit(ctx context.Context, id *identity.Identity, tok *oauth2.Token, holder string) (sessionID string, err error)
	// CurrentIDToken returns the session's ID token, refreshing the session when it is due.
	// keptUntil is zero unless the last refresh returned no ID token (OIDC Core 12.2): then
	// raw is the verified one of before, whose person the store re-checked through the
	// userinfo endpoint, and the session vouches for it until keptUntil (its access
	// token's expiry), even past its exp.
	CurrentIDToken(ctx context.Context, sessionID string) (raw string, keptUntil time.Time, err error)
	// End releases holder's hold on the session; the last one out revokes the refresh token
	// at the IdP and destroys the session.
	End(ctx context.Context, sessionID, holder string) error
}

// OneTimeStore records ids that the whole pool honours once (envelopes, signal references).
type OneTimeStore interface {
	// Spend records id for owner until `until`. Spending an id again for the same owner (a
	// retry) succeeds; for another owner it fails with an error wrapping
	// identity.ErrUnauthenticated.
	Spend(ctx context.Context, id, owner string, until time.Time) error
}

// AuthenticatorOptions configure NewAuthenticator.
type AuthenticatorOptions struct {
	Keyring  *envelope.Keyring // the pool's current and previous envelope keys; required
	Verifier TokenVerifier     // required
	Sessions SessionStore      // required
	OneTime  OneTimeStore      // required
	// MaxAge is how old an envelope that names no run (a start) may be when the server
	// records its operation. Default 5m; at most 24h.
	MaxAge time.Duration
	// MaxBacklog is how long an update or signal bound to its run may wait for a worker
	// before its envelope is refused. Default 1h; at most 24h.
	MaxBacklog time.Duration
	// Leeway tolerates clock differences between sealers and the server. Default 1m.
	Leeway time.Duration
	// Clock is the worker's clock, for deciding whether a deposited session needs a refresh.
	// Default time.Now.
	Clock func() time.Time
}

// oneTimeRetention is how long after sealing the pool keeps an envelope's one-time record. It
// is the same on every worker, whatever their settings, so that one envelope's record always
// lands in the same place; it outlasts the longest window any check accepts (maxWindow plus
// the leeway). An operation first handled later than this after sealing is refused.
const oneTimeRetention = 25 * time.Hour

// maxWindow bounds MaxAge and MaxBacklog.
const maxWindow = 24 * time.Hour

// NewAuthenticator returns the production Authenticator: envelopes are opened with the
// pool's keyring and checked against the operation they arrived with, spent once in the
// pool, their tokens verified, and sessions kept in the SessionStore.
//
// Freshness is judged at the time the server recorded the operation, which a copy replayed
// onto another run cannot keep: a start at the run's start time, so a start that waited in a
// backlog (workers down or saturated) is not refused for the wait, and its session is then
// refreshed; an update or signal bound to its run at its sealing time, which must lie within
// the run's life and at most MaxBacklog before the worker accepted it. An unbound update or
// signal is judged when the worker accepts it.
func NewAuthenticator(opts AuthenticatorOptions) (Authenticator, error) {
	if opts.Keyring == nil || opts.Verifier == nil || opts.Sessions == nil || opts.OneTime == nil {
		return nil, fmt.Errorf("interceptors: AuthenticatorOptions needs Keyring, Verifier, Sessions and OneTime")
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 5 * time.Minute
	}
	if opts.MaxBacklog <= 0 {
		opts.MaxBacklog = time.Hour
	}
	if opts.Leeway <= 0 {
		opts.Leeway = time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxAge > maxWindow || opts.MaxBacklog > maxWindow {
		return nil, fmt.Errorf("interceptors: MaxAge and MaxBacklog may be at most %s (the one-time records keep envelopes for %s)",
			maxWindow, oneTimeRetention)
	}
	return &authenticator{opts}, nil
}

type authenticator struct{ AuthenticatorOptions }

func (a *authenticator) Open(ctx context.Context, op Operation, sealed []byte) (*identity.Identity, error) {
	c, err := a.Keyring.Open(op.Binding, sealed)
	if err != nil {
		return nil, err
	}
	at, err := a.check(op, c)
	if err != nil {
		return nil, err
	}
	id, err := a.Verifier.VerifyIDTokenAt(ctx, c.IDToken, at)
	if err != nil {
		return nil, err
	}
	// Honoured once in the pool: kept beyond the longest time any check above accepts it.
	if err := a.OneTime.Spend(ctx, c.ID, op.owner(), c.IssuedAt.Add(oneTimeRetention)); err != nil {
		return nil, err
	}
	id = clone(id)
	if op.Holder == "" {
		return id, nil
	}
	tok := (&oauth2.Token{AccessToken: c.AccessToken, RefreshToken: c.RefreshToken, TokenType: "Bearer",
		Expiry: c.Expiry}).WithExtra(map[string]any{"id_token": c.IDToken})
	if id.SessionID, err = a.Sessions.Deposit(ctx, id, tok, op.Holder); err != nil {
		return nil, err
	}
	if a.Clock().Before(id.Expiry) {
		return id, nil
	}
	// The operation waited past its token's life: go on with a fresh token, if the session
	// can get one; else with the identity the server's time vouched for.
	fresh, err := a.Resume(ctx, id.SessionID)
	if err != nil {
		return id, nil
	}
	fresh.SessionID = id.SessionID
	return fresh, nil
}

// check compares the envelope's commitments with the operation and returns the time at
// which its tokens are judged.
func (a *authenticator) check(op Operation, c envelope.Contents) (time.Time, error) {
	switch {
	case c.Version < 2:
		return time.Time{}, ErrLegacyEnvelope
	case !hmac.Equal(c.InputDigest, op.Digest):
		return time.Time{}, ErrInputChanged
	case c.RunID != "" && c.RunID != op.RunID:
		return time.Time{}, ErrOtherRun
	case c.IssuedAt.After(op.At.Add(a.Leeway)):
		return time.Time{}, fmt.Errorf("%w (sealed at %s, after the server recorded the operation at %s; check the sealer's clock)",
			ErrStaleEnvelope, stamp(c.IssuedAt), stamp(op.At))
	case c.RunID == "" && op.At.Sub(c.IssuedAt) > a.MaxAge:
		return time.Time{}, fmt.Errorf("%w (sealed at %s, %s before the server recorded the operation; at most %s)",
			ErrStaleEnvelope, stamp(c.IssuedAt), op.At.Sub(c.IssuedAt).Round(time.Second), a.MaxAge)
	case c.RunID == "":
		return op.At, nil
	case c.IssuedAt.Before(op.RunStart.Add(-a.Leeway)):
		return time.Time{}, fmt.Errorf("%w (sealed at %s, before the run started at %s)",
			ErrStaleEnvelope, stamp(c.IssuedAt), stamp(op.RunStart))
	case op.At.Sub(c.IssuedAt) > a.MaxBacklog:
		return time.Time{}, fmt.Errorf("%w (sealed at %s and accepted %s later; at most %s)",
			ErrStaleEnvelope, stamp(c.IssuedAt), op.At.Sub(c.IssuedAt).Round(time.Second), a.MaxBacklog)
	}
	return c.IssuedAt, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (a *authenticator) Resume(ctx context.Context, sessionID string) (*identity.Identity, error) {
	raw, keptUntil, err := a.Sessions.CurrentIDToken(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	var id *identity.Identity
	if keptUntil.IsZero() {
		id, err = a.Verifier.VerifyIDToken(ctx, raw) // the caller names the session
	} else {
		// The identity provider renews this session without ID tokens: the kept one's exp
		// has no say, the session's vouching (until its access token expires) has.
		id, err = a.Verifier.VerifyKeptIDToken(ctx, raw, keptUntil)
	}
	if err != nil {
		return nil, err
	}
	return clone(id), nil
}

// clone returns a copy callers may change: a verifier with a cache hands out shared values.
func clone(id *identity.Identity) *identity.Identity {
	c := *id
	return &c
}

func (a *authenticator) End(ctx context.Context, sessionID, holder string) error {
	return a.Sessions.End(ctx, sessionID, holder)
}

func (a *authenticator) SpendEnvelope(ctx context.Context, op Operation, sealed []byte) error {
	c, err := a.Keyring.Open(op.Binding, sealed)
	if err != nil || c.Version < 2 {
		return err // a format 1 envelope opens for nothing new
	}
	return a.OneTime.Spend(ctx, c.ID, op.owner(), c.IssuedAt.Add(oneTimeRetention))
}

func (a *authenticator) Spend(ctx context.Context, id, owner string, until time.Time) error {
	return a.OneTime.Spend(ctx, id, owner, until)
}
