package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/workflows"
)

// sweeperRunTimeout bounds one Sweeper run; its steps give up well before.
const sweeperRunTimeout = 10 * time.Minute

// sweeperSchedule is the schedule a pool on queue wants: Sweeper every interval, a run at a
// time (a tick is skipped while one is still going), no backlog of missed runs.
func sweeperSchedule(queue string, every time.Duration) client.Schedule {
	return client.Schedule{
		Action: &client.ScheduleWorkflowAction{
			ID:                 workflows.SweeperScheduleID(queue), // Temporal appends the scheduled time
			Workflow:           workflows.SweeperWorkflow,
			Args:               []any{workflows.SweeperInput{}},
			TaskQueue:          queue,
			WorkflowRunTimeout: sweeperRunTimeout,
		},
		Spec: &client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}},
		Policy: &client.SchedulePolicies{
			Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
			CatchupWindow: time.Minute,
		},
	}
}

// EnsureSweeperSchedule makes the Temporal Schedule workflows.SweeperScheduleID(queue) run
// workflows.Sweeper on queue every interval. Every worker of a pool calls it when it starts:
// the first creates the schedule; the others find it and update it only when it differs
// (interval, action or overlap policy), so it is idempotent across the pool and across
// restarts. A paused schedule stays paused (an operator paused it). Workers of one pool
// should share one interval; with two, the one that started last wins.
//
// The schedule starts its runs without a person's identity, so the worker must allow
// workflows.SweeperWorkflow without one (New does).
//
// A call that fails for a reason that may pass (one call's deadline ran out on a busy
// server, or the server is unavailable or rate-limits) is tried again, a second later, until
// ctx ends; a refusal is not.
func EnsureSweeperSchedule(ctx context.Context, c client.Client, queue string, every time.Duration) error {
	for {
		err := ensureSweeperSchedule(ctx, c, queue, every)
		if err == nil || !mayPass(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// mayPass reports whether a failed call to the Temporal server may succeed if made again.
func mayPass(err error) bool {
	var deadline *serviceerror.DeadlineExceeded
	var unavailable *serviceerror.Unavailable
	var busy *serviceerror.ResourceExhausted
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &deadline) ||
		errors.As(err, &unavailable) || errors.As(err, &busy)
}

func ensureSweeperSchedule(ctx context.Context, c client.Client, queue string, every time.Duration) error {
	id := workflows.SweeperScheduleID(queue)
	want := sweeperSchedule(queue, every)
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:            id,
		Spec:          *want.Spec,
		Action:        want.Action,
		Overlap:       want.Policy.Overlap,
		CatchupWindow: want.Policy.CatchupWindow,
		Note:          "oidcflow: created by a worker of task queue " + queue,
	})
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, temporal.ErrScheduleAlreadyRunning):
		return fmt.Errorf("pool: create the sweeper schedule %s: %w (or set a negative Config.SweepInterval, OIDCFLOW_SWEEP_INTERVAL=0, and manage it yourself)", id, err)
	}
	err = c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			have := in.Description.Schedule
			if sameSweeper(have, want) {
				return nil, temporal.ErrSkipScheduleUpdate
			}
			have.Action, have.Spec, have.Policy = want.Action, want.Spec, want.Policy
			return &client.ScheduleUpdate{Schedule: &have}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("pool: update the sweeper schedule %s: %w (or set a negative Config.SweepInterval, OIDCFLOW_SWEEP_INTERVAL=0, and manage it yourself)", id, err)
	}
	return nil
}

// sameSweeper reports whether have already runs what want runs, as often.
func sameSweeper(have, want client.Schedule) bool {
	ha, ok := have.Action.(*client.ScheduleWorkflowAction)
	wa := want.Action.(*client.ScheduleWorkflowAction)
	if !ok || have.Spec == nil || have.Policy == nil {
		return false
	}
	name, _ := ha.Workflow.(string)
	return name == wa.Workflow && ha.ID == wa.ID && ha.TaskQueue == wa.TaskQueue &&
		ha.WorkflowRunTimeout == wa.WorkflowRunTimeout &&
		len(have.Spec.Calendars) == 0 && len(have.Spec.CronExpressions) == 0 &&
		slices.Equal(have.Spec.Intervals, want.Spec.Intervals) &&
		have.Policy.Overlap == want.Policy.Overlap
}
