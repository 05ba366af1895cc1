package telemetry

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// Denials returns a worker interceptor that counts policy refusals (MetricDenials): an
// activity or an update that failed with identity.ErrForbidden or an oidcflow.Forbidden
// ApplicationError. Updates are counted when first executed, not on replay. Put it after
// oidcflow's worker interceptor, so that the refusals it sees are the workflow code's.
func (t *Telemetry) Denials() interceptor.WorkerInterceptor { return &denials{i: t.inst} }

func metricWith(kv ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributes(kv...)
}

func isForbidden(err error) bool {
	var app *temporal.ApplicationError
	return errors.Is(err, identity.ErrForbidden) || errors.As(err, &app) && app.Type() == identity.TypeForbidden
}

type denials struct {
	interceptor.WorkerInterceptorBase
	i *instruments
}

func (d *denials) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &denialsActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, i: d.i}
}

func (d *denials) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &denialsWorkflow{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, i: d.i}
}

type denialsActivity struct {
	interceptor.ActivityInboundInterceptorBase
	i *instruments
}

func (a *denialsActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := a.Next.ExecuteActivity(ctx, in)
	if isForbidden(err) {
		a.i.denials.Add(context.Background(), 1, a.i.activity)
	}
	return res, err
}

type denialsWorkflow struct {
	interceptor.WorkflowInboundInterceptorBase
	i *instruments
}

// ExecuteUpdate counts a refusal unless replaying: a metric is no command, so it does not
// change what the workflow does, only how often it would be counted.
func (w *denialsWorkflow) ExecuteUpdate(ctx workflow.Context, in *interceptor.UpdateInput) (any, error) {
	res, err := w.Next.ExecuteUpdate(ctx, in)
	if isForbidden(err) && !workflow.IsReplaying(ctx) {
		w.i.denials.Add(context.Background(), 1, w.i.update)
	}
	return res, err
}
