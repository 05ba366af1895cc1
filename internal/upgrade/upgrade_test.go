package upgrade_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/leakcheck"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/pgaccess"
	"github.com/oidcflow/oidcflow/tokenstore"
	"github.com/oidcflow/oidcflow/workflows"
)

// newWorker starts the worker version that takes the task queue over from the earlier
// release, with the stack's settings and env (KEY=value) on top, keeps it running until t
// ends, and returns a function that reads its log so far (checked for credentials).
// startCurrentWorker is today's unversioned worker; a rollout under Worker Deployment
// Versioning passes one that starts a versioned worker (deployment name and build id).
type newWorker func(t *testing.T, st *testharness.Stack, queue string, env []string) (logs func() string)

// startCurrentWorker runs the worker binary of the code under test.
func startCurrentWorker(t *testing.T, st *testharness.Stack, queue string, env []string) func() string {
	t.Helper()
	return startWorkerProc(t, st, currentWorkerBinary(t), "new", queue, env...).logs.String
}

// TestUpgradeFinishesRunsOfAnEarlierRelease starts runs on a worker built from the earlier
// release (earlierRelease, built from git history) through that release's client, stops it,
// and lets a worker of the current code finish every run on the same task queue:
//
//   - an AccessRequest left pending on the old worker, denied on the new one;
//   - one approved and granted on the old worker, whose hold (keep_alive_every set, so the
//     old code refreshed the requester's session during it) ends on the new one, which
//     revokes the role;
//   - one approved on the new worker, granted there with the session the old worker
//     deposited, and revoked early by its requester;
//   - one granted on the old worker whose revoke the old worker is running (blocked on the
//     role's lock) when it stops: the retry reaches the new worker, which refuses a revoke
//     scheduled on the requester's session, and the run schedules it again under the pool's
//     authority;
//   - a KeepAlive run with 10-second access tokens and a refresh interval the old release
//     accepted but today's refuses for new runs, which continues as new and ends on the new
//     worker.
//
// The old worker must drain and exit 0. The sessions it deposited carry no format; the new
// worker rewrites the one it reads (tokenstore.SessionFormat). A start and an approval
// through the old client after the upgrade are refused (envelope format 1). Then every run
// has its outcome, no history of any run and neither worker's log holds a credential, no
// role is left in PostgreSQL, and no session of any run is left in Vault. A run whose
// workflow task fails on the new worker (a determinism break) fails the test at once with
// the failure's message. No step is timed: the waits are generous and only bound a hung run.
func TestUpgradeFinishesRunsOfAnEarlierRelease(t *testing.T) {
	upgrade(t, startCurrentWorker)
}

