package replay_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/conformance"
	"github.com/oidcflow/oidcflow/internal/replay"
	"github.com/oidcflow/oidcflow/workflows"
)

// moduleRoot is the module's folder (tests run in the package's folder).
const moduleRoot = "../.."

// gateWorkflows are the types the replay-check command replays with: the shipped ones and
// the conformance workflows, whose saved histories are part of the gate.
func gateWorkflows() map[string]any {
	wfs := replay.Shipped()
	wfs[conformance.WorkflowName] = conformance.Workflow
	wfs[conformance.ChildName] = conformance.Child
	wfs[conformance.PingerName] = conformance.Pinger
	return wfs
}

func newGate(t *testing.T, wfs map[string]any, dc ...converter.DataConverter) *replay.Gate {
	t.Helper()
	opts := replay.Options{Workflows: wfs}
	if len(dc) > 0 {
		opts.DataConverter = dc[0]
	}
	g, err := replay.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// saved loads every saved history of the module.
func saved(t *testing.T) []replay.History {
	t.Helper()
	dirs, err := replay.FindDirs(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	var out []replay.History
	for _, d := range dirs {
		hs, err := replay.LoadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hs...)
	}
	return out
}

// loadSaved loads one of this package's saved histories by type and state.
func loadSaved(t *testing.T, typ, state string) replay.History {
	t.Helper()
	hs, err := replay.LoadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.WorkflowType() == typ && h.State == state {
			return h
		}
	}
	t.Fatalf("no saved %s history in state %s", typ, state)
	return replay.History{}
}

