package pool

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
)

// Metric names of oidcflow's own counters, which the pool reports through
// Config.MetricsHandler next to the SDK's.
const (
	MetricVerifications   = "oidcflow_verifications_total"    // label result: ok, refused, error
	MetricDenials         = "oidcflow_denials_total"          // policy refusals in activities and updates
	MetricRefreshes       = "oidcflow_refreshes_total"        // sessions refreshed at the IdP
	MetricRefreshFailures = "oidcflow_refresh_failures_total" // refreshes that failed
)

// countingAuth counts verifications by outcome.
type countingAuth struct {
	next                   interceptors.Authenticator
	ok, refused, transient client.MetricsCounter
}

func newCountingAuth(next interceptors.Authenticator, h client.MetricsHandler) *countingAuth {
	c := func(result string) client.MetricsCounter {
		return h.WithTags(map[string]string{"result": result}).Counter(MetricVerifications)
	}
	return &countingAuth{next: next, ok: c("ok"), refused: c("refused"), transient: c("error")}
}

func (c *countingAuth) count(err error) {
	switch {
	case err == nil:
		c.ok.Inc(1)
	case errors.Is(err, identity.ErrUnauthenticated) || errors.Is(err, identity.ErrReauthRequired) || errors.Is(err, identity.ErrForbidden):
		c.refused.Inc(1)
	default:
		c.transient.Inc(1)
	}
}

func (c *countingAuth) Open(ctx context.Context, op interceptors.Operation, sealed []byte) (*identity.Identity, error) {
	id, err := c.next.Open(ctx, op, sealed)
	c.count(err)
	return id, err
}

func (c *countingAuth) Resume(ctx context.Context, sessionID string) (*identity.Identity, error) {
	id, err := c.next.Resume(ctx, sessionID)
	c.count(err)
	return id, err
}

func (c *countingAuth) End(ctx context.Context, sessionID, holder string) error {
	return c.next.End(ctx, sessionID, holder)
}

func (c *countingAuth) SpendEnvelope(ctx context.Context, op interceptors.Operation, sealed []byte) error {
	return c.next.SpendEnvelope(ctx, op, sealed)
}

func (c *countingAuth) Spend(ctx context.Context, id, owner string, until time.Time) error {
	err := c.next.Spend(ctx, id, owner, until)
	if err != nil {
		c.count(err)
	}
	return err
}

// refreshCounter counts refreshes: the refresher reports each one it made at the IdP
// (RefresherOptions.OnRefreshed), so a refresh another worker made and this one waited for
// is not counted twice; failures are counted after the shared sessions' refresh checks
// (SharedSessionsOptions.OnFresh).
type refreshCounter struct{ refreshes, failures client.MetricsCounter }

func newRefreshCounter(h client.MetricsHandler) *refreshCounter {
	return &refreshCounter{refreshes: h.Counter(MetricRefreshes), failures: h.Counter(MetricRefreshFailures)}
}

// refreshed counts one refresh made at the IdP.
func (r *refreshCounter) refreshed(context.Context, string) { r.refreshes.Inc(1) }

// observe counts err, the outcome of one refresh check, as a failure unless it is nil or an
// identity refusal.
func (r *refreshCounter) observe(_ context.Context, _ string, err error) {
	if err != nil && !errors.Is(err, identity.ErrUnauthenticated) {
		r.failures.Inc(1)
	}
}

// denials counts policy refusals (oidcflow.Forbidden failures) of activities and updates.
type denials struct {
	interceptor.WorkerInterceptorBase
	activities client.MetricsCounter
}

func newDenials(h client.MetricsHandler) *denials {
	return &denials{activities: h.WithTags(map[string]string{"surface": "activity"}).Counter(MetricDenials)}
}

func isForbidden(err error) bool {
	var app *temporal.ApplicationError
	return errors.Is(err, identity.ErrForbidden) || errors.As(err, &app) && app.Type() == identity.TypeForbidden
}

func (d *denials) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &denialsActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, d: d}
}

func (d *denials) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &denialsWorkflow{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

type denialsActivity struct {
	interceptor.ActivityInboundInterceptorBase
	d *denials
}

func (a *denialsActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := a.Next.ExecuteActivity(ctx, in)
	if isForbidden(err) {
		a.d.activities.Inc(1)
	}
	return res, err
}

type denialsWorkflow struct {
	interceptor.WorkflowInboundInterceptorBase
}

// ExecuteUpdate counts through the workflow's metrics handler, which skips replays.
func (w *denialsWorkflow) ExecuteUpdate(ctx workflow.Context, in *interceptor.UpdateInput) (any, error) {
	res, err := w.Next.ExecuteUpdate(ctx, in)
	if isForbidden(err) {
		workflow.GetMetricsHandler(ctx).Counter(MetricDenials).Inc(1)
	}
	return res, err
}
