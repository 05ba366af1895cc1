package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
)

var adminActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        30 * time.Second,
		MaximumAttempts:        5,
		NonRetryableErrorTypes: identityErrorTypes,
	},
}

// AdminTaskOptions configure the AdminTask workflow a worker registers (NewAdminTask).
type AdminTaskOptions struct {
	// AdminRole is the role the verified starter must hold (OIDCFLOW_ADMIN_ROLE). Default
	// "admin". It is the worker's configuration, never the input's: workflow code cannot
	// read the environment, so the worker hands it over here.
	AdminRole string
}

// NewAdminTask returns the AdminTask workflow for opts; register it under
// AdminTaskWorkflow. Each run records the role it checked in its history (a side effect),
// so a changed configuration applies to new runs and replays stay deterministic.
//
// AdminTask runs an admin-only maintenance job on the managed database roles. The verified
// starter must hold AdminRole among its effective roles (directly, or through a nested role
// or group: the identity package expands those); anyone else fails at once with a
// non-retryable oidcflow.Forbidden error and no activity runs. The activities check the
// claims again with a fresh token, against the role their worker is configured with.
func NewAdminTask(opts AdminTaskOptions) func(workflow.Context, AdminTaskInput) (AdminTaskResult, error) {
	if opts.AdminRole == "" {
		opts.AdminRole = "admin"
	}
	return (&adminTask{role: opts.AdminRole}).run
}

// AdminTask is NewAdminTask(AdminTaskOptions{}): the workflow with the default admin role
// "admin", for tests and for pools that keep the default.
func AdminTask(ctx workflow.Context, in AdminTaskInput) (AdminTaskResult, error) {
	return NewAdminTask(AdminTaskOptions{})(ctx, in)
}

// adminTask is AdminTask with its configuration.
type adminTask struct {
	role string
}

func (t *adminTask) run(ctx workflow.Context, in AdminTaskInput) (AdminTaskResult, error) {
	actor, err := identity.FromWorkflow(ctx)
	if err != nil {
		return AdminTaskResult{}, identity.ApplicationError(err)
	}
	var role string
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return t.role }).Get(&role); err != nil {
		return AdminTaskResult{}, err
	}
	if err := checkRole(actor, role); err != nil {
		return AdminTaskResult{}, identity.ApplicationError(err)
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		RequesterKey.ValueSet(actor.Subject),
		RequesterDepartmentKey.ValueSet(actor.Department),
		ResourceKey.ValueSet("admin:"+in.Task),
	); err != nil {
		return AdminTaskResult{}, err
	}
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoRequester: actorOf(actor)}); err != nil {
		return AdminTaskResult{}, err
	}
	res := AdminTaskResult{Task: in.Task, Actor: *actorOf(actor)}
	actx := workflow.WithActivityOptions(ctx, adminActivityOptions)
	var db *activities.DatabaseActivities
	switch in.Task {
	case AdminTaskListGrants:
		var out activities.ListGrantsResult
		if err := workflow.ExecuteActivity(actx, db.ListGrants, activities.ListGrantsInput{}).Get(actx, &out); err != nil {
			return AdminTaskResult{}, err
		}
		res.Grants = out.Grants
	case AdminTaskSweepExpired:
		var out activities.SweepExpiredResult
		if err := workflow.ExecuteActivity(actx, db.SweepExpired, activities.SweepExpiredInput{}).Get(actx, &out); err != nil {
			return AdminTaskResult{}, err
		}
		for _, r := range out.Dropped {
			res.Grants = append(res.Grants, activities.Grant{RoleName: r})
		}
	default:
		return AdminTaskResult{}, invalidInput("unknown admin task %q (want %q or %q)",
			in.Task, AdminTaskListGrants, AdminTaskSweepExpired)
	}
	return res, nil
}