// TestGateReplaysSavedHistories is the gate over the saved histories of the module (what
// `make replay-check` runs without an address): the current code replays all of them.
func TestGateReplaysSavedHistories(t *testing.T) {
	g := newGate(t, gateWorkflows())
	for _, h := range saved(t) {
		t.Run(h.Source, func(t *testing.T) {
			if err := g.Replay(h); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// savedStates are the states of every shipped type the saved histories must hold.
var savedStates = map[string][]string{
	workflows.AccessRequestWorkflow: {"pending", "one-of-two", "escalated", "approved", "granted",
		"ended", "revoked", "withdrawn", "denied", "expired"},
	workflows.InvoiceApprovalWorkflow: {"pending", "one-of-two", "approved", "denied", "expired"},
	workflows.AdminTaskWorkflow:       {workflows.AdminTaskListGrants, workflows.AdminTaskSweepExpired, "forbidden"},
	workflows.KeepAliveWorkflow: {"sleeping", "continued-as-new", "sleeping-after-continue-as-new", "ended",
		"parked", "resumed", "canceled"},
	workflows.SweeperWorkflow: {"completed"},
}

// TestSavedHistoriesCoverShippedStates: testdata holds a history of every shipped workflow
// type in every state a run of it can be left in, and no type the pool does not ship.
func TestSavedHistoriesCoverShippedStates(t *testing.T) {
	hs, err := replay.LoadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string][]string{}
	for _, h := range hs {
		if h.WorkflowID == "" || h.RunID == "" {
			t.Errorf("%s: no workflow or run id in the index", h.Source)
		}
		have[h.WorkflowType()] = append(have[h.WorkflowType()], h.State)
	}
	for typ := range replay.Shipped() {
		for _, state := range savedStates[typ] {
			if !slices.Contains(have[typ], state) {
				t.Errorf("no saved %s history in state %s; record it (make record-histories)", typ, state)
			}
		}
	}
	for typ := range have {
		if _, ok := replay.Shipped()[typ]; !ok {
			t.Errorf("saved histories of %s, which the pool does not ship", typ)
		}
	}
}

// timerFirst is AccessRequest with one more timer before everything it does: the
// deliberately non-deterministic change.
func timerFirst(ctx workflow.Context, in workflows.AccessRequestInput) (workflows.AccessRequestResult, error) {
	workflow.NewTimer(ctx, time.Hour)
	return workflows.AccessRequest(ctx, in)
}

// TestGateNamesTypeIDAndEvent: a history the changed code does not replay fails with its
// workflow type, workflow id and the event where the code departs from it: a command event
// of the first workflow task after the identity's (the one the workflow code starts in).
func TestGateNamesTypeIDAndEvent(t *testing.T) {
	wfs := replay.Shipped()
	wfs[workflows.AccessRequestWorkflow] = timerFirst
	h := loadSaved(t, workflows.AccessRequestWorkflow, "granted")
	f := mustFail(t, newGate(t, wfs), h)
	checkTask(t, f, h, firstTask(h))
	// The unchanged code replays it.
	if err := newGate(t, nil).Replay(h); err != nil {
		t.Fatal(err)
	}
}

// twoApprovals is AccessRequest with two approvals required whatever the input says: runs
// that one approval granted take another path once that approval arrives.
func twoApprovals(ctx workflow.Context, in workflows.AccessRequestInput) (workflows.AccessRequestResult, error) {
	cfg := workflows.DefaultAccessConfig()
	if in.Config != nil {
		cfg = *in.Config
	}
	cfg.Routes = map[string]workflows.Route{"engineering": {ApproverRole: "db-approver", Required: 2}}
	in.Config = &cfg
	return workflows.AccessRequest(ctx, in)
}

// TestGateLocatesLaterTask: a change that departs from a history only when carol's approval
// arrives is located in the workflow task that handled the approval, not at the start.
func TestGateLocatesLaterTask(t *testing.T) {
	wfs := replay.Shipped()
	wfs[workflows.AccessRequestWorkflow] = twoApprovals
	h := loadSaved(t, workflows.AccessRequestWorkflow, "granted")
	f := mustFail(t, newGate(t, wfs), h)
	// The approval's task: the one whose commands accept the update.
	var task int64
	var completed int64
	for _, e := range h.Events.GetEvents() {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			completed = e.GetEventId()
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			if task == 0 {
				task = completed
			}
		}
	}
	if task == 0 {
		t.Fatal("no accepted update in the history")
	}
	checkTask(t, f, h, task)
}

// grantsLast is Sweeper with its steps swapped: it schedules another activity where the
// history has its first one.
func grantsLast(ctx workflow.Context, _ workflows.SweeperInput) (workflows.SweeperResult, error) {
	ctx = workflow.WithActivityOptions(identity.AsPool(ctx), workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var s *activities.SessionActivities
	var db *activities.DatabaseActivities
	var res workflows.SweeperResult
	if err := workflow.ExecuteActivity(ctx, s.SweepSessions, activities.SweepSessionsInput{}).Get(ctx, &res.Sessions); err != nil {
		return res, err
	}
	return res, workflow.ExecuteActivity(ctx, db.SweepGrants, activities.SweepGrantsInput{}).Get(ctx, &res.Grants)
}

// TestGateNamesMismatchingEvent: where the code issues another command than the history
// holds, the failure names that event (here the sweeper's first activity).
func TestGateNamesMismatchingEvent(t *testing.T) {
	wfs := replay.Shipped()
	wfs[workflows.SweeperWorkflow] = grantsLast
	h := loadSaved(t, workflows.SweeperWorkflow, "completed")
	f := mustFail(t, newGate(t, wfs), h)
	for _, e := range h.Events.GetEvents() {
		if e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			if f.EventID != e.GetEventId() || f.EventType != "ActivityTaskScheduled" {
				t.Errorf("failure at event %d (%s); want %d (ActivityTaskScheduled)", f.EventID, f.EventType, e.GetEventId())
			}
			break
		}
	}
}

// mustFail replays h with g and returns the *replay.Failure it must fail with.
func mustFail(t *testing.T, g *replay.Gate, h replay.History) *replay.Failure {
	t.Helper()
	err := g.Replay(h)
	var f *replay.Failure
	if !errors.As(err, &f) {
		t.Fatalf("replay with the changed code: %v; want a *replay.Failure", err)
	}
	t.Log(err)
	if !errors.Is(err, replay.ErrNondeterminism) {
		t.Errorf("%v is not ErrNondeterminism", err)
	}
	if f.WorkflowType != h.WorkflowType() || f.WorkflowID != h.WorkflowID || f.RunID != h.RunID {
		t.Errorf("failure names %s %s run %s; want %s %s run %s", f.WorkflowType, f.WorkflowID, f.RunID, h.WorkflowType(), h.WorkflowID, h.RunID)
	}
	for _, s := range []string{h.WorkflowType(), h.WorkflowID, fmt.Sprintf("at event %d (%s", f.EventID, f.EventType)} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not say %q", err, s)
		}
	}
	return f
}

