package pool

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
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

// fakeDeployment is a WorkerDeploymentHandle that answers Describe with d (or describeErr)
// and records SetCurrentVersion calls.
type fakeDeployment struct {
	client.WorkerDeploymentHandle
	d           client.WorkerDeploymentDescribeResponse
	describeErr error
	setErr      error
	set         []client.WorkerDeploymentSetCurrentVersionOptions
}

func (f *fakeDeployment) Describe(context.Context, client.WorkerDeploymentDescribeOptions) (client.WorkerDeploymentDescribeResponse, error) {
	return f.d, f.describeErr
}

func (f *fakeDeployment) SetCurrentVersion(_ context.Context, o client.WorkerDeploymentSetCurrentVersionOptions) (client.WorkerDeploymentSetCurrentVersionResponse, error) {
	f.set = append(f.set, o)
	return client.WorkerDeploymentSetCurrentVersionResponse{}, f.setErr
}

// TestSetCurrentOnlyForAFirstBuild: the build is made current only when the deployment
// never had a current version, ramps none and has no manager; anything an operator did wins, and a build
// the server does not list yet, or a refusal (changed meanwhile, no pollers yet), is asked
// again.
func TestSetCurrentOnlyForAFirstBuild(t *testing.T) {
	listed := []client.WorkerDeploymentVersionSummary{{Version: worker.WorkerDeploymentVersion{DeploymentName: "d", BuildID: "v2"}}}
	v1 := &worker.WorkerDeploymentVersion{DeploymentName: "d", BuildID: "v1"}
	info := func(rc client.WorkerDeploymentRoutingConfig, versions []client.WorkerDeploymentVersionSummary) client.WorkerDeploymentDescribeResponse {
		return client.WorkerDeploymentDescribeResponse{ConflictToken: []byte("token"), Info: client.WorkerDeploymentInfo{RoutingConfig: rc, VersionSummaries: versions}}
	}
	for _, tc := range []struct {
		name             string
		fake             fakeDeployment
		set, retry, call bool
	}{
		{name: "new deployment, build listed", fake: fakeDeployment{d: info(client.WorkerDeploymentRoutingConfig{}, listed)}, set: true, call: true},
		{name: "no deployment yet", fake: fakeDeployment{describeErr: serviceerror.NewNotFound("no deployment")}, retry: true},
		{name: "build not listed yet", fake: fakeDeployment{d: info(client.WorkerDeploymentRoutingConfig{}, nil)}, retry: true},
		{name: "a current version", fake: fakeDeployment{d: info(client.WorkerDeploymentRoutingConfig{CurrentVersion: v1}, listed)}},
		{name: "rolled back to unversioned", fake: fakeDeployment{d: info(client.WorkerDeploymentRoutingConfig{CurrentVersionChangedTime: time.Now()}, listed)}},
		{name: "ramping", fake: fakeDeployment{d: info(client.WorkerDeploymentRoutingConfig{RampingVersion: v1, RampingVersionPercentage: 10}, listed)}},
		{name: "managed", fake: fakeDeployment{d: func() client.WorkerDeploymentDescribeResponse {
			d := info(client.WorkerDeploymentRoutingConfig{}, listed)
			d.Info.ManagerIdentity = "rollout-controller"
			return d
		}()}},
		{name: "changed meanwhile", fake: fakeDeployment{d: info(client.WorkerDeploymentRoutingConfig{}, listed), setErr: serviceerror.NewFailedPrecondition("conflict token mismatch")}, retry: true, call: true},
		{name: "not allowed", fake: fakeDeployment{d: info(client.WorkerDeploymentRoutingConfig{}, listed), setErr: serviceerror.NewPermissionDenied("no", "")}, call: true},
	} {
		f := tc.fake
		set, retry, err := setCurrentOnce(context.Background(), &f, "d", "v2")
		if set != tc.set || retry != tc.retry {
			t.Errorf("%s: set %t retry %t (%v), want set %t retry %t", tc.name, set, retry, err, tc.set, tc.retry)
		}
		if called := len(f.set) > 0; called != tc.call {
			t.Errorf("%s: SetCurrentVersion called: %t, want %t", tc.name, called, tc.call)
		} else if called && (f.set[0].BuildID != "v2" || string(f.set[0].ConflictToken) != "token") {
			t.Errorf("%s: SetCurrentVersion %+v, want build v2 with the conflict token read", tc.name, f.set[0])
		}
	}
}
