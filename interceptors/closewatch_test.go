package interceptors

import (
	"context"
	"errors"
	"testing"
	"time"

	commandpb "go.temporal.io/api/command/v1"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// watchHarness drives a CloseWatch's interceptor the way the SDK's calls would.
type watchHarness struct {
	t     *testing.T
	watch *CloseWatch
	ended chan runEnd
}

func newWatchHarness(t *testing.T) *watchHarness {
	h := &watchHarness{t: t, watch: NewCloseWatch(nil), ended: make(chan runEnd, 10)}
	h.watch.bind(func(_ context.Context, sid, holder string) error {
		h.ended <- runEnd{sessionID: sid, holder: holder}
		return nil
	})
	return h
}

// call runs req through the watch; the server answers reply, or fails with err.
func (h *watchHarness) call(req, reply any, err error) {
	h.t.Helper()
	invoke := func(_ context.Context, _ string, _, out any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		if err == nil && reply != nil {
			proto.Merge(out.(proto.Message), reply.(proto.Message))
		}
		return err
	}
	var out any
	switch req.(type) {
	case *workflowservice.PollWorkflowTaskQueueRequest:
		out = &workflowservice.PollWorkflowTaskQueueResponse{}
	case *workflowservice.RespondWorkflowTaskCompletedRequest:
		out = &workflowservice.RespondWorkflowTaskCompletedResponse{}
	}
	if got := h.watch.intercept(context.Background(), "method", req, out, nil, invoke); !errors.Is(got, err) {
		h.t.Fatalf("the interceptor returned %v, want the server's %v", got, err)
	}
}

func (h *watchHarness) poll(token, runID string) {
	h.call(&workflowservice.PollWorkflowTaskQueueRequest{}, task(token, runID), nil)
}

func task(token, runID string) *workflowservice.PollWorkflowTaskQueueResponse {
	return &workflowservice.PollWorkflowTaskQueueResponse{TaskToken: []byte(token),
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: "wf", RunId: runID}}
}

func completion(token string, commands ...enumspb.CommandType) *workflowservice.RespondWorkflowTaskCompletedRequest {
	r := &workflowservice.RespondWorkflowTaskCompletedRequest{TaskToken: []byte(token)}
	for _, c := range commands {
		r.Commands = append(r.Commands, &commandpb.Command{CommandType: c})
	}
	return r
}

func (h *watchHarness) wantEnded(sid string) {
	h.t.Helper()
	select {
	case e := <-h.ended:
		if e.sessionID != sid || e.holder != "wf" {
			h.t.Fatalf("ended %+v, want session %s of holder wf", e, sid)
		}
	case <-time.After(5 * time.Second):
		h.t.Fatalf("session %s not ended", sid)
	}
}

