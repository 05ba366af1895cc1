package activities

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/pgaccess"
)

// sweepRig is a real PostgreSQL and a real Temporal for sweep tests. Its runs are started on
// a task queue nobody polls, so they stay running until the test terminates them. Other
// tests' sweepers share both servers and agree with this test about every role it makes:
// they may drop a role first, never one this test expects to be kept.
type sweepRig struct {
	pool     *pgxpool.Pool
	temporal client.Client
	url      string
	stamp    string
}

func newSweepRig(t *testing.T) *sweepRig {
	t.Helper()
	st := testharness.Load(t)
	url := postgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, pgaccess.Bootstrap(ctx, url, pgaccess.BootstrapOptions{}))
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	c, err := client.Dial(st.TemporalOptions(st.OperatorTokenSource()))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return &sweepRig{pool: pool, temporal: c, url: url, stamp: time.Now().Format("150405.000000000")}
}

// run starts a run that stays running; it is terminated when the test ends.
func (r *sweepRig) run(t *testing.T, ctx context.Context, name string) (workflowID, runID string) {
	t.Helper()
	id := "sweeptest-" + name + "-" + r.stamp
	run, err := r.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: "sweeptest-nobody-" + r.stamp, WorkflowExecutionTimeout: 10 * time.Minute,
	}, "NobodyRunsThis")
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.temporal.TerminateWorkflow(context.Background(), id, run.GetRunID(), "test over") })
	return id, run.GetRunID()
}

// role creates a managed login role with comment, VALID UNTIL and a password (so the test
// can open a session as it), member of the demo read group.
func (r *sweepRig) role(t *testing.T, ctx context.Context, name, comment string, until time.Time) string {
	t.Helper()
	role := pgaccess.RoleName("sweeptest-"+name+"-"+r.stamp, "sweeptest")
	id := pgx.Identifier{role}.Sanitize()
	for _, stmt := range []string{
		"CREATE ROLE " + id + " LOGIN PASSWORD 'sweeptest-pw' VALID UNTIL " + validUntilLiteral(until),
		"COMMENT ON ROLE " + id + " IS " + commentLiteral(comment),
		"GRANT " + pgx.Identifier{pgaccess.GroupRole("demo", pgaccess.AccessRead)}.Sanitize() + " TO " + id,
	} {
		_, err := r.pool.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	t.Cleanup(func() { _, _ = r.pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+id) })
	return role
}

// session opens a session on the demo database as role and returns it with its pid.
func (r *sweepRig) session(t *testing.T, ctx context.Context, role string) (*pgx.Conn, uint32) {
	t.Helper()
	cfg, err := pgx.ParseConfig(r.url)
	require.NoError(t, err)
	cfg.User, cfg.Password, cfg.Database = role, "sweeptest-pw", "demo"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var pid uint32
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	return conn, pid
}

func (r *sweepRig) exists(t *testing.T, ctx context.Context, role string) bool {
	t.Helper()
	var n int
	require.NoError(t, r.pool.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n))
	return n == 1
}

