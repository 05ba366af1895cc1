package interceptors

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// newOptInEnv returns a test environment whose interceptor handles only the workflow types
// in identityTypes (WorkerOptions.IdentityWorkflows).
func newOptInEnv(t *testing.T, identityTypes ...string) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	wi, err := NewWorkerInterceptor(WorkerOptions{Authenticator: &fakeAuth{sessions: map[string]*identity.Identity{}},
		PropagationSecrets: [][]byte{secret}, IdentityWorkflows: identityTypes})
	if err != nil {
		t.Fatal(err)
	}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{wi}})
	return env
}

func plainActivity(context.Context) (string, error) { return "plain", nil }

func needsIdentity(ctx context.Context) (string, error) {
	id, err := identity.FromActivity(ctx)
	if err != nil {
		return "", identity.ApplicationError(err)
	}
	return id.Subject, nil
}

// legacy is a workflow of a team's own that knows nothing of identity. It runs a plain
// activity, then tries what an attacker who controls its input might: a person's activity,
// and the pool's authority (identity.AsPool).
func legacy(ctx workflow.Context) ([]string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var out string
	if err := workflow.ExecuteActivity(ctx, plainActivity).Get(ctx, &out); err != nil {
		return nil, err
	}
	seen := []string{out}
	calls := []struct {
		name string
		f    workflow.Future
	}{
		{"person", workflow.ExecuteActivity(ctx, needsIdentity)},
		{"pool", workflow.ExecuteActivity(identity.AsPool(ctx), poolOnly)},
		{"local pool", workflow.ExecuteLocalActivity(identity.AsPool(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: time.Minute})), poolOnly)},
	}
	for _, c := range calls {
		name, call := c.name, c.f
		err := call.Get(ctx, nil)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != identity.TypeUnauthenticated {
			return nil, fmt.Errorf("a pass-through run's %s activity was not refused: %v", name, err)
		}
	}
	if _, err := identity.FromWorkflow(ctx); err == nil {
		return nil, errors.New("a pass-through run has an identity")
	}
	return append(seen, "refused"), nil
}

// TestPassThroughWorkflowsRunWithoutIdentity: with IdentityWorkflows set, a workflow type not
// listed runs untouched on the same worker, and its activities run with no identity and
// without the pool's authority, even when its code asks for it.
func TestPassThroughWorkflowsRunWithoutIdentity(t *testing.T) {
	env := newOptInEnv(t, "conformance")
	env.RegisterWorkflow(legacy)
	env.RegisterActivity(plainActivity)
	env.RegisterActivity(needsIdentity)
	env.RegisterActivity(poolOnly)
	env.ExecuteWorkflow(legacy)
	var seen []string
	if err := env.GetWorkflowResult(&seen); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[plain refused]" {
		t.Fatalf("seen %v", seen)
	}
}

// TestOptInStillGuardsListedWorkflows: a listed type still needs a valid envelope, and still
// propagates its starter to activities.
func TestOptInStillGuardsListedWorkflows(t *testing.T) {
	env := newOptInEnv(t, "conformance")
	env.RegisterWorkflow(conformance)
	env.RegisterActivity(whoAmI)
	env.ExecuteWorkflow(conformance)
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != identity.TypeUnauthenticated {
		t.Fatalf("a listed type ran without an envelope: %v", err)
	}

	env = newOptInEnv(t, "conformance")
	env.RegisterWorkflow(conformance)
	env.RegisterActivity(whoAmI)
	startHeader(t, env, identity.Identity{Subject: "bob", Issuer: "https://idp"}, "default-test-workflow-id")
	env.ExecuteWorkflow(conformance)
	var seen []string
	if err := env.GetWorkflowResult(&seen); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[workflow:bob activity:bob local:bob]" {
		t.Fatalf("seen %v", seen)
	}
}

// TestDefaultGuardsEveryWorkflow: without IdentityWorkflows, a type nobody listed is not
// passed through: it needs an identity like every other.
func TestDefaultGuardsEveryWorkflow(t *testing.T) {
	env := newEnv(t, &fakeAuth{sessions: map[string]*identity.Identity{}})
	env.RegisterWorkflow(legacy)
	env.RegisterActivity(plainActivity)
	env.ExecuteWorkflow(legacy)
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != identity.TypeUnauthenticated {
		t.Fatalf("an unlisted type ran without identity by default: %v", err)
	}
}
