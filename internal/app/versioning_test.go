package app

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/pool"
	"github.com/oidcflow/oidcflow/workflows"
)

// TestEveryWorkflowTypeChoosesItsVersioning registers oidcflow's workflows on a versioned
// worker that has no default behaviour, where the SDK panics at the first type registered
// without one: each type must have chosen (Versioning), none may fall back on the pool's
// default.
func TestEveryWorkflowTypeChoosesItsVersioning(t *testing.T) {
	c, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sdk := worker.New(c, "versioning-unit", worker.Options{DeploymentOptions: worker.DeploymentOptions{
		UseVersioning: true,
		Version:       worker.WorkerDeploymentVersion{DeploymentName: "oidcflow", BuildID: "unit"},
	}})
	env, err := config.New(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	w := &Worker{Pool: &pool.Pool{Client: c, Worker: sdk}}
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("a workflow type registers without a versioning behaviour: %v", p)
		}
	}()
	if err := w.register(context.Background(), env, slog.New(slog.NewTextHandler(io.Discard, nil)), nil); err != nil {
		t.Fatal(err)
	}
}

// TestVersioningOfLongAndShortRuns: the runs that outlive deploys (approvals, grants,
// sessions) auto-upgrade, so current code revokes and re-checks them; the short ones are
// pinned.
func TestVersioningOfLongAndShortRuns(t *testing.T) {
	for name, want := range map[string]workflow.VersioningBehavior{
		workflows.AccessRequestWorkflow:   workflow.VersioningBehaviorAutoUpgrade,
		workflows.InvoiceApprovalWorkflow: workflow.VersioningBehaviorAutoUpgrade,
		workflows.KeepAliveWorkflow:       workflow.VersioningBehaviorAutoUpgrade,
		workflows.AdminTaskWorkflow:       workflow.VersioningBehaviorPinned,
	} {
		if got := Versioning[name]; got != want {
			t.Errorf("%s: versioning behaviour %d, want %d", name, got, want)
		}
	}
}
