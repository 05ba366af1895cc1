package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/internal/testharness"
)

// Options configure Run. Zero values mean the defaults named.
type Options struct {
	// Stack is the running dev stack. Required.
	Stack *testharness.Stack
	// WorkerCommand is the command line that runs RunWorker in a new process, program first;
	// Run appends -kind and the profiling flags. Required (the bench command passes itself
	// and "worker").
	WorkerCommand []string
	// InFlight are the numbers of runs in flight to compare at. Default 1, 10, 50. Skip
	// the side-by-side part with SkipSideBySide.
	InFlight       []int
	SkipSideBySide bool
	// Runs is how many runs each side completes per repeat at more than 1 in flight; RunsAt1
	// at 1 in flight. Defaults 300 and 100.
	Runs, RunsAt1 int
	// Repeats is how many times each level is measured; the table shows the median and the
	// range. Default 3.
	Repeats int
	// Persona is the dev persona that starts the oidcflow runs (one login, renewed by a new
	// login before it expires). Default "bob".
	Persona string
	// HistorySample is how many runs of each side (at the first level) have their history
	// measured. Default 5.
	HistorySample int
	// Sessions are the long runs' numbers of concurrent sessions (independent logins), one
	// long run each, in order; a single negative number skips them. Default 20.
	Sessions []int
	// SessionDuration is how long each long-run session runs steps. Default 2m.
	SessionDuration time.Duration
	// StepEvery is the pause between a session's steps. Default 20s.
	StepEvery time.Duration
	// TokenTTL is the lifetime of the long run's access and ID tokens. Default 30s.
	TokenTTL time.Duration
	// LateAfter: a step that starts later than this after it was due counts as late.
	// Default 5s.
	LateAfter time.Duration
	// LoginConcurrency bounds the long run's logins at a time. Default 8.
	LoginConcurrency int
	// ProfileDir, when set, makes the workers record block and mutex profiles and adds a
	// profiling phase (ProfileSeconds at the level nearest 10 in flight) that saves CPU,
	// block and mutex profiles of both workers and a CPU profile of the driver there.
	// Default "": no profiling.
	ProfileDir     string
	ProfileSeconds int // default 30
	// OutDir receives the result as <date>.json and latest.json, and the workers' logs.
	// Default "artifacts/bench".
	OutDir string
	// Log receives progress lines. Default os.Stderr.
	Log io.Writer
}

