package activities

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// Runs tells whether a workflow run is still running. The sweep asks it about the run that
// granted a role; TemporalRuns is the implementation the worker uses.
type Runs interface {
	// Running reports whether the run (workflowID, runID) is running. A run that Temporal
	// no longer knows (deleted after its retention) is not running. An empty runID asks
	// about the workflow's latest run.
	Running(ctx context.Context, workflowID, runID string) (bool, error)
}

// TemporalRuns answers Runs through Temporal's DescribeWorkflow. It asks about the
// exact run: a run that was reset away is terminated, so its role is dropped even though a
// new run of the same workflow id is running (that run grants again if it gets there).
type TemporalRuns struct {
	// Client is the worker's Temporal client. Required.
	Client client.Client
}

// Running implements Runs. A run id that is no UUID was never issued by Temporal (Temporal
// would refuse the question as malformed), so such a run is not running.
func (r TemporalRuns) Running(ctx context.Context, workflowID, runID string) (bool, error) {
	if runID != "" && !tokenstore.IsRunID(runID) {
		return false, nil
	}
	d, err := r.Client.DescribeWorkflow(ctx, workflowID, runID)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// Closed implements tokenstore.WorkflowStates: whether Temporal knows the workflow and none of
// its runs (with firstRunID: of that run chain) is running. Only one run of a workflow runs
// at a time, the latest, so a chain whose runs are not the latest is over. A workflow it does
// not know (never started, or deleted after its retention) is not reported closed: the token
// store's sweep leaves holds it cannot place alone.
func (r TemporalRuns) Closed(ctx context.Context, workflowID, firstRunID string) (bool, error) {
	d, err := r.Client.DescribeWorkflow(ctx, workflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if latest := d.RawResponse.GetWorkflowExecutionInfo().GetFirstRunId(); firstRunID != "" && latest != "" && latest != firstRunID {
		return true, nil
	}
	return d.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// SweepGrantsInput is the input of SweepGrants. It has no fields: a sweep decides from the
// database, the clock and Temporal alone, never from what its starter wrote.
type SweepGrantsInput struct{}

// SweepGrantsResult is the result of SweepGrants.
type SweepGrantsResult struct {
	// Expired are the roles dropped because their VALID UNTIL had passed.
	Expired []string `json:"expired,omitempty"`
	// Orphaned are the roles dropped because the run that granted them is no longer running.
	Orphaned []string `json:"orphaned,omitempty"`
	// Sessions counts the database sessions ended: those of the dropped roles, and sessions
	// left without a role (see SweepGrants).
	Sessions int `json:"sessions,omitempty"`
}

// SweepGrants is the sweeper's database step; it runs only under the worker pool's own
// authority (identity.RequirePool), on a schedule, whatever happened to the workflows that
// granted the roles. It drops every managed login role whose VALID UNTIL has passed, or
// whose granting run (recorded in the role's comment) is no longer running: completed
// without its revoke, terminated, timed out, reset away, deleted. Roles without a recorded
// run (ManagedComment only) are dropped by VALID UNTIL only. Each drop ends the role's
// sessions (dropRole) and re-checks under the role's lock that the role still qualifies, so
// a grant that a live run renews at the same moment is kept. Finally it ends the client
// sessions whose role no longer exists (a role dropped under them, by this package or by
// hand), the last resort for a session that logged in while its role was being dropped.
//
// A failing question to Temporal or a failing drop does not stop the others; the activity
// then fails (retryably) after trying them all.
func (a *DatabaseActivities) SweepGrants(ctx context.Context, _ SweepGrantsInput) (SweepGrantsResult, error) {
	if err := identity.RequirePool(ctx); err != nil {
		return SweepGrantsResult{}, identity.ApplicationError(err)
	}
	return a.sweep(ctx)
}

// SweepExpiredInput is the input of SweepExpired. It has no fields: the role required comes
// from DatabaseActivities.AdminRole, never from input, and the sweep's clock is the
// activity's own.
type SweepExpiredInput struct{}

// SweepExpiredResult is the result of SweepExpired.
type SweepExpiredResult struct {
	// Dropped are the roles dropped, expired or orphaned, sorted.
	Dropped []string `json:"dropped,omitempty"`
}

// SweepExpired runs the sweep of SweepGrants now, for a person holding AdminRole (the
// AdminTask sweep-expired). The scheduled sweeper does the same every interval under the
// pool's authority; this is for an admin who does not want to wait.
func (a *DatabaseActivities) SweepExpired(ctx context.Context, _ SweepExpiredInput) (SweepExpiredResult, error) {
	if err := a.requireAdmin(ctx); err != nil {
		return SweepExpiredResult{}, err
	}
	res, err := a.sweep(ctx)
	dropped := append(slices.Clone(res.Expired), res.Orphaned...)
	slices.Sort(dropped)
	return SweepExpiredResult{Dropped: dropped}, err
}

func (a *DatabaseActivities) sweep(ctx context.Context) (SweepGrantsResult, error) {
	now := a.now()
	roles, err := a.listRoles(ctx, now)
	if err != nil {
		return SweepGrantsResult{}, a.dbError(ctx, "sweep", err)
	}
	var res SweepGrantsResult
	var failed []error
	for _, r := range roles {
		var still func(managedRole) bool
		switch {
		case r.expired:
			// Judged again under the lock: a grant may have set a new VALID UNTIL since.
			still = func(cur managedRole) bool { return cur.expired }
		case r.WorkflowID != "" && tokenstore.IsRunID(r.RunID) && a.Runs != nil:
			// A run id that is no Temporal run's (a grant made outside a workflow, as tests
			// do) names nothing to ask about: such a role goes by its VALID UNTIL only.
			running, err := a.Runs.Running(ctx, r.WorkflowID, r.RunID)
			if err != nil {
				a.logger().WarnContext(ctx, "sweep: cannot tell whether a run is running", "role", r.RoleName,
					"workflow_id", r.WorkflowID, "run_id", r.RunID, "error", err.Error())
				failed = append(failed, temporal.NewApplicationError(
					"activities: sweep "+r.RoleName+": cannot tell whether workflow "+r.WorkflowID+" is running", TypeRunsUnavailable))
				continue
			}
			if running {
				continue
			}
			// A run never runs again, but another run of the request may have taken the
			// grant over (GrantAccess records it) since the listing: then the comment changed.
			still = func(cur managedRole) bool { return cur.comment == r.comment }
		default:
			continue
		}
		dropped, n, err := a.dropRole(ctx, r.RoleName, still)
		res.Sessions += n
		if err != nil {
			failed = append(failed, a.dbError(ctx, "sweep "+r.RoleName, err))
		}
		if !dropped {
			continue
		}
		reason := "run no longer running"
		if r.expired {
			res.Expired = append(res.Expired, r.RoleName)
			reason = "valid until passed"
		} else {
			res.Orphaned = append(res.Orphaned, r.RoleName)
		}
		a.logger().InfoContext(ctx, "sweep dropped a role", "role", r.RoleName, "reason", reason,
			"workflow_id", r.WorkflowID, "run_id", r.RunID, "sessions_ended", n)
	}
	n, err := a.endOrphanSessions(ctx)
	res.Sessions += n
	if err != nil {
		failed = append(failed, a.dbError(ctx, "sweep: end sessions without a role", err))
	}
	if len(failed) > 0 {
		return res, sweepFailed(failed)
	}
	return res, nil
}

// sweepFailed returns the first failure (errs are ApplicationErrors), telling how many there
// were; it is retryable unless every failure is non-retryable.
func sweepFailed(errs []error) error {
	var first *temporal.ApplicationError
	if !errors.As(errs[0], &first) || len(errs) == 1 {
		return errs[0]
	}
	retry := false
	for _, err := range errs {
		var app *temporal.ApplicationError
		if !errors.As(err, &app) || !app.NonRetryable() {
			retry = true
		}
	}
	msg := first.Error() + " (and " + strconv.Itoa(len(errs)-1) + " more failures; see the worker's log)"
	if retry {
		return temporal.NewApplicationError(msg, first.Type())
	}
	return temporal.NewNonRetryableApplicationError(msg, first.Type(), nil)
}

// endOrphanSessions ends the client sessions whose role no longer exists. Only client
// backends that have logged in are considered (a backend still authenticating has no role
// yet), and never the caller's own.
func (a *DatabaseActivities) endOrphanSessions(ctx context.Context) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(s.pid) AS ended
			FROM pg_stat_activity s
			WHERE s.backend_type = 'client backend' AND s.usesysid IS NOT NULL AND s.usesysid <> 0
			  AND s.pid <> pg_backend_pid()
			  AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = s.usesysid)) t WHERE ended`).Scan(&n)
	})
	if n > 0 {
		a.logger().InfoContext(ctx, "sweep ended sessions without a role", "sessions_ended", n)
	}
	return n, err
}
