package testharness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"golang.org/x/oauth2"
)

// Insider is the persona attackers log in as: a low-privilege account that may start and
// signal workflows at the Temporal frontend (oidcflow:write) and holds no role.
const Insider = "frank"

// PlainClient dials the stack's Temporal frontend as an attacker with a plain SDK client
// would: no oidcflow interceptor, no identity, only the Insider's access token where the
// frontend wants one. With headers, it writes them (copied from history, say) onto every
// start, signal, signal-with-start and update it sends.
func (s *Stack) PlainClient(t testing.TB, headers map[string]*commonpb.Payload) client.Client {
	t.Helper()
	var ts oauth2.TokenSource
	if s.Authorizes() {
		ts = oauth2.StaticTokenSource(s.Login(t, Insider))
	}
	opts := s.TemporalOptions(ts)
	if headers != nil {
		opts.Interceptors = []interceptor.ClientInterceptor{&headerWriter{headers: headers}}
	}
	return s.DialTemporal(t, opts)
}

// History returns every event of a run (runID "" for the latest).
func History(ctx context.Context, t testing.TB, c client.Client, workflowID, runID string) []*historypb.HistoryEvent {
	t.Helper()
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatalf("testharness: history of %s: %v", workflowID, err)
		}
		events = append(events, e)
	}
	return events
}

// EventHeader returns the header an event recorded: a start's, an accepted update's, a
// signal's, or a scheduled activity's; nil for other events.
func EventHeader(e *historypb.HistoryEvent) map[string]*commonpb.Payload {
	switch {
	case e.GetWorkflowExecutionStartedEventAttributes() != nil:
		return e.GetWorkflowExecutionStartedEventAttributes().GetHeader().GetFields()
	case e.GetWorkflowExecutionUpdateAcceptedEventAttributes() != nil:
		return e.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput().GetHeader().GetFields()
	case e.GetWorkflowExecutionSignaledEventAttributes() != nil:
		return e.GetWorkflowExecutionSignaledEventAttributes().GetHeader().GetFields()
	case e.GetActivityTaskScheduledEventAttributes() != nil:
		return e.GetActivityTaskScheduledEventAttributes().GetHeader().GetFields()
	}
	return nil
}

// headerWriter writes fixed header fields onto every call that carries a header.
type headerWriter struct {
	interceptor.ClientInterceptorBase
	headers map[string]*commonpb.Payload
}

func (h *headerWriter) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &headerWriterOutbound{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next}, headers: h.headers}
}

type headerWriterOutbound struct {
	interceptor.ClientOutboundInterceptorBase
	headers map[string]*commonpb.Payload
}

func (h *headerWriterOutbound) write(ctx context.Context) {
	if hdr := interceptor.Header(ctx); hdr != nil {
		for k, v := range h.headers {
			hdr[k] = v
		}
	}
}

func (h *headerWriterOutbound) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	h.write(ctx)
	return h.Next.ExecuteWorkflow(ctx, in)
}

func (h *headerWriterOutbound) SignalWorkflow(ctx context.Context, in *interceptor.ClientSignalWorkflowInput) error {
	h.write(ctx)
	return h.Next.SignalWorkflow(ctx, in)
}

func (h *headerWriterOutbound) SignalWithStartWorkflow(ctx context.Context, in *interceptor.ClientSignalWithStartWorkflowInput) (client.WorkflowRun, error) {
	h.write(ctx)
	return h.Next.SignalWithStartWorkflow(ctx, in)
}

func (h *headerWriterOutbound) UpdateWorkflow(ctx context.Context, in *interceptor.ClientUpdateWorkflowInput) (client.WorkflowUpdateHandle, error) {
	h.write(ctx)
	return h.Next.UpdateWorkflow(ctx, in)
}

// TemporalCLI returns the path of the stack's `temporal` binary (bin/temporal next to the
// stack's .stack folder, where `make up` links it).
func (s *Stack) TemporalCLI() string {
	return filepath.Join(filepath.Dir(filepath.Dir(s.path)), "bin", "temporal")
}

// TemporalCommand is a `temporal` CLI command against the stack's frontend and namespace,
// as the operator where the frontend authorizes its callers: the token goes in
// TEMPORAL_API_KEY (not on the command line), with --tls=false, as the README tells users.
func (s *Stack) TemporalCommand(ctx context.Context, t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	args = append(args, "--address", s.Env("TEMPORAL_ADDRESS"), "--namespace", s.Env("TEMPORAL_NAMESPACE"))
	cmd := exec.CommandContext(ctx, s.TemporalCLI(), args...)
	cmd.Env = os.Environ()
	if s.Authorizes() {
		tok, err := s.OperatorTokenSource().Token()
		if err != nil {
			t.Fatalf("testharness: operator token: %v", err)
		}
		cmd.Args = append(cmd.Args, "--tls=false")
		cmd.Env = append(cmd.Env, "TEMPORAL_API_KEY="+tok.AccessToken)
	}
	return cmd
}
