package workflows_test

// Integration tests of AccessRequest on the real dev stack (`make up`): real logins through
// the dev IdP, sealed identity envelopes, real workers (in-process, or the worker binary
// killed with SIGKILL), and the real PostgreSQL grants.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/leakcheck"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/pgaccess"
	"github.com/oidcflow/oidcflow/workflows"
)

// stackAccessDuration is the access duration of TestStackAccessRequest. The default keeps CI
// fast; the acceptance scenario (two minutes) runs with
//
//	go test ./workflows -run TestStackAccessRequest -count=1 -v -args -stack.access-duration=2m
var stackAccessDuration = flag.Duration("stack.access-duration", 20*time.Second,
	"access duration of TestStackAccessRequest (the access request scenario asks for 2m)")

// stackDB bootstraps the demo database and returns a pool on the admin URL.
func stackDB(t *testing.T, st *testharness.Stack) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := st.Env("OIDCFLOW_POSTGRES_URL")
	if url == "" {
		t.Fatal("OIDCFLOW_POSTGRES_URL is not in the stack's env file")
	}
	if err := pgaccess.Bootstrap(ctx, url, pgaccess.BootstrapOptions{Database: "demo"}); err != nil {
		t.Fatalf("bootstrap demo: %v", err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// pgRole is a login role as pg_roles shows it.
type pgRole struct {
	Count      int        // rows in pg_roles with the name (0 or 1)
	CanLogin   bool       // rolcanlogin
	ValidUntil *time.Time // rolvaliduntil
	Groups     []string   // roles it is a member of, one row each (duplicates would show)
}

func lookupRole(t *testing.T, ctx context.Context, pool *pgxpool.Pool, name string) pgRole {
	t.Helper()
	var r pgRole
	err := pool.QueryRow(ctx, `SELECT count(*) OVER (), rolcanlogin, rolvaliduntil,
		ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
		      WHERE m.member = r.oid ORDER BY 1)
		FROM pg_roles r WHERE rolname = $1`, name).Scan(&r.Count, &r.CanLogin, &r.ValidUntil, &r.Groups)
	if errors.Is(err, pgx.ErrNoRows) {
		return pgRole{}
	}
	if err != nil {
		t.Fatalf("look up role %s: %v", name, err)
	}
	return r
}

// psqlRole asks the real psql client about role: "name|login|valid until|groups", or "" when
// the role does not exist. ok is false when psql is not installed.
func psqlRole(t *testing.T, ctx context.Context, st *testharness.Stack, role string) (out string, ok bool) {
	t.Helper()
	bin, err := exec.LookPath("psql")
	if err != nil {
		return "", false
	}
	// Variables are interpolated in scripts read from stdin, not in -c, so the role name is
	// quoted by psql itself (:'role').
	cmd := exec.CommandContext(ctx, bin, "-X", "-A", "-t", "-q", "-F", "|", "-v", "ON_ERROR_STOP=1",
		"-v", "role="+role, "-d", st.Env("OIDCFLOW_POSTGRES_URL"))
	cmd.Stdin = strings.NewReader(`SELECT r.rolname, r.rolcanlogin, r.rolvaliduntil,
	  (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m
	   JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)
	FROM pg_roles r WHERE r.rolname = :'role';
`)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v: %s", err, b)
	}
	return strings.TrimSpace(string(b)), true
}

// update runs an update and waits for its result. Handlers are registered once the run's
// identity is verified; an update sent in the same instant as the start is rejected as
// unknown (and leaves no trace), so it is sent again (see send).
func update(ctx context.Context, c client.Client, id, name string, arg, out any) error {
	return send(ctx, c, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: name, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted,
	}, out)
}

// approve approves the request c sees in the status of run id, as an approver does
// (workflows.ApproveAccess: addressed to that run, naming its request digest).
func approve(t *testing.T, ctx context.Context, c client.Client, id, comment string, out *workflows.AccessStatus) error {
	t.Helper()
	return send(ctx, c, workflows.ApproveAccess(id, status(t, ctx, c, id), comment), out)
}

