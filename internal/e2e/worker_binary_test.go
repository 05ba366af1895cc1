package e2e_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/pgaccess"
	"github.com/oidcflow/oidcflow/telemetry"
	"github.com/oidcflow/oidcflow/workflows"
)

// TestWorkerBinaryMetricsHealthAndDrain runs the worker binary and checks what operators
// rely on: /healthz and /readyz answer 200; /metrics exposes the SDK's metrics and
// oidcflow's counters, with verifications, denials (bob tries to approve his own request)
// and refreshes (access tokens live 4 seconds) above zero; and SIGTERM drains.
//
// The drain: the grant activity is made to block on the PostgreSQL advisory lock it takes
// (the test holds it), SIGTERM arrives while it waits, the lock is released a few seconds
// later, and the worker must let the activity complete, then exit 0 within
// OIDCFLOW_SHUTDOWN_TIMEOUT. A second worker then finishes the run, which ends normally.
func TestWorkerBinaryMetricsHealthAndDrain(t *testing.T) {
	st := loadStack(t)
	const shutdownTimeout = 30 * time.Second
	const blocked = 3 * time.Second // how long the grant stays blocked after SIGTERM
	cl := st.NewClient(t, testharness.ClientOptions{AccessTokenTTL: 4 * time.Second})
	queue := apptest.TaskQueue("e2e-drain")
	w := startWorkerProc(t, st, "w1", queue,
		"OIDCFLOW_CLIENT_ID="+cl.ID, "OIDCFLOW_SHUTDOWN_TIMEOUT="+shutdownTimeout.String())

	// Health.
	for _, path := range []string{"/healthz", "/readyz"} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body, err := w.get(path)
			if err == nil && code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s = %d %q, %v; want 200", path, code, body, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	bob := apptest.ClientWithToken(t, st, oauth2.StaticTokenSource(cl.Login(t, "bob")))
	carol := apptest.ClientWithToken(t, st, oauth2.StaticTokenSource(cl.Login(t, "carol")))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := queue
	role := pgaccess.RoleName(id, "bob")

	// The test holds the advisory lock GrantAccess takes for this role.
	lock, err := pgx.Connect(ctx, st.Env("OIDCFLOW_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(context.Background())
	if _, err := lock.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", role); err != nil {
		t.Fatal(err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			if _, err := lock.Exec(ctx, "SELECT pg_advisory_unlock(hashtext($1))", role); err != nil {
				t.Errorf("release the advisory lock: %v", err)
			}
		}
	}
	defer unlock()

	run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, accessInput("e2e: drain on SIGTERM", 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var refused *temporal.ApplicationError
	time.Sleep(5 * time.Second) // the access token deposited at start is now due for refresh
	if _, err := approve(ctx, bob, id); !errors.As(err, &refused) || refused.Type() != identity.TypeForbidden {
		t.Fatalf("bob approves his own request: %v, want a refusal of type oidcflow.Forbidden", err)
	}
	if status, err := approve(ctx, carol, id); err != nil || status.State != workflows.StateApproved {
		t.Fatalf("carol approves: %+v, %v", status.State, err)
	}

	// Wait until the grant's body runs and waits for the test's lock. Only another backend
	// blocked by the test's own connection counts: the database is shared, and an advisory
	// lock some other run waits for says nothing about this grant. The body runs only after
	// the activity interceptor resumed bob's session, and that session's access token (4s,
	// deposited at start) is past due by then: so the refresh the metrics must show has
	// happened once the grant blocks. (The activity shows as started as soon as the worker
	// took the task, before its interceptor ran.)
	var lockPID int32
	if err := lock.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&lockPID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var waiting int
		if err := lock.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))",
			lockPID).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 && grantStarted(ctx, t, bob, id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the grant activity did not start and block on the lock within 2m")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Metrics, scraped while the grant is in flight.
	code, metrics, err := w.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics = %d, %v", code, err)
	}
	for _, c := range []struct {
		name     string
		positive bool
	}{
		{telemetry.MetricVerifications, true},
		{telemetry.MetricDenials, true},
		{telemetry.MetricRefreshes, true},
		{telemetry.MetricRefreshFailures, false},
	} {
		sum, ok := metricSum(metrics, c.name)
		switch {
		case !ok:
			t.Errorf("/metrics lacks %s", c.name)
		case c.positive && sum <= 0:
			t.Errorf("/metrics: %s = %v, want > 0", c.name, sum)
		}
		t.Logf("%s = %v", c.name, sum)
	}
	if v, _ := metricValue(metrics, telemetry.MetricVerifications+`{result="ok"}`); v <= 0 {
		t.Errorf(`/metrics: %s{result="ok"} = %v, want > 0`, telemetry.MetricVerifications, v)
	}
	for _, histogram := range []string{telemetry.MetricVerificationDuration, telemetry.MetricRefreshDuration} {
		if v, ok := metricSum(metrics, histogram+"_count"); !ok || v <= 0 {
			t.Errorf("/metrics: histogram %s_count = %v (present %v), want > 0", histogram, v, ok)
		}
	}
	for _, sdk := range []string{"temporal_request_total", "temporal_activity_execution_latency_seconds_count"} {
		if v, ok := metricSum(metrics, sdk); !ok || v <= 0 {
			t.Errorf("/metrics: SDK metric %s = %v (present %v), want > 0", sdk, v, ok)
		}
	}

	// SIGTERM while the grant waits: the worker stops polling, is no longer ready, and waits.
	sigterm := time.Now()
	w.signal(syscall.SIGTERM)
	deadline = time.Now().Add(20 * time.Second) // the held lock keeps the worker draining meanwhile
	for {
		code, _, err := w.get("/readyz")
		if err == nil && code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("/readyz while draining = %d, %v; want 503", code, err)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _, err := w.get("/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz while draining = %d, %v; want 200", code, err)
	}
	time.Sleep(blocked - time.Since(sigterm))
	if !w.running() {
		t.Fatalf("the worker exited %s after SIGTERM with the grant still in flight (%v)", time.Since(sigterm), w.exitErr)
	}
	released := time.Now()
	unlock()
	exitErr, ok := w.wait(shutdownTimeout)
	if !ok {
		t.Fatalf("the worker did not exit within OIDCFLOW_SHUTDOWN_TIMEOUT=%s of SIGTERM", shutdownTimeout)
	}
	if code := exitCode(exitErr); code != 0 {
		t.Errorf("the worker exited with code %d (%v), want 0", code, exitErr)
	}
	t.Logf("drain: exit %s after SIGTERM, %s after the grant was unblocked (OIDCFLOW_SHUTDOWN_TIMEOUT=%s)",
		w.exited.Sub(sigterm).Round(time.Millisecond), w.exited.Sub(released).Round(time.Millisecond), shutdownTimeout)
	if !strings.Contains(w.logs.String(), `"msg":"access granted"`) {
		t.Errorf("the draining worker did not log the grant")
	}

	// The grant completed on the first attempt, on the drained worker.
	completed, attempt, by := grantOutcome(ctx, t, bob, id)
	if !completed || attempt != 1 || !strings.HasPrefix(by, strconv.Itoa(w.cmd.Process.Pid)+"@") {
		t.Errorf("grant: completed %v, attempt %d, by %q; want completed on attempt 1 by the drained worker (pid %d)",
			completed, attempt, by, w.cmd.Process.Pid)
	}

	// Another worker finishes the run.
	startWorkerProc(t, st, "w2", queue, "OIDCFLOW_CLIENT_ID="+cl.ID)
	var res workflows.AccessRequestResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.State != workflows.StateEnded || res.Grant == nil || res.Grant.RoleName != role {
		t.Errorf("run: state %s, grant %+v; want ended with role %s", res.State, res.Grant, role)
	}
}

