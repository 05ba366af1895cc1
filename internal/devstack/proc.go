package devstack

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ServerError is the one message a server that fails to start produces: which server,
// its port(s), its log file and what went wrong.
type ServerError struct {
	Server string
	Ports  []int
	Log    string
	Err    error
	// logFrom is the log's size before this start; only lines after it are quoted.
	logFrom int64
	logPath string
}

func (e *ServerError) Error() string {
	ports := make([]string, len(e.Ports))
	for i, p := range e.Ports {
		ports[i] = strconv.Itoa(p)
	}
	msg := fmt.Sprintf("devstack: %s failed to start (port %s, log %s): %v",
		e.Server, strings.Join(ports, "/"), e.Log, e.Err)
	if last := lastLine(e.logPath, e.logFrom); e.logPath != "" && last != "" {
		msg += "\n  last log line: " + last
	}
	return msg
}

func (e *ServerError) Unwrap() error { return e.Err }

// ErrPortInUse is wrapped by a ServerError when a port of the server is taken.
var ErrPortInUse = errors.New("port already in use")

// process is a started server: its pid and a channel closed when it exits (only for
// processes started by this launcher run).
type process struct {
	pid    int
	exited chan struct{}
	err    error
}

// checkPortsFree fails with ErrPortInUse when something already listens on one of ports.
func checkPortsFree(ports ...int) error {
	for _, p := range ports {
		ln, err := net.Listen("tcp", hostPort(p))
		if err != nil {
			return fmt.Errorf("%s: %w", hostPort(p), ErrPortInUse)
		}
		ln.Close()
	}
	return nil
}

func hostPort(p int) string { return net.JoinHostPort(Host, strconv.Itoa(p)) }

// spawn starts argv in its own session with output appended to logPath, and records its
// pid in pidPath. cred, when not nil, runs it as another user.
func spawn(dir, logPath, pidPath string, env []string, cred *syscall.Credential, argv ...string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n=== %s devstack: starting %s\n", time.Now().Format(time.RFC3339), filepath.Base(argv[0]))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if p.err == nil {
			p.err = errors.New("exited")
		}
		close(p.exited)
	}()
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(p.pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	return p, nil
}

// readPid returns the pid recorded in pidPath, or 0.
func readPid(pidPath string) int {
	b, err := os.ReadFile(pidPath)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// alive reports whether pid runs (not a zombie) and its command line mentions binary, so
// that a reused pid is never taken for ours.
func alive(pid int, binary string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte(binary))
}

// groupMembers lists live processes whose process group is pgid.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stop sends sig to pid, waits up to grace for it to end, then kills what is left of its
// process group (the server was started as a session leader, so the group is its own).
func stop(pid int, binary string, sig syscall.Signal, grace time.Duration) error {
	if !alive(pid, binary) {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid, binary) && len(groupMembers(pid)) == 0 {
			waitReaped(pid, 3*time.Second)
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for range 40 {
		if len(groupMembers(pid)) == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("process %d did not stop", pid)
}

// waitReaped waits up to d for the ended process to leave the process table (its parent,
// usually init once the launcher has exited, reaps it), so that ps shows nothing after
// down.
func waitReaped(pid int, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
	}
}

// lastLine returns the last non-empty line of a file after offset from, trimmed to 300
// bytes.
func lastLine(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		from = max(from, st.Size()-64<<10)
	}
	if from > 0 {
		_, _ = f.Seek(from, 0)
	}
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "=== ") {
			last = l
		}
	}
	if len(last) > 300 {
		last = last[:300] + "..."
	}
	return last
}