// send sends an update (see update), again while it is rejected as unknown, until ctx ends:
// on a busy machine the worker may take the run's first task seconds after the start.
func send(ctx context.Context, c client.Client, o client.UpdateWorkflowOptions, out any) error {
	for {
		h, err := c.UpdateWorkflow(ctx, o)
		if err == nil {
			err = h.Get(ctx, out)
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

// status queries the run's status, retrying while the handler is not registered yet or the
// run's worker is being replaced.
func status(t *testing.T, ctx context.Context, c client.Client, id string) workflows.AccessStatus {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := c.QueryWorkflow(qctx, id, "", workflows.QueryStatus)
		cancel()
		if err == nil {
			var s workflows.AccessStatus
			if err := v.Get(&s); err != nil {
				t.Fatalf("decode status: %v", err)
			}
			return s
		}
		last = err
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("status query of %s: %v (%v)", id, ctx.Err(), last)
	return workflows.AccessStatus{}
}

// waitState polls the status query until the run is in state want.
func waitState(t *testing.T, ctx context.Context, c client.Client, id string, want workflows.State) workflows.AccessStatus {
	t.Helper()
	for {
		s := status(t, ctx, c, id)
		if s.State == want {
			return s
		}
		if s.State.Final() {
			t.Fatalf("run %s ended in state %s, want %s", id, s.State, want)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run %s still %s, want %s: %v", id, s.State, want, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func auditQuery(t *testing.T, ctx context.Context, c client.Client, id string) []workflows.AuditEntry {
	t.Helper()
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryAudit)
	if err != nil {
		t.Fatalf("audit query: %v", err)
	}
	var audit []workflows.AuditEntry
	if err := v.Get(&audit); err != nil {
		t.Fatalf("decode audit: %v", err)
	}
	return audit
}

// step is an audit entry reduced to what the tests compare: "action actor outcome".
func step(e workflows.AuditEntry) string {
	who := "-"
	if e.Actor != nil {
		who = e.Actor.Subject
	}
	return e.Action + " " + who + " " + e.Outcome
}

func steps(audit []workflows.AuditEntry) []string {
	out := make([]string, len(audit))
	for i, e := range audit {
		out[i] = step(e)
	}
	return out
}

// TestStackAccessRequest is the access request scenario with real tokens: bob asks for read access
// to demo; frank, without the approver role, is refused with a clear message; carol approves;
// the login role exists with VALID UNTIL while granted and is gone after the duration; the
// audit query names every step's subject.
func TestStackAccessRequest(t *testing.T) {
	t.Parallel()
	st := testharness.Load(t)
	pool := stackDB(t, st)
	queue := apptest.TaskQueue("stack-access")
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue)})
	bob, _ := apptest.Client(t, st, "bob")
	frank, _ := apptest.Client(t, st, "frank")
	carol, _ := apptest.Client(t, st, "carol")

	duration := *stackAccessDuration
	ctx, cancel := context.WithTimeout(context.Background(), duration+3*time.Minute)
	defer cancel()
	id := "stack-access-" + queue
	run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
			Resource: "demo", Role: workflows.AccessRead, Duration: duration, Reason: "investigate a slow query",
		})
	if err != nil {
		t.Fatal(err)
	}
	requester := status(t, ctx, bob, id).Requester
	if requester.Subject != "bob" || requester.Department != "engineering" {
		t.Fatalf("requester %+v, want bob of engineering (from the verified token)", requester)
	}
	role := pgaccess.RoleName(id, requester.Subject)

	// frank has no db-approver role: refused, with a reason.
	var s workflows.AccessStatus
	err = approve(t, ctx, frank, id, "looks fine", &s)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != identity.TypeForbidden {
		t.Fatalf("frank's approval: %v; want an ApplicationError of type %s", err, identity.TypeForbidden)
	}
	if msg := appErr.Error(); !strings.Contains(msg, "frank") || !strings.Contains(msg, "db-approver") {
		t.Errorf("frank's refusal %q does not say who was refused and which role is needed", msg)
	}
	t.Logf("frank refused: %s", appErr.Error())
	if got := lookupRole(t, ctx, pool, role); got.Count != 0 {
		t.Fatalf("role %s exists before any approval", role)
	}

	approved := time.Now()
	if err := approve(t, ctx, carol, id, "ok for the incident", &s); err != nil {
		t.Fatalf("carol's approval: %v", err)
	}
	if !slices.Equal(s.Approvers, []string{"carol"}) {
		t.Errorf("approvers %v, want [carol]", s.Approvers)
	}
	s = waitState(t, ctx, bob, id, workflows.StateGranted)
	if s.Grant == nil || s.Grant.RoleName != role || s.Grant.GroupRole != pgaccess.GroupRole("demo", pgaccess.AccessRead) {
		t.Fatalf("grant %+v, want role %s in %s", s.Grant, role, pgaccess.GroupRole("demo", pgaccess.AccessRead))
	}
	if d := s.Grant.ValidUntil.Sub(approved); d < duration-5*time.Second || d > duration+5*time.Second {
		t.Errorf("valid until %s is %s after the approval, want about %s", s.Grant.ValidUntil, d, duration)
	}

	got := lookupRole(t, ctx, pool, role)
	switch {
	case got.Count != 1 || !got.CanLogin:
		t.Fatalf("while granted: role %s %+v, want one login role", role, got)
	case got.ValidUntil == nil || !got.ValidUntil.Equal(s.Grant.ValidUntil):
		t.Errorf("while granted: VALID UNTIL %v, want %s", got.ValidUntil, s.Grant.ValidUntil)
	case !slices.Equal(got.Groups, []string{"oidcflow_demo_read"}):
		t.Errorf("while granted: member of %v, want [oidcflow_demo_read] once", got.Groups)
	}
	if out, ok := psqlRole(t, ctx, st, role); ok {
		t.Logf("psql while granted: %s", out)
		f := strings.Split(out, "|")
		if len(f) != 4 || f[0] != role || f[1] != "t" || f[2] == "" || f[3] != "oidcflow_demo_read" {
			t.Errorf("psql while granted shows %q, want %s|t|<valid until>|oidcflow_demo_read", out, role)
		}
	} else {
		t.Log("psql is not installed; checked through pgx only")
	}

	var res workflows.AccessRequestResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("run: %v", err)
	}
	if now := time.Now(); now.Before(s.Grant.ValidUntil) {
		t.Errorf("run ended at %s, before the grant's end %s", now, s.Grant.ValidUntil)
	}
	if res.State != workflows.StateEnded {
		t.Errorf("state %s, want %s", res.State, workflows.StateEnded)
	}
	if got := lookupRole(t, ctx, pool, role); got.Count != 0 {
		t.Errorf("after the duration: role %s still exists: %+v", role, got)
	}
	if out, ok := psqlRole(t, ctx, st, role); ok && out != "" {
		t.Errorf("psql after the duration still shows %q", out)
	}

	audit := auditQuery(t, ctx, bob, id)
	want := []string{
		"requested bob ok", "approve frank refused", "approve carol ok", "granted - ok", "revoked - ok",
	}
	if got := steps(audit); !slices.Equal(got, want) {
		t.Fatalf("audit %q\nwant  %q", got, want)
	}
	for _, e := range audit {
		t.Logf("audit: %s %-9s %-6s %-8s %s", e.Time.UTC().Format(time.TimeOnly), e.Action, subject(e), e.Outcome, e.Detail)
	}
	if a := audit[1]; !strings.Contains(a.Detail, "db-approver") || a.Actor.Department != "engineering" {
		t.Errorf("frank's refusal in the audit: %+v (%+v)", a, a.Actor)
	}
	if a := audit[2]; a.Detail != "ok for the incident" || !slices.Contains(a.Actor.Roles, "db-approver") || a.Actor.Issuer == "" {
		t.Errorf("carol's approval in the audit lacks her claims: %+v (%+v)", a, a.Actor)
	}
	if a := audit[3]; !strings.Contains(a.Detail, role) {
		t.Errorf("grant step %q does not name role %s", a.Detail, role)
	}
	if !slices.EqualFunc(res.Audit, audit, func(a, b workflows.AuditEntry) bool { return step(a) == step(b) }) {
		t.Errorf("result audit %q differs from the audit query %q", steps(res.Audit), steps(audit))
	}
}

