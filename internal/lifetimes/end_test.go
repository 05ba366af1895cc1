package lifetimes_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
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
// step found the session revoked (ReauthRequired). The session now ends only once the server
// accepted the task that ends the run (the pool's CloseWatch; without one, an activity that
// such a task scheduled), so nothing ends before the run's path is settled.
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

// heldEnds is a session store whose first End of holders that contain `of` waits for the
// test: it stands for a worker slow to end a closed run's session.
type heldEnds struct {
	interceptors.SessionStore
	of               string
	entered, release chan struct{}
	done             chan error
	once             sync.Once
}

func (h *heldEnds) End(ctx context.Context, sessionID, holder string) error {
	first := false
	if strings.Contains(holder, h.of) {
		h.once.Do(func() { first = true })
	}
	if !first {
		return h.SessionStore.End(ctx, sessionID, holder)
	}
	close(h.entered)
	<-h.release
	err := h.SessionStore.End(ctx, sessionID, holder)
	h.done <- err
	return err
}

// A run's session ends once the server accepted the run's end, so a new run under the same
// workflow id, started by the same login, may join the session before the old run's end
// reaches it. That late end must release only the old run's hold: the new run keeps its
// session and its steps see a fresh token.
func TestLateEndSparesTheNextRunOfTheSameID(t *testing.T) {
	t.Parallel()
	st := testharness.Load(t)
	queue := apptest.TaskQueue("lateend")
	id := "lifetimes-lateend-" + queue
	held := &heldEnds{of: id, entered: make(chan struct{}), release: make(chan struct{}), done: make(chan error, 1)}
	w := apptest.StartWorker(t, app.WorkerOptions{
		Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue),
		Register: func(r worker.Registry) {
			lifetimes.Register(r)
			r.RegisterWorkflowWithOptions(lastTask, workflow.RegisterOptions{Name: lastTaskWorkflow})
		},
		Authenticator: func(o *interceptors.AuthenticatorOptions) {
			held.SessionStore = o.Sessions
			o.Sessions = held
		},
	})
	c, _ := apptest.Client(t, st, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := client.StartWorkflowOptions{ID: id, TaskQueue: queue}

	first, err := c.ExecuteWorkflow(ctx, opts, lastTaskWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SignalWorkflow(ctx, id, first.GetRunID(), lifetimes.FinishSignal, nil); err != nil {
		t.Fatal(err)
	}
	var res1 lifetimes.Result
	if err := first.Get(ctx, &res1); err != nil {
		t.Fatalf("first run: %v", err)
	}
	select {
	case <-held.entered:
	case <-ctx.Done():
		t.Fatal("the first run's session never began to end")
	}

	// The next run joins the same session while the first one's end is held.
	second, err := c.ExecuteWorkflow(ctx, opts, lastTaskWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	waitForEvent(ctx, t, c, id, second.GetRunID(), enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
	close(held.release)
	if err := <-held.done; err != nil {
		t.Fatalf("the first run's end: %v", err)
	}

	if err := c.SignalWorkflow(ctx, id, second.GetRunID(), lifetimes.StepSignal, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SignalWorkflow(ctx, id, second.GetRunID(), lifetimes.FinishSignal, nil); err != nil {
		t.Fatal(err)
	}
	var res2 lifetimes.Result
	if err := second.Get(ctx, &res2); err != nil {
		t.Fatalf("second run, after the first run's late end: %v", err)
	}
	if res2.SessionID != res1.SessionID || len(res2.Steps) != 1 {
		t.Fatalf("second run: session %s, %d steps; want the first run's session %s and one step",
			res2.SessionID, len(res2.Steps), res1.SessionID)
	}
	checkSteps(t, &res2, "bob")
	sessionGone(ctx, t, w, res2.SessionID)
}

// waitForEvent waits until the history of the run holds an event of type et.
func waitForEvent(ctx context.Context, t *testing.T, c client.Client, id, runID string, et enumspb.EventType) {
	t.Helper()
	for {
		it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if ev.EventType == et {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run %s: no %s", runID, et)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
