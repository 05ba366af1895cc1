package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"
)

// profilePhase keeps both sides busy, batch by batch as in a level, for o.ProfileSeconds at
// the level nearest 10 in flight, while it records each worker's CPU, block and mutex
// profiles (over the same wall time) and its own CPU profile (the clients: sealing on the
// oidcflow side). It writes them to o.ProfileDir with summary.txt, which gives the runs
// each side completed in the window: CPU samples per run compare the two paths.
func profilePhase(ctx context.Context, o *Options, plain, flow *side) error {
	if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
		return err
	}
	inFlight := o.InFlight[0]
	for _, n := range o.InFlight {
		if abs(n-10) < abs(inFlight-10) {
			inFlight = n
		}
	}
	fmt.Fprintf(o.Log, "bench: profiling for %ds at %d in flight into %s\n", o.ProfileSeconds, inFlight, o.ProfileDir)
	driver, err := os.Create(filepath.Join(o.ProfileDir, "driver.cpu.pprof"))
	if err != nil {
		return err
	}
	defer driver.Close()
	if err := pprof.StartCPUProfile(driver); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for _, s := range []*side{plain, flow} {
		for _, name := range []string{"profile", "block", "mutex"} {
			file := s.name + "." + map[string]string{"profile": "cpu", "block": "block", "mutex": "mutex"}[name] + ".pprof"
			wg.Go(func() {
				errs <- s.proc.profile(ctx, name, o.ProfileSeconds, filepath.Join(o.ProfileDir, file))
			})
		}
	}
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	outs := map[*side]*outcome{plain: {}, flow: {}}
	start := time.Now()
	for b := 0; ; b++ {
		order := []*side{plain, flow}
		if b%2 == 1 {
			order = []*side{flow, plain}
		}
		for _, s := range order {
			s.batch(ctx, inFlight, max(inFlight, 30), outs[s])
		}
		select {
		case <-stopped:
		default:
			if ctx.Err() == nil {
				continue
			}
		}
		break
	}
	pprof.StopCPUProfile()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		return err
	}
	summary := fmt.Sprintf("profiles over %ds (%s of batches) at %d in flight\nplain runs: %d (failed %d)\noidcflow runs: %d (failed %d)\n"+
		"compare: go tool pprof -top -nodecount=40 %s\n",
		o.ProfileSeconds, time.Since(start).Round(time.Second), inFlight,
		len(outs[plain].latencies), outs[plain].failures, len(outs[flow].latencies), outs[flow].failures,
		filepath.Join(o.ProfileDir, "oidcflow.cpu.pprof"))
	fmt.Fprint(o.Log, "bench: "+summary)
	return os.WriteFile(filepath.Join(o.ProfileDir, "summary.txt"), []byte(summary), 0o644)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
