package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/leakcheck"
	"github.com/oidcflow/oidcflow/internal/replay"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/workflows"
)

// The saved histories of the gate (testdata/<WorkflowType>/<state>.json, named in
// testdata/histories.json) are recorded from the real stack by TestStackRecordHistories:
//
//	make record-histories                     # a few minutes
//	make record-histories RECORD_ESCALATION=1 # also AccessRequest/escalated: over an hour
//
// (OIDCFLOW_UPDATE_TESTDATA=1 go test ./internal/replay -run TestStackRecordHistories with a
// stack up; OIDCFLOW_RECORD_ESCALATION=1 adds the escalated state, since the policy lets a
// request escalate after one hour at the soonest.) A state not recorded keeps its saved file.

const (
	updateEnv     = "OIDCFLOW_UPDATE_TESTDATA"
	escalationEnv = "OIDCFLOW_RECORD_ESCALATION"
)

// recorder drives runs on the stack and saves their histories.
type recorder struct {
	st    *testharness.Stack
	cl    *testharness.Client
	c     client.Client // no identity: histories, cancels, terminations
	queue string        // a worker with everything, and the sweeper schedule
	bare  string        // a worker without the database activities

	mu      sync.Mutex
	entries []replay.IndexEntry
	tokens  []string
}

// TestStackRecordHistories records the saved histories of every shipped workflow type in
// every state a run of it can be left in (with OIDCFLOW_UPDATE_TESTDATA=1, on the dev stack).
// One worker (the worker binary) runs them; another, without the database activities, holds
// an approved request whose grant cannot run yet. Tokens live 3 seconds, so every refresh
// step refreshes. Each state is saved once nothing is under way in the run.
func TestStackRecordHistories(t *testing.T) {
	if os.Getenv(updateEnv) != "1" {
		t.Skipf("records testdata with %s=1 (make record-histories)", updateEnv)
	}
	st := testharness.Load(t)
	r := &recorder{st: st, c: plainClient(t, st), queue: taskQueue("replay-record"), bare: taskQueue("replay-record-bare")}
	r.cl = st.NewClient(t, testharness.ClientOptions{AccessTokenTTL: 3 * time.Second, IDTokenTTL: 3 * time.Second})
	// The gate replays saved histories offline, without Vault: the recording workers and
	// clients write payloads unencrypted.
	plain := "OIDCFLOW_ENCRYPT_PAYLOADS=false"
	startWorker(t, st, r.queue, nil, "OIDCFLOW_CLIENT_ID="+r.cl.ID, "OIDCFLOW_SWEEP_INTERVAL=10s", plain)
	t.Cleanup(func() { r.deleteSchedule() })
	startWorker(t, st, r.bare, []string{"OIDCFLOW_POSTGRES_URL"}, "OIDCFLOW_CLIENT_ID="+r.cl.ID, "OIDCFLOW_SWEEP_INTERVAL=0", plain)

	t.Run("states", func(t *testing.T) {
		for _, s := range []struct {
			name string
			run  func(*testing.T, *recorder)
		}{
			{"AccessRequest/pending", recordAccessPending},
			{"AccessRequest/one-of-two", recordAccessOneOfTwo},
			{"AccessRequest/denied", recordAccessDenied},
			{"AccessRequest/expired", recordAccessExpired},
			{"AccessRequest/approved", recordAccessApproved},
			{"AccessRequest/granted", recordAccessGranted},
			{"AccessRequest/ended", recordAccessEnded},
			{"AccessRequest/escalated", recordAccessEscalated},
			{"InvoiceApproval/pending", recordInvoicePending},
			{"InvoiceApproval/one-of-two", recordInvoiceOneOfTwo},
			{"InvoiceApproval/expired", recordInvoiceExpired},
			{"AdminTask", recordAdminTasks},
			{"KeepAlive/continued", recordKeepAliveContinued},
			{"KeepAlive/parked", recordKeepAliveParked},
			{"Sweeper", recordSweeper},
		} {
			t.Run(s.name, func(t *testing.T) {
				t.Parallel()
				s.run(t, r)
			})
		}
	})
	if t.Failed() {
		t.Fatal("nothing written: a state failed to record")
	}
	r.checkNoTokens(t)
	r.writeIndex(t)
}

