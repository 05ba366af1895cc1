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
// poll, an eager start) ends its session with the activity. When the end does not happen
// (the worker stopped between the server's acceptance and the end, or the server's answer
// was lost), the pool's sweeper ends the session once no run of the run's chain is running.
type CloseWatch struct {
	logger *slog.Logger
	ends   sync.WaitGroup // session ends in progress

	mu        sync.Mutex
	end       func(ctx context.Context, sessionID, holder string) error
	tasks     map[string]*watchedTask // by task token
	current   map[string]string       // run id -> token of its latest task in flight
	lastSweep time.Time
}

// watchedTask is a workflow task in flight, and the session its run asked the watch to end
// if this task's completion closes the run.
type watchedTask struct {
	runID  string
	polled time.Time
	end    *runEnd
}

type runEnd struct{ sessionID, holder string }

// NewCloseWatch returns a CloseWatch that logs the sessions it could not end to logger
// (default slog.Default()).
func NewCloseWatch(logger *slog.Logger) *CloseWatch {
	if logger == nil {
		logger = slog.Default()
	}
	return &CloseWatch{logger: logger, tasks: map[string]*watchedTask{}, current: map[string]string{}}
}

// DialOption installs the watch on a Temporal client's connection:
//
//	opts.ConnectionOptions.DialOptions = append(opts.ConnectionOptions.DialOptions, watch.DialOption())
func (c *CloseWatch) DialOption() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(c.intercept)
}

// Wait waits until the session ends in progress are done, or ctx is. Call it after the
// worker stopped, while the worker's Vault token is still good.
func (c *CloseWatch) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		c.ends.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// staleTask is when a task the worker never answered, or whose answer failed (it stopped,
// the server timed the task out), is forgotten.
const staleTask = 15 * time.Minute

// intercept watches the calls of the worker's client. The SDK retries a failed call through
// it with the same task token, and a task the worker gives up comes back with a new token, so
// a failed answer changes nothing here: only a completion the server accepted ends a session,
// and only the one the run asked for in that very task.
func (c *CloseWatch) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil {
		return err
	}
	switch r := req.(type) {
	case *workflowservice.PollWorkflowTaskQueueRequest:
		if resp, ok := reply.(*workflowservice.PollWorkflowTaskQueueResponse); ok {
			c.polled(resp)
		}
	case *workflowservice.RespondWorkflowTaskCompletedRequest:
		if r.GetIntermediatePage() { // a completion in pages: the last one answers the task
			break
		}
		task := c.answered(r.TaskToken)
		if resp, ok := reply.(*workflowservice.RespondWorkflowTaskCompletedResponse); ok {
			c.polled(resp.WorkflowTask)
		}
		if task != nil && task.end != nil && closes(r) {
			c.endSession(*task.end)
		}
	case *workflowservice.RespondWorkflowTaskFailedRequest:
		c.answered(r.TaskToken)
	case *workflowservice.RespondQueryTaskCompletedRequest:
		c.answered(r.TaskToken)
	}
	return nil
}

// polled notes a workflow task the worker received.
func (c *CloseWatch) polled(t *workflowservice.PollWorkflowTaskQueueResponse) {
	if t == nil || len(t.TaskToken) == 0 || t.WorkflowExecution == nil {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.lastSweep) > time.Minute {
		c.lastSweep = now
		for token, task := range c.tasks {
			if now.Sub(task.polled) > staleTask {
				c.forget(token, task)
			}
		}
	}
	runID := t.WorkflowExecution.RunId
	c.tasks[string(t.TaskToken)] = &watchedTask{runID: runID, polled: now}
	c.current[runID] = string(t.TaskToken)
}

// answered forgets the task of token and returns it (nil when the task was not seen).
func (c *CloseWatch) answered(token []byte) *watchedTask {
	c.mu.Lock()
	defer c.mu.Unlock()
	task := c.tasks[string(token)]
	if task != nil {
		c.forget(string(token), task)
	}
	return task
}

func (c *CloseWatch) forget(token string, task *watchedTask) {
	delete(c.tasks, token)
	if c.current[task.runID] == token {
		delete(c.current, task.runID)
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

// endSession ends a closed run's session in the background, retrying transient failures
// for a while.
func (c *CloseWatch) endSession(e runEnd) {
	c.mu.Lock()
	end := c.end
	c.mu.Unlock()
	if end == nil {
		return
	}
	c.ends.Add(1)
	go func() {
		defer c.ends.Done()
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
	}()
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
	_, ok := c.current[runID]
	return ok
}

// endAtClose asks the watch to end the session if the completion of the run's task in
// flight closes the run and the server accepts it. Without a watch (a replay of a run that
// chose it, on a worker without one) the sweeper ends the session.
func (c *CloseWatch) endAtClose(runID, sessionID, holder string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if task := c.tasks[c.current[runID]]; task != nil {
		task.end = &runEnd{sessionID: sessionID, holder: holder}
	}
}