// grantStarted reports whether the run's GrantAccess activity is running.
func grantStarted(ctx context.Context, t *testing.T, c client.Client, id string) bool {
	t.Helper()
	d, err := c.DescribeWorkflow(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range d.RawResponse.GetPendingActivities() {
		if a.GetActivityType().GetName() == "GrantAccess" && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			return true
		}
	}
	return false
}

// grantOutcome reads the run's history: whether GrantAccess completed, and the attempt and
// worker identity of its start event (recorded with the completion).
func grantOutcome(ctx context.Context, t *testing.T, c client.Client, id string) (completed bool, attempt int32, by string) {
	t.Helper()
	scheduled := map[int64]bool{}
	started := map[int64]bool{}
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "GrantAccess" {
				scheduled[ev.GetEventId()] = true
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := ev.GetActivityTaskStartedEventAttributes()
			if scheduled[a.GetScheduledEventId()] {
				started[ev.GetEventId()] = true
				attempt, by = a.GetAttempt(), a.GetIdentity()
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if scheduled[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()] {
				completed = true
			}
		}
	}
	return completed, attempt, by
}

// metricSum adds up every series of name (any labels) in a Prometheus text exposition; ok
// is false when there is none.
func metricSum(exposition, name string) (sum float64, ok bool) {
	for _, line := range strings.Split(exposition, "\n") {
		rest, found := strings.CutPrefix(line, name)
		if !found || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			if v, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
				sum += v
				ok = true
			}
		}
	}
	return sum, ok
}
