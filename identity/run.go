package identity

import (
	"fmt"

	"go.temporal.io/sdk/workflow"
)

// ReconsentUpdate is the update that renews the consent of a run whose session can no longer
// be refreshed (TypeReauthRequired): the starter sends it with a fresh login, and the run
// continues on the new session. Only the starter (same issuer and subject) may. The worker
// interceptor handles it; workflow code waits for it with AwaitReconsent.
const ReconsentUpdate = "oidcflow.reconsent"

// Run is what the worker interceptor offers the workflow code of one run besides the
// identity in its context: the verified senders of delivered signals, and re-consent. The
// interceptor installs it with WithRun before the workflow function runs; workflow code
// reaches it through SignalSender and AwaitReconsent. A Run changes only in workflow code,
// in the same order on replay.
type Run interface {
	// SignalSender: see the package function SignalSender.
	SignalSender(ctx workflow.Context, signalName string, value any) *Identity
	// AwaitReconsent: see the package function AwaitReconsent.
	AwaitReconsent(ctx workflow.Context) error
}

type runKey struct{}

// WithRun returns a copy of ctx that carries r. The worker interceptor calls it once per run;
// a test of workflow code without the interceptor may call it with a fake.
func WithRun(ctx workflow.Context, r Run) workflow.Context {
	return workflow.WithValue(ctx, runKey{}, r)
}

func runOf(ctx workflow.Context) Run {
	r, _ := ctx.Value(runKey{}).(Run)
	return r
}

// SignalSender returns the verified identity of whoever sent a delivered signal of that name
// whose argument is value (the value workflow code received from the signal channel), or nil
// when it carried none, its identity did not verify, or the run has no worker interceptor.
// Each delivered signal answers once, oldest first among signals with equal arguments, so
// call it once after each receive. A signal whose arguments could not be decoded never
// answers for another one: senders are matched by a digest of the arguments, not by arrival
// order.
func SignalSender(ctx workflow.Context, signalName string, value any) *Identity {
	r := runOf(ctx)
	if r == nil {
		return nil
	}
	return r.SignalSender(ctx, signalName, value)
}

// AwaitReconsent blocks until the run's starter renews consent through ReconsentUpdate.
// Workflows call it when an activity failed with TypeReauthRequired: the run parks instead
// of failing, and resumes on the new session. It fails with ErrUnauthenticated in a run
// without the worker interceptor; it does not time out by itself (cancel ctx or use a
// selector with a timer for that).
func AwaitReconsent(ctx workflow.Context) error {
	r := runOf(ctx)
	if r == nil {
		return fmt.Errorf("identity: this run has no worker interceptor to renew its consent: %w", ErrUnauthenticated)
	}
	return r.AwaitReconsent(ctx)
}
