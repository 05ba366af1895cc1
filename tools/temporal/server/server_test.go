package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/tools/temporal/internal/testjwks"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// binEnv names a prebuilt temporal-server for TestAuthorizingServer; without it the test
// builds one.
const binEnv = "OIDCFLOW_TEMPORAL_SERVER_BIN"

const (
	testNS       = "oidcflow-test"
	testAudience = "temporal"
	uiClientID   = "temporal-ui"
)

// freePort is a loopback port that is free now and none of the shared dev stack's.
func freePort(t *testing.T) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p != 7233 && p != 7236 && p != 8233 && p != 8234 {
			return p
		}
	}
}

// serverLog collects the server's stderr and notices its ready line.
type serverLog struct {
	mu    sync.Mutex
	lines []string
	ready chan struct{}
	once  sync.Once
}

func (l *serverLog) read(r *bufio.Scanner) {
	for r.Scan() {
		line := r.Text()
		l.mu.Lock()
		l.lines = append(l.lines, line)
		l.mu.Unlock()
		if strings.Contains(line, "temporal-server ready") {
			l.once.Do(func() { close(l.ready) })
		}
	}
}

func (l *serverLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.lines...)
}

type bearer string

func (b bearer) GetHeaders(context.Context) (map[string]string, error) {
	if b == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func denied(err error) bool {
	var pd *serviceerror.PermissionDenied
	c := status.Code(err)
	return errors.As(err, &pd) || c == codes.PermissionDenied || c == codes.Unauthenticated
}

// serverBin is the temporal-server under test: $OIDCFLOW_TEMPORAL_SERVER_BIN, or built once.
var serverBin = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv(binEnv); bin != "" {
		return bin, nil
	}
	dir, err := os.MkdirTemp("", "temporal-server-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "temporal-server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// server is a running temporal-server.
type server struct {
	cmd     *exec.Cmd
	logs    *serverLog
	exited  chan error
	stopped bool
}

// startServer starts temporal-server with args (plus env) and waits for its ready line;
// the process is killed at the end of the test unless stop ended it.
func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	bin, err := serverBin()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: exec.Command(bin, args...), logs: &serverLog{ready: make(chan struct{})}, exited: make(chan error, 1)}
	s.cmd.Env = append(os.Environ(), env...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.logs.read(bufio.NewScanner(stderr))
		s.exited <- s.cmd.Wait()
	}()
	t.Cleanup(func() {
		if !s.stopped {
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() || os.Getenv("OIDCFLOW_TEST_SERVER_LOGS") != "" {
			for _, l := range s.logs.all() {
				t.Log(l)
			}
		}
	})
	select {
	case <-s.logs.ready:
	case err := <-s.exited:
		s.stopped = true
		t.Fatalf("server exited before ready: %v", err)
	case <-time.After(4 * time.Minute):
		t.Fatal("server not ready after 4 minutes")
	}
	return s
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		s.stopped = true
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("no exit 60s after SIGTERM")
	}
}

func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// Without --auth-jwks-url the server is start-dev: no token needed for anything.
func TestServerWithoutAuthorization(t *testing.T) {
	port := freePort(t)
	s := startServer(t, nil, "--db-filename", filepath.Join(t.TempDir(), "temporal.db"),
		"--port", strconv.Itoa(port), "--ui-port", "0", "--namespace", testNS)
	c, err := client.Dial(client.Options{HostPort: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Namespace: testNS, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "wf-1", TaskQueue: "tq"}, "SomeWorkflow"); err != nil {
		t.Fatalf("start: %v", err)
	}
	resp, err := c.WorkflowService().PollWorkflowTaskQueue(ctx, &workflowservice.PollWorkflowTaskQueueRequest{
		Namespace: testNS, TaskQueue: &taskqueuepb.TaskQueue{Name: "tq", Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
	})
	if err != nil || resp.GetWorkflowExecution().GetWorkflowId() != "wf-1" {
		t.Fatalf("poll: %v %v", resp.GetWorkflowExecution(), err)
	}
	if err := c.TerminateWorkflow(ctx, "wf-1", "", "test"); err != nil {
		t.Fatalf("terminate: %v", err)
	}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "default"}); err != nil {
		t.Fatalf("the default namespace: %v", err)
	}
	s.stop(t)
}

