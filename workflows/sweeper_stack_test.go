package workflows_test

// Attack tests on the real dev stack: a grant that outlives its run, a revoke
// that depends on the requester's refresh chain, an admin task that takes its role from its
// input. They need the worker interceptor that marks activities scheduled from
// identity.AsPool as the pool's (identity.WithPool).

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/workflows"
)

// TestStackAdminRoleNotFromInput takes the admin role from input on the real stack: bob (engineer) starts
// AdminTask with his own sealed identity and an input that names his role as the admin
// role. He is refused with oidcflow.Forbidden before any activity is scheduled.
func TestStackAdminRoleNotFromInput(t *testing.T) {
	t.Parallel()
	st := testharness.Load(t)
	queue := apptest.TaskQueue("stack-admin-role")
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue)})
	bob, _ := apptest.Client(t, st, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type oldAdminTaskInput struct {
		Task      string `json:"task"`
		AdminRole string `json:"admin_role"`
	}
	// The input field of old (admin_role) is refused before the workflow runs: the worker
	// would drop it, so the envelope that commits to it does not open for what arrives
	// (oidcflow.Unauthenticated). Without it, bob is not an admin (oidcflow.Forbidden).
	for _, c := range []struct {
		name  string
		input any
		want  string
	}{
		{"admin_role engineer", oldAdminTaskInput{Task: workflows.AdminTaskListGrants, AdminRole: "engineer"}, identity.TypeUnauthenticated},
		{"no admin role", workflows.AdminTaskInput{Task: workflows.AdminTaskListGrants}, identity.TypeForbidden},
	} {
		id := "stack-admin-role-" + strings.ReplaceAll(c.name, " ", "-") + "-" + queue
		run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
			workflows.AdminTaskWorkflow, c.input)
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.AdminTaskResult
		err = run.Get(ctx, &res)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != c.want {
			t.Fatalf("bob's admin task with %s: %v (%+v); want %s", c.name, err, res, c.want)
		}
		t.Logf("%s refused: %s", c.name, appErr.Error())
		it := bob.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			// The worker ends the verified starter's session, as after every run.
			name := e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			if e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && name != interceptors.EndSessionActivity {
				t.Errorf("activity %s was scheduled for a refused admin task", name)
			}
		}
	}
}

// roleSession opens a session on the demo database as role (the test gives it a password:
// the real roles log in by certificate or proxy, which VALID UNTIL does not stop either).
func roleSession(t *testing.T, ctx context.Context, st *testharness.Stack, pool *pgxpool.Pool, role string) (*pgx.Conn, uint32) {
	t.Helper()
	if _, err := pool.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" PASSWORD 'stack-test-only'"); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(st.Env("OIDCFLOW_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password, cfg.Database = role, "stack-test-only", "demo"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var pid uint32
	var rows int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid(), (SELECT count(*) FROM public.items)").Scan(&pid, &rows); err != nil {
		t.Fatalf("the role's session cannot read demo: %v", err)
	}
	var user string
	if err := pool.QueryRow(ctx, "SELECT usename FROM pg_stat_activity WHERE pid = $1", pid).Scan(&user); err != nil || user != role {
		t.Fatalf("pg_stat_activity shows backend %d as %q (%v), want %s", pid, user, err, role)
	}
	return conn, pid
}

// backendGone reports whether backend pid is no longer in pg_stat_activity.
func backendGone(t *testing.T, ctx context.Context, pool *pgxpool.Pool, pid uint32) bool {
	t.Helper()
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 0
}

// TestStackTerminatedRunIsSwept makes a grant outlive its run by termination: bob's request is granted, he
// opens a session as the role, then the run is terminated for real (no revoke runs). The
// pool's sweeper must drop the role and end the session within one sweep interval, measured
// on the real PostgreSQL.
func TestStackTerminatedRunIsSwept(t *testing.T) {
	t.Parallel()
	st := testharness.Load(t)
	pool := stackDB(t, st)
	queue := apptest.TaskQueue("stack-swept")
	interval := app.MinSweepInterval
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st,
		"OIDCFLOW_TASK_QUEUE", queue, "OIDCFLOW_SWEEP_INTERVAL", interval.String())})
	bob, _ := apptest.Client(t, st, "bob")
	carol, _ := apptest.Client(t, st, "carol")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	id := "stack-swept-" + queue
	if _, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
			Resource: "demo", Role: workflows.AccessRead, Duration: 10 * time.Minute, Reason: "terminate test",
		}); err != nil {
		t.Fatal(err)
	}
	var s workflows.AccessStatus
	if err := approve(t, ctx, carol, id, "ok", &s); err != nil {
		t.Fatalf("carol's approval: %v", err)
	}
	s = waitState(t, ctx, bob, id, workflows.StateGranted)
	role := s.Grant.RoleName
	conn, pid := roleSession(t, ctx, st, pool, role)

	// Terminating is an operator's act (Temporal admin); the run's code never runs again.
	if err := st.OperatorClient(t).TerminateWorkflow(ctx, id, "", "keep the role without its revoke"); err != nil {
		t.Fatal(err)
	}
	terminated := time.Now()
	// The deadline is one interval plus the time a sweep takes on a busy machine.
	deadline := terminated.Add(interval + 90*time.Second)
	for lookupRole(t, ctx, pool, role).Count != 0 || !backendGone(t, ctx, pool, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s after the terminate, role %s exists: %v, its session is open: %v",
				time.Since(terminated).Round(time.Millisecond), role, lookupRole(t, ctx, pool, role).Count != 0,
				!backendGone(t, ctx, pool, pid))
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("role %s and its session gone %s after the terminate (sweep interval %s)",
		role, time.Since(terminated).Round(time.Millisecond), interval)
	if err := conn.Ping(ctx); err == nil {
		t.Error("the role's session still answers")
	}
}

