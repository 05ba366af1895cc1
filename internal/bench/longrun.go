package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
	"github.com/oidcflow/oidcflow/internal/lifetimes"
	"github.com/oidcflow/oidcflow/internal/testharness"
)

// session is one long-run session: a login and the run it started.
type session struct {
	id      string
	started time.Time
	res     *lifetimes.Result
	err     error
}

// longRun logs n people in through a client of its own whose tokens live
// o.TokenTTL, starts one lifetimes.Steps run per login on a fresh oidcflow worker (one step
// every o.StepEvery for o.SessionDuration, each refreshing the session when it is due), and
// measures the refreshes and the worker's load.
func longRun(ctx context.Context, o *Options, n int) (*LongRun, error) {
	st := o.Stack
	fmt.Fprintf(o.Log, "bench: long run: %d sessions on %s tokens, a step every %s for %s\n",
		n, o.TokenTTL, o.StepEvery, o.SessionDuration)
	cl, err := newShortClient(ctx, st, o.TokenTTL)
	if err != nil {
		return nil, err
	}
	defer cl.delete()
	queue := "bench-long-" + randomTag()
	proc, err := startWorker(ctx, procOptions{kind: KindOIDCFlow, queue: queue, envFile: st.EnvFile(),
		env: []string{"OIDCFLOW_CLIENT_ID=" + cl.id}, logDir: filepath.Join(o.OutDir, "logs"), worker: o.WorkerCommand})
	if err != nil {
		return nil, err
	}
	defer proc.stop()
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ns := st.Env("TEMPORAL_NAMESPACE")
	bopts := st.TemporalOptions(st.WorkerTokenSource()) // the envelopes carry the people
	bopts.Logger = quiet
	base, err := client.DialContext(ctx, bopts)
	if err != nil {
		return nil, fmt.Errorf("bench: dial Temporal: %w", err)
	}
	defer base.Close()
	pub, err := envelope.ParsePublicKey(st.Env("OIDCFLOW_ENVELOPE_PUBLIC_KEY"))
	if err != nil {
		return nil, err
	}
	logs := filepath.Join(filepath.Dir(st.EnvFile()), "logs")
	idpLog, _ := lifetimes.NewLogTail(filepath.Join(logs, "idp.log"))
	hydraLog, _ := lifetimes.NewLogTail(filepath.Join(logs, "hydra.log"))

	before, err := proc.stats(ctx)
	if err != nil {
		return nil, err
	}
	steps := int(o.SessionDuration/o.StepEvery) + 1
	in := lifetimes.Input{Steps: steps, Every: o.StepEvery}
	sessions := make([]*session, n)
	begin := time.Now()
	sem := make(chan struct{}, o.LoginConcurrency)
	var wg sync.WaitGroup
	for i := range sessions {
		s := &session{id: fmt.Sprintf("bench-long-%s-%d", queue, i)}
		sessions[i] = s
		wg.Go(func() {
			sem <- struct{}{}
			runID, err := startSession(ctx, st, cl, base, pub, ns, o.Persona, queue, s, in, o.SessionDuration)
			<-sem
			if err != nil {
				s.err = err
				return
			}
			wctx, cancel := context.WithTimeout(ctx, runTimeout(o.SessionDuration))
			defer cancel()
			var res lifetimes.Result
			if s.err = base.GetWorkflow(wctx, s.id, runID).Get(wctx, &res); s.err == nil {
				s.res = &res
				return
			}
			// A failed run: ask how far it got.
			qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
			defer qcancel()
			if v, err := base.QueryWorkflow(qctx, s.id, runID, lifetimes.ProgressQuery); err == nil {
				var p lifetimes.Result
				if v.Get(&p) == nil {
					s.res = &p
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(begin)
	after, err := proc.stats(ctx)
	if err != nil {
		return nil, err
	}
	d := delta(before, after)

	lr := &LongRun{Sessions: n, Duration: o.SessionDuration.String(), Wall: wall.Round(time.Second).String(),
		StepsExpected: steps * n, IdPGrants: -1, ReuseReports: -1}
	var lateness, startDelays []float64
	for _, s := range sessions {
		if s.err != nil {
			lr.FailedRuns++
			if lr.FirstError == "" {
				lr.FirstError = s.err.Error()
			}
		}
		if s.res == nil {
			continue
		}
		for i, step := range s.res.Steps {
			if step.Validity <= 0 {
				continue
			}
			lr.Steps++
			var late float64
			if i == 0 {
				late = step.At.Sub(s.started).Seconds()
				startDelays = append(startDelays, late)
			} else {
				late = (step.At.Sub(s.res.Steps[i-1].At) - o.StepEvery).Seconds()
				lateness = append(lateness, late)
			}
			if late > o.LateAfter.Seconds() {
				lr.Late++
			} else {
				lr.OnTime++
			}
		}
	}
	lr.Missed = lr.StepsExpected - lr.Steps
	lr.LatenessP50, lr.LatenessP99 = percentile(lateness, 0.5), percentile(lateness, 0.99)
	lr.LatenessMax = percentile(lateness, 1)
	lr.StartDelayP99 = percentile(startDelays, 0.99)
	lr.Rotations = d.Metrics[MetricRefreshes]
	lr.RefreshFailures = d.Metrics[MetricRefreshFailures]
	lr.TokenRequests = d.Counters[IdPToken]
	if idpLog != nil {
		if n, err := idpLog.Count(`msg="idp: token hook"`, "client_id="+cl.id+" ", "grant_types=[refresh_token]"); err == nil {
			lr.IdPGrants = float64(n)
		}
	}
	if hydraLog != nil {
		if n, err := hydraLog.Count("Refresh token re-use was detected"); err == nil {
			lr.ReuseReports = float64(n)
		}
	}
	grants := lr.IdPGrants
	if grants < 0 {
		grants = lr.TokenRequests
	}
	if lr.Rotations > 0 {
		lr.GrantsPerRotation = grants / lr.Rotations
	}
	var vaultOps float64
	for _, k := range vaultCounters {
		if k != VaultAuth {
			vaultOps += d.Counters[k]
		}
	}
	lr.VaultOpsPerMinute = vaultOps / wall.Minutes()
	if lr.Rotations > 0 {
		lr.VaultOpsPerRotation = vaultOps / lr.Rotations
	}
	lr.WorkerCPUPercent = d.CPUSeconds / wall.Seconds() * 100
	lr.WorkerRSSMiB = float64(after.RSSBytes) / (1 << 20)
	lr.WorkerPeakRSSMiB = float64(after.PeakRSSBytes) / (1 << 20)
	fmt.Fprintf(o.Log, "bench: long run of %d: %d of %d steps on time, %d late, %d missed, %d failed runs, %.0f rotations, %.2f grants per rotation\n",
		n, lr.OnTime, lr.StepsExpected, lr.Late, lr.Missed, lr.FailedRuns, lr.Rotations, lr.GrantsPerRotation)
	return lr, nil
}

// runTimeout bounds a long run's session of d: generous, so that an overloaded machine shows
// as late steps rather than as runs the benchmark timed out.
func runTimeout(d time.Duration) time.Duration { return 4*d + 15*time.Minute }

// startSession logs persona in through cl and starts s's run with a client that seals that
// login's tokens (a client of its own over base's connection). It returns the run id.
func startSession(ctx context.Context, st *testharness.Stack, cl *shortClient, base client.Client, pub *envelope.PublicKey,
	ns, persona, queue string, s *session, in lifetimes.Input, d time.Duration) (string, error) {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tok, err := personaLogin(st, cl.config, persona)(lctx)
	if err != nil {
		return "", fmt.Errorf("bench: log in: %w", err)
	}
	ci, err := interceptors.NewClientInterceptor(interceptors.ClientOptions{
		TokenSource: oauth2.StaticTokenSource(tok), PublicKey: pub, Namespace: ns,
	})
	if err != nil {
		return "", err
	}
	c, err := client.NewClientFromExisting(base, client.Options{Namespace: ns, Interceptors: []interceptor.ClientInterceptor{ci}})
	if err != nil {
		return "", err
	}
	defer c.Close()
	s.started = time.Now()
	run, err := c.ExecuteWorkflow(lctx, client.StartWorkflowOptions{ID: s.id, TaskQueue: queue,
		WorkflowExecutionTimeout: runTimeout(d)}, lifetimes.StepsWorkflow, in)
	if err != nil {
		return "", fmt.Errorf("bench: start: %w", err)
	}
	return run.GetRunID(), nil
}
