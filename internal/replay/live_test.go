package replay_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/replay"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/workflows"
)

// TestStackReplayOpenRuns is the gate over a live namespace, as before a deploy: a pool
// (the worker binary) runs a pending AccessRequest and a sleeping KeepAlive on a task queue
// of the test's own; OpenRuns lists both and the current code replays them, while the code
// with an extra timer fails on the AccessRequest, named by its workflow id. replay-check
// with -address does the same from the command line.
func TestStackReplayOpenRuns(t *testing.T) {
	st := testharness.Load(t)
	queue := taskQueue("replay-live")
	startWorker(t, st, queue, nil, "OIDCFLOW_SWEEP_INTERVAL=0")
	c := plainClient(t, st)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	bob := identityClient(t, st, st.Login(t, "bob"), true)
	accessID, keepID := "replay-live-access-"+queue, "replay-live-keepalive-"+queue
	access, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: accessID, TaskQueue: queue},
		workflows.AccessRequestWorkflow, accessInput("replay gate: live", time.Hour, nil))
	if err != nil {
		t.Fatal(err)
	}
	keep, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: keepID, TaskQueue: queue},
		workflows.KeepAliveWorkflow, workflows.KeepAliveInput{Until: time.Now().Add(time.Hour), Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, id := range []string{accessID, keepID} {
			_ = c.CancelWorkflow(ctx, id, "")
		}
		_ = access.Get(ctx, nil)
		_ = keep.Get(ctx, nil)
	})
	waitState[accessStatus](t, ctx, bob, accessID, workflows.StatePending)
	waitEvent(t, ctx, c, keepID, keep.GetRunID(), "timer", isTimer)
	settled(t, ctx, c, accessID, access.GetRunID())
	settled(t, ctx, c, keepID, keep.GetRunID())

	ns := st.Env("TEMPORAL_NAMESPACE")
	filter := `TaskQueue="` + queue + `"`
	var runs []replay.History
	for ctx.Err() == nil { // visibility catches up with the starts
		runs = runs[:0]
		for h, err := range replay.OpenRuns(ctx, c, ns, filter) {
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, h)
		}
		if len(runs) == 2 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(runs) != 2 {
		t.Fatalf("OpenRuns listed %d runs of %s; want 2", len(runs), queue)
	}
	current := newGate(t, nil, st.DataConverter(t))
	wfs := replay.Shipped()
	wfs[workflows.AccessRequestWorkflow] = timerFirst
	changed := newGate(t, wfs, st.DataConverter(t))
	for _, h := range runs {
		if h.Source != "namespace "+ns || h.RunID == "" {
			t.Errorf("open run %s: source %q, run %q", h.WorkflowID, h.Source, h.RunID)
		}
		if err := current.Replay(h); err != nil {
			t.Errorf("current code: %v", err)
		}
		err := changed.Replay(h)
		var f *replay.Failure
		switch h.WorkflowID {
		case accessID:
			if !errors.As(err, &f) || f.WorkflowID != accessID || f.WorkflowType != workflows.AccessRequestWorkflow || f.EventID == 0 {
				t.Errorf("changed code on the open AccessRequest: %v", err)
			}
		case keepID:
			if err != nil {
				t.Errorf("changed code on the open KeepAlive: %v", err)
			}
		default:
			t.Errorf("OpenRuns listed %s, not a run of this test", h.WorkflowID)
		}
	}

	// The command: saved histories off, the live namespace on.
	args := []string{"run", "./internal/replay/cmd/replay-check", "-saved=false", "-v",
		"-address", st.Env("TEMPORAL_ADDRESS"), "-namespace", ns, "-task-queue", queue}
	if st.Authorizes() { // as the operator, who may read runs and decode their payloads
		tok, err := st.OperatorTokenSource().Token()
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(t.TempDir(), "api-key")
		if err := os.WriteFile(key, []byte(tok.AccessToken), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-api-key-file", key,
			"-codec-endpoint", st.Env("OIDCFLOW_CODEC_ENDPOINT"), "-codec-ca-file", st.Env("OIDCFLOW_CODEC_CA_FILE"))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("replay-check -address: %v\n%s", err, out.String())
	}
	for _, want := range []string{accessID, keepID, "0 saved histories and 2 running runs replayed, 0 failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("replay-check output lacks %q:\n%s", want, out.String())
		}
	}
}