func subject(e workflows.AuditEntry) string {
	if e.Actor == nil {
		return "-"
	}
	return e.Actor.Subject
}

// TestStackRequesterList checks what the Web UI's list filtered by Requester shows: the
// visibility API finds bob's run under Requester="bob" (set from his verified token), with
// the other search attributes, and not under another requester.
func TestStackRequesterList(t *testing.T) {
	t.Parallel()
	st := testharness.Load(t)
	stackDB(t, st)
	queue := apptest.TaskQueue("stack-list")
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue)})
	bob, _ := apptest.Client(t, st, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	id := "stack-list-" + queue
	run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
			Resource: "demo", Role: workflows.AccessRead, Duration: time.Minute, Reason: "list check",
		})
	if err != nil {
		t.Fatal(err)
	}
	if s := status(t, ctx, bob, id); s.Requester.Subject != "bob" {
		t.Fatalf("requester %q", s.Requester.Subject)
	}

	// The UI's filter as typed, narrowed to this run: the shared namespace holds thousands of
	// bob's runs, and listing them all may outlast one visibility call's deadline.
	attrs := waitListed(t, ctx, bob, fmt.Sprintf(`Requester="bob" AND WorkflowId=%q`, id), id,
		func(a map[string]any) bool { return a["ApprovalState"] == "pending" })
	for k, v := range map[string]any{"Requester": "bob", "RequesterDepartment": "engineering", "Resource": "demo"} {
		if attrs[k] != v {
			t.Errorf("search attribute %s = %v, want %v", k, attrs[k], v)
		}
	}
	if n, err := listed(ctx, bob, fmt.Sprintf(`Requester="carol" AND WorkflowId=%q`, id)); err != nil {
		t.Fatal(err)
	} else if len(n) != 0 {
		t.Errorf("run listed under Requester=\"carol\"")
	}

	var s workflows.AccessStatus
	if err := update(ctx, bob, id, workflows.UpdateRevoke, workflows.RevokeInput{Reason: "no longer needed"}, &s); err != nil {
		t.Fatalf("bob withdraws: %v", err)
	}
	var res workflows.AccessRequestResult
	if err := run.Get(ctx, &res); err != nil || res.State != workflows.StateRevoked {
		t.Fatalf("run: %v, state %s; want %s", err, res.State, workflows.StateRevoked)
	}
	waitListed(t, ctx, bob, fmt.Sprintf(`Requester="bob" AND ApprovalState="revoked" AND ExecutionStatus="Completed" AND WorkflowId=%q`, id), id, nil)
}

