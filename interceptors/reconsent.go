package interceptors

import (
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// reconsent handles identity.ReconsentUpdate: it adopts the caller's new session as the
// run's, ends the old one, and wakes identity.AwaitReconsent.
func (w *workflowInbound) reconsent(ctx workflow.Context) error {
	caller, err := identity.FromWorkflow(ctx)
	if err != nil {
		return err
	}
	starter := w.state.starter
	if caller.Issuer != starter.Issuer || caller.Subject != starter.Subject {
		return identity.ApplicationError(&identity.DeniedError{Subject: caller.Subject,
			Reason: "only " + starter.Subject + ", who started this run, can renew its consent"})
	}
	old := starter.SessionID
	*starter = *caller // every holder of the run's identity now sees the new session and claims
	w.state.adopted[caller.SessionID] = true
	if w.state.owner && old != caller.SessionID {
		w.root.la.end(ctx, old, runHolder(workflow.GetInfo(ctx)))
	}
	w.state.owner = true
	w.state.reconsents++
	return nil
}

// AwaitReconsent implements identity.AwaitReconsent: it blocks until the next re-consent
// this run accepts.
func (r run) AwaitReconsent(ctx workflow.Context) error {
	n := r.st.reconsents
	return workflow.Await(ctx, func() bool { return r.st.reconsents > n })
}
