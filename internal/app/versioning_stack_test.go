package app_test

// A roll from one build to the next with Worker Deployment Versioning, on the real dev stack
// (`make up`): oidcflow's worker as two builds of a deployment of the test's own, real
// logins, sealed envelopes, the real database grant.

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/pgaccess"
	"github.com/oidcflow/oidcflow/pool"
	"github.com/oidcflow/oidcflow/workflows"
)

// testDeploymentPrefix starts the names of the deployments this test makes; a run removes
// those that earlier runs left (the server keeps at most 100 per namespace).
const testDeploymentPrefix = "test-versions-"

// probeWorkflow is a short workflow registered without a versioning behaviour, as a user's
// type would be: the pool's default pins it. It waits for probeSignal, so it can be left
// open across a roll.
const (
	probeWorkflow = "VersionProbe"
	probeSignal   = "finish"
)

func versionProbe(ctx workflow.Context) (string, error) {
	var note string
	workflow.GetSignalChannel(ctx, probeSignal).Receive(ctx, &note)
	return note, nil
}

// TestStackWorkerDeploymentVersions rolls oidcflow's worker from build v1 to build v2:
//
//   - v1's workers make their build current by themselves: the deployment is new
//     (OIDCFLOW_DEPLOYMENT_SET_CURRENT_IF_UNSET); v2's do not, since v1 is current;
//   - an AccessRequest (auto-upgrade) started on v1 moves to v2 once v2 is current: the
//     approval, the grant, the hold and the revoke run on v2;
//   - a short pinned run started on v1 stays on v1 and finishes there;
//   - new runs start on v2;
//   - v1 reports drained, its workers stop, and v2 alone serves.
func TestStackWorkerDeploymentVersions(t *testing.T) {
	st := testharness.Load(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	if err := pgaccess.Bootstrap(ctx, st.Env("OIDCFLOW_POSTGRES_URL"), pgaccess.BootstrapOptions{Database: "demo"}); err != nil {
		t.Fatalf("bootstrap demo: %v", err)
	}
	tc, err := client.Dial(st.TemporalOptions(st.OperatorTokenSource()))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	removeStaleDeployments(t, ctx, tc)

	queue := apptest.TaskQueue("versions")
	dep := testDeploymentPrefix + strings.TrimPrefix(queue, "versions-")
	apptest.DeleteSweeperSchedule(t, st, queue)
	h := tc.WorkerDeploymentClient().GetHandle(dep)
	start := func(build string) *buildWorker {
		return startBuild(t, st, app.WorkerOptions{
			Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue, "OIDCFLOW_DEPLOYMENT_NAME", dep,
				"OIDCFLOW_BUILD_ID", build, "OIDCFLOW_DEPLOYMENT_SET_CURRENT_IF_UNSET", "true"),
			Register: func(r worker.Registry) {
				r.RegisterWorkflowWithOptions(versionProbe, workflow.RegisterOptions{Name: probeWorkflow})
			},
		})
	}

	// Build v1, two workers. The deployment is new, so v1 makes itself current.
	v1 := []*buildWorker{start("v1"), start("v1")}
	waitCurrent(t, ctx, h, "v1")
	t.Logf("deployment %s: v1 made itself current", dep)

	bob, _ := apptest.Client(t, st, "bob")
	carol, _ := apptest.Client(t, st, "carol")
	alice, _ := apptest.Client(t, st, "alice")

	// A long-lived run and a short pinned one, both on v1, both left waiting.
	arID := "versions-access-" + queue
	ar, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: arID, TaskQueue: queue},
		workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
			Resource: "demo", Role: workflows.AccessRead, Duration: 15 * time.Second, Reason: "a roll under a pending request",
		})
	if err != nil {
		t.Fatal(err)
	}
	if s := accessStatus(t, ctx, bob, arID); s.State != workflows.StatePending {
		t.Fatalf("access request: state %s, want pending", s.State)
	}
	probeID := "versions-probe-" + queue
	probe, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: probeID, TaskQueue: queue}, probeWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	waitTask(t, ctx, tc, probeID, probe.GetRunID())

	// Build v2, two workers. v1 is current, so v2 does not make itself current; the
	// operator does (`temporal worker deployment set-current-version`).
	start("v2")
	start("v2")
	waitListed(t, ctx, h, "v2")
	if set, err := pool.SetCurrentIfUnset(ctx, tc, dep, "v2"); set || err != nil {
		t.Fatalf("SetCurrentIfUnset with v1 current: set %t, %v; want it left alone", set, err)
	}
	if cur := current(t, ctx, h); cur != "v1" {
		t.Fatalf("current version %q after v2 started, want v1", cur)
	}
	setCurrent(t, ctx, h, "v2")
	t.Log("v2 is current")

	// The auto-upgrade run moves to v2: carol's approval, the grant, the hold and the revoke
	// run there.
	s := accessStatus(t, ctx, carol, arID)
	if err := sendUpdate(ctx, carol, workflows.ApproveAccess(arID, s, "approved across a roll"), &s); err != nil {
		t.Fatalf("carol's approval: %v", err)
	}
	var res workflows.AccessRequestResult
	if err := ar.Get(ctx, &res); err != nil {
		t.Fatalf("access request: %v", err)
	}
	if res.State != workflows.StateEnded || res.Grant == nil {
		t.Errorf("access request ended %s with grant %v, want %s with a grant", res.State, res.Grant, workflows.StateEnded)
	}
	arSteps := steps(t, ctx, tc, arID, ar.GetRunID())
	t.Logf("access request's workflow tasks: %v", arSteps)
	if first, last := arSteps[0], arSteps[len(arSteps)-1]; first.build != "v1" || last.build != "v2" {
		t.Errorf("access request: first task on %s, last on %s; want v1 then v2", first.build, last.build)
	}
	for i, s := range arSteps {
		if s.behavior != enumspb.VERSIONING_BEHAVIOR_AUTO_UPGRADE {
			t.Errorf("access request: task %d is %s, want auto-upgrade", i, s.behavior)
		}
		if i > 0 && s.build == "v1" && arSteps[i-1].build == "v2" {
			t.Errorf("access request: went back from v2 to v1 at task %d", i)
		}
	}

	// The pinned run stays on v1 and finishes there.
	if err := bob.SignalWorkflow(ctx, probeID, probe.GetRunID(), probeSignal, "finish on v1"); err != nil {
		t.Fatal(err)
	}
	if err := probe.Get(ctx, nil); err != nil {
		t.Fatalf("pinned run: %v", err)
	}
	onlyOn(t, "pinned run", steps(t, ctx, tc, probeID, probe.GetRunID()), "v1", enumspb.VERSIONING_BEHAVIOR_PINNED)

	// New runs start on v2: another access request, which bob withdraws.
	ar2ID := arID + "-2"
	ar2, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: ar2ID, TaskQueue: queue},
		workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
			Resource: "demo", Role: workflows.AccessRead, Duration: time.Minute, Reason: "a request after the roll",
		})
	if err != nil {
		t.Fatal(err)
	}
	accessStatus(t, ctx, bob, ar2ID)
	if err := sendUpdate(ctx, bob, client.UpdateWorkflowOptions{WorkflowID: ar2ID, UpdateName: workflows.UpdateRevoke,
		Args: []any{workflows.RevokeInput{Reason: "not needed"}}, WaitForStage: client.WorkflowUpdateStageCompleted}, nil); err != nil {
		t.Fatalf("bob's revoke: %v", err)
	}
	if err := ar2.Get(ctx, &res); err != nil || res.State != workflows.StateRevoked {
		t.Fatalf("second access request: %s, %v; want %s", res.State, err, workflows.StateRevoked)
	}
	onlyOn(t, "new access request", steps(t, ctx, tc, ar2ID, ar2.GetRunID()), "v2", enumspb.VERSIONING_BEHAVIOR_AUTO_UPGRADE)

	// v1 drains (no open run pinned to it); the operator stops its workers.
	waitDrained(t, ctx, h, "v1")
	for _, w := range v1 {
		w.stop()
	}
	t.Log("v1 drained; its workers stopped")

	// v2 alone serves: an admin task, pinned, starts and ends on v2.
	adminID := "versions-admin-" + queue
	admin, err := alice.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: adminID, TaskQueue: queue},
		workflows.AdminTaskWorkflow, workflows.AdminTaskInput{Task: workflows.AdminTaskListGrants})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Get(ctx, nil); err != nil {
		t.Fatalf("admin task: %v", err)
	}
	onlyOn(t, "admin task", steps(t, ctx, tc, adminID, admin.GetRunID()), "v2", enumspb.VERSIONING_BEHAVIOR_PINNED)
}

