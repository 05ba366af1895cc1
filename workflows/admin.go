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

// AdminTask runs an admin-only maintenance job on the managed database roles. The verified
// starter must hold AdminRole among its effective roles (directly, or through a nested role or
// group: the identity package expands those); anyone else fails at once with a non-retryable
// oidcflow.Forbidden error. The activities check the claims again with a fresh token.
func AdminTask(ctx workflow.Context, in AdminTaskInput) (AdminTaskResult, error) {
	actor, err := identity.FromWorkflow(ctx)
	if err != nil {
		return AdminTaskResult{}, identity.ApplicationError(err)
	}
	role := in.AdminRole
	if role == "" {
		role = "admin"
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
		if err := workflow.ExecuteActivity(actx, db.ListGrants, activities.ListGrantsInput{AdminRole: role}).Get(actx, &out); err != nil {
			return AdminTaskResult{}, err
		}
		res.Grants = out.Grants
	case AdminTaskSweepExpired:
		var out activities.SweepExpiredResult
		if err := workflow.ExecuteActivity(actx, db.SweepExpired,
			activities.SweepExpiredInput{AdminRole: role, Now: workflow.Now(ctx)}).Get(actx, &out); err != nil {
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
