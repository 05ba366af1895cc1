package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// workerProc is a worker process the driver started (RunWorker in a child of this binary).
type workerProc struct {
	kind  string
	queue string
	addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
	hc    *http.Client
}

// procOptions describe a worker process.
type procOptions struct {
	kind, queue string
	envFile     string
	env         []string // more NAME=value pairs
	logDir      string   // its standard error goes to <logDir>/<kind>-<queue>.log
	profile     bool     // switch on the block and mutex profiles
	worker      []string // the command line that runs RunWorker, program first
}

// startWorker starts a worker process and waits until it polls.
func startWorker(ctx context.Context, o procOptions) (*workerProc, error) {
	args := append(append([]string{}, o.worker[1:]...), "-kind", o.kind)
	if o.profile {
		args = append(args, "-block-rate", "10000", "-mutex-fraction", "10")
	}
	cmd := exec.Command(o.worker[0], args...)
	cmd.Env = append(os.Environ(), "OIDCFLOW_ENV_FILE="+o.envFile, "OIDCFLOW_TASK_QUEUE="+o.queue,
		"OIDCFLOW_SWEEP_INTERVAL=0") // leave the pool's schedule alone: runs end their sessions
	cmd.Env = append(cmd.Env, o.env...)
	if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(o.logDir, o.kind+"-"+o.queue+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%w: start %s: %w", ErrWorker, o.kind, err)
	}
	p := &workerProc{kind: o.kind, queue: o.queue, cmd: cmd, stdin: stdin, done: make(chan error, 1),
		hc: &http.Client{Timeout: 2 * time.Minute}}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				ready <- addr
			}
		}
	}()
	go func() {
		p.done <- cmd.Wait()
		logf.Close()
	}()
	select {
	case p.addr = <-ready:
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("%w: %s exited before it polled (%v); see %s", ErrWorker, o.kind, err, logf.Name())
	case <-time.After(2 * time.Minute):
		p.stop()
		return nil, fmt.Errorf("%w: %s did not poll within 2m; see %s", ErrWorker, o.kind, logf.Name())
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// stop closes the worker's standard input, which makes it drain and exit, and kills it
// (this process's own child, by its pid) if it has not exited within a minute.
func (p *workerProc) stop() {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stats reads the worker's /stats.
func (p *workerProc) stats(ctx context.Context) (Stats, error) {
	var s Stats
	b, err := p.get(ctx, "/stats")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// profile saves the worker's pprof profile name (profile: CPU; block, mutex: contention)
// over the next seconds into path.
func (p *workerProc) profile(ctx context.Context, name string, seconds int, path string) error {
	b, err := p.get(ctx, "/debug/pprof/"+name+"?seconds="+strconv.Itoa(seconds))
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func (p *workerProc) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrWorker, p.kind, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s %s: %s: %s", ErrWorker, p.kind, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// delta returns after minus before, counter by counter and metric by metric.
func delta(before, after Stats) Stats {
	d := Stats{Counters: map[string]float64{}, Metrics: map[string]float64{},
		CPUSeconds: after.CPUSeconds - before.CPUSeconds, RSSBytes: after.RSSBytes, PeakRSSBytes: after.PeakRSSBytes,
		Goroutines: after.Goroutines}
	for k, v := range after.Counters {
		d.Counters[k] = v - before.Counters[k]
	}
	for k, v := range after.Metrics {
		d.Metrics[k] = v - before.Metrics[k]
	}
	return d
}