// buildWorker is one running worker process of a build (in-process).
type buildWorker struct {
	stop func()
}

// startBuild runs app.NewWorker with opts until stop or the test's end.
func startBuild(t *testing.T, st *testharness.Stack, opts app.WorkerOptions) *buildWorker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts.Logger = slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w, err := app.NewWorker(ctx, opts)
	if err != nil {
		t.Fatalf("start worker: %v", err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(runCtx); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	var once sync.Once
	b := &buildWorker{stop: func() {
		once.Do(func() {
			stopRun()
			<-done
			w.Close()
		})
	}}
	t.Cleanup(b.stop)
	return b
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// step is one completed workflow task: the build that ran it, and the run's behaviour.
type step struct {
	build    string
	behavior enumspb.VersioningBehavior
}

func (s step) String() string {
	return s.build + "/" + strings.ToLower(strings.TrimPrefix(s.behavior.String(), "VERSIONING_BEHAVIOR_"))
}

// steps lists the run's completed workflow tasks from its history.
func steps(t *testing.T, ctx context.Context, c client.Client, id, runID string) []step {
	t.Helper()
	var out []step
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		if a := e.GetWorkflowTaskCompletedEventAttributes(); a != nil {
			out = append(out, step{a.GetDeploymentVersion().GetBuildId(), a.GetVersioningBehavior()})
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no completed workflow task", id)
	}
	return out
}

// onlyOn checks that every workflow task of a run ran on build with behavior.
func onlyOn(t *testing.T, what string, got []step, build string, behavior enumspb.VersioningBehavior) {
	t.Helper()
	for i, s := range got {
		if s.build != build || s.behavior != behavior {
			t.Errorf("%s: workflow tasks %v; task %d is not %s/%s", what, got, i, build, behavior)
			return
		}
	}
	t.Logf("%s: workflow tasks %v", what, got)
}

// waitTask waits until the run completed a workflow task (it runs on a build).
func waitTask(t *testing.T, ctx context.Context, c client.Client, id, runID string) {
	t.Helper()
	poll(t, ctx, "a first workflow task of "+id, func() (bool, error) {
		it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				return false, err
			}
			if e.GetWorkflowTaskCompletedEventAttributes() != nil {
				return true, nil
			}
		}
		return false, nil
	})
}

