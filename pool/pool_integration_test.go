package pool_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/pool"
)

// whoAmI names the activity's verified person, or "nobody".
func whoAmI(ctx context.Context) (string, error) {
	if id, err := identity.FromActivity(ctx); err == nil {
		return id.Subject, nil
	}
	return "nobody", nil
}

// callWhoAmI runs whoAmI and returns its answer; both test workflows are this function.
func callWhoAmI(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var who string
	err := workflow.ExecuteActivity(ctx, whoAmI).Get(ctx, &who)
	return who, err
}

// TestIntegrationPoolJoinsAWorker: a pool built by pool.New on the dev stack, with identity
// opt-in, runs a workflow type of its own untouched (its activity sees nobody) next to one
// that needs identity: that one refuses a start without an envelope and sees bob with his.
func TestIntegrationPoolJoinsAWorker(t *testing.T) {
	st := testharness.Load(t)
	queue := apptest.TaskQueue("pool")
	cfg, err := pool.FromLookup(func(name string) (string, bool) {
		switch name {
		case "OIDCFLOW_TASK_QUEUE":
			return queue, true
		case "OIDCFLOW_SWEEP_INTERVAL":
			return "0", true // no schedule left behind
		}
		v := st.Env(name)
		return v, v != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.IdentityWorkflows = []string{"Guarded"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := pool.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Worker.RegisterWorkflowWithOptions(callWhoAmI, workflow.RegisterOptions{Name: "Legacy"})
	p.Worker.RegisterWorkflowWithOptions(callWhoAmI, workflow.RegisterOptions{Name: "Guarded"})
	p.Worker.RegisterActivity(whoAmI)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		p.Close()
	})

	plain, err := client.Dial(st.TemporalOptions(st.OperatorTokenSource()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	bob, _ := apptest.Client(t, st, "bob")
	run := func(c client.Client, workflowType string) (string, error) {
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, workflowType)
		if err != nil {
			return "", err
		}
		var who string
		err = r.Get(ctx, &who)
		return who, err
	}
	if who, err := run(plain, "Legacy"); err != nil || who != "nobody" {
		t.Errorf("a pass-through workflow: %q, %v; want it to run with nobody", who, err)
	}
	var appErr *temporal.ApplicationError
	if _, err := run(plain, "Guarded"); !errors.As(err, &appErr) || appErr.Type() != identity.TypeUnauthenticated {
		t.Errorf("an identity workflow without an envelope: %v, want %s", err, identity.TypeUnauthenticated)
	}
	if who, err := run(bob, "Guarded"); err != nil || who != "bob" {
		t.Errorf("an identity workflow started by bob: %q, %v", who, err)
	}
}
