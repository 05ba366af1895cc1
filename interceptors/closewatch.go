package interceptors

import (
	"context"
	"log/slog"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
)

// CloseWatch sees, on the worker's connection to Temporal, which workflow task completions
// the server accepted as a run's end, and ends the run's session right after: off the run's
// path, once the end is in history. Without one (WorkerOptions.CloseWatch), a run ends its
// session in one more activity, EndSessionActivity, before it closes: one more round trip
// through the server per run.
//
// Install it on the worker's client with DialOption, and give the same CloseWatch to
// NewWorkerInterceptor. A run whose workflow task did not pass through it (another client's
// poll, an eager start) ends its session with the activity. When the worker stops between
// the server's acceptance and the session's end, the pool's sweeper ends the session.
type CloseWatch struct {
	logger *slog.Logger

	mu      sync.Mutex
	end     func(ctx context.Context, sessionID, holder string) error
	tasks   map[string]watchedTask // by task token
	running map[string]int         // runs with a workflow task in flight: how many
	pending map[string]runEnd      // by run id: the session to end once the run closed
}

type watchedTask struct {
	runID  string
	polled time.Time
}

type runEnd struct {
	sessionID, holder string
	at                time.Time // when a poll first saw it pending
}

// NewCloseWatch returns a CloseWatch that logs the sessions it could not end to logger
// (default slog.Default()).
func NewCloseWatch(logger *slog.Logger) *CloseWatch {
	if logger == nil {
		logger = slog.Default()
	}
	return &CloseWatch{logger: logger, tasks: map[string]watchedTask{}, running: map[string]int{},
		pending: map[string]runEnd{}}
}

// DialOption installs the watch on a Temporal client's connection:
//
//	opts.ConnectionOptions.DialOptions = append(opts.ConnectionOptions.DialOptions, watch.DialOption())
func (c *CloseWatch) DialOption() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(c.intercept)
}

// staleTask is when a task the worker never answered (it stopped, or the server timed the
// task out) is forgotten.
const staleTask = 15 * time.Minute

func (c *CloseWatch) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	switch r := req.(type) {
	case *workflowservice.PollWorkflowTaskQueueRequest:
		if resp, ok := reply.(*workflowservice.PollWorkflowTaskQueueResponse); ok && err == nil {
			c.polled(resp)
		}
	case *workflowservice.RespondWorkflowTaskCompletedRequest:
		runID := c.answered(r.TaskToken)
		if resp, ok := reply.(*workflowservice.RespondWorkflowTaskCompletedResponse); ok && err == nil {
			c.polled(resp.WorkflowTask)
			if closes(r) {
				c.closed(runID)
			}
		} else if runID != "" {
			// Refused: the run goes on, and its next task decides again.
			c.mu.Lock()
			delete(c.pending, runID)
			c.mu.Unlock()
		}
	case *workflowservice.RespondWorkflowTaskFailedRequest:
		c.answered(r.TaskToken)
	case *workflowservice.RespondQueryTaskCompletedRequest:
		c.answered(r.TaskToken)
	}
	return err
}

// polled notes a workflow task the worker received.
func (c *CloseWatch) polled(t *workflowservice.PollWorkflowTaskQueueResponse) {
	if t == nil || len(t.TaskToken) == 0 || t.WorkflowExecution == nil {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for token, task := range c.tasks {
		if now.Sub(task.polled) > staleTask {
			c.forget(token, task)
		}
	}
	for runID, e := range c.pending {
		switch {
		case e.at.IsZero(): // endAtClose, called from workflow code, reads no clock
			e.at = now
			c.pending[runID] = e
		case now.Sub(e.at) > staleTask:
			delete(c.pending, runID)
		}
	}
	runID := t.WorkflowExecution.RunId
	c.tasks[string(t.TaskToken)] = watchedTask{runID: runID, polled: now}
	c.running[runID]++
}

// answered forgets the task of token and returns its run ("" when the task was not seen).
func (c *CloseWatch) answered(token []byte) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	task, ok := c.tasks[string(token)]
	if !ok {
		return ""
	}
	c.forget(string(token), task)
	return task.runID
}

func (c *CloseWatch) forget(token string, task watchedTask) {
	delete(c.tasks, token)
	if c.running[task.runID]--; c.running[task.runID] <= 0 {
		delete(c.running, task.runID)
	}
}

// closes reports whether a workflow task completion ends its run.
func closes(r *workflowservice.RespondWorkflowTaskCompletedRequest) bool {
	for _, cmd := range r.Commands {
		switch cmd.CommandType {
		case enumspb.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION, enumspb.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
			enumspb.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION, enumspb.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION:
			return true
		}
	}
	return false
}

// closed ends the session of run, if it asked for that, now that the server accepted its end.
func (c *CloseWatch) closed(runID string) {
	c.mu.Lock()
	e, ok := c.pending[runID]
	delete(c.pending, runID)
	end := c.end
	c.mu.Unlock()
	if !ok || end == nil {
		return
	}
	go c.endSession(end, e)
}

// endSession ends a closed run's session, retrying transient failures for a while.
func (c *CloseWatch) endSession(end func(context.Context, string, string) error, e runEnd) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wait := 500 * time.Millisecond
	for {
		err := end(ctx, e.sessionID, e.holder)
		if err == nil {
			return
		}
		if isIdentityError(err) || ctx.Err() != nil {
			c.logger.Warn("session of a closed run not ended; the pool's sweeper ends it", "session", e.sessionID,
				"holder", e.holder, "err", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
			wait = min(2*wait, 15*time.Second)
		}
	}
}

// bind gives the watch the worker's way to end sessions (NewWorkerInterceptor).
func (c *CloseWatch) bind(end func(ctx context.Context, sessionID, holder string) error) {
	c.mu.Lock()
	c.end = end
	c.mu.Unlock()
}

// watching reports whether a workflow task of run is in flight through the watch: then the
// watch sees that task's answer, and the run may leave the end of its session to it.
func (c *CloseWatch) watching(runID string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running[runID] > 0
}

// endAtClose asks the watch to end the session once the server accepted the run's end.
func (c *CloseWatch) endAtClose(runID, sessionID, holder string) {
	c.mu.Lock()
	c.pending[runID] = runEnd{sessionID: sessionID, holder: holder}
	c.mu.Unlock()
}