func (o *Options) defaults() {
	if len(o.InFlight) == 0 {
		o.InFlight = []int{1, 10, 50}
	}
	if o.Runs <= 0 {
		o.Runs = 300
	}
	if o.RunsAt1 <= 0 {
		o.RunsAt1 = 100
	}
	if o.Repeats <= 0 {
		o.Repeats = 3
	}
	if o.Persona == "" {
		o.Persona = "bob"
	}
	if o.HistorySample <= 0 {
		o.HistorySample = 5
	}
	if len(o.Sessions) == 0 {
		o.Sessions = []int{20}
	}
	if o.SessionDuration <= 0 {
		o.SessionDuration = 2 * time.Minute
	}
	if o.StepEvery <= 0 {
		o.StepEvery = 20 * time.Second
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = 30 * time.Second
	}
	if o.LateAfter <= 0 {
		o.LateAfter = 5 * time.Second
	}
	if o.LoginConcurrency <= 0 {
		o.LoginConcurrency = 8
	}
	if o.ProfileSeconds <= 0 {
		o.ProfileSeconds = 30
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join("artifacts", "bench")
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
}

// Run runs the benchmark on the stack and writes its result (see the package
// documentation). It returns the result and the path of the JSON it wrote.
func Run(ctx context.Context, opts Options) (*Result, string, error) {
	opts.defaults()
	if opts.Stack == nil || len(opts.WorkerCommand) == 0 {
		return nil, "", errors.New("bench: Options.Stack and Options.WorkerCommand are required")
	}
	r := &Result{Date: time.Now().UTC(), Machine: machine(), Params: Params{
		InFlight: opts.InFlight, Runs: opts.Runs, RunsAt1: opts.RunsAt1, Repeats: opts.Repeats, Persona: opts.Persona,
		HistorySample: opts.HistorySample, Sessions: opts.Sessions, SessionDuration: opts.SessionDuration.String(),
		StepEvery: opts.StepEvery.String(), TokenTTL: opts.TokenTTL.String(), LateAfter: opts.LateAfter.String(),
	}}
	err := func() error {
		if opts.SkipSideBySide {
			r.Params.InFlight = nil
		} else if err := sideBySide(ctx, &opts, r); err != nil {
			return err
		}
		for _, n := range opts.Sessions {
			if n <= 0 {
				r.Params.Sessions = nil
				return nil
			}
			lr, err := longRun(ctx, &opts, n)
			if lr != nil {
				r.LongRuns = append(r.LongRuns, lr)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		// What was measured is kept, beside latest.json, not in its place.
		r.Failed = err.Error()
		path, werr := r.write(opts.OutDir)
		if werr == nil {
			fmt.Fprintf(opts.Log, "bench: the part measured before the failure is in %s\n", path)
		}
		return r, path, err
	}
	path, err := r.write(opts.OutDir)
	return r, path, err
}

// side is one of the two paths under comparison.
type side struct {
	name  string
	c     client.Client
	queue string
	proc  *workerProc
	seq   atomic.Int64
}

// outcome collects a batch's runs.
type outcome struct {
	mu        sync.Mutex
	latencies []float64 // ms
	ids       []string
	failures  int
	firstErr  string
}

func (o *outcome) add(id string, ms float64, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.failures++
		if o.firstErr == "" {
			o.firstErr = err.Error()
		}
		return
	}
	o.latencies = append(o.latencies, ms)
	o.ids = append(o.ids, id)
}

// batch completes n runs on s with inFlight of them in flight at a time and returns its
// wall time.
func (s *side) batch(ctx context.Context, inFlight, n int, out *outcome) time.Duration {
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				id := fmt.Sprintf("bench-%s-%s-%d", s.name, s.queue, s.seq.Add(1))
				rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				t0 := time.Now()
				run, err := s.c.ExecuteWorkflow(rctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.queue,
					WorkflowExecutionTimeout: 10 * time.Minute}, ThreeStepsWorkflow)
				if err == nil {
					err = run.Get(rctx, nil)
				}
				cancel()
				out.add(id, float64(time.Since(t0).Microseconds())/1000, err)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// sideBySide measures every level, the histories, the verification and, when asked, the
// profiles; it fills r.Levels, r.History and r.Verification.
func sideBySide(ctx context.Context, o *Options, r *Result) error {
	st := o.Stack
	env, err := config.New(func(name string) (string, bool) {
		if v := st.Env(name); v != "" {
			return v, true
		}
		return os.LookupEnv(name)
	})
	if err != nil {
		return err
	}
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	// The plain side starts as the worker client; the oidcflow side as the person.
	copts := st.TemporalOptions(st.WorkerTokenSource())
	copts.Logger = quiet
	plainOpts := copts
	plainOpts.DataConverter = nil // the plain worker keeps payloads as they are
	plainClient, err := client.DialContext(ctx, plainOpts)
	if err != nil {
		return fmt.Errorf("bench: dial Temporal: %w", err)
	}
	defer plainClient.Close()
	tokens := &loginSource{login: personaLogin(st, st.OAuth2Config(), o.Persona), margin: 10 * time.Minute}
	if _, err := tokens.Token(); err != nil { // log in once, before anything is timed
		return fmt.Errorf("bench: log in as %s: %w", o.Persona, err)
	}
	flowClient, err := interceptors.Dial(ctx, interceptors.DialOptions{
		Client: copts, TokenSource: tokens, PublicKey: st.Env("OIDCFLOW_ENVELOPE_PUBLIC_KEY"), Bearer: st.Authorizes(),
	})
	if err != nil {
		return err
	}
	defer flowClient.Close()

	tag := randomTag()
	plain := &side{name: KindPlain, c: plainClient, queue: "bench-plain-" + tag}
	flow := &side{name: KindOIDCFlow, c: flowClient, queue: "bench-oidcflow-" + tag}
	for _, s := range []*side{plain, flow} {
		fmt.Fprintf(o.Log, "bench: starting the %s worker on %s\n", s.name, s.queue)
		s.proc, err = startWorker(ctx, procOptions{kind: s.name, queue: s.queue, envFile: st.EnvFile(),
			logDir: filepath.Join(o.OutDir, "logs"), profile: o.ProfileDir != "", worker: o.WorkerCommand})
		if err != nil {
			return err
		}
		defer s.proc.stop()
	}
	warm := &outcome{}
	plain.batch(ctx, 5, 10, warm) // warm both paths: connections, caches, sticky queues
	flow.batch(ctx, 5, 10, warm)
	if warm.failures > 0 {
		return fmt.Errorf("bench: warm-up: %d of 20 runs failed; first: %s", warm.failures, warm.firstErr)
	}

	var plainSample, flowSample []string
	for _, inFlight := range o.InFlight {
		runs := o.Runs
		if inFlight == 1 {
			runs = o.RunsAt1
		}
		lvl, ps, fs, err := measureLevel(ctx, o, plain, flow, inFlight, runs)
		if err != nil {
			return err
		}
		r.Levels = append(r.Levels, *lvl)
		if plainSample == nil {
			plainSample, flowSample = ps, fs
		}
		fmt.Fprintf(o.Log, "bench: %d in flight: throughput ratio %.2f, p50 ratio %.2f, p99 ratio %.2f\n",
			inFlight, lvl.RateRatio.Median, lvl.P50Ratio.Median, lvl.P99Ratio.Median)
	}
	n := min(o.HistorySample, len(plainSample), len(flowSample))
	if r.History, err = compareHistories(ctx, plainClient, plainSample[:n], flowSample[:n]); err != nil {
		return fmt.Errorf("bench: histories: %w", err)
	}
	tok, err := tokens.Token()
	if err != nil {
		return err
	}
	raw, _ := tok.Extra("id_token").(string)
	if r.Verification, err = measureVerification(ctx, env, raw); err != nil {
		return err
	}
	if o.ProfileDir != "" {
		if err := profilePhase(ctx, o, plain, flow); err != nil {
			return err
		}
	}
	return nil
}

// measureLevel runs the level's repeats, interleaving the two sides batch by batch and
// alternating which goes first, and reads the workers' counts around them. It returns the
// level and the ids of the first completed runs of each side.
func measureLevel(ctx context.Context, o *Options, plain, flow *side, inFlight, runs int) (*Level, []string, []string, error) {
	lvl := &Level{InFlight: inFlight, RunsPerSide: runs}
	per := max(inFlight, 30)
	per = min(per, runs)
	before := map[*side]Stats{}
	for _, s := range []*side{plain, flow} {
		st, err := s.proc.stats(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		before[s] = st
	}
	var plainIDs, flowIDs []string
	completed := map[*side]int{}
	for rep := range o.Repeats {
		outs := map[*side]*outcome{plain: {}, flow: {}}
		walls := map[*side]time.Duration{}
		for b, done := 0, 0; done < runs; b, done = b+1, done+per {
			n := min(per, runs-done)
			order := []*side{plain, flow}
			if b%2 == 1 {
				order = []*side{flow, plain}
			}
			for _, s := range order {
				walls[s] += s.batch(ctx, inFlight, n, outs[s])
			}
			if err := ctx.Err(); err != nil {
				return nil, nil, nil, err
			}
		}
		rp := Repeat{}
		for _, s := range []*side{plain, flow} {
			out := outs[s]
			completed[s] += len(out.latencies)
			lvl.Failures += out.failures
			if lvl.FirstError == "" && out.firstErr != "" {
				lvl.FirstError = s.name + ": " + out.firstErr
			}
			rate := float64(len(out.latencies)) / walls[s].Seconds()
			p50, p99 := percentile(out.latencies, 0.50), percentile(out.latencies, 0.99)
			if s == plain {
				rp.PlainRate, rp.PlainP50, rp.PlainP99 = rate, p50, p99
				plainIDs = append(plainIDs, out.ids...)
			} else {
				rp.FlowRate, rp.FlowP50, rp.FlowP99 = rate, p50, p99
				flowIDs = append(flowIDs, out.ids...)
			}
		}
		lvl.Repeats = append(lvl.Repeats, rp)
		fmt.Fprintf(o.Log, "bench: %d in flight, repeat %d: plain %.1f runs/s p50 %.0f ms p99 %.0f ms; oidcflow %.1f runs/s p50 %.0f ms p99 %.0f ms\n",
			inFlight, rep+1, rp.PlainRate, rp.PlainP50, rp.PlainP99, rp.FlowRate, rp.FlowP50, rp.FlowP99)
	}
	if lvl.Failures > (o.Repeats*runs*2)/10 {
		return nil, nil, nil, fmt.Errorf("bench: %d in flight: %d runs failed; first: %s", inFlight, lvl.Failures, lvl.FirstError)
	}
	lvl.summarize()
	after := map[*side]Stats{}
	for _, s := range []*side{plain, flow} {
		st, err := s.proc.stats(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		after[s] = st
	}
	dp, df := delta(before[plain], after[plain]), delta(before[flow], after[flow])
	lvl.PerRun = perRun(dp, df, completed[plain], completed[flow])
	return lvl, plainIDs, flowIDs, nil
}

// perRun divides the workers' counts by the runs they completed.
func perRun(plain, flow Stats, plainRuns, flowRuns int) PerRun {
	p := PerRun{Runs: flowRuns, Vault: map[string]float64{}, IdP: map[string]float64{}, Phases: map[string]Phase{}}
	if flowRuns == 0 || plainRuns == 0 {
		return p
	}
	n := float64(flowRuns)
	for _, k := range vaultCounters {
		p.Vault[k] = flow.Counters[k] / n
	}
	for _, k := range idpCounters {
		p.IdP[k] = flow.Counters[k] / n
	}
	p.EnvelopeOpens = flow.Metrics[MetricEnvelopeOpens] / n
	p.Resumes = flow.Metrics[MetricResumes] / n
	if c := flow.Metrics[MetricEnvelopeOpens]; c > 0 {
		p.OpenMs = flow.Metrics[MetricEnvelopeSeconds] / c * 1000
	}
	if c := flow.Metrics[MetricResumes]; c > 0 {
		p.ResumeMs = flow.Metrics[MetricResumeSeconds] / c * 1000
	}
	for _, ph := range phases {
		if c := flow.Metrics[ph+"_count"]; c > 0 {
			p.Phases[ph] = Phase{PerRun: c / n, MeanMs: flow.Metrics[ph+"_seconds"] / c * 1000}
		}
	}
	p.PlainCPUMs = plain.CPUSeconds / float64(plainRuns) * 1000
	p.FlowCPUMs = flow.CPUSeconds / n * 1000
	return p
}

// percentile returns the nearest-rank q-quantile of v (0 for none).
func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func randomTag() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// machine describes this machine: CPUs, CPU model, load.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.Load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m
}