// current returns the build id of the deployment's current version ("" for none).
func current(t *testing.T, ctx context.Context, h client.WorkerDeploymentHandle) string {
	t.Helper()
	d, err := h.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	if err != nil {
		t.Fatalf("describe deployment: %v", err)
	}
	if v := d.Info.RoutingConfig.CurrentVersion; v != nil {
		return v.BuildID
	}
	return ""
}

// waitCurrent waits until build is the deployment's current version.
func waitCurrent(t *testing.T, ctx context.Context, h client.WorkerDeploymentHandle, build string) {
	t.Helper()
	poll(t, ctx, build+" current", func() (bool, error) {
		d, err := h.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
		if err != nil {
			return false, err
		}
		v := d.Info.RoutingConfig.CurrentVersion
		return v != nil && v.BuildID == build, nil
	})
}

// waitListed waits until the deployment lists build (its workers polled).
func waitListed(t *testing.T, ctx context.Context, h client.WorkerDeploymentHandle, build string) {
	t.Helper()
	poll(t, ctx, build+" listed", func() (bool, error) {
		d, err := h.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
		if err != nil {
			return false, err
		}
		for _, v := range d.Info.VersionSummaries {
			if v.Version.BuildID == build {
				return true, nil
			}
		}
		return false, nil
	})
}

// setCurrent is the operator's `temporal worker deployment set-current-version`; the
// server refuses until the build's workers polled every task queue type of the current
// version, so it is asked again until then.
func setCurrent(t *testing.T, ctx context.Context, h client.WorkerDeploymentHandle, build string) {
	t.Helper()
	poll(t, ctx, build+" set current", func() (bool, error) {
		_, err := h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: build})
		return err == nil, err
	})
}

// waitDrained waits until build reports drained. The server checks a build's drainage a
// grace period after it stopped being current and then at an interval (minutes by default:
// matching.wv.VersionDrainageStatusVisibilityGracePeriod and ...RefreshInterval).
func waitDrained(t *testing.T, ctx context.Context, h client.WorkerDeploymentHandle, build string) {
	t.Helper()
	last := ""
	poll(t, ctx, build+" drained", func() (bool, error) {
		d, err := h.DescribeVersion(ctx, client.WorkerDeploymentDescribeVersionOptions{BuildID: build})
		if err != nil {
			return false, err
		}
		di := d.Info.DrainageInfo
		if di == nil {
			return false, nil
		}
		if now := drainage(di.DrainageStatus); now != last {
			t.Logf("%s: %s (checked %s)", build, now, di.LastCheckedTime.Format(time.TimeOnly))
			last = now
		}
		return di.DrainageStatus == client.WorkerDeploymentVersionDrainageStatusDrained, nil
	})
}

func drainage(s client.WorkerDeploymentVersionDrainageStatus) string {
	switch s {
	case client.WorkerDeploymentVersionDrainageStatusDraining:
		return "draining"
	case client.WorkerDeploymentVersionDrainageStatusDrained:
		return "drained"
	}
	return "unspecified"
}

