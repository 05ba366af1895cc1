package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
)

// waitForSignal waits up to timeout for the signal "go", keeping the session fresh.
func waitForSignal(ctx workflow.Context, timeout time.Duration) (bool, error) {
	got := false
	ch := workflow.GetSignalChannel(ctx, "go")
	workflow.Go(ctx, func(ctx workflow.Context) { ch.Receive(ctx, nil); got = true })
	return AwaitFresh(ctx, timeout, func() bool { return got }, FreshOptions{})
}

// freshEnv runs waitForSignal for bob; refresh answers each RefreshSession call.
func freshEnv(t *testing.T, refresh func(context.Context) (activities.RefreshSessionResult, error)) (run func(time.Duration, time.Duration) (bool, error), calls *int) {
	t.Helper()
	env, _ := newEnv(t, "bob")
	env.RegisterWorkflow(waitForSignal)
	var s *activities.SessionActivities
	env.RegisterActivity(s)
	calls = new(int)
	env.OnActivity(s.RefreshSession, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.RefreshSessionInput) (activities.RefreshSessionResult, error) {
			*calls++
			if _, err := identity.FromActivity(ctx); err != nil {
				return activities.RefreshSessionResult{}, err
			}
			return refresh(ctx)
		}).Maybe()
	return func(timeout, signalAfter time.Duration) (bool, error) {
		if signalAfter > 0 {
			env.RegisterDelayedCallback(func() { env.SignalWorkflow("go", nil) }, signalAfter)
		}
		env.ExecuteWorkflow(waitForSignal, timeout)
		require.True(t, env.IsWorkflowCompleted())
		if err := env.GetWorkflowError(); err != nil {
			return false, err
		}
		var ok bool
		require.NoError(t, env.GetWorkflowResult(&ok))
		return ok, nil
	}, calls
}

// TestAwaitFreshRefreshesWhileWaiting: a three-day wait refreshes the session about hourly
// (the default); it ends when the condition holds.
func TestAwaitFreshRefreshesWhileWaiting(t *testing.T) {
	run, calls := freshEnv(t, func(ctx context.Context) (activities.RefreshSessionResult, error) {
		return activities.RefreshSessionResult{Refreshed: true}, nil
	})
	ok, err := run(7*24*time.Hour, 72*time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.InDelta(t, 73, *calls, 2, "refreshes during a 72h wait at the default hourly pace")
}

// TestAwaitFreshFollowsRefreshDue: the next refresh runs when the session says it is due,
// when that comes before Every.
func TestAwaitFreshFollowsRefreshDue(t *testing.T) {
	env, _ := newEnv(t, "bob")
	env.RegisterWorkflow(waitForSignal)
	var s *activities.SessionActivities
	env.RegisterActivity(s)
	calls := 0
	env.OnActivity(s.RefreshSession, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ activities.RefreshSessionInput) (activities.RefreshSessionResult, error) {
			calls++
			return activities.RefreshSessionResult{RefreshDue: env.Now().Add(15 * time.Minute)}, nil
		})
	env.ExecuteWorkflow(waitForSignal, 2*time.Hour)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var ok bool
	require.NoError(t, env.GetWorkflowResult(&ok))
	require.False(t, ok, "no signal came: the wait times out")
	require.InDelta(t, 8, calls, 1, "a refresh every 15 minutes for 2 hours")
}

// TestAwaitFreshReturnsARefusal: without Parked, a refresh the IdP refuses ends the wait
// with the refusal; with no identity at all, the wait fails at once.
func TestAwaitFreshReturnsARefusal(t *testing.T) {
	run, _ := freshEnv(t, func(ctx context.Context) (activities.RefreshSessionResult, error) {
		return activities.RefreshSessionResult{}, identity.ApplicationError(identity.ErrReauthRequired)
	})
	_, err := run(24*time.Hour, 0)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "err = %v", err)
	require.Equal(t, identity.TypeReauthRequired, appErr.Type())

	env, _ := newEnv(t, "")
	env.RegisterWorkflow(waitForSignal)
	env.ExecuteWorkflow(waitForSignal, time.Hour)
	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), "unauthenticated")
}
