package conformance_test

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
)

func mustOpen(t *testing.T, path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// currentFormat names the folder of testdata that the conformance test writes
// (OIDCFLOW_UPDATE_TESTDATA=1): histories recorded with envelope format 2. testdata/v1 holds
// histories recorded by the release before, with format 1 envelopes; both must replay.
const currentFormat = "v2"

// TestReplay replays the histories the conformance test saved, of every envelope format,
// with the interceptors in place and nothing reachable: the recorded identities suffice.
func TestReplay(t *testing.T) {
	for _, format := range []string{"v1", currentFormat} {
		t.Run(format, func(t *testing.T) { replayFolder(t, filepath.Join("testdata", format)) })
	}
}

func replayFolder(t *testing.T, dir string) {
	files, err := filepath.Glob(filepath.Join(dir, "history-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no saved histories in testdata (%v); run the conformance test with OIDCFLOW_UPDATE_TESTDATA=1", err)
	}
	wi, err := interceptors.NewWorkerInterceptor(interceptors.WorkerOptions{
		Authenticator:      testharness.Offline(t),
		PropagationSecrets: [][]byte{[]byte("replay-needs-no-real-secret-0123456789")},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "workflow-ids.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ids map[string]string
	if err := json.Unmarshal(raw, &ids); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				Interceptors: []interceptor.WorkerInterceptor{wi},
			})
			if err != nil {
				t.Fatal(err)
			}
			registerWorkflows(r)
			h, err := client.HistoryFromJSON(mustOpen(t, f), client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// The original workflow id: child workflow ids derive from it.
			opts := worker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: ids[filepath.Base(f)]}}
			if err := r.ReplayWorkflowHistoryWithOptions(nil, h, opts); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
