// Command bench measures oidcflow against plain Temporal on the running dev stack and prints
// the table (`make bench`; package internal/bench says what it measures).
//
//	bench [flags]                 run the benchmark; write artifacts/bench/latest.json
//	bench readme [-in] [-readme]  render the README's performance section from a result
//	bench worker -kind plain|oidcflow
//	                              one worker process (the benchmark starts these itself)
//
// The stack is found as the integration tests find it: OIDCFLOW_ENV_FILE, else .stack/env at
// the module root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/oidcflow/oidcflow/internal/bench"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/internal/testharness"
)

func main() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) > 0 && args[0] == "worker":
		err = worker(args[1:])
	case len(args) > 0 && args[0] == "readme":
		err = readme(args[1:])
	default:
		err = run(args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	var o bench.Options
	inFlight := fs.String("in-flight", "1,10,50", "numbers of runs in flight to compare at, comma-separated; empty: skip the side-by-side part")
	fs.IntVar(&o.Runs, "runs", 300, "runs per side per repeat at more than 1 in flight (fewer for a quick look)")
	fs.IntVar(&o.RunsAt1, "runs-1", 100, "runs per side per repeat at 1 in flight")
	fs.IntVar(&o.Repeats, "repeats", 3, "repeats of each level (the table shows their median and range)")
	fs.StringVar(&o.Persona, "persona", "bob", "dev persona that starts the oidcflow runs")
	fs.IntVar(&o.HistorySample, "history", 5, "runs of each side whose histories are compared")
	sessions := fs.String("sessions", "100,300,1000", "long runs: numbers of concurrent sessions, comma-separated, one long run each; -1 skips them")
	fs.DurationVar(&o.SessionDuration, "session-duration", 5*time.Minute, "long runs: how long each session runs steps")
	fs.DurationVar(&o.StepEvery, "every", 20*time.Second, "long run: pause between a session's steps")
	fs.DurationVar(&o.TokenTTL, "ttl", 30*time.Second, "long run: access and ID token lifetime")
	fs.DurationVar(&o.LateAfter, "late", 5*time.Second, "long run: a step this much after it was due is late")
	fs.IntVar(&o.LoginConcurrency, "logins", 8, "long run: logins at a time")
	fs.StringVar(&o.ProfileDir, "profile", "", "directory for CPU, block and mutex profiles of both workers (adds a profiling phase)")
	fs.IntVar(&o.ProfileSeconds, "profile-seconds", 30, "length of the profiling phase")
	fs.StringVar(&o.OutDir, "out", "artifacts/bench", "directory of the JSON results and the workers' logs")
	readmePath := fs.String("readme", "", "also render the result into this README's generated performance section")
	_ = fs.Parse(args)
	if strings.TrimSpace(*inFlight) == "" {
		o.SkipSideBySide = true
	}
	var err error
	if o.InFlight, err = numbers("-in-flight", *inFlight, 1); err != nil {
		return err
	}
	if o.Sessions, err = numbers("-sessions", *sessions, -1); err != nil {
		return err
	}
	st, err := testharness.Open()
	if err != nil {
		return fmt.Errorf("%w (bring the stack up with `make up`, or run `make bench`)", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.Stack, o.WorkerCommand = st, []string{self, "worker"}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, path, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Println(bench.Markdown(res))
	fmt.Fprintf(os.Stderr, "bench: wrote %s and latest.json\n", path)
	if *readmePath != "" {
		return renderReadme(res, *readmePath)
	}
	return nil
}

func readme(args []string) error {
	fs := flag.NewFlagSet("bench readme", flag.ExitOnError)
	in := fs.String("in", "artifacts/bench/latest.json", "result to render")
	path := fs.String("readme", "README.md", "README whose generated performance section is replaced")
	_ = fs.Parse(args)
	res, err := bench.ReadResult(*in)
	if err != nil {
		return err
	}
	return renderReadme(res, *path)
}

func renderReadme(res *bench.Result, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := bench.ReplaceSection(string(b), bench.Markdown(res))
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// worker runs one worker process until its standard input closes (the benchmark that
// started it ended) or it is signalled.
func worker(args []string) error {
	fs := flag.NewFlagSet("bench worker", flag.ExitOnError)
	var o bench.WorkerOptions
	fs.StringVar(&o.Kind, "kind", "", "plain or oidcflow")
	fs.IntVar(&o.BlockProfileRate, "block-rate", 0, "runtime.SetBlockProfileRate (0: off)")
	fs.IntVar(&o.MutexProfileFraction, "mutex-fraction", 0, "runtime.SetMutexProfileFraction (0: off)")
	_ = fs.Parse(args)
	env, err := config.FromEnvironment()
	if err != nil {
		return err
	}
	o.Env, o.Ready = env, os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	err = bench.RunWorker(ctx, o)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// numbers parses a comma-separated list of numbers of at least least.
func numbers(flagName, list string, least int) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < least || n == 0 {
			return nil, fmt.Errorf("%s: %q is not a number of runs or sessions", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}
