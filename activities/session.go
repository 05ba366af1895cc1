package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// SessionRefresher is what SessionActivities needs of a *tokenstore.Refresher.
type SessionRefresher interface {
	Fresh(ctx context.Context, sessionID string) (tokenstore.Session, error)
	RefreshDue(s tokenstore.Session) time.Time
}

// SessionActivities keep a person's token session (in Vault) alive for a long run and end it
// when the run closes: the pool's interceptors.CloseWatch releases the run's hold once the
// server accepted the run's end, or, for a run whose tasks it did not see, the worker
// interceptor schedules EndSession, which does; the last holder revokes (tokenstore). The
// pool's sweeper removes what a dead run left behind. Their inputs and results hold the
// session id and times only, never a token, so history stays free of secrets.
//
// Suggested activity options: StartToCloseTimeout of at least 2 minutes (a refresh may wait
// for another worker's claim, tokenstore.RefresherOptions.ClaimTTL), and the default retry
// policy: transient Vault and IdP failures are retried; a refused refresh
// (identity.TypeReauthRequired) is not.
type SessionActivities struct {
	// Refresher refreshes sessions (required).
	Refresher SessionRefresher
	// Sweeper removes what dead runs left in the token store (the pool's sweeper calls
	// SweepSessions). Default none: SweepSessions does nothing.
	Sweeper SessionSweeper
	// Sessions ends runs' sessions (EndSession; the pool's tokenstore.SharedSessions).
	// Default none: EndSession fails, and the pool's sweeper ends what the run left.
	Sessions SessionEnder
	// Logger receives one record per call (never a token). Default slog.Default().
	Logger *slog.Logger
}

// RefreshSessionInput names the session to keep fresh.
type RefreshSessionInput struct {
	SessionID string `json:"session_id"`
}

// RefreshSessionResult describes the session after the call: no token.
type RefreshSessionResult struct {
	SessionID string `json:"session_id"`
	// Expiry is the access token's expiry.
	Expiry time.Time `json:"expiry"`
	// RefreshDue is when the next refresh should run (the earlier of the access and the ID
	// token's expiry, minus the refresh skew; see tokenstore.Refresher.RefreshDue); the
	// workflow sets its timer to it.
	RefreshDue time.Time `json:"refresh_due"`
	// Refreshed reports whether the tokens were renewed during this call (by this worker or
	// another one).
	Refreshed bool `json:"refreshed"`
	// Refreshes counts the session's refreshes so far.
	Refreshes int `json:"refreshes"`
}

// RefreshSession makes sure the session's access token is valid for longer than the skew,
// refreshing it (rotation-safe, see tokenstore.Refresher.Fresh) when needed. The session is
// the caller's own: the one of the identity the activity interceptor verified; an input
// naming another session is refused (identity.TypeUnauthenticated).
//
// Errors: identity.TypeReauthRequired (non-retryable) when the session can no longer be
// refreshed — the workflow should wait for the person's re-consent; TypeInvalidInput for a
// malformed session id; TypeRateLimited (retryable, delayed) for HTTP 429; anything else is
// a plain retryable error.
func (a *SessionActivities) RefreshSession(ctx context.Context, in RefreshSessionInput) (RefreshSessionResult, error) {
	// The worker interceptor resumes the session (refreshing it when due) before the
	// activity runs, so a refresh of this attempt may predate this call: count from the
	// attempt's start.
	caller, err := identity.FromActivity(ctx)
	if err != nil || caller.SessionID != in.SessionID {
		return RefreshSessionResult{}, identity.ApplicationError(fmt.Errorf(
			"activities: RefreshSession refreshes the caller's own session only: %w", identity.ErrUnauthenticated))
	}
	start := time.Now()
	if activity.IsActivity(ctx) {
		if st := activity.GetInfo(ctx).StartedTime; !st.IsZero() && st.Before(start) {
			start = st
		}
	}
	s, err := a.Refresher.Fresh(ctx, in.SessionID)
	if err != nil {
		a.logger().WarnContext(ctx, "activities: session refresh failed", "session", in.SessionID, "err", err)
		return RefreshSessionResult{}, sessionError(err)
	}
	res := RefreshSessionResult{
		SessionID: s.ID, Expiry: s.Expiry, RefreshDue: a.Refresher.RefreshDue(s),
		Refreshed: !s.Refreshed.Before(start), Refreshes: s.Refreshes,
	}
	a.logger().DebugContext(ctx, "activities: session fresh", "session", s.ID, "expiry", s.Expiry, "refreshed", res.Refreshed)
	return res, nil
}

