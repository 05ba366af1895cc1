package workflows

import (
	"context"
	"encoding/json"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
)

const testIssuer = "https://idp.example.test/"

// personas mirror the dev personas, with effective roles already expanded.
var personas = map[string]*identity.Identity{
	"alice":   {Subject: "alice", Issuer: testIssuer, Roles: []string{"admin"}, Department: "it"},
	"bob":     {Subject: "bob", Issuer: testIssuer, Roles: []string{"engineer"}, Department: "engineering"},
	"carol":   {Subject: "carol", Issuer: testIssuer, Roles: []string{"db-approver"}, Department: "engineering"},
	"chuck":   {Subject: "chuck", Issuer: testIssuer, Roles: []string{"db-approver"}, Department: "engineering"},
	"mallory": {Subject: "mallory", Issuer: testIssuer, Roles: []string{"db-approver"}, Department: "marketing"},
	"dave": {Subject: "dave", Issuer: testIssuer, Roles: []string{"finance-approver"},
		Permissions: []string{"can_approve_invoice"}, Department: "finance"},
	"gina": {Subject: "gina", Issuer: testIssuer, Permissions: []string{"can_approve_invoice"}, Department: "sales"},
	"hank": {Subject: "hank", Issuer: testIssuer, Permissions: []string{"can_approve_invoice"}, Department: "sales"},
	"erin": {Subject: "erin", Issuer: testIssuer, Department: "engineering"},
	// frank is an admin through group sre (nested-role expansion already applied).
	"frank": {Subject: "frank", Issuer: testIssuer, Roles: []string{"sre", "admin"}, Groups: []string{"sre"}, Department: "it"},
}

// testIdentity stands in for the identity interceptors: the test environment sends no headers,
// so it puts the starter's identity into the workflow context and the caller's identity into
// update handlers, looked up from the update id "<action>-<persona>[-n]". An activity runs
// as whoever scheduled it: the subject of the scheduling context's identity, or the worker
// pool (identity.WithPool) when it was scheduled from identity.AsPool or a context without
// identity, as the real interceptors do; the test header testRunsAs carries which.
type testIdentity struct {
	interceptor.WorkerInterceptorBase
	starter string
}

func (t *testIdentity) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	i := &testWorkflowInbound{starter: t.starter}
	i.Next = next
	return i
}

func (t *testIdentity) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &testActivityInbound{starter: t.starter}
	i.Next = next
	return i
}

type testWorkflowInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	starter string
}

// testRunsAs is the header the test interceptors pass from the scheduling workflow context
// to the activity: a persona's subject, or testPool.
const (
	testRunsAs = "test-runs-as"
	testPool   = "<pool>"
)

func (i *testWorkflowInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&testWorkflowOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}})
}

type testWorkflowOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
}

func (o *testWorkflowOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	as := testPool
	if id, err := identity.FromWorkflow(ctx); err == nil {
		as = id.Subject
	}
	if p, err := converter.GetDefaultDataConverter().ToPayload(as); err == nil {
		interceptor.WorkflowHeader(ctx)[testRunsAs] = p
	}
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

func (i *testWorkflowInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	if id := personas[i.starter]; id != nil {
		ctx = identity.WithWorkflow(ctx, id)
	}
	return i.Next.ExecuteWorkflow(ctx, in)
}

func (i *testWorkflowInbound) ExecuteUpdate(ctx workflow.Context, in *interceptor.UpdateInput) (any, error) {
	if parts := strings.Split(workflow.GetCurrentUpdateInfo(ctx).ID, "-"); len(parts) >= 2 {
		if id := personas[parts[1]]; id != nil {
			ctx = identity.WithWorkflow(ctx, id)
		}
	}
	return i.Next.ExecuteUpdate(ctx, in)
}

type testActivityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	starter string
}

func (i *testActivityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	as := i.starter
	if p := interceptor.Header(ctx)[testRunsAs]; p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &as)
	}
	if as == testPool {
		ctx = identity.WithPool(ctx)
	} else if id := personas[as]; id != nil {
		ctx = identity.WithActivity(ctx, id)
	}
	return i.Next.ExecuteActivity(ctx, in)
}

// notes records notifications.
type notes struct {
	mu  sync.Mutex
	all []activities.NotifyInput
}

func (n *notes) add(in activities.NotifyInput) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.all = append(n.all, in)
}

func (n *notes) events() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, in := range n.all {
		out = append(out, in.Event+"@"+in.Audience)
	}
	return out
}

var (
	dbAct     *activities.DatabaseActivities
	notifyAct *activities.NotifyActivities
)

// newEnv returns a time-skipping environment with all workflows and activities registered,
// the starter's identity injected, and notifications recorded.
func newEnv(t *testing.T, starter string) (*testsuite.TestWorkflowEnvironment, *notes) {
	t.Helper()
	env := newTestEnv()
	env.SetWorkerOptions(testWorkerOptions(starter))
	env.RegisterWorkflowWithOptions(AccessRequest, workflow.RegisterOptions{Name: AccessRequestWorkflow})
	env.RegisterWorkflowWithOptions(InvoiceApproval, workflow.RegisterOptions{Name: InvoiceApprovalWorkflow})
	env.RegisterWorkflowWithOptions(AdminTask, workflow.RegisterOptions{Name: AdminTaskWorkflow})
	env.RegisterActivity(&activities.DatabaseActivities{})
	env.RegisterActivity(&activities.NotifyActivities{})
	n := &notes{}
	env.OnActivity(notifyAct.Notify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NotifyInput) (activities.NotifyResult, error) {
			n.add(in)
			return activities.NotifyResult{Delivered: true}, nil
		}).Maybe()
	t.Cleanup(func() { env.AssertExpectations(t) })
	return env, n
}

// upd records what happened to one update.
type upd struct {
	accepted, rejected, completed bool
	err                           error
	val                           any
}

func (u *upd) callbacks() *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnAccept:   func() { u.accepted = true },
		OnReject:   func(err error) { u.rejected, u.err = true, err },
		OnComplete: func(v any, err error) { u.completed, u.val, u.err = true, v, err },
	}
}

// failed reports whether the update was accepted and then failed (the audit-visible refusal).
func (u *upd) failed() bool { return u.accepted && u.completed && u.err != nil }

// succeeded reports whether the update completed without error.
func (u *upd) succeeded() bool { return u.accepted && u.completed && u.err == nil }

func testWorkerOptions(starter string) worker.Options {
	return worker.Options{Interceptors: []interceptor.WorkerInterceptor{&testIdentity{starter: starter}}}
}

// converterGet decodes an update result as the test environment hands it over.
func converterGet(v any, out any) error {
	if ev, ok := v.(interface{ Get(valuePtr any) error }); ok {
		return ev.Get(out)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// newTestEnv returns a time-skipping environment that logs warnings and errors only.
func newTestEnv() *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	return suite.NewTestWorkflowEnvironment()
}

func startOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: id, TaskQueue: TaskQueue}
}
