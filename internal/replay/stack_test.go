package replay_test

// Helpers of the tests that drive runs on the real dev stack: the worker binary, built once
// per test process and run as a pool member on a task queue of the test's own, and clients
// that carry a persona's identity.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/workflows"
)

// tmp is this test process's scratch folder (the worker binary).
var tmp string

func TestMain(m *testing.M) {
	var err error
	if tmp, err = os.MkdirTemp("", "oidcflow-replay-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

var workerBuild struct {
	once sync.Once
	path string
	err  error
}

// workerBinary builds the worker command of this module once per test process.
func workerBinary(t *testing.T) string {
	t.Helper()
	workerBuild.once.Do(func() {
		workerBuild.path = filepath.Join(tmp, "worker")
		out, err := exec.Command("go", "build", "-o", workerBuild.path, "github.com/oidcflow/oidcflow/worker").CombinedOutput()
		if err != nil {
			workerBuild.err = fmt.Errorf("build the worker: %v\n%s", err, out)
		}
	})
	if workerBuild.err != nil {
		t.Fatal(workerBuild.err)
	}
	return workerBuild.path
}

// configPrefixes start the variables the worker reads; this process's own are dropped, so
// that the worker runs with the stack's settings and the test's only.
var configPrefixes = []string{"OIDCFLOW_", "TEMPORAL_", "VAULT_"}

// startWorker runs the worker binary on queue with the stack's settings (its env file's
// variables, minus those in drop), then the given NAME=value overrides, until the test
// ends; then it stops it with SIGTERM. Its log is shown when the test fails.
func startWorker(t *testing.T, st *testharness.Stack, queue string, drop []string, overrides ...string) {
	t.Helper()
	cmd := exec.Command(workerBinary(t))
	for _, kv := range os.Environ() {
		if !hasPrefix(kv, configPrefixes) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for _, kv := range st.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, name) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "OIDCFLOW_TASK_QUEUE="+queue, "OIDCFLOW_HTTP_ADDR=127.0.0.1:0",
		"OIDCFLOW_LOG_FORMAT=text", "OIDCFLOW_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, overrides...)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the worker: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(45 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("worker on %s:\n%s", queue, logs.String())
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// taskQueue is a task queue name of a test's own.
func taskQueue(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// plainClient dials the stack's Temporal without identity (queries, cancels, histories).
func plainClient(t *testing.T, st *testharness.Stack) client.Client {
	t.Helper()
	c, err := client.Dial(st.TemporalOptions(st.OperatorTokenSource()))
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// identityClient dials Temporal with a client that seals tok into every start, signal and
// update; with codec, it encrypts payloads through the stack's codec server as starters do.
func identityClient(t *testing.T, st *testharness.Stack, tok *oauth2.Token, codec bool) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := interceptors.DialOptions{
		Client:      client.Options{HostPort: st.Env("TEMPORAL_ADDRESS"), Namespace: st.Env("TEMPORAL_NAMESPACE")},
		TokenSource: oauth2.StaticTokenSource(tok),
		PublicKey:   st.Env("OIDCFLOW_ENVELOPE_PUBLIC_KEY"),
		Bearer:      st.Authorizes(),
	}
	if codec {
		o.CodecEndpoint, o.CodecCAFile = st.Env("OIDCFLOW_CODEC_ENDPOINT"), st.Env("OIDCFLOW_CODEC_CA_FILE")
	}
	c, err := interceptors.Dial(ctx, o)
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// update sends an update and waits for its result. Handlers are registered once the run's
// identity is verified, so an update that arrives before is "unknown" and sent again.
func update(ctx context.Context, c client.Client, o client.UpdateWorkflowOptions, out any) error {
	o.WaitForStage = client.WorkflowUpdateStageCompleted
	for attempt := 0; ; attempt++ {
		h, err := c.UpdateWorkflow(ctx, o)
		if err == nil {
			err = h.Get(ctx, out)
		}
		if err != nil && strings.Contains(err.Error(), "unknown update") && attempt < 50 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return err
	}
}

// query asks run id the query name until it answers (the handler is registered once the
// identity is verified), and decodes the answer into a T.
func query[T any](t *testing.T, ctx context.Context, c client.Client, id, name string) T {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := c.QueryWorkflow(qctx, id, "", name)
		cancel()
		if err == nil {
			var out T
			if err := v.Get(&out); err != nil {
				t.Fatalf("decode %s of %s: %v", name, id, err)
			}
			return out
		}
		last = err
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("query %s of %s: %v (%v)", name, id, ctx.Err(), last)
	var zero T
	return zero
}

// waitState polls run id's status query (an AccessStatus or InvoiceStatus) until the state
// is want.
func waitState[T interface{ state() workflows.State }](t *testing.T, ctx context.Context, c client.Client, id string, want workflows.State) {
	t.Helper()
	for {
		s := query[T](t, ctx, c, id, workflows.QueryStatus).state()
		if s == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s is %s, want %s: %v", id, s, want, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

type accessStatus workflows.AccessStatus

func (s accessStatus) state() workflows.State { return s.State }

type invoiceStatus workflows.InvoiceStatus

func (s invoiceStatus) state() workflows.State { return s.State }

// history reads a run's whole history.
func history(ctx context.Context, c client.Client, id, runID string) (*historypb.History, error) {
	h := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, err
		}
		h.Events = append(h.Events, e)
	}
	return h, nil
}

// waitEvent polls the run's history until an event satisfies match.
func waitEvent(t *testing.T, ctx context.Context, c client.Client, id, runID string, what string, match func(*historypb.HistoryEvent) bool) {
	t.Helper()
	for {
		h, err := history(ctx, c, id, runID)
		if err == nil {
			for _, e := range h.Events {
				if match(e) {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: no %s in its history: %v (%v)", id, what, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// describe returns the server's description of a run.
func describe(ctx context.Context, c client.Client, id, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	d, err := c.DescribeWorkflow(ctx, id, runID)
	if err != nil {
		return nil, err
	}
	return d.RawResponse, nil
}

// errNotSettled: the run has a workflow task or activities under way.
var errNotSettled = errors.New("not settled")

// settled returns the run's history once nothing is under way in it but activities of the
// types in allow: no workflow task pending, the last one completed (or the run closed).
func settled(t *testing.T, ctx context.Context, c client.Client, id, runID string, allow ...string) *historypb.History {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		h, err := trySettled(ctx, c, id, runID, allow)
		if err == nil {
			return h
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s never settled: %v", id, last)
	return nil
}

func trySettled(ctx context.Context, c client.Client, id, runID string, allow []string) (*historypb.History, error) {
	d, err := describe(ctx, c, id, runID)
	if err != nil {
		return nil, err
	}
	if d.GetPendingWorkflowTask() != nil {
		return nil, fmt.Errorf("%w: workflow task pending", errNotSettled)
	}
	for _, a := range d.GetPendingActivities() {
		if !slices.Contains(allow, a.GetActivityType().GetName()) {
			return nil, fmt.Errorf("%w: activity %s pending", errNotSettled, a.GetActivityType().GetName())
		}
	}
	h, err := history(ctx, c, id, runID)
	if err != nil {
		return nil, err
	}
	for i := len(h.Events) - 1; i >= 0; i-- {
		switch h.Events[i].GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			return h, nil
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED,
			enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED, enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
			return nil, fmt.Errorf("%w: history ends inside a workflow task", errNotSettled)
		}
	}
	return nil, fmt.Errorf("%w: no workflow task completed", errNotSettled)
}