// SessionSweeper removes what runs that ended without closing (terminated, reset) left in the
// token store.
type SessionSweeper interface {
	// SweepSessions releases the holds of runs that are no longer running and ends (revokes
	// and destroys) every session left without a holder; it returns how many it ended.
	SweepSessions(ctx context.Context) (int, error)
	// SweepOneTime removes expired records of honoured envelopes; it returns how many.
	SweepOneTime(ctx context.Context) (int, error)
}

// SweepSessionsInput starts SweepSessions. It has no fields: what a sweep removes follows
// from the runs' states, never from a starter's input.
type SweepSessionsInput struct{}

// SweepSessionsResult reports what SweepSessions removed.
type SweepSessionsResult struct {
	SessionsEnded  int `json:"sessions_ended"`
	OneTimeRemoved int `json:"one_time_removed"`
}

// SweepSessions is the token store's part of the pool's sweep; only the pool may run it
// (identity.RequirePool).
func (a *SessionActivities) SweepSessions(ctx context.Context, _ SweepSessionsInput) (SweepSessionsResult, error) {
	if err := identity.RequirePool(ctx); err != nil {
		return SweepSessionsResult{}, identity.ApplicationError(err)
	}
	var res SweepSessionsResult
	if a.Sweeper == nil {
		return res, nil
	}
	// Both steps run: a session the sweep cannot end (say, one a newer worker wrote) must not
	// keep expired one-time records around.
	var errs []error
	var err error
	if res.SessionsEnded, err = a.Sweeper.SweepSessions(ctx); err != nil {
		errs = append(errs, fmt.Errorf("activities: sweep sessions: %w", err))
	}
	if res.OneTimeRemoved, err = a.Sweeper.SweepOneTime(ctx); err != nil {
		errs = append(errs, fmt.Errorf("activities: sweep one-time records: %w", err))
	}
	if res.SessionsEnded+res.OneTimeRemoved > 0 {
		a.logger().InfoContext(ctx, "activities: swept the token store", "sessions_ended", res.SessionsEnded,
			"one_time_removed", res.OneTimeRemoved)
	}
	return res, errors.Join(errs...)
}

// SessionEnder is what EndSession needs of a *tokenstore.SharedSessions.
type SessionEnder interface {
	End(ctx context.Context, sessionID, holder string) error
}

// EndSessionInput names the session a closing run held, and the run (its holder name).
type EndSessionInput struct {
	SessionID string `json:"session_id"`
	Holder    string `json:"holder"`
}

// EndSession releases a closing run's hold on its session; the last holder revokes the
// tokens at the IdP and destroys the session (tokenstore.SharedSessions.End). Only the pool
// may run it (identity.RequirePool): the worker interceptor schedules it once the workflow
// function of a run that no interceptors.CloseWatch sees has returned
// (interceptors.EndSessionActivity). Ending a hold that is already gone succeeds.
func (a *SessionActivities) EndSession(ctx context.Context, in EndSessionInput) error {
	if err := identity.RequirePool(ctx); err != nil {
		return identity.ApplicationError(err)
	}
	if a.Sessions == nil {
		return temporal.NewNonRetryableApplicationError("activities: EndSession needs SessionActivities.Sessions "+
			"(the pool sets it); the pool's sweeper ends the session instead", TypeInvalidInput, nil)
	}
	if err := a.Sessions.End(ctx, in.SessionID, in.Holder); err != nil {
		a.logger().WarnContext(ctx, "activities: ending a session failed", "session", in.SessionID, "err", err)
		return sessionError(err)
	}
	a.logger().DebugContext(ctx, "activities: session released", "session", in.SessionID, "holder", in.Holder)
	return nil
}

func (a *SessionActivities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// sessionError maps tokenstore errors to Temporal: identity errors (ReauthRequired) become
// non-retryable ApplicationErrors of constant types, a bad session id is non-retryable
// invalid input, a rate limit is retried after its Retry-After, the rest stays retryable.
func sessionError(err error) error {
	if errors.Is(err, tokenstore.ErrInvalidSessionID) {
		return temporal.NewNonRetryableApplicationError(err.Error(), TypeInvalidInput, nil)
	}
	if ae := identity.ApplicationError(err); ae != err {
		return ae
	}
	var rl *tokenstore.RateLimitedError
	if errors.As(err, &rl) {
		return temporal.NewApplicationErrorWithOptions(err.Error(), TypeRateLimited,
			temporal.ApplicationErrorOptions{NextRetryDelay: rl.RetryAfter})
	}
	return err
}
