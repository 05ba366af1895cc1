package interceptors

import (
	"encoding/hex"
	"fmt"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// workflowOutbound attaches references to everything a workflow sends out: a person's
// session where the context carries an identity, the pool's own authority on activities
// where it carries none (identity.AsPool).
type workflowOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	root  *workerInterceptor
	state *runState
}

// attach signs r for the identity in ctx and writes it into the call's header. Without an
// identity, only activities get a reference: the pool's.
func (w *workflowOutbound) attach(ctx workflow.Context, r reference, activityType string) {
	id, err := identity.FromWorkflow(ctx)
	switch {
	case err == nil && id.SessionID != "":
		r.Session, r.Subject = id.SessionID, id.Subject
		if r.Op != opActivity && r.Sender == nil {
			// The receiving run starts from the identity verified here, without a round trip
			// to Vault and the IdP; its activities check a fresh token as always.
			sender := *id
			sender.SessionID = ""
			r.Sender = &sender
		}
	case r.Op == opActivity:
		r = reference{Op: opPool + activityType, From: r.From}
	default:
		return
	}
	w.root.keys.sign(&r)
	if err := setHeader(interceptor.WorkflowHeader(ctx), SessionHeader, r); err != nil {
		w.Next.GetLogger(ctx).Warn("reference not attached", "error", err.Error())
	}
}

func (w *workflowOutbound) runID(ctx workflow.Context) string {
	return workflow.GetInfo(ctx).WorkflowExecution.RunID
}

func (w *workflowOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	w.attach(ctx, reference{Op: opActivity, From: w.runID(ctx)}, activityType)
	return w.Next.ExecuteActivity(ctx, activityType, args...)
}

// ExecuteLocalActivity attaches a reference too: the activity interceptor treats local and
// remote tasks alike. oidcflow's own verification activities run under the pool's authority.
func (w *workflowOutbound) ExecuteLocalActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	w.attach(ctx, reference{Op: opActivity, From: w.runID(ctx)}, activityType)
	return w.Next.ExecuteLocalActivity(ctx, activityType, args...)
}

func (w *workflowOutbound) ExecuteChildWorkflow(ctx workflow.Context, childWorkflowType string, args ...any) workflow.ChildWorkflowFuture {
	w.attach(ctx, reference{Op: opChild, From: w.runID(ctx)}, "")
	return w.Next.ExecuteChildWorkflow(ctx, childWorkflowType, args...)
}

func (w *workflowOutbound) NewContinueAsNewError(ctx workflow.Context, wfn any, args ...any) error {
	w.attach(ctx, reference{Op: opContinue, From: w.runID(ctx), Owner: w.state.owner}, "")
	return w.Next.NewContinueAsNewError(ctx, wfn, args...)
}

func (w *workflowOutbound) NewContinueAsNewErrorWithOptions(ctx workflow.Context, options workflow.ContinueAsNewErrorOptions, wfn any, args ...any) error {
	w.attach(ctx, reference{Op: opContinue, From: w.runID(ctx), Owner: w.state.owner}, "")
	return w.Next.NewContinueAsNewErrorWithOptions(ctx, options, wfn, args...)
}

// signalRef attaches a reference bound to the target (and its run, when named), the
// signal's arguments and an expiry.
func (w *workflowOutbound) signalRef(ctx workflow.Context, workflowID, runID, signalName string, arg any) {
	info := workflow.GetInfo(ctx)
	w.state.seq++
	target := info.Namespace + "/" + workflowID
	if runID != "" {
		target += "/" + runID
	}
	r := reference{
		Op:      opSignal + signalName,
		Target:  target,
		From:    fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, w.state.seq),
		Expires: workflow.Now(ctx).Add(w.root.opts.ReferenceTTL).Unix(),
	}
	d, err := InputDigest(signalName, arg)
	if err != nil {
		w.Next.GetLogger(ctx).Warn("reference not attached", "error", err.Error())
		return
	}
	r.Digest = hex.EncodeToString(d)
	w.attach(ctx, r, "")
}

func (w *workflowOutbound) SignalExternalWorkflow(ctx workflow.Context, workflowID, runID, signalName string, arg any) workflow.Future {
	w.signalRef(ctx, workflowID, runID, signalName, arg)
	return w.Next.SignalExternalWorkflow(ctx, workflowID, runID, signalName, arg)
}

func (w *workflowOutbound) SignalExternalWorkflowWithOptions(ctx workflow.Context, workflowID, runID, signalName string, arg any, options workflow.SignalExternalWorkflowOptions) workflow.Future {
	w.signalRef(ctx, workflowID, runID, signalName, arg)
	return w.Next.SignalExternalWorkflowWithOptions(ctx, workflowID, runID, signalName, arg, options)
}

func (w *workflowOutbound) SignalChildWorkflow(ctx workflow.Context, workflowID, signalName string, arg any) workflow.Future {
	w.signalRef(ctx, workflowID, "", signalName, arg)
	return w.Next.SignalChildWorkflow(ctx, workflowID, signalName, arg)
}

func (w *workflowOutbound) SignalChildWorkflowWithOptions(ctx workflow.Context, workflowID, signalName string, arg any, options workflow.SignalChildWorkflowOptions) workflow.Future {
	w.signalRef(ctx, workflowID, "", signalName, arg)
	return w.Next.SignalChildWorkflowWithOptions(ctx, workflowID, signalName, arg, options)
}

// GetLogger adds the acting subject to every workflow log line.
func (w *workflowOutbound) GetLogger(ctx workflow.Context) log.Logger {
	logger := w.Next.GetLogger(ctx)
	if id, err := identity.FromWorkflow(ctx); err == nil {
		return log.With(logger, "subject", id.Subject)
	}
	return logger
}