// revokeConsent revokes subject's consent sessions for clientID at Hydra's admin API, and with
// them every token of the chain (access and refresh).
func revokeConsent(t *testing.T, st *testharness.Stack, subject, clientID string) {
	t.Helper()
	q := url.Values{"subject": {subject}, "client": {clientID}}
	req, err := http.NewRequest(http.MethodDelete, st.Env("OIDCFLOW_IDP_ADMIN_URL")+"/admin/oauth2/auth/sessions/consent?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke %s's consent for %s: %s", subject, clientID, resp.Status)
	}
}

// TestStackRevokeAfterRefreshChainKilled makes a grant outlive its run through the IdP: bob's request is granted,
// then his refresh chain is killed at the IdP (as reuse detection does when he replays his
// own refresh token). His tokens live 5 seconds, so anything that still ran on his session
// would have to refresh and fail. The revoke runs under the pool's authority and happens on
// time, at its first attempt.
func TestStackRevokeAfterRefreshChainKilled(t *testing.T) {
	t.Parallel()
	st := testharness.Load(t)
	pool := stackDB(t, st)
	cl := st.NewClient(t, testharness.ClientOptions{AccessTokenTTL: 5 * time.Second})
	queue := apptest.TaskQueue("stack-chain-killed")
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st,
		"OIDCFLOW_TASK_QUEUE", queue, "OIDCFLOW_CLIENT_ID", cl.ID, "OIDCFLOW_SWEEP_INTERVAL", "0")})
	bobTok := cl.Login(t, "bob")
	bob := apptest.ClientWithToken(t, st, oauth2.StaticTokenSource(bobTok))
	carol := apptest.ClientWithToken(t, st, oauth2.StaticTokenSource(cl.Login(t, "carol")))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	id := "stack-chain-killed-" + queue
	duration := 30 * time.Second
	run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
			Resource: "demo", Role: workflows.AccessRead, Duration: duration, Reason: "chain test",
		})
	if err != nil {
		t.Fatal(err)
	}
	var s workflows.AccessStatus
	if err := approve(t, ctx, carol, id, "ok", &s); err != nil {
		t.Fatalf("carol's approval: %v", err)
	}
	s = waitState(t, ctx, bob, id, workflows.StateGranted)
	role := s.Grant.RoleName

	revokeConsent(t, st, s.Requester.Subject, cl.ID)
	if _, err := testharness.RefreshToken(ctx, cl.Config, bobTok); err == nil {
		t.Fatal("bob's refresh chain still refreshes after the revocation at the IdP")
	}

	var res workflows.AccessRequestResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("run: %v (the revoke must not depend on bob's refresh chain)", err)
	}
	if res.State != workflows.StateEnded {
		t.Errorf("state %s, want %s", res.State, workflows.StateEnded)
	}
	if got := lookupRole(t, ctx, pool, role); got.Count != 0 {
		t.Errorf("role %s left behind: %+v", role, got)
	}
	var revokedAt time.Time
	for _, e := range res.Audit {
		if e.Action == "revoked" && e.Outcome == workflows.OutcomeOK {
			revokedAt = e.Time
		}
	}
	if revokedAt.Before(s.Grant.ValidUntil) {
		t.Errorf("revoked at %s, before the grant's end %s", revokedAt, s.Grant.ValidUntil)
	}
	t.Logf("revoked %s after the grant's end", revokedAt.Sub(s.Grant.ValidUntil).Round(time.Millisecond))
	var revokes []activityRun
	for _, a := range completedActivities(t, ctx, bob, id) {
		if a.Name == "RevokeAccess" {
			revokes = append(revokes, a)
		}
	}
	if len(revokes) != 1 || revokes[0].Attempt != 1 {
		t.Errorf("revokes %+v; want one, done at its first attempt", revokes)
	}
	if got := steps(res.Audit); !slices.Equal(got, []string{"requested bob ok", "approve carol ok", "granted - ok", "revoked - ok"}) {
		t.Errorf("audit %q", got)
	}
}