// checkTask checks that f is located in the workflow task completed at event task: at a
// command event of that task.
func checkTask(t *testing.T, f *replay.Failure, h replay.History, task int64) {
	t.Helper()
	if f.TaskEventID != task {
		t.Errorf("failure in the workflow task completed at event %d; want %d", f.TaskEventID, task)
	}
	end := int64(len(h.Events.GetEvents())) + 1
	for _, e := range h.Events.GetEvents() {
		if e.GetEventId() > task && e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED {
			end = e.GetEventId()
			break
		}
	}
	if f.EventID <= task || f.EventID >= end || f.EventType == "" {
		t.Errorf("failure at event %d (%s); want a command event of the task, after %d and before %d", f.EventID, f.EventType, task, end)
	}
}

// firstTask returns the first workflow task of h that issued commands other than the
// identity's local activity: the one the workflow code starts in.
func firstTask(h replay.History) int64 {
	var completed int64
	for _, e := range h.Events.GetEvents() {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			completed = e.GetEventId()
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			return completed
		}
	}
	return 0
}

// TestGateUnknownType: a run of a type the code no longer registers fails the gate (a new
// worker could not run it at all).
func TestGateUnknownType(t *testing.T) {
	wfs := replay.Shipped()
	delete(wfs, workflows.KeepAliveWorkflow)
	h := loadSaved(t, workflows.KeepAliveWorkflow, "parked")
	err := newGate(t, wfs).Replay(h)
	var f *replay.Failure
	if !errors.Is(err, replay.ErrUnknownType) || !errors.As(err, &f) || f.WorkflowType != workflows.KeepAliveWorkflow {
		t.Fatalf("replay of a type not registered: %v", err)
	}
}

// TestGateRunNotTakenYet: a run no worker has taken yet (no workflow task completed) has
// nothing to replay, unless no code of its type is registered at all.
func TestGateRunNotTakenYet(t *testing.T) {
	h := loadSaved(t, workflows.KeepAliveWorkflow, "parked")
	h.Events = &historypb.History{Events: h.Events.GetEvents()[:2]} // started, task scheduled
	if err := newGate(t, nil).Replay(h); err != nil {
		t.Errorf("a run not taken yet: %v", err)
	}
	wfs := replay.Shipped()
	delete(wfs, workflows.KeepAliveWorkflow)
	if err := newGate(t, wfs).Replay(h); !errors.Is(err, replay.ErrUnknownType) {
		t.Errorf("a run not taken yet, of a type not registered: %v", err)
	}
	h.Events = &historypb.History{}
	if err := newGate(t, nil).Replay(h); err == nil || errors.As(err, new(*replay.Failure)) {
		t.Errorf("no events: %v; want an error that is no *replay.Failure", err)
	}
}

