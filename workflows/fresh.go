package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
)

// RefreshSession refreshes the session of the identity in ctx (identity.FromWorkflow) when it
// is due, through the activities.SessionActivities the pool registers, and returns when the
// next refresh is due (RefreshSessionResult.RefreshDue). When the identity provider refuses
// the refresh (identity.TypeReauthRequired) it parks the run until the starter renews consent
// (identity.ReconsentUpdate), calling parked(true) before and parked(false) after, and
// tries again on the new session; with a nil parked it returns the refusal instead. A run
// without a person's identity gets identity.ErrUnauthenticated. Each call adds one activity
// to the run's history.
func RefreshSession(ctx workflow.Context, parked func(bool)) (activities.RefreshSessionResult, error) {
	return refreshSession(ctx, parked)
}

// FreshOptions configure AwaitFresh.
type FreshOptions struct {
	// Every is the longest time between two refreshes, so that an identity provider that
	// ends idle sessions sees this one in use. Default 1h; at least a minute.
	Every time.Duration
	// Parked: see RefreshSession. Default nil: a refused refresh ends the wait with its
	// error.
	Parked func(bool)
}

// AwaitFresh waits like workflow.AwaitWithTimeout until cond is true or timeout has passed
// (0: no timeout), and meanwhile keeps the session of the identity in ctx fresh: it
// refreshes it when due and at least every opts.Every (RefreshSession), so that the steps
// after a wait of days run on a live session, with roles as the identity provider states them
// now. ok reports whether cond became true. It returns early with the error of a refresh that
// failed for good (identity.TypeReauthRequired without opts.Parked, say).
//
// It adds one refresh activity to the run's history per refresh: about 24 a day at the
// default, so a run that waits for months should continue as new between waits.
func AwaitFresh(ctx workflow.Context, timeout time.Duration, cond func() bool, opts FreshOptions) (ok bool, err error) {
	if opts.Every <= 0 {
		opts.Every = time.Hour
	}
	opts.Every = max(opts.Every, time.Minute)
	var deadline time.Time
	if timeout > 0 {
		deadline = workflow.Now(ctx).Add(timeout)
	}
	for {
		if cond() {
			return true, nil
		}
		res, err := refreshSession(ctx, opts.Parked)
		if err != nil {
			return false, err
		}
		now := workflow.Now(ctx)
		next := now.Add(opts.Every)
		if due := res.RefreshDue; due.After(now) && due.Before(next) {
			next = due
		}
		if !deadline.IsZero() && deadline.Before(next) {
			next = deadline
		}
		ok, err := workflow.AwaitWithTimeout(ctx, max(next.Sub(now), time.Second), cond)
		if err != nil || ok {
			return ok, err
		}
		if !deadline.IsZero() && !workflow.Now(ctx).Before(deadline) {
			return false, nil
		}
	}
}
