package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

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
		{"unknown task", "alice", "drop-everything", activities.TypeInvalidInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newEnv(t, tc.starter)
			listed := env.OnActivity(dbAct.ListGrants, mock.Anything, mock.Anything).Return(
				activities.ListGrantsResult{Grants: []activities.Grant{{RoleName: "jit_bob_1"}}}, nil).Maybe()
			var swept bool
			env.OnActivity(dbAct.SweepExpired, mock.Anything, mock.Anything).Return(
				func(context.Context, activities.SweepExpiredInput) (activities.SweepExpiredResult, error) {
					swept = true
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
			_ = listed
			var res AdminTaskResult
			require.NoError(t, env.GetWorkflowResult(&res))
			require.Equal(t, tc.starter, res.Actor.Subject)
			require.Equal(t, "jit_bob_1", res.Grants[0].RoleName)
			if tc.task == AdminTaskSweepExpired {
				require.True(t, swept)
			}
		})
	}
}

// TestAdminTaskRoleNotFromInput takes the admin role from input: bob (engineer) starts AdminTask with
// an input that names his own role as the admin role. The role comes from the worker's
// configuration, so the input's admin_role does not matter: bob is refused and no activity
// runs.
func TestAdminTaskRoleNotFromInput(t *testing.T) {
	// oldAdminTaskInput is AdminTaskInput as clients wrote it when it carried the role.
	type oldAdminTaskInput struct {
		Task      string `json:"task"`
		AdminRole string `json:"admin_role,omitempty"`
	}
	for _, task := range []string{AdminTaskListGrants, AdminTaskSweepExpired} {
		t.Run(task, func(t *testing.T) {
			env, _ := newEnv(t, "bob")
			var ran []string
			env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
				ran = append(ran, info.ActivityType.Name)
			})
			env.OnActivity(dbAct.ListGrants, mock.Anything, mock.Anything).Return(activities.ListGrantsResult{}, nil).Maybe()
			env.OnActivity(dbAct.SweepExpired, mock.Anything, mock.Anything).Return(activities.SweepExpiredResult{}, nil).Maybe()
			env.ExecuteWorkflow(AdminTaskWorkflow, oldAdminTaskInput{Task: task, AdminRole: "engineer"})

			require.True(t, env.IsWorkflowCompleted())
			var app *temporal.ApplicationError
			require.ErrorAs(t, env.GetWorkflowError(), &app, "bob's admin task must be refused")
			require.Equal(t, identity.TypeForbidden, app.Type())
			require.Contains(t, app.Error(), "admin")
			require.Empty(t, ran, "no activity may run for a refused admin task")
		})
	}
}

// TestAdminTaskConfiguredRole: the worker's configured role is the one checked; the default
// "admin" then counts for nothing.
func TestAdminTaskConfiguredRole(t *testing.T) {
	for _, tc := range []struct {
		starter string
		ok      bool
	}{
		{"carol", true},  // db-approver
		{"alice", false}, // admin
		{"bob", false},
	} {
		t.Run(tc.starter, func(t *testing.T) {
			env, _ := newEnv(t, tc.starter)
			env.RegisterWorkflowWithOptions(NewAdminTask(AdminTaskOptions{AdminRole: "db-approver"}),
				workflow.RegisterOptions{Name: "ConfiguredAdminTask"})
			env.OnActivity(dbAct.ListGrants, mock.Anything, mock.Anything).Return(activities.ListGrantsResult{}, nil).Maybe()
			env.ExecuteWorkflow("ConfiguredAdminTask", AdminTaskInput{Task: AdminTaskListGrants})
			require.True(t, env.IsWorkflowCompleted())
			if tc.ok {
				require.NoError(t, env.GetWorkflowError())
				return
			}
			var app *temporal.ApplicationError
			require.ErrorAs(t, env.GetWorkflowError(), &app)
			require.Equal(t, identity.TypeForbidden, app.Type())
			require.Contains(t, app.Error(), "db-approver")
		})
	}
}
