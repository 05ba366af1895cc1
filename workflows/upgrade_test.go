package workflows

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/pgaccess"
)

// refusal is the error this release's activity interceptor or activity returns for a task
// that lacks the pool's authority.
func refusal() error {
	return identity.ApplicationError(fmt.Errorf("test: no pool reference: %w", identity.ErrUnauthenticated))
}

// TestAccessRequestRevokeOfEarlierReleaseRunsUnderPool: a revoke that an earlier release
// scheduled on the requester's session is refused by this release's RevokeAccess (it runs
// only under the pool's authority). The run schedules it again under the pool's authority
// and ends; without that, it failed with TypeRevokeFailed and the role waited for the
// sweeper. The first attempt stands in for the earlier release's task.
func TestAccessRequestRevokeOfEarlierReleaseRunsUnderPool(t *testing.T) {
	env, _ := newEnv(t, "bob")
	m := &dbMock{}
	env.OnActivity(dbAct.GrantAccess, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.GrantAccessInput) (activities.GrantAccessResult, error) {
			m.grants.Add(1)
			return activities.GrantAccessResult{Created: true, Grant: activities.Grant{RoleName: pgaccess.RoleName(in.RequestID, in.Requester)}}, nil
		})
	var attempts, underPool atomic.Int32
	env.OnActivity(dbAct.RevokeAccess, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.RevokeAccessInput) (activities.RevokeAccessResult, error) {
			if attempts.Add(1) == 1 {
				return activities.RevokeAccessResult{}, refusal()
			}
			if identity.RequirePool(ctx) == nil {
				underPool.Add(1)
			}
			return activities.RevokeAccessResult{RoleName: pgaccess.RoleName(in.RequestID, in.Requester), Dropped: true}, nil
		})
	send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequestWorkflow, readDemo(10*time.Minute))

	res := result(t, env)
	require.Equal(t, StateEnded, res.State)
	require.EqualValues(t, 2, attempts.Load())
	require.EqualValues(t, 1, underPool.Load(), "the second revoke runs under the pool's authority")
}

// TestAccessRequestRevokeRefusedOtherwiseIsNotRetried: only the refusal for want of
// authority schedules the revoke again; a role that is not oidcflow's fails the run as
// before.
func TestAccessRequestRevokeRefusedOtherwiseIsNotRetried(t *testing.T) {
	env, _ := newEnv(t, "bob")
	env.OnActivity(dbAct.GrantAccess, mock.Anything, mock.Anything).Return(activities.GrantAccessResult{Created: true}, nil)
	var attempts atomic.Int32
	env.OnActivity(dbAct.RevokeAccess, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RevokeAccessInput) (activities.RevokeAccessResult, error) {
			attempts.Add(1)
			return activities.RevokeAccessResult{}, temporal.NewNonRetryableApplicationError("not managed", activities.TypeNotManaged, nil)
		})
	send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequestWorkflow, readDemo(10*time.Minute))

	require.True(t, env.IsWorkflowCompleted())
	var app *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &app)
	require.Equal(t, TypeRevokeFailed, app.Type())
	require.EqualValues(t, 1, attempts.Load())
}

// TestNotifyOfEarlierReleaseRunsUnderPool: a notification an earlier release scheduled
// without a reference is refused by this release's worker; it is sent again under the pool's
// authority.
func TestNotifyOfEarlierReleaseRunsUnderPool(t *testing.T) {
	env := newTestEnv()
	env.SetWorkerOptions(testWorkerOptions("bob"))
	env.RegisterActivity(&activities.NotifyActivities{})
	var attempts, underPool atomic.Int32
	env.OnActivity(notifyAct.Notify, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ activities.NotifyInput) (activities.NotifyResult, error) {
			if attempts.Add(1) == 1 {
				return activities.NotifyResult{}, refusal()
			}
			if identity.RequirePool(ctx) == nil {
				underPool.Add(1)
			}
			return activities.NotifyResult{Delivered: true}, nil
		})
	env.ExecuteWorkflow(func(ctx workflow.Context) error {
		tr := &trail{workflowID: "notify"}
		tr.notify(ctx, "ops", "test.event", "hello")
		tr.drain(ctx)
		return nil
	})
	require.NoError(t, env.GetWorkflowError())
	require.EqualValues(t, 2, attempts.Load())
	require.EqualValues(t, 1, underPool.Load())
}

// TestKeepAliveWithinBounds: the input of a continued run is brought within the bounds (the
// chain an earlier release accepted goes on, tightened); one within them is kept as it is.
func TestKeepAliveWithinBounds(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	got := KeepAliveInput{Until: now.Add(365 * 24 * time.Hour), Every: time.Second, RefreshesPerRun: 1 << 20}.withinBounds(now)
	require.Equal(t, KeepAliveInput{Until: now.Add(KeepAliveMaxSpan), Every: KeepAliveMinEvery, RefreshesPerRun: KeepAliveMaxRefreshesPerRun}, got)
	got = KeepAliveInput{Until: now.Add(time.Hour), Every: -1, RefreshesPerRun: -5}.withinBounds(now)
	require.Equal(t, KeepAliveInput{Until: now.Add(time.Hour), Every: time.Hour, RefreshesPerRun: 24}, got)
	in := KeepAliveInput{Until: now.Add(48 * time.Hour), Every: 2 * time.Hour, RefreshesPerRun: 12}
	require.Equal(t, in, in.withinBounds(now))
}

// TestKeepAliveContinuedRunIsBroughtWithinBounds: a continued run (the input its previous run
// passed on) whose input lies outside the bounds runs within them instead of failing: a
// chain an earlier release accepted with a 5-second interval does not end at its next
// continue-as-new on this release. A start with the same input is refused (inputs_test).
func TestKeepAliveContinuedRunIsBroughtWithinBounds(t *testing.T) {
	env := newTestEnv()
	env.SetWorkerOptions(testWorkerOptions("bob"))
	env.RegisterWorkflowWithOptions(KeepAlive, workflow.RegisterOptions{Name: KeepAliveWorkflow})
	env.RegisterActivity(&activities.SessionActivities{})
	var refreshes atomic.Int32
	var sess *activities.SessionActivities
	env.OnActivity(sess.RefreshSession, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RefreshSessionInput) (activities.RefreshSessionResult, error) {
			refreshes.Add(1)
			return activities.RefreshSessionResult{Refreshed: true}, nil
		})
	env.SetContinuedExecutionRunID("run-of-an-earlier-release")
	start := env.Now()
	env.ExecuteWorkflow(KeepAliveWorkflow, KeepAliveInput{Until: start.Add(10 * time.Minute), Every: 5 * time.Second, RefreshesPerRun: 1000})

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res KeepAliveResult
	require.NoError(t, env.GetWorkflowResult(&res))
	// Every raised to a minute: one refresh a minute over ten minutes, not one every 5 s.
	require.LessOrEqual(t, refreshes.Load(), int32(11))
	require.GreaterOrEqual(t, refreshes.Load(), int32(9))
}
