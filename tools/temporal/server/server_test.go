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

func TestAuthorizingServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	bin := os.Getenv(binEnv)
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "temporal-server")
		t.Logf("building temporal-server (set %s to use a prebuilt one)", binEnv)
		out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}

	idp, err := testjwks.New()
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	port, internalPort, uiPort := freePort(t), freePort(t), freePort(t)
	hostPort := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ui := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(uiPort))

	cmd := exec.Command(bin,
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
	cmd.Env = append(os.Environ(), secretEnv+"=test-secret")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &serverLog{ready: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		logs.read(bufio.NewScanner(stderr))
		exited <- cmd.Wait()
	}()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() || os.Getenv("OIDCFLOW_TEST_SERVER_LOGS") != "" {
			for _, l := range logs.all() {
				t.Log(l)
			}
		}
	}()
	select {
	case <-logs.ready:
	case err := <-exited:
		stopped = true
		t.Fatalf("server exited before ready: %v", err)
	case <-time.After(4 * time.Minute):
		t.Fatal("server not ready after 4 minutes")
	}

	token := func(perms ...string) string {
		return idp.Token(map[string]any{"iss": idp.URL, "aud": testAudience, "sub": "user-" + strings.Join(perms, "+"), "permissions": perms})
	}
	dial := func(tok string) client.Client {
		c, err := client.Dial(client.Options{
			HostPort: hostPort, Namespace: testNS, HeadersProvider: bearer(tok),
			Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
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
			Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
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
			Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
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

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("no exit 60s after SIGTERM")
	}
}