// waitEnded waits (bounded) until the backend pid is gone from pg_stat_activity and conn
// fails: pg_terminate_backend signals, the backend exits a moment later.
func (r *sweepRig) waitEnded(t *testing.T, ctx context.Context, conn *pgx.Conn, pid uint32) {
	t.Helper()
	for {
		var n int
		require.NoError(t, r.pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n))
		if n == 0 {
			require.Error(t, conn.Ping(ctx), "the session must be ended")
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("backend %d still connected", pid)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// askRuns is the Runs of TestSweepGrantsAgainstPostgres: the real TemporalRuns, except that
// asking about some workflows runs a hook first (a race) or fails.
type askRuns struct {
	real   Runs
	before map[string]func() (running bool)
	fail   map[string]bool
}

func (a askRuns) Running(ctx context.Context, workflowID, runID string) (bool, error) {
	if a.fail[workflowID] {
		return false, errors.New("temporal: dial tcp 10.1.2.3:7233: connection refused")
	}
	if hook := a.before[workflowID]; hook != nil {
		return hook(), nil
	}
	return a.real.Running(ctx, workflowID, runID)
}

// TestSweepGrantsAgainstPostgres: the pool's sweep drops a role whose run was terminated and
// ends its open session, drops an expired role although its run is running, ends a session
// whose role was dropped under it, and keeps: a role whose run is running, an old role
// without a recorded run that has not expired, a role whose request a new run took over
// while the sweep was asking about the old one, and a role whose run it could not ask about
// (and then fails retryably, naming no address).
func TestSweepGrantsAgainstPostgres(t *testing.T) {
	r := newSweepRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	future, past := time.Now().Add(time.Hour), time.Now().Add(-time.Minute)

	running := r.role(t, ctx, "running", ownerComment(r.run(t, ctx, "running")), future)
	oldRole := r.role(t, ctx, "old", ManagedComment, future)
	expired := r.role(t, ctx, "expired", ownerComment(r.run(t, ctx, "expired")), past)
	wfT, runT := r.run(t, ctx, "terminated")
	terminated := r.role(t, ctx, "terminated", ownerComment(wfT, runT), future)
	conn, pid := r.session(t, ctx, terminated)
	require.NoError(t, r.temporal.TerminateWorkflow(ctx, wfT, runT, "the attack: end the run, keep the role"))

	wfOld, runOld := r.run(t, ctx, "takenover")
	takenOver := r.role(t, ctx, "takenover", ownerComment(wfOld, runOld), future)
	_, runNew := r.run(t, ctx, "takenover-new")
	wfUnknown, runUnknown := r.run(t, ctx, "unknown")
	unknown := r.role(t, ctx, "unknown", ownerComment(wfUnknown, runUnknown), future)

	// A role dropped under its open session (by hand): the session must be ended too.
	orphan := r.role(t, ctx, "orphan", ManagedComment, future)
	orphanConn, orphanPID := r.session(t, ctx, orphan)
	_, err := r.pool.Exec(ctx, "DROP ROLE "+pgx.Identifier{orphan}.Sanitize())
	require.NoError(t, err)

	runs := askRuns{
		real: TemporalRuns{Client: r.temporal},
		before: map[string]func() bool{
			// While the sweep asks about the old run, another run of the same request
			// takes the grant over (GrantAccess records the new run).
			wfOld: func() bool {
				_, err := r.pool.Exec(ctx, "COMMENT ON ROLE "+pgx.Identifier{takenOver}.Sanitize()+" IS "+
					commentLiteral(ownerComment(wfOld, runNew)))
				require.NoError(t, err)
				return false
			},
		},
		fail: map[string]bool{wfUnknown: true},
	}
	a := &DatabaseActivities{DB: r.pool, Runs: runs}
	res, err := a.SweepGrants(identity.WithPool(ctx), SweepGrantsInput{})
	t.Logf("sweep: %+v, %v", res, err)

	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app, "a run the sweep could not ask about makes it fail")
	require.Equal(t, TypeRunsUnavailable, app.Type())
	require.False(t, app.NonRetryable())
	require.Contains(t, err.Error(), unknown)
	require.NotContains(t, err.Error(), "10.1.2.3")

	for _, role := range []string{running, oldRole, takenOver, unknown} {
		require.True(t, r.exists(t, ctx, role), "role %s must be kept", role)
		require.NotContains(t, append(res.Expired, res.Orphaned...), role)
	}
	for _, role := range []string{expired, terminated} {
		require.False(t, r.exists(t, ctx, role), "role %s must be dropped", role)
	}
	r.waitEnded(t, ctx, conn, pid)
	r.waitEnded(t, ctx, orphanConn, orphanPID)
	if !strings.Contains(strings.Join(res.Orphaned, " "), terminated) {
		t.Logf("another sweeper dropped %s first", terminated)
	}
}

// TestGrantRecordsItsRun: a grant made by an activity records the run that scheduled it in
// the role's comment, which is what the sweep reads.
func TestGrantRecordsItsRun(t *testing.T) {
	ctx, pool := bootstrapped(t)

	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&asPerson{id: bob}}})
	env.RegisterActivity(&DatabaseActivities{DB: pool})
	requestID := "records-run-" + time.Now().Format("150405.000000000")
	role := pgaccess.RoleName(requestID, "bob")
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()) })
	var a *DatabaseActivities
	v, err := env.ExecuteActivity(a.GrantAccess, GrantAccessInput{RequestID: requestID, Requester: "bob",
		Department: "engineering", Database: "demo", Access: pgaccess.AccessRead, Duration: time.Hour})
	require.NoError(t, err)
	var res GrantAccessResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, "default-test-workflow-id", res.Grant.WorkflowID)
	require.Equal(t, "default-test-run-id", res.Grant.RunID)

	// The test environment's run is unknown to Temporal, so another test's sweeper may drop
	// the role at once; the comment is checked while it is still there.
	var comment string
	err = pool.QueryRow(ctx, "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", role).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		t.Skip("another test's sweeper dropped the role before it was read")
	}
	require.NoError(t, err)
	require.Equal(t, ownerComment("default-test-workflow-id", "default-test-run-id"), comment)
}

