package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/examples/deploy"
	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/login"
)

// stack is the dev stack's configuration: the env file `make up` writes (OIDCFLOW_ENV_FILE,
// else .stack/env above this folder), with the process environment on top.
type stack struct {
	file string
	env  map[string]string
}

func (s stack) get(name string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return s.env[name]
}

// loadStack reads the env file and checks that the identity provider answers; without a
// stack the test skips, or fails when OIDCFLOW_REQUIRE_STACK=1 (`make test`).
func loadStack(t *testing.T) stack {
	t.Helper()
	s, err := readStack()
	if err == nil {
		var resp *http.Response
		if resp, err = http.Get(strings.TrimRight(s.get("OIDCFLOW_ISSUER"), "/") + "/.well-known/openid-configuration"); err == nil {
			resp.Body.Close()
		}
	}
	if err != nil {
		if os.Getenv("OIDCFLOW_REQUIRE_STACK") == "1" {
			t.Fatalf("dev stack required (OIDCFLOW_REQUIRE_STACK=1) but not usable: %v", err)
		}
		t.Skipf("no dev stack (%v); run `make up` in the repository first, or `make test`", err)
	}
	return s
}

func readStack() (stack, error) {
	path := os.Getenv("OIDCFLOW_ENV_FILE")
	if path == "" {
		dir, _ := os.Getwd()
		for ; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, ".stack", "env")); err == nil {
				path = filepath.Join(dir, ".stack", "env")
				break
			}
			if filepath.Dir(dir) == dir {
				return stack{}, errors.New("no .stack/env above this folder and OIDCFLOW_ENV_FILE is not set")
			}
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return stack{}, err
	}
	s := stack{file: path, env: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && !strings.HasPrefix(k, "#") {
			s.env[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return s, nil
}

// startWorker builds ./worker and runs it on queue until the test ends.
func startWorker(t *testing.T, s stack, queue string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, "./worker").CombinedOutput(); err != nil {
		t.Fatalf("go build ./worker: %v\n%s", err, out)
	}
	var out syncBuffer
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "OIDCFLOW_ENV_FILE="+s.file, "OIDCFLOW_TASK_QUEUE="+queue,
		"OIDCFLOW_SWEEP_INTERVAL=0") // the test leaves no schedule behind
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("worker output:\n%s", out.String())
		}
	})
}

// persona logs persona in through the dev stack's login page (what a person does in a
// browser) with package login, and dials Temporal as them.
func persona(t *testing.T, s stack, name string) (client.Client, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cache := filepath.Join(t.TempDir(), name+".json")
	ts, err := login.Login(ctx, login.LoginOptions{
		Options: login.Options{Issuer: s.get("OIDCFLOW_ISSUER"), ClientID: s.get("OIDCFLOW_CLIENT_ID"), CachePath: cache},
		Browser: pickPersona(s.get("OIDCFLOW_LOGIN_URL"), name),
	})
	if err != nil {
		t.Fatalf("log in as %s: %v", name, err)
	}
	c, err := login.Dial(ctx, login.DialOptions{Source: ts, PublicKey: s.get("OIDCFLOW_ENVELOPE_PUBLIC_KEY"),
		Client:        client.Options{HostPort: s.get("TEMPORAL_ADDRESS"), Namespace: s.get("TEMPORAL_NAMESPACE")},
		Bearer:        s.get("OIDCFLOW_TEMPORAL_AUTH") != "" && s.get("OIDCFLOW_TEMPORAL_AUTH") != "none",
		CodecEndpoint: s.get("OIDCFLOW_CODEC_ENDPOINT"), CodecCAFile: s.get("OIDCFLOW_CODEC_CA_FILE")})
	if err != nil {
		t.Fatalf("dial as %s: %v", name, err)
	}
	t.Cleanup(c.Close)
	return c, cache
}

// pickPersona follows the authorization URL to the dev login page and picks persona there;
// consent passes by itself in the dev stack, and the redirects end at login's listener.
func pickPersona(loginURL, persona string) func(context.Context, string) error {
	return func(ctx context.Context, authURL string) error {
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		challenge := resp.Request.URL.Query().Get("login_challenge")
		if challenge == "" {
			return fmt.Errorf("the authorization URL did not lead to the dev login page (%s)", resp.Status)
		}
		form := url.Values{"login_challenge": {challenge}, "persona": {persona}}
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(loginURL, "/")+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err = hc.Do(req); err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("the dev login page answered %s", resp.Status)
		}
		return nil
	}
}

// approve sends the approval update as c. A run registers its update handler only once the
// worker has verified its starter (in the run's first workflow task); an update that reaches
// the run before, in that same task, is rejected as unknown and leaves no trace in history,
// so it is sent again until the run takes it or ctx ends. Under load the worker may pick up
// the first task well after the start returned.
func approve(ctx context.Context, c client.Client, workflowID, version string) error {
	for {
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflowID, UpdateName: deploy.UpdateApprove,
			Args: []any{deploy.Approve{Version: version}}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err == nil {
			err = h.Get(ctx, nil)
		}
		if err == nil || !strings.Contains(err.Error(), "unknown update") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func errorType(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type()
	}
	return ""
}

// TestDeployApproval runs the example's worker binary against the dev stack and drives it
// from Go clients as the dev personas: frank (a deployer through his sre group) asks, bob (an
// engineer) approves; frank may not approve his own request, dave (finance, no deployer or
// engineer role) may neither ask nor approve, and an approval of another version is refused.
func TestDeployApproval(t *testing.T) {
	s := loadStack(t)
	queue := "deploy-" + rand.Text()[:8]
	startWorker(t, s, queue)
	frank, frankCache := persona(t, s, "frank")
	bob, _ := persona(t, s, "bob")
	dave, _ := persona(t, s, "dave")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// dave holds no deployer role: his request fails at once.
	run, err := dave.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, deploy.WorkflowName,
		deploy.Request{Service: "billing", Version: "1.4.2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); errorType(err) != identity.TypeForbidden {
		t.Fatalf("dave's request: %v, want %s", err, identity.TypeForbidden)
	}

	run, err = frank.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, deploy.WorkflowName,
		deploy.Request{Service: "billing", Version: "1.4.2", Reason: "fix invoice rounding"})
	if err != nil {
		t.Fatal(err)
	}
	if sess, err := (mustCache(t, frankCache)).Load(); err != nil || sess.HandedOver.IsZero() {
		t.Errorf("frank's login does not record that the pool holds his refresh token now: %v", err)
	}
	for _, tc := range []struct {
		who     string
		c       client.Client
		version string
		want    string
	}{
		{"frank himself", frank, "1.4.2", identity.TypeForbidden},
		{"dave", dave, "1.4.2", identity.TypeForbidden},
		{"bob, for another version", bob, "1.5.0", deploy.TypeApprovalMismatch},
	} {
		if err := approve(ctx, tc.c, run.GetID(), tc.version); errorType(err) != tc.want {
			t.Errorf("approval by %s: %v, want %s", tc.who, err, tc.want)
		}
	}
	if err := approve(ctx, bob, run.GetID(), "1.4.2"); err != nil {
		t.Fatalf("bob's approval: %v", err)
	}
	var res deploy.Result
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.RequestedBy != "frank" || res.ApprovedBy != "bob" || res.DeployedBy != "frank" || res.Version != "1.4.2" {
		t.Errorf("result %+v", res)
	}
}

func mustCache(t *testing.T, path string) *login.Cache {
	t.Helper()
	c, err := login.NewCache(login.CacheOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// syncBuffer is a bytes.Buffer safe for the worker's two output streams.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
