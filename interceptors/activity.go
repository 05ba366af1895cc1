package interceptors

import (
	"context"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"

	"github.com/oidcflow/oidcflow/identity"
)

// activityInbound authenticates every activity task, local or remote, before any activity
// code runs: a person's reference resumes the session it names and puts the fresh identity
// into the context (identity.FromActivity); a pool reference marks the context as running
// under the pool's own authority (identity.RequirePool). A task with neither, or with one
// that does not check out for this run and activity type, fails with a non-retryable
// oidcflow.Unauthenticated error, unless a workflow type that passes through
// (WorkerOptions.IdentityWorkflows) scheduled it: then it runs with no identity and no
// authority.
type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	root *workerInterceptor
}

func (a *activityInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	return a.Next.Init(&activityOutbound{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}})
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	var ref reference
	ok, err := getHeader(interceptor.Header(ctx), SessionHeader, &ref)
	if err != nil {
		return nil, identity.ApplicationError(err)
	}
	info := activity.GetInfo(ctx)
	if !ok {
		// The server names the workflow that scheduled the task; a client cannot choose it.
		if info.WorkflowType != nil && a.root.passThrough(info.WorkflowType.Name) {
			return a.Next.ExecuteActivity(ctx, in)
		}
		return nil, identity.ApplicationError(ErrNoReference)
	}
	if strings.HasPrefix(ref.Op, opPool) {
		if err := a.root.keys.verify(&ref, opPool+info.ActivityType.Name, info.WorkflowExecution.RunID); err != nil {
			return nil, identity.ApplicationError(err)
		}
		return a.Next.ExecuteActivity(identity.WithPool(ctx), in)
	}
	if err := a.root.keys.verify(&ref, opActivity, info.WorkflowExecution.RunID); err != nil {
		return nil, identity.ApplicationError(err)
	}
	id, err := a.root.la.resumeSession(ctx, ref)
	if err != nil {
		return nil, err
	}
	return a.Next.ExecuteActivity(identity.WithActivity(ctx, id), in)
}

type activityOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
}

// GetLogger adds the subject to every activity log line.
func (a *activityOutbound) GetLogger(ctx context.Context) log.Logger {
	logger := a.Next.GetLogger(ctx)
	if id, err := identity.FromActivity(ctx); err == nil {
		return log.With(logger, "subject", id.Subject)
	}
	return logger
}