// upgrade is the upgrade scenario with startNew as the new worker.
func upgrade(t *testing.T, startNew newWorker) {
	// The earlier release predates Temporal authorization: its clients send no token. The
	// upgrade runs on a Temporal server that authorizes no one, as a deployment that
	// upgrades oidcflow before it turns authorization on.
	st := testharness.Load(t).WithPlainTemporal(t)
	old := buildRelease(t, earlierRelease)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := pgaccess.Bootstrap(ctx, st.Env("OIDCFLOW_POSTGRES_URL"), pgaccess.BootstrapOptions{Database: "demo"}); err != nil {
		t.Fatalf("bootstrap the demo database: %v", err)
	}
	cl := st.NewClient(t, testharness.ClientOptions{AccessTokenTTL: 10 * time.Second})
	queue := "upgrade-" + random()
	env := []string{"OIDCFLOW_CLIENT_ID=" + cl.ID, "OIDCFLOW_SWEEP_INTERVAL=0"}
	plain := plainClient(t, st)

	var tokens []string // every token the test holds, looked for in histories and logs
	login := func(persona string) *oauth2.Token {
		tok := cl.Login(t, persona)
		idToken, _ := tok.Extra("id_token").(string)
		tokens = append(tokens, tok.AccessToken, tok.RefreshToken, idToken)
		return tok
	}

	// The old worker gives in-flight activities 5 s to drain: the revoke it is running when
	// it stops is cut off and retried on the new one.
	oldW := startWorkerProc(t, st, old.worker, "old", queue, append(slices.Clone(env), "OIDCFLOW_SHUTDOWN_TIMEOUT=5s")...)
	oc := &oldClient{bin: old.client, st: st}
	pending, granted, later, keep := queue+"-pending", queue+"-granted", queue+"-later", queue+"-keepalive"
	revoking, refused := queue+"-revoking", queue+"-old-client"
	t.Cleanup(func() { leaveNothingBehind(t, st, plain, []string{pending, granted, later, revoking, refused}, keep) })
	oc.start(t, login("bob"), pending, queue, workflows.AccessRequestWorkflow,
		accessArgs("upgrade: pending across the upgrade", time.Hour, 0))
	oc.start(t, login("bob"), granted, queue, workflows.AccessRequestWorkflow,
		accessArgs("upgrade: granted across the upgrade", 75*time.Second, 5*time.Second))
	oc.start(t, login("bob"), later, queue, workflows.AccessRequestWorkflow,
		accessArgs("upgrade: approved after the upgrade", time.Hour, 0))
	oc.start(t, login("bob"), revoking, queue, workflows.AccessRequestWorkflow,
		accessArgs("upgrade: revoked across the upgrade", 15*time.Second, 0))
	oc.start(t, login("frank"), keep, queue, workflows.KeepAliveWorkflow, map[string]any{
		"until": time.Now().Add(100 * time.Second).UTC(), "every": 5 * time.Second, "refreshes_per_run": 3,
	})

	// carol approves one request through the old client; the old worker grants it and
	// refreshes bob's session during the hold, and refreshes frank's.
	for _, id := range []string{granted, revoking} {
		waitFor(ctx, t, id+" pending on the old worker", func() (bool, error) {
			s, err := queryStatus(ctx, plain, id)
			return err == nil && s.State == workflows.StatePending, err
		})
		if _, err := oc.update(login("carol"), id, workflows.UpdateApprove, map[string]any{"comment": "ok before the upgrade"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(ctx, t, granted+" granted and its session refreshed during the hold on the old worker", func() (bool, error) {
		st, err := queryStatus(ctx, plain, granted)
		if err != nil || st.State != workflows.StateGranted {
			return false, err
		}
		n, err := completedActivities(ctx, plain, granted, "RefreshSession", "")
		return n > 0, err
	})
	waitFor(ctx, t, keep+" continued as new on the old worker and refreshed in its next run", func() (bool, error) {
		d, err := plain.DescribeWorkflow(ctx, keep, "")
		if err != nil {
			return false, err
		}
		info := d.RawResponse.GetWorkflowExecutionInfo()
		if info.GetExecution().GetRunId() == info.GetFirstRunId() {
			return false, nil
		}
		n, err := completedActivities(ctx, plain, keep, "RefreshSession", "")
		return n > 0, err
	})

	// The old worker's revoke of one request is running when it stops: the test holds the
	// lock RevokeAccess takes for the role (it was granted before), so it waits.
	revokingRole := pgaccess.RoleName(revoking, "bob")
	waitFor(ctx, t, revoking+" granted on the old worker", func() (bool, error) {
		s, err := queryStatus(ctx, plain, revoking)
		return err == nil && s.State == workflows.StateGranted, err
	})
	lock, err := pgx.Connect(ctx, st.Env("OIDCFLOW_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(context.Background())
	if _, err := lock.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", revokingRole); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the old worker's revoke of "+revoking+" waiting for the lock", func() (bool, error) {
		return activityRunning(ctx, plain, revoking, "RevokeAccess")
	})

	// The old worker stored the sessions it deposited without a format.
	kv := vaultKV(t, st)
	keepSessions, err := sessionIDs(ctx, plain, keep)
	if err != nil || len(keepSessions) != 1 {
		t.Fatalf("%s: session ids %v, %v; want one", keep, keepSessions, err)
	}
	if f, err := storedFormat(ctx, kv, keepSessions[0]); err != nil || f != "" {
		t.Fatalf("the old worker stored session %s in format %q (%v), want none", keepSessions[0], f, err)
	}

	// The old release drains and stops; the new one takes the queue.
	oldW.stop(t, 90*time.Second)
	if os.Getenv("OIDCFLOW_UPDATE_TESTDATA") == "1" {
		saveHistories(ctx, t, plain, old.commit, map[string]string{
			"access-pending":      pending,
			"access-keep-alive":   granted,
			"keepalive-every-5s":  keep,
			"keepalive-first-run": keep + "#first",
		})
	}
	newLogs := startNew(t, st, queue, env)
	oldID := oldW.identity()
	if _, err := lock.Exec(ctx, "SELECT pg_advisory_unlock(hashtext($1))", revokingRole); err != nil {
		t.Fatal(err)
	}

	// The new worker reads the old session and rewrites it in today's format.
	waitFor(ctx, t, "session "+keepSessions[0]+" rewritten in format "+strconv.Itoa(tokenstore.SessionFormat), func() (bool, error) {
		f, err := storedFormat(ctx, kv, keepSessions[0])
		return f == strconv.Itoa(tokenstore.SessionFormat), err
	})

	// The earlier release's client seals envelopes of format 1, which commit to no run,
	// input or time: the new worker honours none, for a start or an update, and says to
	// upgrade the client.
	oc.start(t, login("bob"), refused, queue, workflows.AccessRequestWorkflow,
		accessArgs("upgrade: started by the old client after the upgrade", time.Hour, 0))
	if err := awaitResult(ctx, t, plain, refused, new(workflows.AccessRequestResult)); err == nil ||
		!strings.Contains(err.Error(), "format 1") || !strings.Contains(err.Error(), identity.TypeUnauthenticated) {
		t.Errorf("a start by the old client on the new worker: %v, want a refusal of envelope format 1", err)
	}
	if _, err := oc.update(login("carol"), later, workflows.UpdateApprove, map[string]any{"comment": "old client"}); err == nil ||
		!strings.Contains(err.Error(), "format 1") {
		t.Errorf("an approval by the old client on the new worker: %v, want a refusal of envelope format 1", err)
	}

	carol := identityClient(t, st, login("carol"))
	bob := identityClient(t, st, login("bob"))
	s, err := queryStatus(ctx, carol, pending)
	if err != nil {
		t.Fatalf("status of %s on the new worker: %v", pending, err)
	}
	if _, err := decide(ctx, carol, workflows.DenyAccess(pending, s, "no longer needed after the upgrade")); err != nil {
		t.Fatalf("carol denies %s on the new worker: %v", pending, err)
	}
	s, err = queryStatus(ctx, carol, later)
	if err != nil {
		t.Fatalf("status of %s on the new worker: %v", later, err)
	}
	if _, err := decide(ctx, carol, workflows.ApproveAccess(later, s, "ok after the upgrade")); err != nil {
		t.Fatalf("carol approves %s on the new worker: %v", later, err)
	}
	waitFor(ctx, t, later+" granted on the new worker", func() (bool, error) {
		s, err := queryStatus(ctx, plain, later)
		return err == nil && s.State == workflows.StateGranted, err
	})
	if _, err := decide(ctx, bob, client.UpdateWorkflowOptions{WorkflowID: later, UpdateName: workflows.UpdateRevoke,
		Args: []any{workflows.RevokeInput{Reason: "done after the upgrade"}}, WaitForStage: client.WorkflowUpdateStageCompleted}); err != nil {
		t.Fatalf("bob revokes %s early on the new worker: %v", later, err)
	}

	// Every run finishes.
	want := map[string]workflows.State{pending: workflows.StateDenied, granted: workflows.StateEnded,
		later: workflows.StateRevoked, revoking: workflows.StateEnded}
	roles := []string{}
	closed := []string{}
	for _, id := range []string{pending, granted, later, revoking} {
		var res workflows.AccessRequestResult
		if err := awaitResult(ctx, t, plain, id, &res); err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		closed = append(closed, id)
		if res.State != want[id] {
			t.Errorf("%s ended %s, want %s", id, res.State, want[id])
		}
		if (res.Grant != nil) != (id != pending) {
			t.Errorf("%s: grant %+v", id, res.Grant)
		}
		if res.Grant != nil {
			roles = append(roles, res.Grant.RoleName)
		}
	}
	var kr workflows.KeepAliveResult
	if err := awaitResult(ctx, t, plain, keep, &kr); err != nil {
		t.Errorf("%s: %v", keep, err)
	} else {
		closed = append(closed, keep)
		if kr.Runs < 2 || kr.Refreshes < 2 {
			t.Errorf("%s: %+v, want at least 2 runs and 2 refreshes", keep, kr)
		}
	}
	t.Logf("keep-alive: %+v", kr)

	// The new worker replayed the hold's keep-alive ticks and took none of its own: from its
	// first live tick, the rest of the hold is one timer.
	if n, err := completedActivities(ctx, plain, granted, "RefreshSession", oldID); err != nil || n != 0 {
		t.Errorf("%s: %d keep-alive refreshes on the new worker (%v), want none", granted, n, err)
	}

	// The revoke the old worker scheduled on bob's session was refused by the new worker
	// (it runs only under the pool's authority) and scheduled again under it.
	if n, err := scheduledActivities(ctx, plain, revoking, "RevokeAccess"); err != nil || n != 2 {
		t.Errorf("%s: RevokeAccess scheduled %d times (%v), want twice (the old worker's, then the pool's)", revoking, n, err)
	}

	noCredentials(ctx, t, plain, tokens, map[string]string{"old": oldW.logs.String(), "new": newLogs()},
		pending, granted, later, revoking, keep)

	// Nothing is left behind: no role, no session.
	pg, err := pgx.Connect(ctx, st.Env("OIDCFLOW_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	for _, role := range roles {
		var exists bool
		if err := pg.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("role %s still exists", role)
		}
	}
	for _, id := range closed {
		sids, err := sessionIDs(ctx, plain, id)
		if err != nil || len(sids) == 0 {
			t.Errorf("%s: session ids in history: %v, %v", id, sids, err)
			continue
		}
		for _, sid := range sids {
			waitFor(ctx, t, "session "+sid+" of "+id+" gone from Vault", func() (bool, error) {
				_, err := kv.Get(ctx, "sessions/"+sid)
				if errors.Is(err, vault.ErrSecretNotFound) {
					return true, nil
				}
				return false, err
			})
		}
	}
}

// noCredentials fails t when a history of any run of ids, or a worker's log, holds a JWT or
// part of one of tokens.
func noCredentials(ctx context.Context, t *testing.T, c client.Client, tokens []string, logs map[string]string, ids ...string) {
	t.Helper()
	texts := map[string]string{}
	for name, l := range logs {
		texts["log of the "+name+" worker"] = l
	}
	for _, id := range ids {
		d, err := c.DescribeWorkflow(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		for run := d.RawResponse.GetWorkflowExecutionInfo().GetFirstRunId(); run != ""; {
			h := &historypb.History{}
			next := ""
			if err := eachEvent(ctx, c, id, run, func(ev *historypb.HistoryEvent) {
				h.Events = append(h.Events, ev)
				if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
					next = a.GetNewExecutionRunId()
				}
			}); err != nil {
				t.Fatal(err)
			}
			ht, err := leakcheck.HistoryTexts(id+"/"+run, h)
			if err != nil {
				t.Fatal(err)
			}
			maps.Copy(texts, ht)
			run = next
		}
	}
	for _, f := range leakcheck.Scan(tokens, texts) {
		t.Errorf("credential leak: %s", f)
	}
}

// leaveNothingBehind terminates the runs of the test that are still open (after a failure)
// and drops the roles the access requests may have left.
func leaveNothingBehind(t *testing.T, st *testharness.Stack, c client.Client, requests []string, others ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, id := range append(slices.Clone(requests), others...) {
		if d, err := c.DescribeWorkflow(ctx, id, ""); err == nil &&
			d.RawResponse.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			if err := c.TerminateWorkflow(ctx, id, "", "upgrade test cleanup"); err != nil {
				t.Logf("terminate %s: %v", id, err)
			}
		}
	}
	pg, err := pgx.Connect(ctx, st.Env("OIDCFLOW_POSTGRES_URL"))
	if err != nil {
		t.Logf("drop the test's roles: %v", err)
		return
	}
	defer pg.Close(context.Background())
	for _, id := range requests {
		if _, err := pg.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{pgaccess.RoleName(id, "bob")}.Sanitize()); err != nil {
			t.Logf("drop the role of %s: %v", id, err)
		}
	}
}

// accessArgs is an AccessRequestInput as the earlier release's JSON spells it, with
// keep_alive_every when keepAlive is set.
func accessArgs(reason string, d, keepAlive time.Duration) map[string]any {
	cfg := map[string]any{"expire_after": 10 * time.Minute, "escalate_after": 10 * time.Minute}
	if keepAlive > 0 {
		cfg["keep_alive_every"] = keepAlive
	}
	return map[string]any{"resource": "demo", "role": string(workflows.AccessRead), "duration": d, "reason": reason, "config": cfg}
}

// oldClient runs the earlier release's client (testdata/oldclient).
type oldClient struct {
	bin string
	st  *testharness.Stack
}

func (c *oldClient) call(req map[string]any) (json.RawMessage, error) {
	req["address"], req["namespace"], req["public_key"] = c.st.Env("TEMPORAL_ADDRESS"), c.st.Env("TEMPORAL_NAMESPACE"), c.st.Env("OIDCFLOW_ENVELOPE_PUBLIC_KEY")
	in, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.bin)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var a struct {
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
	}
	switch jerr := json.Unmarshal(out, &a); {
	case jerr != nil:
		return nil, fmt.Errorf("old client %s %s: %v, %v: %s", req["op"], req["workflow_id"], err, jerr, stderr.String())
	case a.Error != "":
		return nil, fmt.Errorf("old client %s %s: %s", req["op"], req["workflow_id"], a.Error)
	}
	return a.Result, nil
}

func oldToken(tok *oauth2.Token) map[string]any {
	idToken, _ := tok.Extra("id_token").(string)
	return map[string]any{"access_token": tok.AccessToken, "id_token": idToken, "refresh_token": tok.RefreshToken, "expiry": tok.Expiry}
}

// start starts workflow as tok's person through the old client.
func (c *oldClient) start(t *testing.T, tok *oauth2.Token, id, queue, workflow string, arg any) {
	t.Helper()
	if _, err := c.call(map[string]any{"op": "start", "token": oldToken(tok), "workflow_id": id, "task_queue": queue, "workflow": workflow, "arg": arg}); err != nil {
		t.Fatal(err)
	}
}

// update sends an update as tok's person through the old client and waits for its result.
func (c *oldClient) update(tok *oauth2.Token, id, name string, arg any) (json.RawMessage, error) {
	return c.call(map[string]any{"op": "update", "token": oldToken(tok), "workflow_id": id, "update": name, "arg": arg})
}

// identityClient dials Temporal with today's client interceptor as tok's person.
func identityClient(t *testing.T, st *testharness.Stack, tok *oauth2.Token) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := interceptors.Dial(ctx, interceptors.DialOptions{
		Client:      client.Options{HostPort: st.Env("TEMPORAL_ADDRESS"), Namespace: st.Env("TEMPORAL_NAMESPACE")},
		TokenSource: oauth2.StaticTokenSource(tok),
		PublicKey:   st.Env("OIDCFLOW_ENVELOPE_PUBLIC_KEY"),
		Bearer:      st.Authorizes(),
	})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// plainClient dials Temporal without identity, for queries, descriptions and histories.
func plainClient(t *testing.T, st *testharness.Stack) client.Client {
	t.Helper()
	c, err := client.Dial(st.TemporalOptions(st.OperatorTokenSource()))
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func queryStatus(ctx context.Context, c client.Client, id string) (workflows.AccessStatus, error) {
	var s workflows.AccessStatus
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
	if err == nil {
		err = v.Get(&s)
	}
	return s, err
}

// decide sends an update and waits for its result.
func decide(ctx context.Context, c client.Client, u client.UpdateWorkflowOptions) (workflows.AccessStatus, error) {
	var s workflows.AccessStatus
	h, err := c.UpdateWorkflow(ctx, u)
	if err == nil {
		err = h.Get(ctx, &s)
	}
	return s, err
}

// waitFor polls cond until it reports true, failing t when ctx ends first (the last error
// is in the message). It bounds a hung run; it measures nothing.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error: %v)", what, ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// awaitResult waits for the run of id (following continue-as-new) to close and decodes its
// result. A workflow task failure on the way (a determinism break on the new worker, say)
// ends the wait with its message.
func awaitResult(ctx context.Context, t *testing.T, c client.Client, id string, out any) error {
	t.Helper()
	for {
		if msg, err := taskFailure(ctx, c, id); err == nil && msg != "" {
			return fmt.Errorf("a workflow task failed: %s", msg)
		}
		d, err := c.DescribeWorkflow(ctx, id, "")
		if err != nil {
			return err
		}
		if d.RawResponse.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return c.GetWorkflow(ctx, id, "").Get(ctx, out)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still running: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// taskFailure returns the message of the first workflow task failure in the current run of
// id, or "".
func taskFailure(ctx context.Context, c client.Client, id string) (string, error) {
	var msg string
	err := eachEvent(ctx, c, id, "", func(ev *historypb.HistoryEvent) {
		if a := ev.GetWorkflowTaskFailedEventAttributes(); a != nil && msg == "" {
			msg = fmt.Sprintf("event %d: %s: %s", ev.GetEventId(), a.GetCause(), a.GetFailure().GetMessage())
		}
	})
	return msg, err
}

// completedActivities counts the activities of type name that completed in the current run
// of id; with notBy set, only those whose worker identity does not start with notBy.
func completedActivities(ctx context.Context, c client.Client, id, name, notBy string) (int, error) {
	scheduled, by := map[int64]bool{}, map[int64]string{}
	n := 0
	err := eachEvent(ctx, c, id, "", func(ev *historypb.HistoryEvent) {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == name {
				scheduled[ev.GetEventId()] = true
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := ev.GetActivityTaskStartedEventAttributes()
			by[a.GetScheduledEventId()] = a.GetIdentity()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			s := ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			if scheduled[s] && (notBy == "" || !strings.HasPrefix(by[s], notBy)) {
				n++
			}
		}
	})
	return n, err
}

// activityRunning reports whether an activity of type name of the current run of id has
// started and not finished.
func activityRunning(ctx context.Context, c client.Client, id, name string) (bool, error) {
	d, err := c.DescribeWorkflow(ctx, id, "")
	if err != nil {
		return false, err
	}
	for _, a := range d.RawResponse.GetPendingActivities() {
		if a.GetActivityType().GetName() == name && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			return true, nil
		}
	}
	return false, nil
}

// scheduledActivities counts the activities of type name scheduled in the current run of id.
func scheduledActivities(ctx context.Context, c client.Client, id, name string) (int, error) {
	n := 0
	err := eachEvent(ctx, c, id, "", func(ev *historypb.HistoryEvent) {
		if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == name {
			n++
		}
	})
	return n, err
}

// sessionIDs returns the session ids the identities recorded in the history of every run of
// id carry (local activity results; no secret is among them).
func sessionIDs(ctx context.Context, c client.Client, id string) ([]string, error) {
	var ids []string
	run := ""
	d, err := c.DescribeWorkflow(ctx, id, "")
	if err != nil {
		return nil, err
	}
	run = d.RawResponse.GetWorkflowExecutionInfo().GetFirstRunId()
	for run != "" {
		next := ""
		err := eachEvent(ctx, c, id, run, func(ev *historypb.HistoryEvent) {
			if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				next = a.GetNewExecutionRunId()
			}
			for _, p := range ev.GetMarkerRecordedEventAttributes().GetDetails() {
				for _, pl := range p.GetPayloads() {
					var v any
					if json.Unmarshal(pl.GetData(), &v) == nil {
						collect(v, &ids)
					}
				}
			}
		})
		if err != nil {
			return ids, err
		}
		run = next
	}
	return ids, nil
}

func collect(v any, ids *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "session_id" && s != "" && !slices.Contains(*ids, s) {
				*ids = append(*ids, s)
			}
			collect(x, ids)
		}
	case []any:
		for _, x := range v {
			collect(x, ids)
		}
	}
}

