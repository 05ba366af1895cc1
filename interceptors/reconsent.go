package interceptors

import (
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// ReconsentUpdate is the update that renews the consent of a run whose session can no longer
// be refreshed (identity.TypeReauthRequired): the starter sends it with a fresh login, and
// the run continues on the new session. Only the starter (same issuer and subject) may.
const ReconsentUpdate = "oidcflow.reconsent"

// reconsent adopts the caller's new session as the run's, ends the old one, and wakes
// AwaitReconsent.
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
		w.root.la.end(ctx, old, workflow.GetInfo(ctx).WorkflowExecution.ID)
	}
	w.state.owner = true
	w.state.reconsents++
	return nil
}

// AwaitReconsent blocks until the run's starter renews consent through ReconsentUpdate.
// Workflows call it when an activity failed with identity.TypeReauthRequired: the run parks
// instead of failing, and resumes on the new session.
func AwaitReconsent(ctx workflow.Context) error {
	st := stateOf(ctx)
	if st == nil {
		return ErrNoIdentity
	}
	n := st.reconsents
	return workflow.Await(ctx, func() bool { return st.reconsents > n })
}
