package attacks_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
)

// TestAttackReset: a real `temporal workflow reset` makes a new run from a copy of
// the old one's history and, by default, re-applies later updates with their original headers.
// Reset to just before carol's approval: the re-applied approval names the old run and its
// envelope is spent, so the new run is not approved. Reset to the first workflow task: the
// new run would verify bob's start envelope again, which is spent, so it fails.
func TestAttackReset(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t, 3*time.Minute)
	bob, _ := apptest.Client(t, r.st, "bob")
	carol, _ := apptest.Client(t, r.st, "carol")

	for _, to := range []string{"before the approval", "the first workflow task"} {
		t.Run(to, func(t *testing.T) {
			id := "attack-reset-" + strings.ReplaceAll(to, " ", "-") + "-" + r.queue
			run := r.startApprovable(ctx, t, bob, id, "read for 1h")
			if who, err := approve(ctx, carol, id, run.GetRunID()); err != nil || who != "carol" {
				t.Fatalf("carol's approval: %q, %v", who, err)
			}
			t.Cleanup(func() { _ = bob.TerminateWorkflow(context.Background(), id, "", "test over") })
			var first, beforeApproval int64
			for _, e := range testharness.History(ctx, t, bob, id, run.GetRunID()) {
				if e.GetWorkflowTaskCompletedEventAttributes() != nil {
					if first == 0 {
						first = e.GetEventId()
					}
					beforeApproval = e.GetEventId()
				}
				if updateAccepted(e) {
					break
				}
			}
			resetTo := beforeApproval
			if to == "the first workflow task" {
				resetTo = first
			}
			newRun := reset(ctx, t, r, id, run.GetRunID(), resetTo)

			if to == "the first workflow task" {
				wantRefused(t, "the reset run", bob.GetWorkflow(ctx, id, newRun).Get(ctx, nil), "honoured once")
				return
			}
			// The re-applied update is refused (a failed update in history); no approval.
			for refused := false; !refused; sleep(ctx, t) {
				for _, e := range testharness.History(ctx, t, bob, id, newRun) {
					if a := e.GetWorkflowExecutionUpdateCompletedEventAttributes(); a != nil {
						refused = true
						if f := a.GetOutcome().GetFailure(); f.GetApplicationFailureInfo().GetType() != identity.TypeUnauthenticated {
							t.Fatalf("the re-applied approval was not refused: %v", a.GetOutcome())
						}
					}
				}
			}
			if got := waitQuery(ctx, t, bob, id, newRun); len(got) != 0 {
				t.Fatalf("the reset run is approved by %v", got)
			}
		})
	}
}

// reset runs `temporal workflow reset` to eventID and returns the new run's id.
func reset(ctx context.Context, t *testing.T, r *rig, id, runID string, eventID int64) string {
	t.Helper()
	// Resetting is the operator's (Temporal admin) to do.
	out, err := r.st.TemporalCommand(ctx, t, "workflow", "reset",
		"--workflow-id", id, "--run-id", runID, "--event-id", strconv.FormatInt(eventID, 10),
		"--reason", "attack test").CombinedOutput()
	if err != nil {
		t.Fatalf("temporal workflow reset: %v\n%s", err, out)
	}
	d, err := r.st.PlainClient(t, nil).DescribeWorkflow(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	newRun := d.RawResponse.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	if newRun == runID {
		t.Fatal("the reset made no new run")
	}
	return newRun
}
