package identity_test

import (
	"errors"
	"testing"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// fakeRun answers SignalSender with one sender and counts AwaitReconsent calls.
type fakeRun struct {
	sender   *identity.Identity
	awaited  int
	lastName string
}

func (f *fakeRun) SignalSender(_ workflow.Context, name string, _ any) *identity.Identity {
	f.lastName = name
	return f.sender
}

func (f *fakeRun) AwaitReconsent(workflow.Context) error { f.awaited++; return nil }

// TestRunHooks: workflow code reaches signal senders and re-consent through identity, and
// gets nothing (no sender, ErrUnauthenticated) in a run without the worker interceptor.
func TestRunHooks(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := &fakeRun{sender: &identity.Identity{Subject: "carol"}}
	env.ExecuteWorkflow(func(ctx workflow.Context) error {
		if id := identity.SignalSender(ctx, "ping", "x"); id != nil {
			t.Errorf("sender without a run = %v, want nil", id)
		}
		if err := identity.AwaitReconsent(ctx); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("AwaitReconsent without a run = %v, want ErrUnauthenticated", err)
		}
		ctx = identity.WithRun(ctx, f)
		if id := identity.SignalSender(ctx, "ping", "x"); id.Subject != "carol" || f.lastName != "ping" {
			t.Errorf("sender = %v (asked for %q), want carol for ping", id, f.lastName)
		}
		return identity.AwaitReconsent(ctx)
	})
	if err := env.GetWorkflowError(); err != nil || f.awaited != 1 {
		t.Fatalf("workflow error %v, AwaitReconsent reached the run %d times", err, f.awaited)
	}
}
