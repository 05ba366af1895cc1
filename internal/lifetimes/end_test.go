package lifetimes_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/lifetimes"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
)

const lastTaskWorkflow = "LifetimesLastTask"

// holds are the gates of the hold local activity, by workflow id.
var holds sync.Map

type gate struct {
	entered, release chan struct{}
	once             sync.Once
}

// hold waits until the test opens its run's gate.
func hold(ctx context.Context) error {
	g, ok := holds.Load(activity.GetInfo(ctx).WorkflowExecution.ID)
	if !ok {
		return nil
	}
	h := g.(*gate)
	h.once.Do(func() { close(h.entered) })
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lastTask waits for FinishSignal, holds the workflow task it arrived in on a local activity,
// then runs one identity-checked step for every StepSignal it has seen.
func lastTask(ctx workflow.Context) (*lifetimes.Result, error) {
	res := &lifetimes.Result{}
	if id, err := identity.FromWorkflow(ctx); err == nil {
		res.SessionID = id.SessionID
	}
	workflow.GetSignalChannel(ctx, lifetimes.FinishSignal).Receive(ctx, nil)
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: time.Minute})
	if err := workflow.ExecuteLocalActivity(lctx, hold).Get(ctx, nil); err != nil {
		return res, err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for workflow.GetSignalChannel(ctx, lifetimes.StepSignal).ReceiveAsync(nil) {
		var s lifetimes.Step
		if err := workflow.ExecuteActivity(actx, lifetimes.Sensitive, lifetimes.StepInput{}).Get(ctx, &s); err != nil {
			return res, err
		}
		res.Steps = append(res.Steps, s)
	}
	return res, nil
}

// A signal that reaches the server while the run's last workflow task is being worked on
// makes the server refuse the task's completion (UnhandledCommand); the retried task sees the
// signal and takes another path: here, one more step. The session must outlive a refused
// last task. It did not while a local activity ended it inside that task: the retried task's
// step found the session revoked (ReauthRequired). The session now ends from an activity,
// scheduled by a task the server accepted, so nothing ends before the run's path is settled.
func TestSessionOutlivesARefusedLastTask(t *testing.T) {
	t.Parallel()
	st := testharness.Load(t)
	queue := apptest.TaskQueue("lasttask")
	w := apptest.StartWorker(t, app.WorkerOptions{
		Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue),
		Register: func(r worker.Registry) {
			lifetimes.Register(r)
			r.RegisterWorkflowWithOptions(lastTask, workflow.RegisterOptions{Name: lastTaskWorkflow})
		},
	})
	c, _ := apptest.Client(t, st, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := "lifetimes-lasttask-" + queue
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	holds.Store(id, g)
	defer holds.Delete(id)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, lastTaskWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SignalWorkflow(ctx, id, "", lifetimes.FinishSignal, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.entered:
	case <-ctx.Done():
		t.Fatal("the run's last task never ran its local activity")
	}
	if err := c.SignalWorkflow(ctx, id, "", lifetimes.StepSignal, nil); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	var res lifetimes.Result
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.SessionID == "" {
		t.Fatal("the run had no session")
	}
	sessionGone(ctx, t, w, res.SessionID)
	// Either is right: the step signal reached a retried last task (one step), or it came
	// after the task that recorded the run's end (no step; the run had decided).
	t.Logf("%d steps after the finish", len(res.Steps))
}
