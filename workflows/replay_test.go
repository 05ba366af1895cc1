package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/workflows"
)

// Saved AccessRequest histories (testdata/decisions.json names them, with their workflow and
// run ids): a run whose approval was handled before approvals named their request
// ("unnamed", recorded by a worker of that time), and one whose approvals name it ("named",
// recorded by TestStackSaveDecisionHistory with OIDCFLOW_UPDATE_TESTDATA=1).

// savedHistory is one entry of testdata/decisions.json.
type savedHistory struct {
	File       string `json:"file"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

// TestReplayDecisionHistories replays the saved histories with today's workflow code and
// interceptors, and nothing reachable: an approval handled before approvals named their
// request replays as it ran (the named-decision check is behind workflow.GetVersion), so a
// run granted by an earlier worker still replays and gets revoked; one handled since replays
// with the check.
func TestReplayDecisionHistories(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "decisions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var saved []savedHistory
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	if len(saved) < 2 {
		t.Fatalf("testdata/decisions.json names %d histories, want the unnamed and the named one", len(saved))
	}
	for _, h := range saved {
		t.Run(h.File, func(t *testing.T) {
			wi, err := interceptors.NewWorkerInterceptor(interceptors.WorkerOptions{
				Authenticator:      testharness.Offline(t),
				PropagationSecrets: [][]byte{[]byte("replay-needs-no-real-secret-0123456789")},
			})
			if err != nil {
				t.Fatal(err)
			}
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				Interceptors: []interceptor.WorkerInterceptor{wi},
			})
			if err != nil {
				t.Fatal(err)
			}
			r.RegisterWorkflowWithOptions(workflows.AccessRequest, workflow.RegisterOptions{Name: workflows.AccessRequestWorkflow})
			f, err := os.Open(filepath.Join("testdata", h.File))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			hist, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			opts := worker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: h.WorkflowID, RunID: h.RunID}}
			if err := r.ReplayWorkflowHistoryWithOptions(nil, hist, opts); err != nil {
				t.Fatalf("replay %s: %v", h.File, err)
			}
		})
	}
}

// TestStackSaveDecisionHistory records testdata/history-access-named.json (with
// OIDCFLOW_UPDATE_TESTDATA=1, on the dev stack): bob asks with two approvals required; carol's
// approval naming another request is refused; hers naming the request is accepted (one of
// two, still pending). The history is saved then; bob withdraws the request afterwards.
func TestStackSaveDecisionHistory(t *testing.T) {
	if os.Getenv("OIDCFLOW_UPDATE_TESTDATA") != "1" {
		t.Skip("records testdata with OIDCFLOW_UPDATE_TESTDATA=1")
	}
	st := testharness.Load(t)
	stackDB(t, st)
	queue := apptest.TaskQueue("stack-history")
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue)})
	bob, _ := apptest.Client(t, st, "bob")
	carol, _ := apptest.Client(t, st, "carol")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	id := "stack-history-" + queue
	run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, historyInput())
	if err != nil {
		t.Fatal(err)
	}
	seen := status(t, ctx, carol, id)
	wrong := workflows.ApproveAccess(id, seen, "wrong")
	wrong.Args = []any{workflows.ApproveInput{RunID: seen.RunID, RequestDigest: "0123"}}
	var s workflows.AccessStatus
	var app *temporal.ApplicationError
	if err := send(ctx, carol, wrong, &s); !errors.As(err, &app) || app.Type() != workflows.TypeApprovalMismatch {
		t.Fatalf("carol's approval naming another request: %v", err)
	}
	if err := approve(t, ctx, carol, id, "ok", &s); err != nil {
		t.Fatalf("carol's approval: %v", err)
	}
	saveHistory(t, ctx, bob, id, run.GetRunID(), "history-access-named.json")
	if err := update(ctx, bob, id, workflows.UpdateRevoke, workflows.RevokeInput{Reason: "done"}, &s); err != nil {
		t.Errorf("bob withdraws: %v", err)
	}
}

// historyInput asks for read access with two approvals required, so that a run with one
// approval is still pending.
func historyInput() workflows.AccessRequestInput {
	cfg := workflows.DefaultAccessConfig()
	cfg.Routes = map[string]workflows.Route{"engineering": {ApproverRole: "db-approver", Required: 2}}
	return workflows.AccessRequestInput{Resource: "demo", Role: workflows.AccessRead, Duration: time.Minute,
		Reason: "replay history", Config: &cfg}
}

// saveHistory writes the run's history so far to testdata/file and names it in
// testdata/decisions.json, after the last workflow task has completed.
func saveHistory(t *testing.T, ctx context.Context, c client.Client, id, runID, file string) {
	t.Helper()
	h := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, e)
	}
	if last := h.Events[len(h.Events)-1].GetEventType(); last != enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED &&
		last != enums.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED {
		t.Fatalf("history of %s ends with %s", id, last)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", file), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var saved []savedHistory
	if raw, err := os.ReadFile(filepath.Join("testdata", "decisions.json")); err == nil {
		if err := json.Unmarshal(raw, &saved); err != nil {
			t.Fatal(err)
		}
	}
	out := []savedHistory{{File: file, WorkflowID: id, RunID: runID}}
	for _, s := range saved {
		if s.File != file {
			out = append(out, s)
		}
	}
	b, _ = json.MarshalIndent(out, "", "  ")
	if err := os.WriteFile(filepath.Join("testdata", "decisions.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
