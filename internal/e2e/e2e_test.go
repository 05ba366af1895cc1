// Package e2e_test checks oidcflow from the outside, on the running dev stack: the Temporal
// Web UI seen in a real browser, a pool of worker processes that loses a member, and the
// worker binary's metrics, health endpoints and graceful shutdown.
package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/leakcheck"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/pgaccess"
	"github.com/oidcflow/oidcflow/workflows"
)

// binDir holds the worker binary built once for this test process.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oidcflow-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var bootstrapOnce sync.Once

// loadStack returns the dev stack with the demo database bootstrapped.
func loadStack(t *testing.T) *testharness.Stack {
	t.Helper()
	st := testharness.Load(t)
	var err error
	bootstrapOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err = pgaccess.Bootstrap(ctx, st.Env("OIDCFLOW_POSTGRES_URL"), pgaccess.BootstrapOptions{Database: "demo"})
	})
	if err != nil {
		t.Fatalf("bootstrap the demo database: %v", err)
	}
	return st
}

// accessInput asks for read access to the demo database, with timers short enough for tests.
func accessInput(reason string, d time.Duration) workflows.AccessRequestInput {
	return workflows.AccessRequestInput{
		Resource: "demo",
		Role:     workflows.AccessRead,
		Duration: d,
		Reason:   reason,
		Config:   &workflows.AccessConfig{ExpireAfter: 10 * time.Minute, EscalateAfter: 10 * time.Minute},
	}
}

// approve sends the approve update as c's persona for the request c sees in the status query
// (workflows.ApproveAccess: that run, that request digest) and waits for its result. The run
// registers its handlers once its identity is verified; a query or update sent in the same
// instant as the start is refused (leaving no trace), so both are sent again until ctx ends:
// on a busy machine the worker may take the run's first task seconds after the start. So is
// an update the server turns away while the run's workflow task is on its third attempt or
// later (WorkflowNotReady: a worker died holding it, or it timed out on a busy machine).
func approve(ctx context.Context, c client.Client, workflowID string) (workflows.AccessStatus, error) {
	var st workflows.AccessStatus
	for {
		var seen workflows.AccessStatus
		v, qerr := c.QueryWorkflow(ctx, workflowID, "", workflows.QueryStatus)
		if qerr == nil {
			qerr = v.Get(&seen)
		}
		err := qerr
		if err == nil {
			var h client.WorkflowUpdateHandle
			if h, err = c.UpdateWorkflow(ctx, workflows.ApproveAccess(workflowID, seen, "ok")); err == nil {
				err = h.Get(ctx, &st)
			}
		}
		var notReady *serviceerror.WorkflowNotReady
		if (qerr != nil || errors.As(err, &notReady) || (err != nil && strings.Contains(err.Error(), "unknown update"))) && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return st, err
	}
}

// artifactPath returns path under the module's artifacts/ folder (ignored by git), creating
// its parent folders.
func artifactPath(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
	p := filepath.Join(dir, "artifacts", "e2e", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	buildOnce sync.Once
	buildErr  error
)

// workerBinary builds ./worker once per test process.
func workerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "worker")
	buildOnce.Do(func() {
		start := time.Now()
		out, err := exec.Command("go", "build", "-o", bin, "github.com/oidcflow/oidcflow/worker").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./worker: %v\n%s", err, out)
			return
		}
		t.Logf("built the worker binary in %s", time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

// workerProc is one worker binary running as a child process.
type workerProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	addr string // its HTTP listener (metrics, health)
	logs *leakcheck.Buffer

	done    chan struct{} // closed when the process has exited
	exitErr error         // its Wait error, set before done closes
	exited  time.Time
}

// startWorkerProc runs the worker binary on queue with the stack's env file; extra holds
// more NAME=value settings. The HTTP listener takes a free port, read back from the
// "worker starting" log line. The process is killed when the test ends, if still running.
func startWorkerProc(t *testing.T, st *testharness.Stack, name, queue string, extra ...string) *workerProc {
	t.Helper()
	cmd := exec.Command(workerBinary(t))
	var err error
	if cmd.Env, err = st.WorkerEnv(queue, extra...); err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &workerProc{t: t, name: name, cmd: cmd, logs: &leakcheck.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker %s: %v", name, err)
	}
	apptest.DeleteSweeperSchedule(t, st, queue)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Bytes()
			p.logs.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "worker starting" && rec.HTTP != "" {
				select {
				case addr <- rec.HTTP:
				default:
				}
			}
		}
		p.exitErr = cmd.Wait()
		p.exited = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("worker %s log (last 4 KB):\n%s", name, tail(p.logs.String(), 4096))
		}
	})
	select {
	case p.addr = <-addr:
	case <-p.done:
		t.Fatalf("worker %s exited at start (%v):\n%s", name, p.exitErr, tail(p.logs.String(), 4096))
	case <-time.After(90 * time.Second):
		t.Fatalf("worker %s did not start within 90s:\n%s", name, tail(p.logs.String(), 4096))
	}
	return p
}

// get fetches path from the worker's HTTP listener.
func (p *workerProc) get(path string) (int, string, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + p.addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitReady polls /readyz until it answers 200.
func (p *workerProc) waitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body, err := p.get("/readyz")
		if err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("worker %s: /readyz = %d %q, %v after %s", p.name, code, body, err, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *workerProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal worker %s: %v", p.name, err)
	}
}

// wait waits up to timeout for the process to exit; ok is false if it is still running.
func (p *workerProc) wait(timeout time.Duration) (exitErr error, ok bool) {
	select {
	case <-p.done:
		return p.exitErr, true
	case <-time.After(timeout):
		return nil, false
	}
}

func (p *workerProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// exitCode returns the process's exit code from its Wait error (-1: killed by a signal).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -2
	}
	return 0
}

// metricValue returns the value of series (name with its rendered labels, as in
// `name{k="v"}`) in a Prometheus text exposition.
func metricValue(exposition, series string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}
