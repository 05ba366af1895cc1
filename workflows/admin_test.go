package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
)

func TestAdminTask(t *testing.T) {
	for _, tc := range []struct {
		name, starter, task, typ string
	}{
		{"admin lists grants", "alice", AdminTaskListGrants, ""},
		{"admin through group sweeps", "frank", AdminTaskSweepExpired, ""},
		{"engineer refused", "bob", AdminTaskListGrants, identity.TypeForbidden},
		{"approver refused", "carol", AdminTaskSweepExpired, identity.TypeForbidden},
		{"anonymous refused", "", AdminTaskListGrants, identity.TypeUnauthenticated},
		{"unknown task", "alice", "drop-everything", TypeInvalidInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newEnv(t, tc.starter)
			listed := env.OnActivity(dbAct.ListGrants, mock.Anything, mock.Anything).Return(
				activities.ListGrantsResult{Grants: []activities.Grant{{RoleName: "jit_bob_1"}}}, nil).Maybe()
			var sweptAt time.Time
			swept := env.OnActivity(dbAct.SweepExpired, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.SweepExpiredInput) (activities.SweepExpiredResult, error) {
					sweptAt = in.Now
					return activities.SweepExpiredResult{Dropped: []string{"jit_bob_1"}}, nil
				}).Maybe()
			env.ExecuteWorkflow(AdminTask, AdminTaskInput{Task: tc.task})
			require.True(t, env.IsWorkflowCompleted())
			if tc.typ != "" {
				var app *temporal.ApplicationError
				require.ErrorAs(t, env.GetWorkflowError(), &app)
				require.Equal(t, tc.typ, app.Type())
				require.True(t, app.NonRetryable())
				env.AssertNotCalled(t, "ListGrants", mock.Anything, mock.Anything)
				env.AssertNotCalled(t, "SweepExpired", mock.Anything, mock.Anything)
				return
			}
			_, _ = listed, swept
			var res AdminTaskResult
			require.NoError(t, env.GetWorkflowResult(&res))
			require.Equal(t, tc.starter, res.Actor.Subject)
			require.Equal(t, "jit_bob_1", res.Grants[0].RoleName)
			if tc.task == AdminTaskSweepExpired {
				require.False(t, sweptAt.IsZero())
			}
		})
	}
}
