package upgrade_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/internal/testharness"
)

// workerProc is a worker process of the test.
type workerProc struct {
	name    string
	cmd     *exec.Cmd
	logs    *logBuffer
	done    chan struct{}
	exitErr error
}

// startWorkerProc runs the worker binary bin on queue with the stack's env file and env
// (KEY=value) on top, and waits until it polls. The variables oidcflow reads are dropped from
// the test's own environment, which would otherwise win over the env file. The process is
// killed when the test ends, if it still runs; its log is printed when the test failed.
func startWorkerProc(t *testing.T, st *testharness.Stack, bin, name, queue string, env ...string) *workerProc {
	t.Helper()
	cmd := exec.Command(bin)
	dieWithTest(cmd)
	var err error
	if cmd.Env, err = st.WorkerEnv(queue, env...); err != nil {
		t.Fatal(err)
	}
	p := &workerProc{name: name, cmd: cmd, logs: &logBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.logs
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker %s: %v", name, err)
	}
	polling := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		var once sync.Once
		for sc.Scan() {
			line := sc.Bytes()
			p.logs.Write(append(line, '\n'))
			var rec struct {
				Msg string `json:"msg"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "Started Worker" {
				once.Do(func() { close(polling) })
			}
		}
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("worker %s log (last 8 KB):\n%s", name, tail(p.logs.String(), 8192))
		}
	})
	select {
	case <-polling:
	case <-p.done:
		t.Fatalf("worker %s exited at start (%v):\n%s", name, p.exitErr, tail(p.logs.String(), 4096))
	case <-time.After(2 * time.Minute):
		t.Fatalf("worker %s did not start polling within 2m:\n%s", name, tail(p.logs.String(), 4096))
	}
	return p
}

// stop sends SIGTERM and waits for the worker to drain and exit; it fails t unless it exits
// with status 0 within timeout.
func (p *workerProc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to worker %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("worker %s did not exit within %s of SIGTERM", p.name, timeout)
	}
	if p.exitErr != nil {
		t.Fatalf("worker %s exited with %v after SIGTERM, want status 0", p.name, p.exitErr)
	}
}

// identity is the worker identity the SDK records on the events of the tasks the process
// ran ("<pid>@<host>@").
func (p *workerProc) identity() string { return strconv.Itoa(p.cmd.Process.Pid) + "@" }

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// logBuffer is a bytes.Buffer safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
