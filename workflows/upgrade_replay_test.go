package workflows_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/workflows"
)

// TestReplayEarlierReleaseHistories replays, with today's workflow code and interceptors,
// the histories a worker of an earlier release recorded (testdata/release-<commit>/, written
// by internal/upgrade's TestUpgradeFinishesRunsOfAnEarlierRelease with
// OIDCFLOW_UPDATE_TESTDATA=1 at the moment that worker stopped): an AccessRequest left
// pending; one granted whose hold ticked every keep_alive_every (the earlier release
// refreshed the requester's session at each tick); and a KeepAlive refreshing every 5
// seconds, which today's bounds refuse for a new start, in its first run (continued as new)
// and in the run that was open. Each must replay command for command: a run of that release
// resumes on a worker of this one by replaying exactly this.
func TestReplayEarlierReleaseHistories(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "release-*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no testdata/release-* folder: record one with OIDCFLOW_UPDATE_TESTDATA=1 go test -run TestUpgrade ./internal/upgrade")
	}
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, "histories.json"))
		if err != nil {
			t.Fatal(err)
		}
		var saved []struct {
			File       string `json:"file"`
			Workflow   string `json:"workflow_type"`
			WorkflowID string `json:"workflow_id"`
			RunID      string `json:"run_id"`
		}
		if err := json.Unmarshal(raw, &saved); err != nil {
			t.Fatal(err)
		}
		for _, h := range saved {
			t.Run(filepath.Base(dir)+"/"+h.File, func(t *testing.T) {
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
				r.RegisterWorkflowWithOptions(workflows.KeepAlive, workflow.RegisterOptions{Name: workflows.KeepAliveWorkflow})
				f, err := os.Open(filepath.Join(dir, h.File))
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
					t.Fatalf("replay %s (%s): %v", h.File, h.Workflow, err)
				}
			})
		}
	}
}
