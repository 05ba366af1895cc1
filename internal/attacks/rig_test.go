package attacks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/attacks"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
)

// rig is a worker pool of one on a task queue of the test's own.
type rig struct {
	st     *testharness.Stack
	queue  string
	worker *app.Worker
}

func newRig(t *testing.T, overrides ...string) *rig {
	t.Helper()
	st := testharness.Load(t)
	r := &rig{st: st, queue: apptest.TaskQueue("attacks")}
	r.worker = apptest.StartWorker(t, app.WorkerOptions{
		Env:      apptest.Env(t, st, append([]string{"OIDCFLOW_TASK_QUEUE", r.queue}, overrides...)...),
		Register: attacks.Register,
	})
	return r
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startApprovable starts an Approvable run as c and waits until its identity is verified
// (its handlers exist).
func (r *rig) startApprovable(ctx context.Context, t *testing.T, c client.Client, id, what string) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue},
		attacks.ApprovableName, attacks.ApprovableInput{What: what})
	if err != nil {
		t.Fatal(err)
	}
	waitQuery(ctx, t, c, id, run.GetRunID())
	return run
}

// waitQuery waits until the run answers the approvers query: its identity is verified.
func waitQuery(ctx context.Context, t *testing.T, c client.Client, id, runID string) []string {
	t.Helper()
	for {
		v, err := c.QueryWorkflow(ctx, id, runID, attacks.ApproversQuery)
		if err == nil {
			var approvers []string
			if err := v.Get(&approvers); err != nil {
				t.Fatal(err)
			}
			return approvers
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run %s never answered: %v", id, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// approve sends an approve update as c to the run and returns the approver it reports.
func approve(ctx context.Context, c client.Client, id, runID string) (string, error) {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, RunID: runID,
		UpdateName: attacks.ApproveUpdate, Args: []any{"ok"}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		return "", err
	}
	var who string
	err = h.Get(ctx, &who)
	return who, err
}

// stop ends an Approvable run and returns its approvers.
func stop(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun) []string {
	t.Helper()
	if err := c.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), attacks.StopSignal, nil); err != nil {
		t.Fatal(err)
	}
	var approvers []string
	if err := run.Get(ctx, &approvers); err != nil {
		t.Fatal(err)
	}
	return approvers
}

// Kinds of history event whose header an attacker copies.
func started(e *historypb.HistoryEvent) bool {
	return e.GetWorkflowExecutionStartedEventAttributes() != nil
}

func updateAccepted(e *historypb.HistoryEvent) bool {
	return e.GetWorkflowExecutionUpdateAcceptedEventAttributes() != nil
}

func signaled(e *historypb.HistoryEvent) bool {
	return e.GetWorkflowExecutionSignaledEventAttributes() != nil
}

// copyHeader returns the header field key of the first event of the run of that kind that
// carries it, as an attacker who reads history would.
func copyHeader(ctx context.Context, t *testing.T, c client.Client, id, runID string, kind func(*historypb.HistoryEvent) bool, key string) map[string]*commonpb.Payload {
	t.Helper()
	for _, e := range testharness.History(ctx, t, c, id, runID) {
		if h := testharness.EventHeader(e); kind(e) && h[key] != nil {
			return map[string]*commonpb.Payload{key: h[key]}
		}
	}
	t.Fatalf("no %s header in the history of %s", key, id)
	return nil
}

// wantRefused fails t unless err is a non-retryable identity refusal whose message contains
// every part.
func wantRefused(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != identity.TypeUnauthenticated || !appErr.NonRetryable() {
		t.Fatalf("%s: want a non-retryable %s, got %v", what, identity.TypeUnauthenticated, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: %q does not say %q", what, err.Error(), p)
		}
	}
}

// sleep waits a moment, or fails t when ctx ends first.
func sleep(ctx context.Context, t *testing.T) {
	t.Helper()
	select {
	case <-ctx.Done():
		t.Fatalf("gave up waiting: %v", ctx.Err())
	case <-time.After(200 * time.Millisecond):
	}
}
