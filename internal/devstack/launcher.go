package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/internal/devtls"
)

// Options configure a Launcher.
type Options struct {
	// Root is the clone's root folder (holding go.mod). Default: found by walking up from
	// the working directory.
	Root string
	// State is the state folder (env file, data, logs, pids). Default: Root/.stack.
	State string
	// Out receives progress lines. Default: os.Stdout.
	Out io.Writer
	// Timeout bounds the wait for each server to become healthy. Default: 90s.
	Timeout time.Duration
	// Executable is the devstack binary run as the login/consent app (`serve-idp`).
	// Default: os.Executable().
	Executable string
	// Getenv reads launcher settings (Setting* names). Default: os.Getenv.
	Getenv func(string) string
}

// Launcher starts, checks and stops the dev stack.
type Launcher struct {
	root, state string
	out         io.Writer
	timeout     time.Duration
	exe         string
	getenv      func(string) string
	// chown gives the compose services' files to their users; nil: os.Lchown.
	chown func(path string, uid, gid int) error

	mu  sync.Mutex
	env map[string]string
}

// New returns a Launcher.
func New(o Options) (*Launcher, error) {
	if o.Root == "" && o.State != "" {
		o.Root = filepath.Dir(o.State)
	}
	if o.Root == "" {
		r, err := FindRoot()
		if err != nil {
			return nil, err
		}
		o.Root = r
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Timeout == 0 {
		o.Timeout = 90 * time.Second
	}
	if o.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("devstack: %w", err)
		}
		o.Executable = exe
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	state := filepath.Join(root, ".stack")
	if o.State != "" {
		if state, err = filepath.Abs(o.State); err != nil {
			return nil, fmt.Errorf("devstack: %w", err)
		}
	}
	return &Launcher{
		root: root, state: state, out: o.Out,
		timeout: o.Timeout, exe: o.Executable, getenv: o.Getenv,
		env: map[string]string{},
	}, nil
}

// FindRoot walks up from the working directory to the folder holding go.mod.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("devstack: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("devstack: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// EnvFile is the path of the env file written by Up.
func (l *Launcher) EnvFile() string { return filepath.Join(l.state, "env") }

func (l *Launcher) path(elem ...string) string {
	return filepath.Join(append([]string{l.state}, elem...)...)
}

func (l *Launcher) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.out, "devstack: "+format+"\n", args...)
}

func (l *Launcher) setEnv(kv ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i+1 < len(kv); i += 2 {
		l.env[kv[i]] = kv[i+1]
	}
}

// service is one server of the stack.
type service struct {
	name string
	// binary is a substring of its command line that names our state folder (a data dir
	// or config path), so that a reused pid, or the same server run by someone else, is
	// never taken for ours.
	binary  string
	ports   []int
	stopSig syscall.Signal
	// late servers read the env file: Up starts them once the others are seeded and the
	// file is written, then writes it again with what they seed.
	late bool
	// prepare writes config and runs one-off steps (migrations, initdb) before start.
	prepare func(ctx context.Context) error
	// command returns argv, env and the user to run as (nil: the launcher's user).
	command func() (argv, env []string, cred *syscall.Credential, err error)
	// ready probes health once; nil means healthy.
	ready func(ctx context.Context) error
	// seed configures the healthy server idempotently and records env values.
	seed func(ctx context.Context) error
	// drift, when set, reports settings that differ from those the running server got.
	drift func() string
}

func (l *Launcher) services() []*service {
	return []*service{l.postgres(), l.vault(), l.temporal(), l.idp(), l.hydra(), l.codec()}
}

func (l *Launcher) logPath(s *service) string { return l.path("logs", s.name+".log") }
func (l *Launcher) pidPath(s *service) string { return l.path("run", s.name+".pid") }

func (l *Launcher) running(s *service) int {
	pid := readPid(l.pidPath(s))
	if alive(pid, s.binary) {
		return pid
	}
	return 0
}

// Up starts what is not running, waits for health, seeds every server and writes the env
// file. When everything already runs and is healthy it does nothing and says so.
func (l *Launcher) Up(ctx context.Context) error {
	start := time.Now()
	for _, d := range []string{"", "logs", "run"} {
		if err := os.MkdirAll(l.path(d), 0o755); err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
	}
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	defer unlock()

	svcs := l.services()
	if l.allHealthy(ctx, svcs) {
		if _, err := os.Stat(l.EnvFile()); err == nil {
			l.printf("stack already up (env %s); nothing to do", l.rel(l.EnvFile()))
			for _, s := range svcs {
				if s.drift != nil {
					if d := s.drift(); d != "" {
						l.printf("%-8s WARNING: runs with other settings than asked (%s); `devstack down %s` then `up` to apply", s.name, d, s.name)
					}
				}
			}
			l.printUI()
			return nil
		}
	}

	var early, late []*service
	for _, s := range svcs {
		if s.late {
			late = append(late, s)
		} else {
			early = append(early, s)
		}
	}
	var started []*service
	// The worker expands nested roles from the personas file's hierarchy.
	l.setEnv("OIDCFLOW_ROLE_HIERARCHY", "@"+filepath.Join(l.root, "internal", "devstack", "idp", "personas.json"))
	for _, phase := range [][]*service{early, late} {
		newly, err := l.upAll(ctx, phase)
		started = append(started, newly...)
		if err == nil {
			err = l.writeEnv()
		}
		if err != nil {
			for _, s := range started {
				_ = stop(readPid(l.pidPath(s)), s.binary, s.stopSig, 20*time.Second)
				_ = os.Remove(l.pidPath(s))
			}
			if len(started) > 0 {
				l.printf("stopped the servers this run had started")
			}
			return err
		}
	}
	l.printf("stack up in %.1fs; env file %s", time.Since(start).Seconds(), l.rel(l.EnvFile()))
	l.printUI()
	return nil
}

