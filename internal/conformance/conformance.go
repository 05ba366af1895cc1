// Package conformance holds the workflow that exercises every surface identity travels
// through: start, signal-with-start, update, activity, local activity, child workflow,
// continue-as-new, a client signal and a signal from another workflow. Each step records
// the subject it saw, so a test can assert who acted where.
package conformance

import (
	"context"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// Names used by the conformance test.
const (
	WorkflowName = "Conformance"
	ChildName    = "ConformanceChild"
	PingerName   = "ConformancePinger"
	UpdateName   = "approve"
	SignalName   = "ping"
)

// Input of the conformance workflow.
type Input struct {
	// Pings is how many "ping" signals to wait for before finishing the run.
	Pings int
	// Approve makes the run wait for one "approve" update first.
	Approve bool
	// ContinueOnce makes the first run continue as new; the next run repeats the
	// activity checks and returns.
	ContinueOnce bool
	// Seen carries what earlier runs recorded across continue-as-new.
	Seen []string
}

// Result lists every "step:subject" the runs saw, in order.
type Result struct {
	Seen []string
}

// Activities records the identity an activity sees.
type Activities struct{}

// WhoAmI returns the subject of the activity's fresh, verified identity.
func (*Activities) WhoAmI(ctx context.Context) (string, error) {
	id, err := identity.FromActivity(ctx)
	if err != nil {
		return "", err
	}
	return id.Subject, nil
}

// Workflow is the conformance workflow.
func Workflow(ctx workflow.Context, in Input) (Result, error) {
	r := &run{seen: in.Seen}
	return r.run(ctx, in)
}

type run struct {
	seen     []string
	approved bool
}

func (r *run) record(step string, id *identity.Identity) {
	sub := "<none>"
	if id != nil {
		sub = id.Subject
	}
	r.seen = append(r.seen, step+":"+sub)
}

func (r *run) activities(ctx workflow.Context, prefix string) error {
	var a *Activities
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var sub string
	if err := workflow.ExecuteActivity(actx, a.WhoAmI).Get(ctx, &sub); err != nil {
		return err
	}
	r.seen = append(r.seen, prefix+"activity:"+sub)
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: time.Minute})
	if err := workflow.ExecuteLocalActivity(lctx, a.WhoAmI).Get(ctx, &sub); err != nil {
		return err
	}
	r.seen = append(r.seen, prefix+"local-activity:"+sub)
	return nil
}

func (r *run) run(ctx workflow.Context, in Input) (Result, error) {
	id, err := identity.FromWorkflow(ctx)
	if err != nil {
		return Result{}, err
	}
	if len(in.Seen) > 0 {
		r.record("continued", id)
		if err := r.activities(ctx, "continued-"); err != nil {
			return Result{}, err
		}
		return Result{Seen: r.seen}, nil
	}
	if in.Approve { // registered first: an update may arrive at any time
		err := workflow.SetUpdateHandler(ctx, UpdateName, func(ctx workflow.Context) (string, error) {
			approver, err := identity.FromWorkflow(ctx)
			if err != nil {
				return "", err
			}
			r.record("update", approver)
			if err := r.activities(ctx, "update-"); err != nil {
				return "", err
			}
			r.approved = true
			return approver.Subject, nil
		})
		if err != nil {
			return Result{}, err
		}
	}
	r.record("start", id)
	if err := r.activities(ctx, ""); err != nil {
		return Result{}, err
	}

	var childSeen []string
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID + "-child"})
	if err := workflow.ExecuteChildWorkflow(cctx, ChildName).Get(ctx, &childSeen); err != nil {
		return Result{}, err
	}
	r.seen = append(r.seen, childSeen...)

	if in.Approve {
		if err := workflow.Await(ctx, func() bool { return r.approved }); err != nil {
			return Result{}, err
		}
	}

	ch := workflow.GetSignalChannel(ctx, SignalName)
	for range in.Pings {
		var from string
		ch.Receive(ctx, &from)
		r.record("signal-"+from, identity.SignalSender(ctx, SignalName, from))
	}

	if in.ContinueOnce {
		return Result{}, workflow.NewContinueAsNewError(ctx, Workflow, Input{Seen: r.seen})
	}
	return Result{Seen: r.seen}, nil
}

// Child records the identity a child workflow and its activity see.
func Child(ctx workflow.Context) ([]string, error) {
	id, err := identity.FromWorkflow(ctx)
	if err != nil {
		return nil, err
	}
	r := &run{}
	r.record("child", id)
	if err := r.activities(ctx, "child-"); err != nil {
		return nil, err
	}
	return r.seen, nil
}

// Pinger signals the target workflow from another workflow: the receiver must see the
// pinger's starter as the sender.
func Pinger(ctx workflow.Context, targetWorkflowID string) error {
	return workflow.SignalExternalWorkflow(ctx, targetWorkflowID, "", SignalName, "workflow").Get(ctx, nil)
}