func eachEvent(ctx context.Context, c client.Client, id, run string, f func(*historypb.HistoryEvent)) error {
	it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return err
		}
		f(ev)
	}
	return nil
}

// storedFormat returns the "format" member of session sid's record in Vault ("" when it has
// none).
func storedFormat(ctx context.Context, kv *vault.KVv2, sid string) (string, error) {
	sec, err := kv.Get(ctx, "sessions/"+sid)
	if err != nil {
		return "", err
	}
	if f, ok := sec.Data["format"]; ok {
		return fmt.Sprint(f), nil
	}
	return "", nil
}

// vaultKV is the stack's KV v2 mount, read with the stack's root token.
func vaultKV(t *testing.T, st *testharness.Stack) *vault.KVv2 {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = st.Env("VAULT_ADDR")
	vc, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(st.Env("VAULT_TOKEN"))
	return vc.KVv2(st.Env("OIDCFLOW_VAULT_KV_MOUNT"))
}

func random() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// saveHistories writes, with OIDCFLOW_UPDATE_TESTDATA=1, the histories the earlier release
// recorded (its worker stopped, so no task is in flight) to
// workflows/testdata/release-<commit>/<name>.json and names them in histories.json there (the replay gate's index), for
// TestReplayEarlierReleaseHistories. A workflow id ending in "#first" saves its first run.
func saveHistories(ctx context.Context, t *testing.T, c client.Client, commit string, runs map[string]string) {
	t.Helper()
	dir := filepath.Join(moduleRoot(t), "workflows", "testdata", "release-"+commit[:7])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		File       string `json:"file"`
		Workflow   string `json:"workflow_type"`
		WorkflowID string `json:"workflow_id"`
		RunID      string `json:"run_id"`
	}
	var index []entry
	for _, name := range slices.Sorted(maps.Keys(runs)) {
		id, first := strings.CutSuffix(runs[name], "#first")
		d, err := c.DescribeWorkflow(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		info := d.RawResponse.GetWorkflowExecutionInfo()
		run := info.GetExecution().GetRunId()
		if first {
			run = info.GetFirstRunId()
		}
		h := &historypb.History{}
		if err := eachEvent(ctx, c, id, run, func(ev *historypb.HistoryEvent) { h.Events = append(h.Events, ev) }); err != nil {
			t.Fatal(err)
		}
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		file := name + ".json"
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
		index = append(index, entry{File: file, Workflow: info.GetType().GetName(), WorkflowID: id, RunID: run})
	}
	b, _ := json.MarshalIndent(index, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "histories.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %d histories of %.12s in %s", len(index), commit, dir)
}
