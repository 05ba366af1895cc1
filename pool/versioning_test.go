package pool

import (
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestVersioningIsOptIn: without a build id the worker is unversioned (the SDK panics on a
// default behaviour without versioning, so none is passed); with one it polls as that build
// of the deployment, and types registered without a behaviour are pinned.
func TestVersioningIsOptIn(t *testing.T) {
	if got := valid().withDefaults().deploymentOptions(); got != (worker.DeploymentOptions{}) {
		t.Errorf("no build id: deployment options %+v, want none", got)
	}
	c := valid()
	c.DeploymentName, c.BuildID = "oidcflow", "v2"
	want := worker.DeploymentOptions{
		UseVersioning:             true,
		Version:                   worker.WorkerDeploymentVersion{DeploymentName: "oidcflow", BuildID: "v2"},
		DefaultVersioningBehavior: workflow.VersioningBehaviorPinned,
	}
	if got := c.withDefaults().deploymentOptions(); got != want {
		t.Errorf("build v2: deployment options %+v, want %+v", got, want)
	}
	c.DefaultVersioningBehavior = workflow.VersioningBehaviorAutoUpgrade
	if got := c.withDefaults().deploymentOptions().DefaultVersioningBehavior; got != workflow.VersioningBehaviorAutoUpgrade {
		t.Errorf("a chosen default behaviour became %d", got)
	}
	if sweeperVersioning != workflow.VersioningBehaviorPinned {
		t.Error("the sweeper is not pinned")
	}
}