// listed returns the search attributes of the runs the visibility query finds, by workflow id.
func listed(ctx context.Context, c client.Client, query string) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			attrs, err := decodeAttrs(e.GetSearchAttributes())
			if err != nil {
				return nil, err
			}
			out[e.GetExecution().GetWorkflowId()] = attrs
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// waitListed polls the visibility query until it lists id (and ok accepts its attributes),
// allowing visibility time to catch up; a failed call (one call's deadline passing on a busy
// server) is tried again until ctx ends.
func waitListed(t *testing.T, ctx context.Context, c client.Client, query, id string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	for {
		runs, err := listed(ctx, c, query)
		attrs, found := runs[id]
		if err == nil && found && (ok == nil || ok(attrs)) {
			return attrs
		}
		select {
		case <-ctx.Done():
			t.Fatalf("visibility query %s does not list %s (attributes %v, last error %v): %v", query, id, attrs, err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func decodeAttrs(sa *commonpb.SearchAttributes) (map[string]any, error) {
	out := map[string]any{}
	for k, p := range sa.GetIndexedFields() {
		var v any
		if err := converter.GetDefaultDataConverter().FromPayload(p, &v); err != nil {
			return nil, fmt.Errorf("search attribute %s: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// buildWorker builds the worker binary into the test's temporary folder.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/oidcflow/oidcflow/worker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build worker: %v: %s", err, out)
	}
	return bin
}

// workerProcess is one worker binary run on the stack's env file.
type workerProcess struct {
	name   string
	cmd    *exec.Cmd
	out    *leakcheck.Buffer
	done   chan struct{}
	killed atomic.Bool // the test stopped it
}

// startWorkerProcess starts the worker binary on queue. It leaves the sweeper schedule alone
// (OIDCFLOW_SWEEP_INTERVAL=0): the test needs no sweep, and a schedule call that outlasts
// its deadline on a busy server would stop the worker at its start. A worker that exits
// before the test kills it fails the test and calls stop, so that the test's waits end then
// rather than at their deadline.
func startWorkerProcess(t *testing.T, st *testharness.Stack, bin, queue, name string, stop context.CancelFunc) *workerProcess {
	t.Helper()
	p := &workerProcess{name: name, out: &leakcheck.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(os.Environ(),
		"OIDCFLOW_ENV_FILE="+st.EnvFile(),
		"OIDCFLOW_TASK_QUEUE="+queue,
		"OIDCFLOW_HTTP_ADDR=127.0.0.1:0",
		"OIDCFLOW_LOG_FORMAT=text",
		"OIDCFLOW_SWEEP_INTERVAL=0",
	)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start worker %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		if !p.killed.Load() {
			t.Errorf("worker %s exited before the test stopped it: %v", name, err)
			stop()
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("worker %s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// kill sends SIGKILL (no drain, no goodbye to Temporal or PostgreSQL) and waits for the exit.
func (p *workerProcess) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	p.killed.Store(true)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill worker %s: %v", p.name, err)
	}
	<-p.done
}

// roleLock holds the advisory lock GrantAccess and RevokeAccess take for a role
// (pg_advisory_xact_lock(hashtext(role))) from a connection of its own, so the real activity
// blocks inside its transaction until the lock is released.
type roleLock struct {
	conn *pgx.Conn
	pid  int32
	role string
}

func lockRoleFor(t *testing.T, ctx context.Context, st *testharness.Stack, role string) *roleLock {
	t.Helper()
	conn, err := pgx.Connect(ctx, st.Env("OIDCFLOW_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	l := &roleLock{conn: conn, role: role}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&l.pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", role); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitBlocked waits until another backend waits for the lock.
func (l *roleLock) waitBlocked(t *testing.T, ctx context.Context) {
	t.Helper()
	for {
		var n int
		if err := l.conn.QueryRow(ctx,
			"SELECT count(*) FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))", l.pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no activity blocked on the lock of role %s: %v", l.role, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (l *roleLock) release(t *testing.T, ctx context.Context) {
	t.Helper()
	var ok bool
	if err := l.conn.QueryRow(ctx, "SELECT pg_advisory_unlock(hashtext($1))", l.role).Scan(&ok); err != nil || !ok {
		t.Fatalf("release the lock of %s: %v (held: %v)", l.role, err, ok)
	}
}

// startedAttempt returns the attempt of the run's pending activity of type name that is
// running, or 0. Others may be running beside it (the run's notifications).
func startedAttempt(t *testing.T, ctx context.Context, c client.Client, id, name string) int32 {
	t.Helper()
	d, err := c.DescribeWorkflow(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range d.RawResponse.GetPendingActivities() {
		if a.GetActivityType().GetName() == name && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			return a.GetAttempt()
		}
	}
	return 0
}

// activityRun is one completed activity of a run's history.
type activityRun struct {
	Name    string
	Attempt int32
	Result  *commonpb.Payloads
}

func completedActivities(t *testing.T, ctx context.Context, c client.Client, id string) []activityRun {
	t.Helper()
	scheduled := map[int64]string{}
	started := map[int64]int32{}
	var out []activityRun
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			scheduled[e.GetEventId()] = e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := e.GetActivityTaskStartedEventAttributes()
			started[a.GetScheduledEventId()] = a.GetAttempt()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := e.GetActivityTaskCompletedEventAttributes()
			out = append(out, activityRun{Name: scheduled[a.GetScheduledEventId()],
				Attempt: started[a.GetScheduledEventId()], Result: a.GetResult()})
		}
	}
	return out
}

// TestStackWorkerKilledDuringGrantAndRevoke kills the worker binary (SIGKILL) while the real
// GrantAccess runs, and again while the real RevokeAccess runs, each time blocked inside its
// transaction on the role's advisory lock. New worker processes finish the run: PostgreSQL
// ends with the role granted once (one role, one membership, created by the retry) and
// revoked once (gone, dropped by the retry).
//
// The revoke is bob's early revoke, made while the role's VALID UNTIL is still ahead: an
// expired role may legitimately be dropped by anyone's sweep-expired task on the shared
// database, which would take the drop away from the workflow's revoke.
func TestStackWorkerKilledDuringGrantAndRevoke(t *testing.T) {
	t.Parallel()
	st := testharness.Load(t)
	pool := stackDB(t, st)
	bin := buildWorker(t)
	queue := apptest.TaskQueue("stack-kill")
	bob, _ := apptest.Client(t, st, "bob")
	carol, _ := apptest.Client(t, st, "carol")
	// Two dead attempts wait out their 30s start-to-close timeout; the rest is generous for a
	// busy machine (three worker starts, Vault, the identity provider, PostgreSQL).
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	first := startWorkerProcess(t, st, bin, queue, "first", cancel)
	id := "stack-kill-" + queue
	run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
			Resource: "demo", Role: workflows.AccessRead, Duration: 10 * time.Minute, Reason: "worker crash test",
		})
	if err != nil {
		t.Fatal(err)
	}
	role := pgaccess.RoleName(id, status(t, ctx, bob, id).Requester.Subject)

	// Grant: block the real activity inside its transaction, kill the worker under it. The
	// retry runs once the dead attempt's start-to-close timeout (30s) has passed.
	lock := lockRoleFor(t, ctx, st, role)
	var s workflows.AccessStatus
	if err := approve(t, ctx, carol, id, "", &s); err != nil {
		t.Fatalf("carol's approval: %v", err)
	}
	lock.waitBlocked(t, ctx)
	if attempt := startedAttempt(t, ctx, bob, id, "GrantAccess"); attempt != 1 {
		t.Fatalf("running GrantAccess attempt %d, want 1", attempt)
	}
	first.kill(t)
	lock.release(t, ctx)
	time.Sleep(time.Second) // the killed worker's backend gets the lock, finds its client gone, rolls back
	if got := lookupRole(t, ctx, pool, role); got.Count != 0 {
		t.Fatalf("the killed grant left role %s behind: %+v", role, got)
	}
	second := startWorkerProcess(t, st, bin, queue, "second", cancel)
	s = waitState(t, ctx, bob, id, workflows.StateGranted)
	got := lookupRole(t, ctx, pool, role)
	if got.Count != 1 || !got.CanLogin || got.ValidUntil == nil || !got.ValidUntil.Equal(s.Grant.ValidUntil) ||
		!slices.Equal(got.Groups, []string{"oidcflow_demo_read"}) {
		t.Fatalf("after the retried grant: role %s %+v, want one login role valid until %s, one membership",
			role, got, s.Grant.ValidUntil)
	}

	// Revoke: bob revokes early; the real revoke blocks on the lock, the worker dies under it.
	lock = lockRoleFor(t, ctx, st, role)
	revoked := make(chan error, 1)
	go func() {
		var rs workflows.AccessStatus
		revoked <- update(ctx, bob, id, workflows.UpdateRevoke, workflows.RevokeInput{Reason: "done early"}, &rs)
	}()
	lock.waitBlocked(t, ctx)
	if attempt := startedAttempt(t, ctx, bob, id, "RevokeAccess"); attempt != 1 {
		t.Fatalf("running RevokeAccess attempt %d, want 1", attempt)
	}
	second.kill(t)
	lock.release(t, ctx)
	time.Sleep(time.Second)
	if got := lookupRole(t, ctx, pool, role); got.Count != 1 || !got.CanLogin {
		t.Fatalf("the killed revoke changed role %s: %+v", role, got)
	}
	startWorkerProcess(t, st, bin, queue, "third", cancel)

	if err := <-revoked; err != nil {
		t.Fatalf("bob's revoke: %v", err)
	}
	var res workflows.AccessRequestResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.State != workflows.StateRevoked {
		t.Errorf("state %s, want %s", res.State, workflows.StateRevoked)
	}
	if got := lookupRole(t, ctx, pool, role); got.Count != 0 {
		t.Errorf("role %s left behind: %+v", role, got)
	}
	if got, want := steps(res.Audit), []string{
		"requested bob ok", "approve carol ok", "granted - ok", "revoke bob ok", "revoked bob ok",
	}; !slices.Equal(got, want) {
		t.Errorf("audit %q, want %q", got, want)
	}

	// History: each database activity completed once, by its second attempt (the first died
	// with its worker), and that attempt did the work.
	var grants, revokes []activityRun
	for _, a := range completedActivities(t, ctx, bob, id) {
		switch a.Name {
		case "GrantAccess":
			grants = append(grants, a)
		case "RevokeAccess":
			revokes = append(revokes, a)
		}
	}
	if len(grants) != 1 || len(revokes) != 1 {
		t.Fatalf("completed grants %d, revokes %d; want one each", len(grants), len(revokes))
	}
	var gr activities.GrantAccessResult
	var rr activities.RevokeAccessResult
	dc := st.DataConverter(t)
	if err := dc.FromPayloads(grants[0].Result, &gr); err != nil {
		t.Fatal(err)
	}
	if err := dc.FromPayloads(revokes[0].Result, &rr); err != nil {
		t.Fatal(err)
	}
	if grants[0].Attempt != 2 || !gr.Created || gr.Grant.RoleName != role {
		t.Errorf("grant completed by attempt %d with %+v; want attempt 2 creating %s", grants[0].Attempt, gr, role)
	}
	if revokes[0].Attempt != 2 || !rr.Dropped {
		t.Errorf("revoke completed by attempt %d with %+v; want attempt 2 dropping the role", revokes[0].Attempt, rr)
	}
}

// TestStackApprovalForAReplacedRun replays a decision through the real server: carol looks at bob's
// request (read, 1 h); bob withdraws it and starts a new run under the same workflow id with
// other input (write, 12 h); carol's approval, built from the status she saw, must not approve
// the new run. Sent as workflows.ApproveAccess builds it (addressed to the run she saw), the
// server does not deliver it; sent to the latest run instead (as `starter approve` did before
// approvals named their request), or without any name, the workflow refuses it with
// oidcflow.ApprovalMismatch. The new run stays pending, with the refusals in its audit trail,
// and no role exists.
func TestStackApprovalForAReplacedRun(t *testing.T) {
	t.Parallel()
	st := testharness.Load(t)
	pool := stackDB(t, st)
	queue := apptest.TaskQueue("stack-swap")
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue)})
	bob, _ := apptest.Client(t, st, "bob")
	carol, _ := apptest.Client(t, st, "carol")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	id := "stack-swap-" + queue
	first, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
			Resource: "demo", Role: workflows.AccessRead, Duration: time.Hour, Reason: "read the slow query log",
		})
	if err != nil {
		t.Fatal(err)
	}
	seen := status(t, ctx, carol, id) // what carol is shown
	if seen.Role != workflows.AccessRead || seen.Duration != time.Hour || seen.RunID != first.GetRunID() || len(seen.RequestDigest) != 64 {
		t.Fatalf("carol sees %+v; want read for 1h in run %s, with a digest", seen, first.GetRunID())
	}

	// bob swaps the request under carol's eyes.
	var s workflows.AccessStatus
	if err := update(ctx, bob, id, workflows.UpdateRevoke, workflows.RevokeInput{Reason: "swap"}, &s); err != nil {
		t.Fatalf("bob withdraws: %v", err)
	}
	if err := first.Get(ctx, nil); err != nil {
		t.Fatalf("first run: %v", err)
	}
	second, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
			Resource: "demo", Role: workflows.AccessWrite, Duration: 12 * time.Hour, Reason: "read the slow query log",
		})
	if err != nil {
		t.Fatal(err)
	}
	if now := status(t, ctx, bob, id); now.RunID != second.GetRunID() || now.Role != workflows.AccessWrite {
		t.Fatalf("the latest run is %+v; want bob's write request in run %s", now, second.GetRunID())
	}

	// As ApproveAccess builds it: addressed to the run carol saw, which has ended.
	err = send(ctx, carol, workflows.ApproveAccess(id, seen, "ok"), &s)
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		t.Errorf("carol's approval for the run she saw: %v; want the server's not found", err)
	} else {
		t.Logf("addressed to the ended run: %v", err)
	}
	// To the latest run, naming what she saw; and with no name at all.
	latest := workflows.ApproveAccess(id, seen, "ok")
	latest.RunID = ""
	for name, o := range map[string]client.UpdateWorkflowOptions{
		"to the latest run": latest,
		"unnamed": {WorkflowID: id, UpdateName: workflows.UpdateApprove, WaitForStage: client.WorkflowUpdateStageCompleted,
			Args: []any{workflows.ApproveInput{Comment: "ok"}}},
	} {
		err := send(ctx, carol, o, &s)
		var app *temporal.ApplicationError
		if !errors.As(err, &app) || app.Type() != workflows.TypeApprovalMismatch || !app.NonRetryable() {
			t.Errorf("carol's approval %s: %v; want a non-retryable %s", name, err, workflows.TypeApprovalMismatch)
			continue
		}
		t.Logf("%s: %s", name, app.Error())
	}

	now := status(t, ctx, bob, id)
	if now.RunID != second.GetRunID() || now.State != workflows.StatePending || len(now.Approvers) != 0 {
		t.Errorf("after carol's approvals the new run is %+v; want it pending with no approvers", now)
	}
	if got := steps(auditQuery(t, ctx, bob, id)); !slices.Equal(got, []string{
		"requested bob ok", "approve carol refused", "approve carol refused",
	}) {
		t.Errorf("audit of the new run: %q", got)
	}
	if got := lookupRole(t, ctx, pool, pgaccess.RoleName(id, now.Requester.Subject)); got.Count != 0 {
		t.Errorf("a role exists: %+v", got)
	}
	if err := update(ctx, bob, id, workflows.UpdateRevoke, workflows.RevokeInput{Reason: "done"}, &s); err != nil {
		t.Errorf("bob withdraws the second request: %v", err)
	}
}