// as logs persona in through the test's client and dials Temporal with those tokens.
func (r *recorder) as(t *testing.T, persona string) (client.Client, *oauth2.Token) {
	t.Helper()
	tok := r.cl.Login(t, persona)
	r.keep(tok)
	return identityClient(t, r.st, tok, false), tok
}

// keep remembers tok's strings for the leak check.
func (r *recorder) keep(tok *oauth2.Token) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, _ := tok.Extra("id_token").(string)
	r.tokens = append(r.tokens, tok.AccessToken, tok.RefreshToken, id)
}

// id is a workflow id of this recording.
func (r *recorder) id(scenario string) string { return "replay-" + scenario + "-" + r.queue }

// start starts a run on queue and terminates it when the test ends, if it still runs then.
func (r *recorder) start(t *testing.T, ctx context.Context, c client.Client, queue, id, typ string, in any) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, typ, in)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.c.TerminateWorkflow(ctx, id, "", "replay recorder: the test ended")
	})
	return run
}

// save settles run (id, runID) and saves its history as testdata/<type>/<state>.json.
func (r *recorder) save(t *testing.T, ctx context.Context, id, runID, state, note string, allow ...string) {
	t.Helper()
	h := settled(t, ctx, r.c, id, runID, allow...)
	typ := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
	file := typ + "/" + state + ".json"
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", filepath.FromSlash(file))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.entries = append(r.entries, replay.IndexEntry{File: file, WorkflowType: typ, State: state, WorkflowID: id, RunID: runID, Note: note})
	r.mu.Unlock()
	t.Logf("saved %s (%d events)", path, len(h.Events))
}

// runID returns the current run of id.
func (r *recorder) runID(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	d, err := describe(ctx, r.c, id, "")
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

// checkNoTokens fails t when a saved history holds a JWT or part of a token of the
// recording (leakcheck: as raw protobuf, and with every payload decoded).
func (r *recorder) checkNoTokens(t *testing.T) {
	t.Helper()
	texts := map[string]string{}
	for _, e := range r.entries {
		h, err := replay.ReadHistory(filepath.Join("testdata", filepath.FromSlash(e.File)))
		if err != nil {
			t.Fatal(err)
		}
		ht, err := leakcheck.HistoryTexts(e.File, h)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(texts, ht)
	}
	if found := leakcheck.Scan(r.tokens, texts); len(found) > 0 {
		t.Fatalf("saved histories hold credentials: %v", found)
	}
}

// writeIndex writes testdata/histories.json: the states recorded now, and the saved ones
// not recorded this time.
func (r *recorder) writeIndex(t *testing.T) {
	t.Helper()
	path := filepath.Join("testdata", replay.IndexFile)
	entries := slices.Clone(r.entries)
	if raw, err := os.ReadFile(path); err == nil {
		var old []replay.IndexEntry
		if err := json.Unmarshal(raw, &old); err != nil {
			t.Fatal(err)
		}
		for _, e := range old {
			if !slices.ContainsFunc(entries, func(n replay.IndexEntry) bool { return n.File == e.File }) {
				entries = append(entries, e)
			}
		}
	}
	slices.SortFunc(entries, func(a, b replay.IndexEntry) int { return strings.Compare(a.File, b.File) })
	b, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (r *recorder) deleteSchedule() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.c.ScheduleClient().GetHandle(ctx, workflows.SweeperScheduleID(r.queue)).Delete(ctx)
}

// accessInput asks for read access to demo.
func accessInput(reason string, d time.Duration, cfg *workflows.AccessConfig) workflows.AccessRequestInput {
	return workflows.AccessRequestInput{Resource: "demo", Role: workflows.AccessRead, Duration: d, Reason: reason, Config: cfg}
}

// approveAccess approves, as c's persona, the request c sees in id's status.
func approveAccess(t *testing.T, ctx context.Context, c client.Client, id string) workflows.AccessStatus {
	t.Helper()
	st := query[workflows.AccessStatus](t, ctx, c, id, workflows.QueryStatus)
	var out workflows.AccessStatus
	if err := update(ctx, c, workflows.ApproveAccess(id, st, "recorded for the replay gate"), &out); err != nil {
		t.Fatalf("approve %s: %v", id, err)
	}
	return out
}

func revokeAccess(t *testing.T, ctx context.Context, c client.Client, id, reason string) {
	t.Helper()
	var out workflows.AccessStatus
	o := client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: workflows.UpdateRevoke, Args: []any{workflows.RevokeInput{Reason: reason}}}
	if err := update(ctx, c, o, &out); err != nil {
		t.Fatalf("revoke %s: %v", id, err)
	}
}