// printUI tells where the Web UI is and how to log in to it.
func (l *Launcher) printUI() {
	l.printf("Temporal Web UI: %s/namespaces/%s/workflows", TemporalUIURL(), TemporalNamespace)
	l.printf("  log in with a dev persona on the login page (carol reads every run, erin nothing);")
	l.printf("  to see decoded payloads, have your browser trust %s (the codec server's CA)", l.rel(devtls.FilesIn(l.path(TLSDir)).CA))
}

// upAll runs upOne for each of svcs at once; it returns the servers it started and the
// first error.
func (l *Launcher) upAll(ctx context.Context, svcs []*service) (started []*service, err error) {
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		errs  []error
	)
	for _, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			newly, err := l.upOne(ctx, s)
			errMu.Lock()
			defer errMu.Unlock()
			if newly {
				started = append(started, s)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return started, errs[0]
	}
	return started, nil
}

// upOne starts s unless it runs, waits for health and seeds it. newly reports whether this
// call started the process.
func (l *Launcher) upOne(ctx context.Context, s *service) (newly bool, err error) {
	t0 := time.Now()
	var logFrom int64
	if st, err := os.Stat(l.logPath(s)); err == nil {
		logFrom = st.Size()
	}
	fail := func(err error) error {
		var se *ServerError
		if errors.As(err, &se) {
			return err
		}
		se = &ServerError{Server: s.name, Ports: s.ports, Log: l.rel(l.logPath(s)), Err: err}
		if !errors.Is(err, ErrPortInUse) {
			se.logPath, se.logFrom = l.logPath(s), logFrom
		}
		return se
	}
	var proc *process
	pid := l.running(s)
	if pid != 0 {
		l.printf("%-8s already running (pid %d)", s.name, pid)
		if s.drift != nil {
			if d := s.drift(); d != "" {
				l.printf("%-8s WARNING: runs with other settings than asked (%s); `devstack down %s` then `up` to apply", s.name, d, s.name)
			}
		}
	} else {
		if err := checkPortsFree(s.ports...); err != nil {
			return false, fail(err)
		}
		if s.prepare != nil {
			if err := s.prepare(ctx); err != nil {
				return false, fail(err)
			}
		}
		argv, env, cred, err := s.command()
		if err != nil {
			return false, fail(err)
		}
		proc, err = spawn(l.root, l.logPath(s), l.pidPath(s), env, cred, argv...)
		if err != nil {
			return false, fail(err)
		}
		pid, newly = proc.pid, true
		l.printf("%-8s started (pid %d, log %s)", s.name, pid, l.rel(l.logPath(s)))
	}
	if err := l.waitReady(ctx, s, proc); err != nil {
		return newly, fail(err)
	}
	if s.seed != nil {
		if err := s.seed(ctx); err != nil {
			return newly, fail(fmt.Errorf("seeding: %w", err))
		}
	}
	l.printf("%-8s healthy and seeded in %.1fs", s.name, time.Since(t0).Seconds())
	return newly, nil
}

func (l *Launcher) waitReady(ctx context.Context, s *service, proc *process) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	var last error
	for {
		if last = s.ready(ctx); last == nil {
			return nil
		}
		var exited <-chan struct{}
		if proc != nil {
			exited = proc.exited
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited: %v", proc.err)
		case <-ctx.Done():
			return fmt.Errorf("not healthy within %s: %v", l.timeout, last)
		case <-time.After(150 * time.Millisecond):
		}
	}
}

