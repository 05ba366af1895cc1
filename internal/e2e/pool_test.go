package e2e_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/pgaccess"
	"github.com/oidcflow/oidcflow/workflows"
)

// poolRunsEnv sets how many access requests TestWorkerPoolLosesNothing runs.
const poolRunsEnv = "OIDCFLOW_POOL_RUNS"

// defaultPoolRuns is how many runs the pool test drives by default.
const defaultPoolRuns = 200

// TestWorkerPoolLosesNothing runs a pool of three worker processes (the real binary) on one
// task queue and sends it OIDCFLOW_POOL_RUNS (default 200) concurrent access requests: bob
// requests, carol approves, the grant is held for a few seconds and revoked. Once half the
// requests are approved, one worker is killed with SIGKILL; its workflow tasks and
// activities move to the other two (activities after their start-to-close timeout). Every
// run must end in state ended with carol as approver and its database role dropped.
func TestWorkerPoolLosesNothing(t *testing.T) {
	st := loadStack(t)
	n := defaultPoolRuns
	if s := os.Getenv(poolRunsEnv); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 2 {
			t.Fatalf("%s=%q: want a number of runs, at least 2", poolRunsEnv, s)
		}
	}
	queue := apptest.TaskQueue("e2e-pool")
	var pool []*workerProc
	for i := range 3 {
		pool = append(pool, startWorkerProc(t, st, fmt.Sprintf("w%d", i+1), queue))
	}
	for _, w := range pool {
		w.waitReady(30 * time.Second)
	}
	// One login per persona, shared by all runs (as one person's CLI session would be).
	bob, _ := apptest.Client(t, st, "bob")
	carol, _ := apptest.Client(t, st, "carol")

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const hold = 5 * time.Second
	victim := pool[1]
	half := make(chan struct{})
	var approved atomic.Int64
	killed := make(chan time.Time, 1)
	go func() {
		select {
		case <-half:
		case <-ctx.Done():
			return
		}
		if _, body, err := victim.get("/metrics"); err == nil {
			t.Logf("worker %s before SIGKILL: %s", victim.name, metricLine(body, `oidcflow_verifications_total{result="ok"}`))
		}
		victim.cmd.Process.Kill() // SIGKILL: no drain, no goodbye to the server
		killed <- time.Now()
	}()

	type outcome struct {
		id  string
		run client.WorkflowRun
		err error
	}
	results := make([]outcome, n)
	sem := make(chan struct{}, 24) // requests in flight from this client
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			id := fmt.Sprintf("%s-%03d", queue, i)
			results[i].id = id
			run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
				workflows.AccessRequestWorkflow, accessInput(fmt.Sprintf("e2e pool run %d", i), hold))
			if err != nil {
				results[i].err = fmt.Errorf("start: %w", err)
				return
			}
			results[i].run = run
			status, err := approve(ctx, carol, id)
			if err != nil {
				results[i].err = fmt.Errorf("approve: %w", err)
				return
			}
			if status.State != workflows.StateApproved {
				results[i].err = fmt.Errorf("approve: state %s, want %s", status.State, workflows.StateApproved)
				return
			}
			if approved.Add(1) == int64(n/2) {
				close(half)
			}
		})
	}
	wg.Wait()
	approvedAll := time.Since(start)

	var failed int
	for i := range results {
		r := &results[i]
		if r.err != nil {
			failed++
			continue
		}
		var res workflows.AccessRequestResult
		if err := r.run.Get(ctx, &res); err != nil {
			r.err = fmt.Errorf("result: %w", err)
		} else if res.State != workflows.StateEnded || !slices.Equal(res.Status.Approvers, []string{"carol"}) ||
			res.Grant == nil || res.Grant.RoleName != pgaccess.RoleName(r.id, "bob") {
			r.err = fmt.Errorf("result: state %s, approvers %v, grant %+v; want ended, [carol], role %s",
				res.State, res.Status.Approvers, res.Grant, pgaccess.RoleName(r.id, "bob"))
		}
		if r.err != nil {
			failed++
		}
	}
	elapsed := time.Since(start)
	for _, r := range results {
		if r.err != nil {
			t.Errorf("run %s: %v", r.id, r.err)
		}
	}
	select {
	case at := <-killed:
		t.Logf("worker %s SIGKILLed %s after the first start", victim.name, at.Sub(start).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Errorf("worker %s was never killed (%d of %d runs approved)", victim.name, approved.Load(), n)
	}
	t.Logf("%d runs (%d failed) on 3 workers, one killed: all approved after %s, all finished after %s (%.1f runs/s)",
		n, failed, approvedAll.Round(time.Millisecond), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())

	// No grant is left behind.
	conn, err := pgx.Connect(ctx, st.Env("OIDCFLOW_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var names []string
	for _, r := range results {
		names = append(names, pgaccess.RoleName(r.id, "bob"))
	}
	var left int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)", names).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d database roles of the pool's runs were not dropped", left)
	}
	for _, w := range pool {
		if w == victim {
			continue
		}
		if _, body, err := w.get("/metrics"); err == nil {
			t.Logf("worker %s: %s", w.name, metricLine(body, `oidcflow_verifications_total{result="ok"}`))
		}
	}
}

// metricLine returns the line of a Prometheus text exposition for series, or "series absent".
func metricLine(exposition, series string) string {
	v, ok := metricValue(exposition, series)
	if !ok {
		return series + " absent"
	}
	return series + " " + strconv.FormatFloat(v, 'f', -1, 64)
}
