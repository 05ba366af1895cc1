package attacks_test

import (
	"context"
	"errors"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
)

// The tests of this file go straight to the Temporal frontend with a plain SDK client: the
// server, not the pool, must refuse them.

// lazyClient is a plain client of the stack's frontend that sends ts's access token (none
// when ts is nil) and connects at its first call, so that a refused connection shows as
// that call's error.
func lazyClient(t *testing.T, st *testharness.Stack, ts oauth2.TokenSource) client.Client {
	t.Helper()
	opts := st.TemporalOptions(ts)
	c, err := client.NewLazyClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// personaTokens logs persona in and returns its tokens as a source.
func personaTokens(t *testing.T, st *testharness.Stack, persona string) oauth2.TokenSource {
	return oauth2.StaticTokenSource(st.Login(t, persona))
}

// wantDenied fails t unless err is the frontend's refusal.
func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	var denied *serviceerror.PermissionDenied
	if !errors.As(err, &denied) && status.Code(err) != codes.Unauthenticated {
		t.Errorf("%s: %v; want PermissionDenied from the frontend", what, err)
	}
}

func requireAuthorizingStack(t *testing.T) *testharness.Stack {
	t.Helper()
	st := testharness.Load(t)
	if !st.Authorizes() {
		t.Skip("the stack's Temporal frontend does not authorize its callers (OIDCFLOW_TEMPORAL_AUTH=none)")
	}
	return st
}

// TestAttackFrontendWithoutToken: a caller with no token at all can neither read, nor
// start, nor poll.
func TestAttackFrontendWithoutToken(t *testing.T) {
	st := requireAuthorizingStack(t)
	ctx := testContext(t, time.Minute)
	ns := st.Env("TEMPORAL_NAMESPACE")
	svc := lazyClient(t, st, nil).WorkflowService()

	_, err := svc.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	wantDenied(t, "describe the namespace", err)
	_, err = svc.ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns})
	wantDenied(t, "list runs", err)
	_, err = svc.StartWorkflowExecution(ctx, &workflowservice.StartWorkflowExecutionRequest{
		Namespace: ns, WorkflowId: "attack-no-token", RequestId: "attack-no-token",
		WorkflowType: &commonpb.WorkflowType{Name: "AccessRequest"},
		TaskQueue:    &taskqueuepb.TaskQueue{Name: st.Env("OIDCFLOW_TASK_QUEUE")},
	})
	wantDenied(t, "start a run", err)
	wantDenied(t, "poll the pool's task queue", poll(ctx, svc, ns, st.Env("OIDCFLOW_TASK_QUEUE")))
}

// TestAttackTerminateAndResetNeedAdmin: erin (no Temporal permission) and frank (a writer)
// can neither terminate nor reset bob's run; the operator (admin) can.
func TestAttackTerminateAndResetNeedAdmin(t *testing.T) {
	r := newRig(t)
	if !r.st.Authorizes() {
		t.Skip("the stack's Temporal frontend does not authorize its callers")
	}
	ctx := testContext(t, 2*time.Minute)
	bob, _ := apptest.Client(t, r.st, "bob")
	id := "attack-terminate-" + r.queue
	run := r.startApprovable(ctx, t, bob, id, "read for 1h")
	ns := r.st.Env("TEMPORAL_NAMESPACE")

	for _, who := range []string{"erin", testharness.Insider} {
		c := lazyClient(t, r.st, personaTokens(t, r.st, who))
		wantDenied(t, who+" terminates bob's run", c.TerminateWorkflow(ctx, id, run.GetRunID(), "attack"))
		_, err := c.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{
			Namespace: ns, WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: run.GetRunID()},
			Reason: "attack", WorkflowTaskFinishEventId: 3, RequestId: "attack-reset-" + who,
		})
		wantDenied(t, who+" resets bob's run", err)
	}
	d, err := r.st.OperatorClient(t).DescribeWorkflow(ctx, id, run.GetRunID())
	if err != nil {
		t.Fatal(err)
	}
	if s := d.RawResponse.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("bob's run is %v after the refused calls; want it running", s)
	}
	if err := r.st.OperatorClient(t).TerminateWorkflow(ctx, id, run.GetRunID(), "test over"); err != nil {
		t.Errorf("the operator's terminate: %v", err)
	}
}

// TestAttackPollPoolQueueNeedsWorkerToken: only the worker client's token may take tasks
// from the pool's task queue: a person who may start runs (bob), a person without
// permission (erin) and the operator (admin, but no worker) are refused.
func TestAttackPollPoolQueueNeedsWorkerToken(t *testing.T) {
	r := newRig(t)
	if !r.st.Authorizes() {
		t.Skip("the stack's Temporal frontend does not authorize its callers")
	}
	ctx := testContext(t, 2*time.Minute)
	ns := r.st.Env("TEMPORAL_NAMESPACE")
	for name, ts := range map[string]oauth2.TokenSource{
		"bob": personaTokens(t, r.st, "bob"), "erin": personaTokens(t, r.st, "erin"), "the operator": r.st.OperatorTokenSource(),
	} {
		wantDenied(t, name+" polls the pool's queue", poll(ctx, lazyClient(t, r.st, ts).WorkflowService(), ns, r.queue))
	}
	// The worker's token may: its poll returns (empty, the queue has no task) without error.
	if err := poll(ctx, lazyClient(t, r.st, r.st.WorkerTokenSource()).WorkflowService(), ns, apptest.TaskQueue("idle")); err != nil {
		t.Errorf("the worker's poll: %v", err)
	}
}

// poll polls queue for a workflow task once, for at most a few seconds; an empty answer or
// the deadline is no error.
func poll(ctx context.Context, svc workflowservice.WorkflowServiceClient, ns, queue string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := svc.PollWorkflowTaskQueue(ctx, &workflowservice.PollWorkflowTaskQueueRequest{
		Namespace: ns, TaskQueue: &taskqueuepb.TaskQueue{Name: queue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL}, Identity: "attack",
	})
	var deadline *serviceerror.DeadlineExceeded
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &deadline) {
		return nil
	}
	return err
}
