package attacks_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/pgaccess"
	"github.com/oidcflow/oidcflow/tokenstore"
	"github.com/oidcflow/oidcflow/workflows"
)

// evilInput names an activity of the pool and its argument.
type evilInput struct {
	TaskQueue string          `json:"task_queue"`
	Activity  string          `json:"activity"`
	Arg       json.RawMessage `json:"arg"`
}

// evil is the attacker's own workflow, on the attacker's own worker: it schedules one of the
// pool's activities on the pool's task queue, once.
func evil(ctx workflow.Context, in evilInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: in.TaskQueue, StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	return workflow.ExecuteActivity(ctx, in.Activity, in.Arg).Get(ctx, nil)
}

// headerStamper writes fixed fields into the header of every activity the attacker's
// workflow schedules: a reference copied from the victim's history.
type headerStamper struct {
	interceptor.WorkerInterceptorBase
	fields map[string]*commonpb.Payload
}

func (h *headerStamper) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &stamperInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, fields: h.fields}
}

type stamperInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	fields map[string]*commonpb.Payload
}

func (s *stamperInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return s.Next.Init(&stamperOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, fields: s.fields})
}

type stamperOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	fields map[string]*commonpb.Payload
}

func (s *stamperOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	//workflowcheck:ignore the loop fills a map, so the order does not matter
	for k, v := range s.fields {
		interceptor.WorkflowHeader(ctx)[k] = v
	}
	return s.Next.ExecuteActivity(ctx, activityType, args...)
}

// TestAttackAnonymousPoolActivities: someone who can poll any task queue runs a
// workflow of their own that schedules the pool's activities on the pool's task queue, with
// no header or with a reference copied from a victim's history, naming the victim's session
// read from history. Every task is refused before the activity runs: the session stays, no
// webhook post goes out, no database role changes.
func TestAttackAnonymousPoolActivities(t *testing.T) {
	var posts atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { posts.Add(1) }))
	t.Cleanup(hook.Close)
	r := newRig(t, "OIDCFLOW_WEBHOOK_URL", hook.URL)
	ctx := testContext(t, 3*time.Minute)

	// The victim: bob keeps a session alive on the pool.
	bob, _ := apptest.Client(t, r.st, "bob")
	victim, sessionID, stolen := r.keepAlive(ctx, t, bob)
	store := vaultStore(t, r)
	if _, err := store.Get(ctx, sessionID); err != nil {
		t.Fatalf("the victim's session: %v", err)
	}

	arg := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	attacks := []evilInput{
		{Activity: "RefreshSession", Arg: arg(activities.RefreshSessionInput{SessionID: sessionID})},
		{Activity: "EndSession", Arg: arg(activities.EndSessionInput{SessionID: sessionID, Holder: victim})},
		{Activity: "Notify", Arg: arg(activities.NotifyInput{Event: "access.granted", Text: "<!channel> all approved"})},
		{Activity: "RevokeAccess", Arg: arg(activities.RevokeAccessInput{RequestID: victim, Requester: "bob"})},
		{Activity: "GrantAccess", Arg: arg(activities.GrantAccessInput{RequestID: "evil", Requester: "erin",
			Database: "demo", Access: pgaccess.AccessWrite, Duration: time.Hour})},
	}
	for name, fields := range map[string]map[string]*commonpb.Payload{"no header": nil, "copied reference": stolen} {
		t.Run(name, func(t *testing.T) {
			evilQueue := apptest.TaskQueue("evil")
			// Running a worker takes the worker permission where the frontend authorizes:
			// the attacker holds a worker credential of the namespace (another team's pool).
			attacker := r.st.PlainClient(t, nil)
			if r.st.Authorizes() {
				attacker = r.st.DialTemporal(t, r.st.TemporalOptions(r.st.WorkerTokenSource()))
			}
			wo := worker.Options{}
			if fields != nil {
				wo.Interceptors = []interceptor.WorkerInterceptor{&headerStamper{fields: fields}}
			}
			w := worker.New(attacker, evilQueue, wo)
			w.RegisterWorkflowWithOptions(evil, workflow.RegisterOptions{Name: "Evil"})
			if err := w.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(w.Stop)
			for _, in := range attacks {
				in.TaskQueue = r.queue
				run, err := attacker.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: evilQueue}, "Evil", in)
				if err != nil {
					t.Fatal(err)
				}
				wantRefused(t, in.Activity, run.Get(ctx, nil))
			}
		})
	}
	if n := posts.Load(); n != 0 {
		t.Errorf("the webhook got %d posts", n)
	}
	if _, err := store.Get(ctx, sessionID); err != nil {
		t.Errorf("the victim's session is gone: %v", err)
	}
}

// vaultStore reads sessions with the stack's root token.
func vaultStore(t *testing.T, r *rig) *tokenstore.Store {
	t.Helper()
	s, err := tokenstore.NewStore(tokenstore.StoreOptions{Client: r.worker.Vault, Mount: r.st.Env("OIDCFLOW_VAULT_KV_MOUNT")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keepAlive starts a KeepAlive run as c (its session lives in Vault) and returns the run's
// workflow id, its session id and the reference header of its refresh activity, all read
// from history as an attacker would.
func (r *rig) keepAlive(ctx context.Context, t *testing.T, c client.Client) (string, string, map[string]*commonpb.Payload) {
	t.Helper()
	id := "keepalive-" + apptest.TaskQueue(r.queue)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue},
		workflows.KeepAliveWorkflow, workflows.KeepAliveInput{Until: time.Now().Add(10 * time.Minute), Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	operator := r.st.OperatorClient(t)
	t.Cleanup(func() { _ = operator.TerminateWorkflow(context.Background(), id, "", "test over") })
	// The attacker reads payloads as anyone with read permission may (through the codec
	// server, where the pool encrypts them).
	dc := r.st.DataConverter(t)
	for {
		for _, e := range testharness.History(ctx, t, c, id, run.GetRunID()) {
			if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "RefreshSession" {
				var in activities.RefreshSessionInput
				if err := dc.FromPayloads(a.GetInput(), &in); err != nil {
					t.Fatal(err)
				}
				return id, in.SessionID, map[string]*commonpb.Payload{interceptors.SessionHeader: a.GetHeader().GetFields()[interceptors.SessionHeader]}
			}
		}
		sleep(ctx, t)
	}
}