// TestLoadDirIndexes reads the three index formats and refuses what would leave a saved
// history out of the gate.
func TestLoadDirIndexes(t *testing.T) {
	hist, err := os.ReadFile(filepath.Join("..", "..", "workflows", "testdata", "history-access-named.json"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(t *testing.T, dir, name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("histories.json", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "AccessRequest/pending.json", string(hist))
		write(t, dir, replay.IndexFile, `[{"file":"AccessRequest/pending.json","workflow_type":"AccessRequest","state":"pending","workflow_id":"w","run_id":"r"}]`)
		hs, err := replay.LoadDir(dir)
		if err != nil || len(hs) != 1 || hs[0].WorkflowID != "w" || hs[0].RunID != "r" || hs[0].State != "pending" {
			t.Fatalf("%+v, %v", hs, err)
		}
		write(t, dir, "v1/AccessRequest/pending.json", string(hist))
		write(t, dir, "v1/"+replay.IndexFile, `[{"file":"AccessRequest/pending.json","workflow_id":"w1"}]`)
		if hs, err := replay.LoadDir(dir); err != nil || len(hs) != 1 {
			t.Fatalf("with a folder of its own inside: %+v, %v", hs, err)
		}
		if dirs, err := replay.FindDirs(dir); err != nil || len(dirs) != 0 {
			t.Errorf("FindDirs outside a testdata folder: %v, %v", dirs, err)
		}
		write(t, dir, "AccessRequest/other.json", string(hist))
		if _, err := replay.LoadDir(dir); err == nil || !strings.Contains(err.Error(), "other.json") {
			t.Errorf("a history not in the index: %v", err)
		}
	})
	t.Run("wrong type", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "a.json", string(hist))
		write(t, dir, replay.IndexFile, `[{"file":"a.json","workflow_type":"KeepAlive","workflow_id":"w"}]`)
		if _, err := replay.LoadDir(dir); err == nil {
			t.Error("an index naming another type was accepted")
		}
	})
	t.Run("decisions.json", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "h.json", string(hist))
		write(t, dir, "decisions.json", `[{"file":"h.json","workflow_id":"w","run_id":"r"}]`)
		if hs, err := replay.LoadDir(dir); err != nil || len(hs) != 1 || hs[0].WorkflowID != "w" {
			t.Fatalf("%+v, %v", hs, err)
		}
	})
	t.Run("workflow-ids.json", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "history-a.json", string(hist))
		write(t, dir, "history-b.json", string(hist))
		write(t, dir, "workflow-ids.json", `{"history-a.json":"w"}`)
		hs, err := replay.LoadDir(dir)
		if err != nil || len(hs) != 2 || hs[0].WorkflowID != "w" || hs[1].WorkflowID != "" {
			t.Fatalf("%+v, %v", hs, err)
		}
	})
	t.Run("none", func(t *testing.T) {
		if _, err := replay.LoadDir(t.TempDir()); !errors.Is(err, replay.ErrNoIndex) {
			t.Fatalf("%v", err)
		}
	})
}

// TestFindDirs finds every folder of saved histories in the module.
func TestFindDirs(t *testing.T) {
	dirs, err := replay.FindDirs(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range dirs {
		dirs[i] = filepath.ToSlash(strings.TrimPrefix(d, moduleRoot+string(filepath.Separator)))
	}
	for _, want := range []string{"internal/replay/testdata", "workflows/testdata",
		"internal/conformance/testdata/v1", "internal/conformance/testdata/v2"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("FindDirs = %v; lacks %s", dirs, want)
		}
	}

	// Folders in a testdata folder with an index are found, nested ones too; other modules
	// and folders without an index are not.
	root := t.TempDir()
	for _, f := range []string{"a/testdata/histories.json", "a/testdata/v1/histories.json", "a/testdata/none/x.json",
		"b/histories.json", "mod/go.mod", "mod/testdata/histories.json", ".git/testdata/histories.json"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), []byte("[]"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := replay.FindDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "a/testdata"), filepath.Join(root, "a/testdata/v1")}
	if !slices.Equal(got, want) {
		t.Errorf("FindDirs = %v; want %v", got, want)
	}
}