func TestAuthorizingServer(t *testing.T) {
	idp, err := testjwks.New()
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	port, internalPort, uiPort := freePort(t), freePort(t), freePort(t)
	hostPort := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ui := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(uiPort))

	s := startServer(t, []string{secretEnv + "=test-secret"},
		"--db-filename", filepath.Join(t.TempDir(), "temporal.db"),
		"--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--internal-port", strconv.Itoa(internalPort),
		"--ui-port", strconv.Itoa(uiPort),
		"--namespace", testNS, "--search-attribute", "OidcflowRequester=Keyword",
		"--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true",
		"--log-format", "json", "--log-level", "warn",
		"--auth-jwks-url", idp.JWKSURL, "--auth-issuer", idp.URL, "--auth-audience", testAudience,
		"--ui-auth-provider-url", idp.URL, "--ui-auth-client-id", uiClientID,
		"--ui-auth-callback-url", ui+"/auth/sso/callback",
		"--ui-codec-endpoint", "https://127.0.0.1:8234", "--ui-codec-pass-access-token",
	)
	logs := s.logs

	token := func(perms ...string) string {
		return idp.Token(map[string]any{"iss": idp.URL, "aud": testAudience, "sub": "user-" + strings.Join(perms, "+"), "permissions": perms})
	}
	dial := func(tok string) client.Client {
		c, err := client.Dial(client.Options{
			HostPort: hostPort, Namespace: testNS, HeadersProvider: bearer(tok),
			Logger: quietLogger(),
		})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(c.Close)
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	describe := func(c client.Client) error {
		_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: testNS})
		return err
	}
	start := func(c client.Client, id string) error {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "tq"}, "SomeWorkflow")
		return err
	}
	poll := func(c client.Client) (*workflowservice.PollWorkflowTaskQueueResponse, error) {
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		defer pcancel()
		return c.WorkflowService().PollWorkflowTaskQueue(pctx, &workflowservice.PollWorkflowTaskQueueRequest{
			Namespace: testNS, Identity: "test-poller",
			TaskQueue: &taskqueuepb.TaskQueue{Name: "tq", Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		})
	}
	mustDeny := func(what string, err error) {
		t.Helper()
		if !denied(err) {
			t.Errorf("%s: want PermissionDenied, got %v", what, err)
		}
	}
	mustAllow := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}

	none := dial("")
	mustDeny("no token: DescribeNamespace", describe(none))
	mustDeny("no token: start", start(none, "wf-none"))
	_, err = none.WorkflowService().ListNamespaces(ctx, &workflowservice.ListNamespacesRequest{})
	mustDeny("no token: ListNamespaces", err)

	// A token that fails the claim mapper is refused on every call, the health check the
	// client makes when it dials included.
	refused := func(what, tok string) {
		t.Helper()
		c, err := client.Dial(client.Options{
			HostPort: hostPort, Namespace: testNS, HeadersProvider: bearer(tok),
			Logger: quietLogger(),
		})
		if err == nil {
			defer c.Close()
			err = describe(c)
		}
		mustDeny(what, err)
	}
	refused("wrong issuer", idp.Token(map[string]any{"iss": "https://other.example", "aud": testAudience, "sub": "x", "permissions": []string{testNS + ":admin"}}))
	refused("wrong audience", idp.Token(map[string]any{"iss": idp.URL, "aud": "other", "sub": "x", "permissions": []string{testNS + ":admin"}}))
	refused("expired", idp.Token(map[string]any{"iss": idp.URL, "aud": testAudience, "sub": "x", "exp": time.Now().Add(-time.Minute).Unix(), "permissions": []string{testNS + ":admin"}}))
	mustDeny("app permissions only", describe(dial(token("can_request_access"))))

	reader := dial(token(testNS+":read", "can_request_access"))
	mustAllow("read: DescribeNamespace", describe(reader))
	_, err = reader.WorkflowService().ListNamespaces(ctx, &workflowservice.ListNamespacesRequest{})
	mustAllow("read: ListNamespaces", err)
	_, err = reader.WorkflowService().GetClusterInfo(ctx, &workflowservice.GetClusterInfoRequest{})
	mustAllow("read: GetClusterInfo", err)
	_, err = reader.WorkflowService().GetSearchAttributes(ctx, &workflowservice.GetSearchAttributesRequest{})
	mustAllow("read: GetSearchAttributes", err)
	_, err = reader.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "default"})
	mustDeny("read: DescribeNamespace of another namespace", err)
	mustDeny("read: start", start(reader, "wf-read"))

	writer := dial(token(testNS + ":write"))
	mustAllow("write: start", start(writer, "wf-1"))
	_, err = poll(writer)
	mustDeny("write: PollWorkflowTaskQueue", err)
	mustDeny("write: terminate", writer.TerminateWorkflow(ctx, "wf-1", "", "test"))
	_, err = writer.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "wf-1", TaskQueue: "tq",
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING}, "SomeWorkflow")
	mustDeny("write: start terminating a running workflow", err)

	wk := dial(token(testNS + ":worker"))
	mustAllow("worker: DescribeNamespace", describe(wk))
	resp, err := poll(wk)
	mustAllow("worker: PollWorkflowTaskQueue", err)
	if err == nil && resp.GetWorkflowExecution().GetWorkflowId() != "wf-1" {
		t.Errorf("worker: polled %v, want the task of wf-1", resp.GetWorkflowExecution())
	}
	mustDeny("worker: start", start(wk, "wf-worker"))
	mustDeny("admin without worker: poll", func() error { _, err := poll(dial(token(testNS + ":admin"))); return err }())

	adm := dial(token(testNS + ":admin"))
	mustAllow("admin: terminate", adm.TerminateWorkflow(ctx, "wf-1", "", "test"))

	// The server's own system workers: a schedule created by a writer must fire, which
	// needs the per-namespace system worker to poll through the internal frontend.
	h, err := writer.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   "sched-1",
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: time.Second}}},
		Action: &client.ScheduleWorkflowAction{
			ID: "sched-wf", Workflow: "ScheduledWorkflow", TaskQueue: "tq-sched",
		},
	})
	if err != nil {
		t.Fatalf("write: CreateSchedule: %v", err)
	}
	fired := false
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		d, err := reader.ScheduleClient().GetHandle(ctx, h.GetID()).Describe(ctx)
		if err != nil {
			t.Fatalf("read: DescribeSchedule: %v", err)
		}
		if len(d.Info.RecentActions) > 0 {
			t.Logf("the schedule fired: %s", d.Info.RecentActions[0].StartWorkflowResult.WorkflowID)
			fired = true
			break
		}
	}
	if !fired {
		t.Error("the schedule did not fire within 90s: the server's system workers do not work")
	}

	// The internal frontend answers only the server's own services (internode mutual TLS).
	for name, opts := range map[string]client.ConnectionOptions{
		"plaintext":           {},
		"TLS, no client cert": {TLS: &tls.Config{InsecureSkipVerify: true}},
	} {
		ictx, icancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := client.DialContext(ictx, client.Options{
			HostPort: net.JoinHostPort("127.0.0.1", strconv.Itoa(internalPort)), Namespace: testNS, ConnectionOptions: opts,
			Logger: quietLogger(),
		})
		if err == nil {
			_, err = c.WorkflowService().DescribeNamespace(ictx, &workflowservice.DescribeNamespaceRequest{Namespace: testNS})
			c.Close()
		}
		icancel()
		if err == nil {
			t.Errorf("internal frontend, %s: a call succeeded", name)
		} else {
			t.Logf("internal frontend, %s: refused: %v", name, err)
		}
	}

	// The Web UI: it is up, its login goes to the IdP with our client and scopes, and its
	// API calls go to the public frontend with the caller's token.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 30 * time.Second}
	if r, err := noRedirect.Get(ui + "/healthz"); err != nil || r.StatusCode != http.StatusOK {
		t.Errorf("UI /healthz: %v %v", err, r)
	}
	r, err := noRedirect.Get(ui + "/auth/sso")
	if err != nil {
		t.Fatalf("UI /auth/sso: %v", err)
	}
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), idp.URL+"/auth?") ||
		loc.Query().Get("client_id") != uiClientID || loc.Query().Get("scope") != "openid profile email offline_access" ||
		loc.Query().Get("redirect_uri") != ui+"/auth/sso/callback" {
		t.Errorf("UI /auth/sso: %d, Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	uiGet := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, ui+"/api/v1/namespaces/"+testNS, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		r, err := noRedirect.Do(req)
		if err != nil {
			t.Fatalf("UI API: %v", err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if code := uiGet(token(testNS + ":read")); code != http.StatusOK {
		t.Errorf("UI API with a reader's token: status %d", code)
	}
	if code := uiGet(""); code == http.StatusOK {
		t.Errorf("UI API without a token: status %d", code)
	}

	// No authorization failure came from the server itself.
	for _, l := range logs.all() {
		var e map[string]any
		if json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		if e["msg"] == "authorization denied" && (e["namespace"] == "temporal-system" || strings.HasPrefix(fmt.Sprint(e["api"]), "/temporal.server.")) {
			t.Errorf("system call denied: %s", l)
		}
	}

	s.stop(t)
}