// asPerson runs every activity as id.
type asPerson struct {
	interceptor.WorkerInterceptorBase
	id *identity.Identity
}

func (p *asPerson) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &personInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, id: p.id}
}

type personInbound struct {
	interceptor.ActivityInboundInterceptorBase
	id *identity.Identity
}

func (p *personInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	return p.Next.ExecuteActivity(identity.WithActivity(ctx, p.id), in)
}

// TestRevokeKeepsRoleWhoseSessionsCannotEnd: an admin connection that may not end other
// roles' sessions (no pg_signal_backend) cannot revoke: the role is left NOLOGIN, its session
// is not orphaned under a dropped role, and the failure says what kind it is. An admin that
// may end sessions then finishes the revoke.
func TestRevokeKeepsRoleWhoseSessionsCannotEnd(t *testing.T) {
	r := newSweepRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	role := r.role(t, ctx, "unended", ManagedComment, time.Now().Add(time.Hour))
	conn, pid := r.session(t, ctx, role)

	admin := pgaccess.RoleName("sweeptest-admin-"+r.stamp, "admin")
	_, err := r.pool.Exec(ctx, "CREATE ROLE "+pgx.Identifier{admin}.Sanitize()+" LOGIN CREATEROLE PASSWORD 'sweeptest-pw'")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = r.pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{admin}.Sanitize())
	})
	cfg, err := pgxpool.ParseConfig(r.url)
	require.NoError(t, err)
	cfg.ConnConfig.User, cfg.ConnConfig.Password = admin, "sweeptest-pw"
	limited, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(limited.Close)

	dropped, _, err := (&DatabaseActivities{DB: limited}).dropRole(ctx, role, nil)
	require.False(t, dropped)
	err = (&DatabaseActivities{DB: limited}).dbError(ctx, "revoke "+role, err)
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.Equal(t, TypeDatabase, app.Type())
	require.Contains(t, err.Error(), "SQLSTATE 42501")
	var login bool
	require.NoError(t, r.pool.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role).Scan(&login))
	require.False(t, login, "the role can log in no more")
	require.NoError(t, conn.Ping(ctx), "the session could not be ended, so the role must still exist for it")

	dropped, sessions, err := (&DatabaseActivities{DB: r.pool}).dropRole(ctx, role, nil)
	require.NoError(t, err)
	require.True(t, dropped)
	require.Equal(t, 1, sessions)
	r.waitEnded(t, ctx, conn, pid)
}

// TemporalRuns.Closed on the real server: a workflow id's earlier run chain is closed once a
// later chain of it runs; the running chain is not; a workflow Temporal does not know is not.
func TestIntegrationTemporalRunsChains(t *testing.T) {
	r := newSweepRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runs := TemporalRuns{Client: r.temporal}
	id, first := r.run(t, ctx, "chains")
	closed := func(chain string) bool {
		t.Helper()
		c, err := runs.Closed(ctx, id, chain)
		require.NoError(t, err)
		return c
	}
	require.False(t, closed(first), "the running chain")
	require.False(t, closed(""), "the workflow, while a run runs")
	require.NoError(t, r.temporal.TerminateWorkflow(ctx, id, first, "next chain"))
	require.True(t, closed(first), "a chain whose run ended")
	_, second := r.run(t, ctx, "chains")
	require.True(t, closed(first), "an earlier chain, while a later one runs")
	require.False(t, closed(second), "the later, running chain")
	require.False(t, closed(""), "the workflow, while a run runs")
	unknown, err := runs.Closed(ctx, id+"-never-started", first)
	require.NoError(t, err)
	require.False(t, unknown, "a workflow Temporal does not know")
}
