package conformance_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
)

// step is a small activity: with identity it reads the fresh one, without it does nothing.
func step(ctx context.Context, n int) (int, error) {
	if id, err := identity.FromActivity(ctx); err == nil && id.Subject == "" {
		return 0, fmt.Errorf("empty subject")
	}
	return n + 1, nil
}

// threeSteps runs three activities in a row.
func threeSteps(ctx workflow.Context) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	n := 0
	for range 3 {
		if err := workflow.ExecuteActivity(ctx, step, n).Get(ctx, &n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func registerBench(r worker.Registry) {
	r.RegisterWorkflowWithOptions(threeSteps, workflow.RegisterOptions{Name: "ThreeSteps"})
	r.RegisterActivity(step)
}

// BenchmarkInterceptorOverhead runs the same three-activity workflow through a plain worker
// and client and through oidcflow's (real envelope, verification, Vault sessions), batch by
// batch in the same run, and reports both throughputs and their ratio.
func BenchmarkInterceptorOverhead(b *testing.B) {
	st := testharness.Load(b)
	ctx := context.Background()
	const batch = 10

	plainQueue, flowQueue := apptest.TaskQueue("bench-plain"), apptest.TaskQueue("bench-oidcflow")
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	// The plain side polls and starts as the worker client (worker and write permission).
	opts := st.TemporalOptions(st.WorkerTokenSource())
	opts.Logger = quiet
	plain, err := client.DialContext(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	pw := worker.New(plain, plainQueue, worker.Options{})
	registerBench(pw)
	if err := pw.Start(); err != nil {
		b.Fatal(err)
	}
	defer pw.Stop()
	apptest.StartWorker(b, app.WorkerOptions{Env: apptest.Env(b, st, "OIDCFLOW_TASK_QUEUE", flowQueue), Register: registerBench})
	bob, _ := apptest.Client(b, st, "bob")

	runBatch := func(c client.Client, queue string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range batch {
			wg.Go(func() {
				run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, "ThreeSteps")
				if err == nil {
					err = run.Get(ctx, nil)
				}
				if err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	runBatch(plain, plainQueue) // warm up both paths
	runBatch(bob, flowQueue)

	var tPlain, tFlow time.Duration
	b.ResetTimer()
	for range b.N {
		tPlain += runBatch(plain, plainQueue)
		tFlow += runBatch(bob, flowQueue)
	}
	runs := float64(b.N * batch)
	b.ReportMetric(runs/tPlain.Seconds(), "plain-runs/s")
	b.ReportMetric(runs/tFlow.Seconds(), "oidcflow-runs/s")
	b.ReportMetric(tPlain.Seconds()/tFlow.Seconds(), "throughput-ratio")
}

// verified ends as soon as its identity is verified: a start and nothing else.
func verified(ctx workflow.Context) error {
	_, err := identity.FromWorkflow(ctx)
	return err
}

// spendNothing is a one-time store that records nothing: the pool as it was before
// envelopes were honoured once.
type spendNothing struct{}

func (spendNothing) Spend(context.Context, string, string, time.Time) error { return nil }

// BenchmarkOneTimeCheck measures what honouring each envelope once (a create-only write to
// Vault per start) adds to a start: the same start-and-verify workflow, one at a time, through
// a pool with the one-time store and through one without it, alternating in the same run.
func BenchmarkOneTimeCheck(b *testing.B) {
	st := testharness.Load(b)
	ctx := context.Background()
	register := func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(verified, workflow.RegisterOptions{Name: "Verified"})
	}
	withQueue, withoutQueue := apptest.TaskQueue("bench-onetime"), apptest.TaskQueue("bench-no-onetime")
	apptest.StartWorker(b, app.WorkerOptions{Env: apptest.Env(b, st, "OIDCFLOW_TASK_QUEUE", withQueue), Register: register})
	apptest.StartWorker(b, app.WorkerOptions{Env: apptest.Env(b, st, "OIDCFLOW_TASK_QUEUE", withoutQueue), Register: register,
		Authenticator: func(o *interceptors.AuthenticatorOptions) { o.OneTime = spendNothing{} }})
	bob, _ := apptest.Client(b, st, "bob")
	start := func(queue string) time.Duration {
		t0 := time.Now()
		run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, "Verified")
		if err == nil {
			err = run.Get(ctx, nil)
		}
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	start(withQueue) // warm up both paths
	start(withoutQueue)
	var with, without time.Duration
	b.ResetTimer()
	for range b.N {
		with += start(withQueue)
		without += start(withoutQueue)
	}
	n := float64(b.N)
	b.ReportMetric(with.Seconds()*1000/n, "ms/start-onetime")
	b.ReportMetric(without.Seconds()*1000/n, "ms/start-without")
	b.ReportMetric((with-without).Seconds()*1000/n, "ms-added")
	b.ReportMetric(with.Seconds()/without.Seconds(), "latency-ratio")
}
