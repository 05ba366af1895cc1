package lifetimes_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/lifetimes"
	"github.com/oidcflow/oidcflow/telemetry"
)

// TestSharedSessionTwoWorkers: two workers (each with its own
// Vault login and refresher, sharing only Vault) run 50 runs started from one login, so all
// of them act on one session. The IdP must serve exactly one refresh per rotation: as many
// refresh grants as the workers got answers, as many as the session counts, and none
// refused.
func TestSharedSessionTwoWorkers(t *testing.T) {
	t.Parallel()
	const runs = 50
	r := newRig(t, rigOptions{ttl: 3 * time.Second, workers: 2})
	c, _ := r.login(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// An anchor run holds the session until the counts are read; the 50 runs take 4 steps,
	// 2 s apart, so refreshes fall due while many of them run.
	anchor := "lifetimes-shared-anchor-" + r.queue
	anchorRun, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: anchor, TaskQueue: r.queue},
		lifetimes.StepsWorkflow, lifetimes.Input{})
	if err != nil {
		t.Fatal(err)
	}
	started := make([]client.WorkflowRun, runs)
	for i := range runs {
		if started[i], err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: fmt.Sprintf("lifetimes-shared-%d-%s", i, r.queue), TaskQueue: r.queue,
		}, lifetimes.StepsWorkflow, lifetimes.Input{Steps: 4, Every: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	results := make([]lifetimes.Result, runs)
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i, run := range started {
		wg.Go(func() { errs[i] = run.Get(ctx, &results[i]) })
	}
	wg.Wait()
	sessions := map[string]int{}
	steps := 0
	for i := range runs {
		if errs[i] != nil {
			t.Errorf("run %d: %v", i, errs[i])
			continue
		}
		checkSteps(t, &results[i], "bob")
		steps += len(results[i].Steps)
		sessions[results[i].SessionID]++
	}
	if len(sessions) != 1 {
		t.Errorf("the runs used %d sessions; want one: %v", len(sessions), sessions)
	}
	// One more step of the anchor, then the counts while the session still exists.
	signal(ctx, t, c, anchor, lifetimes.StepSignal)
	res := waitSteps(ctx, t, c, anchor, 1)
	sess, err := r.workers[0].Store.Get(ctx, res.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	idp, answers := r.idpRefreshes(t), int(r.answers.Load())
	if in := r.st.Introspect(t, sess.RefreshToken); !in.Active {
		t.Error("the shared session's refresh token is not active at the IdP (reuse detected?)")
	}
	signal(ctx, t, c, anchor, lifetimes.FinishSignal)
	if err := anchorRun.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	perWorker := []float64{r.workers[0].Telemetry.Sum(telemetry.MetricRefreshes), r.workers[1].Telemetry.Sum(telemetry.MetricRefreshes)}
	t.Logf("%d runs, %d steps, 1 session: session refreshes %d, IdP refresh grants %d, IdP answers seen by the workers %d, %s per worker %v, %s %d, Hydra reuse reports in the window (any client) %d",
		runs, steps, sess.Refreshes, idp, answers, telemetry.MetricRefreshes, perWorker,
		telemetry.MetricRefreshFailures, r.metric(telemetry.MetricRefreshFailures), r.reuseReports(t))
	if idp == 0 || idp != answers || idp != sess.Refreshes {
		t.Errorf("IdP refresh grants %d, worker answers %d, session refreshes %d; want one per rotation, all equal", idp, answers, sess.Refreshes)
	}
	if got := r.metric(telemetry.MetricRefreshes); int(got) != idp {
		t.Errorf("%s summed over the workers = %d; want the IdP's %d", telemetry.MetricRefreshes, got, idp)
	}
	if n := r.metric(telemetry.MetricRefreshFailures); n != 0 {
		t.Errorf("%d refresh failures", n)
	}
	sessionGone(ctx, t, r.workers[0], res.SessionID)
	if in := r.st.Introspect(t, sess.RefreshToken); in.Active {
		t.Error("the shared session's refresh token is still active after the last run")
	}
}
