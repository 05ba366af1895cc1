package attacks_test

import (
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/internal/app/apptest"
	"github.com/oidcflow/oidcflow/internal/testharness"
)

// TestAttackReset (attack 8): a real `temporal workflow reset` to before carol's approval
// re-applies her update, with its original header, to the new run. The envelope was sealed
// for the old run and is spent, so the new run is not approved.
func TestAttackReset(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t, 2*time.Minute)
	bob, _ := apptest.Client(t, r.st, "bob")
	carol, _ := apptest.Client(t, r.st, "carol")
	id := "attack-reset-" + r.queue
	run := r.startApprovable(ctx, t, bob, id, "read for 1h")
	if who, err := approve(ctx, carol, id, run.GetRunID()); err != nil || who != "carol" {
		t.Fatalf("carol's approval: %q, %v", who, err)
	}
	// The first completed workflow task verified bob; reset to just after it.
	var resetTo int64
	for _, e := range testharness.History(ctx, t, bob, id, run.GetRunID()) {
		if e.GetWorkflowTaskCompletedEventAttributes() != nil {
			resetTo = e.GetEventId()
			break
		}
	}
	out, err := exec.CommandContext(ctx, r.st.TemporalCLI(), "workflow", "reset",
		"--address", r.st.Env("TEMPORAL_ADDRESS"), "--namespace", r.st.Env("TEMPORAL_NAMESPACE"),
		"--workflow-id", id, "--run-id", run.GetRunID(), "--event-id", strconv.FormatInt(resetTo, 10),
		"--reason", "attack test").CombinedOutput()
	if err != nil {
		t.Fatalf("temporal workflow reset: %v\n%s", err, out)
	}
	d, err := bob.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	newRun := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	if newRun == run.GetRunID() {
		t.Fatal("the reset made no new run")
	}
	// The re-applied update is refused (recorded as a failed update); the run stays unapproved.
	reapplied := false
	for !reapplied {
		for _, e := range testharness.History(ctx, t, bob, id, newRun) {
			if a := e.GetWorkflowExecutionUpdateCompletedEventAttributes(); a != nil {
				reapplied = true
				if f := a.GetOutcome().GetFailure(); f == nil || f.GetApplicationFailureInfo().GetType() != "oidcflow.Unauthenticated" {
					t.Fatalf("the re-applied approval was not refused: %v", a.GetOutcome())
				}
			}
		}
		sleep(ctx, t)
	}
	if got := waitQuery(ctx, t, bob, id, newRun); len(got) != 0 {
		t.Fatalf("the reset run is approved by %v", got)
	}
	_ = bob.TerminateWorkflow(context.Background(), id, "", "test over")
}