// poll calls f until it reports done or ctx ends; errors are retried (and the last one
// reported if it never gets done).
func poll(t *testing.T, ctx context.Context, what string, f func() (bool, error)) {
	t.Helper()
	var last error
	for {
		done, err := f()
		if done {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error: %v)", what, ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

// accessStatus queries an access request's status, retrying while its handlers register.
func accessStatus(t *testing.T, ctx context.Context, c client.Client, id string) workflows.AccessStatus {
	t.Helper()
	var s workflows.AccessStatus
	poll(t, ctx, "the status of "+id, func() (bool, error) {
		v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
		if err != nil {
			return false, err
		}
		return true, v.Get(&s)
	})
	return s
}

// sendUpdate sends an update and waits for its result, retrying while the handler is not
// registered yet ("unknown update").
func sendUpdate(ctx context.Context, c client.Client, o client.UpdateWorkflowOptions, out any) error {
	for attempt := 0; ; attempt++ {
		h, err := c.UpdateWorkflow(ctx, o)
		if err == nil {
			err = h.Get(ctx, out)
		}
		if err != nil && strings.Contains(err.Error(), "unknown update") && attempt < 50 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return err
	}
}

// removeStaleDeployments removes the deployments of earlier runs of this test (older than
// half an hour, so their workers are long gone): it routes them to unversioned workers,
// deletes their versions and then them. Best effort: a failure is logged.
func removeStaleDeployments(t *testing.T, ctx context.Context, c client.Client) {
	t.Helper()
	dc := c.WorkerDeploymentClient()
	it, err := dc.List(ctx, client.WorkerDeploymentListOptions{})
	if err != nil {
		t.Logf("list deployments: %v", err)
		return
	}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Logf("list deployments: %v", err)
			return
		}
		if !strings.HasPrefix(e.Name, testDeploymentPrefix) || time.Since(e.CreateTime) < 30*time.Minute {
			continue
		}
		if err := removeDeployment(ctx, dc, e.Name); err != nil {
			t.Logf("remove stale test deployment %s: %v", e.Name, err)
		}
	}
}

func removeDeployment(ctx context.Context, dc client.WorkerDeploymentClient, name string) error {
	h := dc.GetHandle(name)
	d, err := h.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	if err != nil {
		return err
	}
	if d.Info.RoutingConfig.CurrentVersion != nil {
		if _, err := h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{}); err != nil {
			return err
		}
	}
	var errs []error
	for _, v := range d.Info.VersionSummaries {
		if _, err := h.DeleteVersion(ctx, client.WorkerDeploymentDeleteVersionOptions{BuildID: v.Version.BuildID, SkipDrainage: true}); err != nil {
			var notFound *serviceerror.NotFound
			if !errors.As(err, &notFound) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	_, err = dc.Delete(ctx, client.WorkerDeploymentDeleteOptions{Name: name})
	return err
}

// TestStackSetCurrentIfUnsetKeepsAnOperatorsChoice: an operator who rolled a deployment back
// to unversioned workers (`set-current-version --unversioned`) left it with no current
// version, as a new deployment has; a versioned worker that starts with
// OIDCFLOW_DEPLOYMENT_SET_CURRENT_IF_UNSET must not take it back.
func TestStackSetCurrentIfUnsetKeepsAnOperatorsChoice(t *testing.T) {
	st := testharness.Load(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The worker client's token: the bare worker below polls.
	tc, err := client.Dial(st.TemporalOptions(st.WorkerTokenSource()))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	queue := apptest.TaskQueue("versions")
	dep := testDeploymentPrefix + strings.TrimPrefix(queue, "versions-")
	// A bare versioned SDK worker is enough for the server to list the build.
	w := worker.New(tc, queue, worker.Options{DeploymentOptions: worker.DeploymentOptions{
		UseVersioning:             true,
		Version:                   worker.WorkerDeploymentVersion{DeploymentName: dep, BuildID: "v1"},
		DefaultVersioningBehavior: workflow.VersioningBehaviorPinned,
	}})
	w.RegisterWorkflowWithOptions(versionProbe, workflow.RegisterOptions{Name: probeWorkflow})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	h := tc.WorkerDeploymentClient().GetHandle(dep)
	waitListed(t, ctx, h, "v1")
	setCurrent(t, ctx, h, "v1")
	if _, err := h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{}); err != nil {
		t.Fatalf("roll back to unversioned workers: %v", err)
	}
	if cur := current(t, ctx, h); cur != "" {
		t.Fatalf("current version %q after the roll back, want none", cur)
	}
	if set, err := pool.SetCurrentIfUnset(ctx, tc, dep, "v1"); set || err != nil {
		t.Fatalf("SetCurrentIfUnset after an operator chose unversioned workers: set %t, %v; want it left alone", set, err)
	}
	if cur := current(t, ctx, h); cur != "" {
		t.Errorf("current version %q, want none (the operator's choice)", cur)
	}
}