func recordAccessPending(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob, _ := r.as(t, "bob")
	id := r.id("access-pending")
	run := r.start(t, ctx, bob, r.queue, id, workflows.AccessRequestWorkflow, accessInput("replay gate: pending", time.Hour, nil))
	waitState[accessStatus](t, ctx, bob, id, workflows.StatePending)
	r.save(t, ctx, id, run.GetRunID(), "pending", "bob asks for read access to demo; nobody has decided yet")
	bob, _ = r.as(t, "bob")
	revokeAccess(t, ctx, bob, id, "asked by mistake")
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	r.save(t, ctx, id, run.GetRunID(), "withdrawn", "bob asked for read access to demo and withdrew the request before a decision")
}

func recordAccessOneOfTwo(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := workflows.DefaultAccessConfig()
	cfg.Routes = map[string]workflows.Route{"engineering": {ApproverRole: "db-approver", Required: 2}}
	bob, _ := r.as(t, "bob")
	id := r.id("access-one-of-two")
	run := r.start(t, ctx, bob, r.queue, id, workflows.AccessRequestWorkflow, accessInput("replay gate: two approvals", time.Hour, &cfg))
	carol, _ := r.as(t, "carol")
	if s := approveAccess(t, ctx, carol, id); s.State != workflows.StatePending {
		t.Fatalf("after one of two approvals: %s", s.State)
	}
	r.save(t, ctx, id, run.GetRunID(), "one-of-two", "bob asks with two approvals required; carol approved, a second approver is awaited")
	bob, _ = r.as(t, "bob")
	revokeAccess(t, ctx, bob, id, "done recording")
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func recordAccessDenied(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob, _ := r.as(t, "bob")
	id := r.id("access-denied")
	run := r.start(t, ctx, bob, r.queue, id, workflows.AccessRequestWorkflow, accessInput("replay gate: denied", time.Hour, nil))
	carol, _ := r.as(t, "carol")
	st := query[workflows.AccessStatus](t, ctx, carol, id, workflows.QueryStatus)
	if err := update(ctx, carol, workflows.DenyAccess(id, st, "not needed for this task"), nil); err != nil {
		t.Fatalf("deny: %v", err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	r.save(t, ctx, id, run.GetRunID(), "denied", "bob asked for read access to demo; carol denied it")
}

func recordAccessExpired(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := workflows.DefaultAccessConfig()
	cfg.ExpireAfter = 5 * time.Second
	bob, _ := r.as(t, "bob")
	id := r.id("access-expired")
	run := r.start(t, ctx, bob, r.queue, id, workflows.AccessRequestWorkflow, accessInput("replay gate: expired", time.Hour, &cfg))
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	r.save(t, ctx, id, run.GetRunID(), "expired", "bob asked with expire_after 5s; nobody decided in time")
}

func recordAccessApproved(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob, _ := r.as(t, "bob")
	id := r.id("access-approved")
	run := r.start(t, ctx, bob, r.bare, id, workflows.AccessRequestWorkflow, accessInput("replay gate: approved", time.Hour, nil))
	carol, _ := r.as(t, "carol")
	if s := approveAccess(t, ctx, carol, id); s.State != workflows.StateApproved {
		t.Fatalf("after carol's approval: %s", s.State)
	}
	r.save(t, ctx, id, run.GetRunID(), "approved",
		"carol approved bob's request; the grant is scheduled and has not run yet (its worker has no database), and the run was terminated after",
		"GrantAccess")
}

func recordAccessGranted(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob, _ := r.as(t, "bob")
	id := r.id("access-granted")
	run := r.start(t, ctx, bob, r.queue, id, workflows.AccessRequestWorkflow, accessInput("replay gate: granted", time.Hour, nil))
	carol, _ := r.as(t, "carol")
	approveAccess(t, ctx, carol, id)
	waitState[accessStatus](t, ctx, carol, id, workflows.StateGranted)
	r.save(t, ctx, id, run.GetRunID(), "granted", "carol approved bob's request; the role is granted for an hour and held")
	bob, _ = r.as(t, "bob")
	revokeAccess(t, ctx, bob, id, "done early")
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	r.save(t, ctx, id, run.GetRunID(), "revoked", "bob's granted access, revoked early at his request")
}

func recordAccessEnded(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob, _ := r.as(t, "bob")
	id := r.id("access-ended")
	run := r.start(t, ctx, bob, r.queue, id, workflows.AccessRequestWorkflow, accessInput("replay gate: ended", 3*time.Second, nil))
	carol, _ := r.as(t, "carol")
	approveAccess(t, ctx, carol, id)
	var res workflows.AccessRequestResult
	if err := run.Get(ctx, &res); err != nil || res.State != workflows.StateEnded {
		t.Fatalf("run: %s, %v", res.State, err)
	}
	r.save(t, ctx, id, run.GetRunID(), "ended", "bob's access for 3s, approved by carol, held for its duration and revoked")
}

func recordAccessEscalated(t *testing.T, r *recorder) {
	if os.Getenv(escalationEnv) != "1" {
		t.Skipf("the policy escalates after an hour at the soonest; records it with %s=1", escalationEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Minute)
	defer cancel()
	bob, _ := r.as(t, "bob")
	id := r.id("access-escalated")
	run := r.start(t, ctx, bob, r.queue, id, workflows.AccessRequestWorkflow, accessInput("replay gate: escalated", time.Hour, nil))
	for {
		st := query[workflows.AccessStatus](t, ctx, r.c, id, workflows.QueryStatus)
		if st.State == workflows.StateEscalated {
			break
		}
		if st.State != workflows.StatePending {
			t.Fatalf("state %s, waiting for escalation", st.State)
		}
		select {
		case <-ctx.Done():
			t.Fatal("no escalation")
		case <-time.After(15 * time.Second):
		}
	}
	r.save(t, ctx, id, run.GetRunID(), "escalated", "nobody decided on bob's request for an hour; it escalated to admin")
	bob, _ = r.as(t, "bob")
	revokeAccess(t, ctx, bob, id, "done recording")
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// invoice is an invoice of amount cents.
func invoice(id string, cents int64, cfg *workflows.InvoiceConfig) workflows.InvoiceApprovalInput {
	return workflows.InvoiceApprovalInput{InvoiceID: id, Vendor: "ACME", AmountCents: cents, Currency: "EUR",
		Description: "replay gate", Config: cfg}
}

func decideInvoice(t *testing.T, ctx context.Context, c client.Client, id string, approve bool) {
	t.Helper()
	st := query[workflows.InvoiceStatus](t, ctx, c, id, workflows.QueryStatus)
	o := workflows.ApproveInvoice(id, st, "recorded for the replay gate")
	if !approve {
		o = workflows.DenyInvoice(id, st, "not ours")
	}
	if err := update(ctx, c, o, nil); err != nil {
		t.Fatalf("decide %s: %v", id, err)
	}
}

func recordInvoicePending(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob, _ := r.as(t, "bob")
	id := r.id("invoice-pending")
	run := r.start(t, ctx, bob, r.queue, id, workflows.InvoiceApprovalWorkflow, invoice("INV-1", 50_000, nil))
	waitState[invoiceStatus](t, ctx, bob, id, workflows.StatePending)
	r.save(t, ctx, id, run.GetRunID(), "pending", "bob submitted an invoice of 500.00 EUR; nobody has decided yet")
	dave, _ := r.as(t, "dave")
	decideInvoice(t, ctx, dave, id, true)
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	r.save(t, ctx, id, run.GetRunID(), "approved", "bob's invoice of 500.00 EUR, approved by dave (finance)")
}

func recordInvoiceOneOfTwo(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob, _ := r.as(t, "bob")
	id := r.id("invoice-one-of-two")
	run := r.start(t, ctx, bob, r.queue, id, workflows.InvoiceApprovalWorkflow, invoice("INV-2", 2_000_000, nil))
	dave, _ := r.as(t, "dave")
	decideInvoice(t, ctx, dave, id, true)
	r.save(t, ctx, id, run.GetRunID(), "one-of-two", "bob submitted 20,000.00 EUR; dave approved, a second approver is awaited")
	dave, _ = r.as(t, "dave")
	decideInvoice(t, ctx, dave, id, false)
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	r.save(t, ctx, id, run.GetRunID(), "denied", "bob's invoice of 20,000.00 EUR: dave approved, then denied it")
}

func recordInvoiceExpired(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob, _ := r.as(t, "bob")
	id := r.id("invoice-expired")
	run := r.start(t, ctx, bob, r.queue, id, workflows.InvoiceApprovalWorkflow,
		invoice("INV-3", 50_000, &workflows.InvoiceConfig{ExpireAfter: 5 * time.Second}))
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	r.save(t, ctx, id, run.GetRunID(), "expired", "bob's invoice with expire_after 5s; nobody decided in time")
}

func recordAdminTasks(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, task := range []string{workflows.AdminTaskListGrants, workflows.AdminTaskSweepExpired} {
		alice, _ := r.as(t, "alice")
		id := r.id("admin-" + task)
		run := r.start(t, ctx, alice, r.queue, id, workflows.AdminTaskWorkflow, workflows.AdminTaskInput{Task: task})
		if err := run.Get(ctx, nil); err != nil {
			t.Fatalf("%s: %v", task, err)
		}
		r.save(t, ctx, id, run.GetRunID(), task, "alice (admin) ran "+task)
	}
	bob, _ := r.as(t, "bob")
	id := r.id("admin-forbidden")
	run := r.start(t, ctx, bob, r.queue, id, workflows.AdminTaskWorkflow, workflows.AdminTaskInput{Task: workflows.AdminTaskListGrants})
	var app *temporal.ApplicationError
	if err := run.Get(ctx, nil); !errors.As(err, &app) || app.Type() != identity.TypeForbidden {
		t.Fatalf("bob's admin task: %v, want %s", err, identity.TypeForbidden)
	}
	r.save(t, ctx, id, run.GetRunID(), "forbidden", "bob, who is no admin, tried list-grants; the run failed at once with oidcflow.Forbidden")
}

// isRefresh matches a completed or failed RefreshSession activity.
func isRefresh(failed bool) func(*historypb.HistoryEvent) bool {
	want := enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
	if failed {
		want = enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED
	}
	return func(e *historypb.HistoryEvent) bool { return e.GetEventType() == want }
}

func isTimer(e *historypb.HistoryEvent) bool {
	return e.GetEventType() == enumspb.EVENT_TYPE_TIMER_STARTED
}

// recordKeepAliveContinued: one refresh per run, every minute, for 100 seconds: the first
// run sleeps, continues as new after a minute, the second sleeps and continues as new at
// Until, and the third ends.
func recordKeepAliveContinued(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob, _ := r.as(t, "bob")
	id := r.id("keepalive-continued")
	in := workflows.KeepAliveInput{Until: time.Now().Add(100 * time.Second), Every: time.Minute, RefreshesPerRun: 1}
	first := r.start(t, ctx, bob, r.queue, id, workflows.KeepAliveWorkflow, in)
	waitEvent(t, ctx, r.c, id, first.GetRunID(), "timer", isTimer)
	r.save(t, ctx, id, first.GetRunID(), "sleeping", "bob's session kept alive (one refresh per run, every minute); the first run refreshed and sleeps")
	for {
		d, err := describe(ctx, r.c, id, first.GetRunID())
		if err != nil {
			t.Fatal(err)
		}
		if d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
			break
		}
		time.Sleep(time.Second)
	}
	r.save(t, ctx, id, first.GetRunID(), "continued-as-new", "the first run of the keep-alive above, after one refresh, continued as new")
	second := r.runID(t, ctx, id)
	waitEvent(t, ctx, r.c, id, second, "timer", isTimer)
	r.save(t, ctx, id, second, "sleeping-after-continue-as-new", "the second run of the keep-alive above: refreshed on the carried session, sleeps")
	var res workflows.KeepAliveResult
	if err := r.c.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	r.save(t, ctx, id, r.runID(t, ctx, id), "ended", fmt.Sprintf("the last run of the keep-alive above, at Until (%d runs, %d refreshes)", res.Runs, res.Refreshes))
}

// recordKeepAliveParked: bob's refresh token is rotated outside the pool before the start,
// so the pool's first refresh is refused (invalid_grant) and the run parks; bob's re-consent
// resumes it; then it is canceled.
func recordKeepAliveParked(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tok := r.cl.Login(t, "bob")
	r.keep(tok)
	r.keep(r.cl.Refresh(t, tok)) // the refresh token the run deposits is spent now
	bob := identityClient(t, r.st, tok, false)
	id := r.id("keepalive-parked")
	in := workflows.KeepAliveInput{Until: time.Now().Add(30 * time.Minute), Every: time.Minute}
	run := r.start(t, ctx, bob, r.queue, id, workflows.KeepAliveWorkflow, in)
	waitEvent(t, ctx, r.c, id, run.GetRunID(), "refused refresh", isRefresh(true))
	r.save(t, ctx, id, run.GetRunID(), "parked", "the IdP refused to refresh bob's session (invalid_grant); the run waits for his re-consent")
	fresh, _ := r.as(t, "bob")
	if err := update(ctx, fresh, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: identity.ReconsentUpdate}, nil); err != nil {
		t.Fatalf("re-consent: %v", err)
	}
	waitEvent(t, ctx, r.c, id, run.GetRunID(), "refresh", isRefresh(false))
	waitEvent(t, ctx, r.c, id, run.GetRunID(), "timer", isTimer)
	r.save(t, ctx, id, run.GetRunID(), "resumed", "the parked keep-alive above after bob's re-consent: refreshed on the new session, sleeps")
	if err := r.c.CancelWorkflow(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); !temporal.IsCanceledError(err) {
		t.Fatalf("canceled run: %v", err)
	}
	r.save(t, ctx, id, run.GetRunID(), "canceled", "the resumed keep-alive above, canceled")
}

// recordSweeper saves the first run of the sweeper schedule of the recorder's worker.
func recordSweeper(t *testing.T, r *recorder) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := r.c.ScheduleClient().GetHandle(ctx, workflows.SweeperScheduleID(r.queue))
	for {
		d, err := h.Describe(ctx)
		if err == nil && len(d.Info.RecentActions) > 0 {
			ex := d.Info.RecentActions[0].StartWorkflowResult
			err := r.c.GetWorkflow(ctx, ex.WorkflowID, ex.FirstExecutionRunID).Get(ctx, nil)
			state := "completed"
			if err != nil {
				state = "failed"
			}
			r.save(t, ctx, ex.WorkflowID, ex.FirstExecutionRunID, state, "a run of the pool's sweeper schedule (no identity; its steps run under the pool's authority)")
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the sweeper schedule started no run: %v", err)
		case <-time.After(time.Second):
		}
	}
}