func (l *Launcher) allHealthy(ctx context.Context, svcs []*service) bool {
	for _, s := range svcs {
		if l.running(s) == 0 {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := s.ready(pctx)
		cancel()
		if err != nil {
			return false
		}
	}
	return true
}

// Servers lists the servers' names in start order.
func (l *Launcher) Servers() []string {
	var names []string
	for _, s := range l.services() {
		names = append(names, s.name)
	}
	return names
}

// Down stops exactly the processes whose pids Up recorded, and says so. With names, it
// stops only those servers (a later Up starts them again: fault tests restart Vault or
// Hydra on their on-disk state this way).
func (l *Launcher) Down(ctx context.Context, names ...string) error {
	for _, n := range names {
		if !contains(l.Servers(), n) {
			return fmt.Errorf("devstack: unknown server %q (servers: %s)", n, strings.Join(l.Servers(), ", "))
		}
	}
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	defer unlock()
	var svcs []*service
	for _, s := range l.services() {
		if len(names) == 0 || contains(names, s.name) {
			svcs = append(svcs, s)
		}
	}
	// Stop in reverse start order: the apps before the stores they use.
	var errs []error
	stopped := 0
	for i := len(svcs) - 1; i >= 0; i-- {
		s := svcs[i]
		pid := readPid(l.pidPath(s))
		if pid == 0 {
			continue
		}
		if !alive(pid, s.binary) {
			l.printf("%-8s not running (stale pid %d)", s.name, pid)
			_ = os.Remove(l.pidPath(s))
			continue
		}
		if err := stop(pid, s.binary, s.stopSig, 30*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("devstack: stopping %s: %w", s.name, err))
			continue
		}
		_ = os.Remove(l.pidPath(s))
		stopped++
		l.printf("%-8s stopped (pid %d)", s.name, pid)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	switch {
	case stopped == 0:
		l.printf("nothing was running")
	case len(names) == 0:
		l.printf("stack down (%d servers stopped)", stopped)
	}
	return nil
}

// Status describes each server: pid and health.
type Status struct {
	Server  string
	Pid     int
	Healthy bool
	Detail  string
}

// Status reports every server's state.
func (l *Launcher) Status(ctx context.Context) []Status {
	var out []Status
	for _, s := range l.services() {
		st := Status{Server: s.name, Pid: l.running(s)}
		if st.Pid == 0 {
			st.Detail = "not running"
		} else {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if err := s.ready(pctx); err != nil {
				st.Detail = err.Error()
			} else {
				st.Healthy, st.Detail = true, "healthy"
			}
			cancel()
		}
		out = append(out, st)
	}
	return out
}

// lock serialises launcher runs on one clone.
func (l *Launcher) lock() (func(), error) {
	if err := os.MkdirAll(l.state, 0o755); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	f, err := os.OpenFile(l.path("lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("devstack: lock: %w", err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func (l *Launcher) writeEnv() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := envFile(l.env)
	if err != nil {
		return err
	}
	return writeSecretFile(l.EnvFile(), b)
}

// envFile renders the env file from config.Vars, the one list of oidcflow's variables: a
// KEY=value line for each variable the launcher set, in the order of Vars, under its
// description as a comment. A name that is not in Vars is refused, so the stack hands out
// only documented variables. Values are written as they are (no quoting): none holds a
// space or a newline.
func envFile(env map[string]string) ([]byte, error) {
	known := map[string]bool{}
	var b strings.Builder
	b.WriteString("# oidcflow dev stack (written by `devstack up`; dev secrets, do not share)\n")
	for _, v := range config.Vars {
		known[v.Name] = true
		val, ok := env[v.Name]
		if !ok {
			continue
		}
		if strings.ContainsAny(val, "\n\r") {
			return nil, fmt.Errorf("devstack: %s holds a line break; the env file has one line per variable", v.Name)
		}
		fmt.Fprintf(&b, "\n# %s\n%s=%s\n", v.Usage, v.Name, val)
	}
	var unknown []string
	for k := range env {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("devstack: %s not in config.Vars; document every variable there", strings.Join(unknown, ", "))
	}
	return []byte(b.String()), nil
}

func (l *Launcher) rel(p string) string {
	if r, err := filepath.Rel(l.root, p); err == nil {
		return r
	}
	return p
}

// writeSecretFile writes data with mode 0600 (atomically).
func writeSecretFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}

// loadOrCreateJSON reads v from path, or fills it with create() and saves it (mode 0600).
func loadOrCreateJSON(path string, v any, create func() error) error {
	b, err := os.ReadFile(path)
	if err == nil {
		return json.Unmarshal(b, v)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := create(); err != nil {
		return err
	}
	b, err = json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeSecretFile(path, b)
}

func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// httpGetOK probes url and returns nil on a 2xx answer.
func httpGetOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// Seed waits for servers started by someone else (docker compose) to be healthy, seeds them
// like Up does and writes the env file. It starts and stops nothing.
func (l *Launcher) Seed(ctx context.Context) error {
	for _, d := range []string{"", "logs", "run"} {
		if err := os.MkdirAll(l.path(d), 0o755); err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
	}
	for _, s := range l.services() {
		if s.late {
			continue // compose runs it from the env files Seed writes
		}
		if err := l.waitReady(ctx, s, nil); err != nil {
			return &ServerError{Server: s.name, Ports: s.ports, Log: "its container's log", Err: err}
		}
		if s.seed != nil {
			if err := s.seed(ctx); err != nil {
				return &ServerError{Server: s.name, Ports: s.ports, Log: "its container's log", Err: fmt.Errorf("seeding: %w", err)}
			}
		}
		l.printf("%-8s healthy and seeded", s.name)
	}
	if err := l.writeEnv(); err != nil {
		return err
	}
	l.printf("stack seeded; env file %s", l.EnvFile())
	return nil
}