func (h *watchHarness) wantNoneEnded() {
	h.t.Helper()
	select {
	case e := <-h.ended:
		h.t.Fatalf("ended %+v, want none", e)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestCloseWatchEndsAfterTheServerAcceptedTheEnd: a run's session ends only once the server
// accepted a completion that closes the run, in the task in which the run asked for it. A
// refused completion ends nothing, and the session it asked for is not ended by a later
// task that closes the run without asking (a continue-as-new, whose next run goes on with
// the session).
func TestCloseWatchEndsAfterTheServerAcceptedTheEnd(t *testing.T) {
	h := newWatchHarness(t)
	complete := enumspb.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION

	h.poll("t1", "r1")
	if !h.watch.watching("r1") || h.watch.watching("r2") {
		t.Fatal("watching: want r1 (its task is in flight), not r2")
	}
	h.watch.endAtClose("r1", "s1", "wf")
	h.call(completion("t1", complete), nil, serviceerror.NewInvalidArgument("UnhandledCommand"))
	h.wantNoneEnded()

	// The server hands the run's task out again; this time it continues as new.
	h.poll("t2", "r1")
	h.call(completion("t2", enumspb.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION), &workflowservice.RespondWorkflowTaskCompletedResponse{}, nil)
	h.wantNoneEnded()

	// Another run: it schedules an activity, and the server returns its next task with the
	// answer; that task ends the run.
	h.poll("t3", "r2")
	h.call(completion("t3", enumspb.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK),
		&workflowservice.RespondWorkflowTaskCompletedResponse{WorkflowTask: task("t4", "r2")}, nil)
	h.wantNoneEnded()
	if !h.watch.watching("r2") {
		t.Fatal("the task returned with the answer is not watched")
	}
	h.watch.endAtClose("r2", "s2", "wf")
	h.call(completion("t4", enumspb.COMMAND_TYPE_RECORD_MARKER, complete), &workflowservice.RespondWorkflowTaskCompletedResponse{}, nil)
	h.wantEnded("s2")
	if h.watch.watching("r2") || len(h.watch.current) != 0 {
		t.Fatalf("left behind: current %v", h.watch.current)
	}
	if err := h.watch.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCloseWatchRetriesAndPages: a completion the SDK sends again after a transient failure,
// and one sent in pages (the last page answers the task), still end the session.
func TestCloseWatchRetriesAndPages(t *testing.T) {
	h := newWatchHarness(t)
	complete := enumspb.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION
	h.poll("t1", "r1")
	h.watch.endAtClose("r1", "s1", "wf")
	h.call(completion("t1", complete), nil, serviceerror.NewUnavailable("try again"))
	h.wantNoneEnded()
	h.call(completion("t1", complete), &workflowservice.RespondWorkflowTaskCompletedResponse{}, nil)
	h.wantEnded("s1")

	h.poll("t2", "r2")
	h.watch.endAtClose("r2", "s2", "wf")
	page := completion("t2", enumspb.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK)
	page.IntermediatePage = true
	h.call(page, &workflowservice.RespondWorkflowTaskCompletedResponse{}, nil)
	h.wantNoneEnded()
	last := completion("t2", complete)
	last.PageNumber = 1
	h.call(last, &workflowservice.RespondWorkflowTaskCompletedResponse{}, nil)
	h.wantEnded("s2")
}

// TestCloseWatchEveryEnd: failing, cancelling and continuing as new close a run too; a run
// that did not ask for its session's end ends none.
func TestCloseWatchEveryEnd(t *testing.T) {
	h := newWatchHarness(t)
	for i, c := range []enumspb.CommandType{enumspb.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
		enumspb.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION, enumspb.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION} {
		run, token := string(rune('a'+i)), string(rune('A'+i))
		h.poll(token, run)
		h.watch.endAtClose(run, "s-"+run, "wf")
		h.call(completion(token, c), &workflowservice.RespondWorkflowTaskCompletedResponse{}, nil)
		h.wantEnded("s-" + run)
	}
	h.poll("x", "plain")
	h.call(completion("x", enumspb.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION), &workflowservice.RespondWorkflowTaskCompletedResponse{}, nil)
	h.wantNoneEnded()
}

// TestCloseWatchForgetsAnsweredAndStaleTasks: failed and query tasks are forgotten when
// answered, and tasks never answered once they are stale.
func TestCloseWatchForgetsAnsweredAndStaleTasks(t *testing.T) {
	h := newWatchHarness(t)
	h.poll("f", "r1")
	h.call(&workflowservice.RespondWorkflowTaskFailedRequest{TaskToken: []byte("f")}, nil, nil)
	h.poll("q", "r2")
	h.call(&workflowservice.RespondQueryTaskCompletedRequest{TaskToken: []byte("q")}, nil, nil)
	h.poll("lost", "r3")
	h.watch.endAtClose("r3", "s3", "wf")
	h.watch.mu.Lock()
	h.watch.tasks["lost"].polled = time.Now().Add(-staleTask - time.Second)
	h.watch.lastSweep = time.Time{}
	h.watch.mu.Unlock()
	h.poll("next", "r4")
	if len(h.watch.tasks) != 1 || len(h.watch.current) != 1 || !h.watch.watching("r4") {
		t.Fatalf("left behind: tasks %v, current %v", h.watch.tasks, h.watch.current)
	}
}

// TestCloseWatchNil: a worker without a watch watches nothing.
func TestCloseWatchNil(t *testing.T) {
	var w *CloseWatch
	if w.watching("r1") {
		t.Fatal("a nil watch watches")
	}
	w.endAtClose("r1", "s1", "wf") // a replayed run that chose the watch, on a worker without one
}
