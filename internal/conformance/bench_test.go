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
	"golang.org/x/oauth2"

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

	plainRate, flowRate := alternate(ctx, b, 10, side{plain, plainQueue}, side{bob, flowQueue})
	b.ReportMetric(plainRate, "plain-runs/s")
	b.ReportMetric(flowRate, "oidcflow-runs/s")
	b.ReportMetric(flowRate/plainRate, "throughput-ratio")
}

// BenchmarkPlatformSecurity measures what Temporal authorization and encrypted payloads
// cost: the three-activity workflow through oidcflow on the stack's Temporal (bearer tokens
// checked by the authorizer, payloads encrypted under Vault data keys, bob's client encoding
// through the codec server) and through oidcflow on a Temporal server of its own that
// authorizes no one, with plaintext payloads (the configuration before), batch by batch in
// the same run.
func BenchmarkPlatformSecurity(b *testing.B) {
	st := testharness.Load(b)
	if !st.Authorizes() || st.Env("OIDCFLOW_CODEC_ENDPOINT") == "" {
		b.Skip("the stack's Temporal does not authorize, or its pool does not encrypt payloads")
	}
	before := st.WithPlainTemporal(b)
	securedQueue, beforeQueue := apptest.TaskQueue("bench-secured"), apptest.TaskQueue("bench-before")
	apptest.StartWorker(b, app.WorkerOptions{Env: apptest.Env(b, st, "OIDCFLOW_TASK_QUEUE", securedQueue), Register: registerBench})
	apptest.StartWorker(b, app.WorkerOptions{Env: apptest.Env(b, before, "OIDCFLOW_TASK_QUEUE", beforeQueue), Register: registerBench})
	tok := st.Login(b, "bob")
	securedRate, beforeRate := alternate(context.Background(), b, 10,
		side{apptest.ClientWithToken(b, st, oauth2.StaticTokenSource(tok)), securedQueue},
		side{apptest.ClientWithToken(b, before, oauth2.StaticTokenSource(tok)), beforeQueue})
	b.ReportMetric(beforeRate, "before-runs/s")
	b.ReportMetric(securedRate, "secured-runs/s")
	b.ReportMetric(securedRate/beforeRate, "throughput-ratio")
}

// side is a client and the task queue of the workers it starts runs on.
type side struct {
	c     client.Client
	queue string
}

// alternate runs batches of batch ThreeSteps runs on a and on b in turn, b.N times each after
// one warm-up batch each, and returns each side's runs per second.
func alternate(ctx context.Context, tb *testing.B, batch int, a, b side) (aRate, bRate float64) {
	runBatch := func(s side) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range batch {
			wg.Go(func() {
				run, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: s.queue}, "ThreeSteps")
				if err == nil {
					err = run.Get(ctx, nil)
				}
				if err != nil {
					tb.Error(err)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	runBatch(a) // warm up both paths
	runBatch(b)
	var ta, tbt time.Duration
	tb.ResetTimer()
	for range tb.N {
		ta += runBatch(a)
		tbt += runBatch(b)
	}
	runs := float64(tb.N * batch)
	return runs / ta.Seconds(), runs / tbt.Seconds()
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
