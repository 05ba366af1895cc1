package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
)

// SweeperInput starts a Sweeper. It has no fields: a Temporal Schedule starts the sweeper
// without a person, and anyone who can start workflows on the pool's task queue can start
// one too, so nothing a starter writes may change what a sweep removes.
type SweeperInput struct{}

// SweeperResult reports what one sweep removed, step by step.
type SweeperResult struct {
	// Grants is the database step's result: roles dropped, sessions ended.
	Grants activities.SweepGrantsResult `json:"grants"`
	// Sessions is the token store's step's result: sessions ended, one-time records removed.
	Sessions activities.SweepSessionsResult `json:"sessions"`
}

// sweepOptions: a step retries transient failures for a few minutes, then the run ends and
// the next scheduled run starts over; a sweep never piles up behind a stuck one (the
// schedule skips a tick while a run is still going).
var sweepOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    2 * time.Minute,
	ScheduleToCloseTimeout: 5 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    30 * time.Second,
	},
}

// sweepStep is one step of a sweep: one activity, run under the pool's own authority, that
// removes one kind of leftover; each puts its result into the SweeperResult.
type sweepStep struct {
	name string
	run  func(ctx workflow.Context, res *SweeperResult) error
}

// grantsStep drops just-in-time database roles (activities.DatabaseActivities.SweepGrants).
var grantsStep = sweepStep{"grants", func(ctx workflow.Context, res *SweeperResult) error {
	var db *activities.DatabaseActivities
	return workflow.ExecuteActivity(ctx, db.SweepGrants, activities.SweepGrantsInput{}).Get(ctx, &res.Grants)
}}

// sessionsStep ends orphaned token sessions (activities.SessionActivities.SweepSessions).
var sessionsStep = sweepStep{"sessions", func(ctx workflow.Context, res *SweeperResult) error {
	var s *activities.SessionActivities
	return workflow.ExecuteActivity(ctx, s.SweepSessions, activities.SweepSessionsInput{}).Get(ctx, &res.Sessions)
}}

// Sweeper removes what runs left behind, whatever happened to them: it is how oidcflow's
// cleanup never depends on the requester. A Temporal Schedule of the worker pool runs it
// every OIDCFLOW_SWEEP_INTERVAL (default one minute). It runs without a person's identity
// (its type is allowed without one) and its steps run under the pool's own authority
// (identity.AsPool), so no token of anyone is needed. The grants step drops just-in-time
// roles whose VALID UNTIL has passed or whose AccessRequest run is no longer running
// (terminated, reset away, timed out) and ends their database sessions; the sessions step
// revokes and destroys token sessions whose runs are all gone, and removes expired records of
// honoured envelopes.
//
// A failing step does not stop the others; the run then fails with TypeSweepFailed, naming
// the steps, and the next scheduled run tries again.
func Sweeper(ctx workflow.Context, _ SweeperInput) (SweeperResult, error) {
	return sweep(ctx, grantsStep, sessionsStep)
}

// SessionSweeper is Sweeper without the grants step: the sweep of a pool that grants no
// database roles and so has no activities.DatabaseActivities registered. A pool registers
// one of the two as SweeperWorkflow (package pool registers this one unless told otherwise).
func SessionSweeper(ctx workflow.Context, _ SweeperInput) (SweeperResult, error) {
	return sweep(ctx, sessionsStep)
}

// sweep runs steps in order; a failing step does not stop the others.
func sweep(ctx workflow.Context, steps ...sweepStep) (SweeperResult, error) {
	ctx = workflow.WithActivityOptions(identity.AsPool(ctx), sweepOptions)
	var res SweeperResult
	var failed []string
	for _, step := range steps {
		if err := step.run(ctx, &res); err != nil {
			workflow.GetLogger(ctx).Warn("sweep step failed", "step", step.name, "error", err)
			failed = append(failed, fmt.Sprintf("%s: %s", step.name, errorText(err)))
		}
	}
	if len(failed) > 0 {
		return res, temporal.NewNonRetryableApplicationError(
			"workflows: sweep failed; the next sweep tries again: "+strings.Join(failed, "; "), TypeSweepFailed, nil)
	}
	return res, nil
}
