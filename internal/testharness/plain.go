package testharness

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/devstack"
)

// WithPlainTemporal starts, for t, a Temporal server of its own that authorizes no one (the
// stack's temporal-server without its auth flags, SQLite in a temporary folder, no Web UI),
// and returns s as seen through it: TEMPORAL_ADDRESS names it, and Temporal authorization
// and payload encryption are off (OIDCFLOW_TEMPORAL_AUTH=none, no codec). Vault, Hydra and
// PostgreSQL stay the stack's. It is for tests of releases from before authorization, whose
// clients send no token; worker processes get the overrides through WorkerEnv.
func (s *Stack) WithPlainTemporal(t testing.TB) *Stack {
	t.Helper()
	bin := filepath.Join(filepath.Dir(filepath.Dir(s.path)), "bin", "temporal-server")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("testharness: %s not built: run `make tools`", bin)
	}
	port := freePort(t)
	args := []string{"--db-filename", filepath.Join(t.TempDir(), "temporal.db"),
		"--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--ui-port", "0",
		"--namespace", s.env["TEMPORAL_NAMESPACE"], "--log-level", "error"}
	for _, n := range slices.Sorted(maps.Keys(devstack.SearchAttributes)) {
		args = append(args, "--search-attribute", n+"="+devstack.SearchAttributes[n])
	}
	for _, k := range slices.Sorted(maps.Keys(devstack.DynamicConfig)) {
		args = append(args, "--dynamic-config-value", k+"="+devstack.DynamicConfig[k])
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "temporal.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testharness: start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		err := probe(ctx, addr, s.env["TEMPORAL_NAMESPACE"])
		if err == nil {
			break
		}
		select {
		case e := <-exited:
			t.Fatalf("testharness: plain Temporal server exited at start (%v); log %s", e, logf.Name())
		case <-ctx.Done():
			t.Fatalf("testharness: plain Temporal server not ready: %v; log %s", err, logf.Name())
		case <-time.After(300 * time.Millisecond):
		}
	}

	env := maps.Clone(s.env)
	over := map[string]string{"TEMPORAL_ADDRESS": addr, "OIDCFLOW_TEMPORAL_AUTH": "none",
		"OIDCFLOW_ENCRYPT_PAYLOADS": "false", "OIDCFLOW_CODEC_ENDPOINT": "", "OIDCFLOW_CODEC_CA_FILE": ""}
	maps.Copy(env, over)
	return &Stack{path: s.path, env: env, http: s.http, overrides: over}
}

// probe checks that the namespace of the server at addr answers, with its search attributes.
func probe(ctx context.Context, addr, ns string) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := client.DialContext(pctx, client.Options{HostPort: addr, Namespace: ns, Logger: quiet{}})
	if err != nil {
		return err
	}
	defer c.Close()
	sa, err := c.OperatorService().ListSearchAttributes(pctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return err
	}
	for n := range devstack.SearchAttributes {
		if _, ok := sa.GetCustomAttributes()[n]; !ok {
			return fmt.Errorf("search attribute %s not registered yet", n)
		}
	}
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// quiet drops the SDK client's logs of the probes.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
