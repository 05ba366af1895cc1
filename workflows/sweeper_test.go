package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
)

// sessionAct names the token store's sweep activity.
var sessionAct *activities.SessionActivities

func sweeperEnv(t *testing.T, starter string) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env, _ := newEnv(t, starter)
	env.RegisterWorkflowWithOptions(Sweeper, workflow.RegisterOptions{Name: SweeperWorkflow})
	return env
}

// TestSweeperRunsItsStepsAsPool: the sweeper's steps run under the pool's authority, whether
// a schedule started it without identity or a person started it.
func TestSweeperRunsItsStepsAsPool(t *testing.T) {
	for _, starter := range []string{"", "bob"} {
		t.Run("started by "+starter, func(t *testing.T) {
			env := sweeperEnv(t, starter)
			var asPool bool
			var asPerson error
			env.OnActivity(dbAct.SweepGrants, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, _ activities.SweepGrantsInput) (activities.SweepGrantsResult, error) {
					asPool = identity.RequirePool(ctx) == nil
					_, asPerson = identity.FromActivity(ctx)
					return activities.SweepGrantsResult{Orphaned: []string{"jit_bob_1"}, Sessions: 2}, nil
				})
			var sessionsAsPool bool
			env.OnActivity(sessionAct.SweepSessions, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, _ activities.SweepSessionsInput) (activities.SweepSessionsResult, error) {
					sessionsAsPool = identity.RequirePool(ctx) == nil
					return activities.SweepSessionsResult{SessionsEnded: 1}, nil
				})
			env.ExecuteWorkflow(SweeperWorkflow, SweeperInput{})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			require.True(t, sessionsAsPool, "the token store's sweep must run under the pool's authority")
			var res SweeperResult
			require.NoError(t, env.GetWorkflowResult(&res))
			require.Equal(t, []string{"jit_bob_1"}, res.Grants.Orphaned)
			require.Equal(t, 2, res.Grants.Sessions)
			require.True(t, asPool, "the sweep must run under the pool's authority")
			require.ErrorIs(t, asPerson, identity.ErrUnauthenticated, "the sweep must carry no person's session")
		})
	}
}

// TestSweeperReportsAFailedStep: a step that keeps failing ends the run with
// TypeSweepFailed (after the step's own retries), so the failure shows in the schedule's
// recent runs; the next scheduled run starts over.
func TestSweeperReportsAFailedStep(t *testing.T) {
	env := sweeperEnv(t, "")
	env.OnActivity(dbAct.SweepGrants, mock.Anything, mock.Anything).Return(
		activities.SweepGrantsResult{}, errors.New("activities: sweep: cannot connect to the database"))
	env.OnActivity(sessionAct.SweepSessions, mock.Anything, mock.Anything).Return(activities.SweepSessionsResult{}, nil)
	env.ExecuteWorkflow(SweeperWorkflow, SweeperInput{})
	require.True(t, env.IsWorkflowCompleted())
	var app *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &app)
	require.Equal(t, TypeSweepFailed, app.Type())
	require.Contains(t, app.Error(), "grants: activities: sweep: cannot connect to the database")
}

// TestSessionSweeperSkipsGrants: the sweep of a pool without database grants runs the token
// store's step only, under the pool's authority; it never asks for DatabaseActivities.
func TestSessionSweeperSkipsGrants(t *testing.T) {
	env, _ := newEnv(t, "")
	env.RegisterWorkflowWithOptions(SessionSweeper, workflow.RegisterOptions{Name: SweeperWorkflow})
	var asPool bool
	env.OnActivity(sessionAct.SweepSessions, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, _ activities.SweepSessionsInput) (activities.SweepSessionsResult, error) {
			asPool = identity.RequirePool(ctx) == nil
			return activities.SweepSessionsResult{SessionsEnded: 3}, nil
		})
	env.ExecuteWorkflow(SweeperWorkflow, SweeperInput{})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res SweeperResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 3, res.Sessions.SessionsEnded)
	require.True(t, asPool, "the token store's sweep must run under the pool's authority")
}
