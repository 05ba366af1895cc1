package attacks_test

import (
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/attacks"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/workflows"
)

// TestAttackReplayedStartEnvelope: bob's start envelope, copied from history by
// someone with a plain SDK client, starts nothing: not a new run under the same workflow id
// with the same input (the envelope is spent), not with other input or another workflow type
// (the envelope commits to them).
func TestAttackReplayedStartEnvelope(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t, 2*time.Minute)
	bob, _ := apptest.Client(t, r.st, "bob")
	id := "attack-start-" + r.queue
	run := r.startApprovable(ctx, t, bob, id, "read for 1h")
	copied := copyHeader(ctx, t, bob, id, run.GetRunID(), started, interceptors.EnvelopeHeader)
	stop(ctx, t, bob, run)

	attacker := r.st.PlainClient(t, copied)
	for _, tc := range []struct {
		name, workflowType string
		args               any
		says               string
	}{
		{"same input", attacks.ApprovableName, attacks.ApprovableInput{What: "read for 1h"}, "honoured once"},
		{"other input", attacks.ApprovableName, attacks.ApprovableInput{What: "write for 12h"}, "other arguments"},
		{"other type", workflows.AccessRequestWorkflow, workflows.AccessRequestInput{Resource: "demo",
			Role: workflows.AccessWrite, Duration: time.Hour, Reason: "replayed"}, "other arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replay, err := attacker.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue,
				WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE}, tc.workflowType, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			wantRefused(t, "replayed start", replay.Get(ctx, nil), tc.says)
		})
	}
}

// TestAttackReplayedUpdateEnvelope: carol's approval, copied from history, approves
// nothing else: not again on the same run, not on a new run under the same workflow id.
func TestAttackReplayedUpdateEnvelope(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t, 2*time.Minute)
	bob, _ := apptest.Client(t, r.st, "bob")
	carol, _ := apptest.Client(t, r.st, "carol")
	id := "attack-update-" + r.queue
	run := r.startApprovable(ctx, t, bob, id, "read for 1h")
	if who, err := approve(ctx, carol, id, run.GetRunID()); err != nil || who != "carol" {
		t.Fatalf("carol's approval: %q, %v", who, err)
	}
	copied := copyHeader(ctx, t, bob, id, run.GetRunID(), updateAccepted, interceptors.EnvelopeHeader)
	attacker := r.st.PlainClient(t, copied)

	_, err := approve(ctx, attacker, id, run.GetRunID())
	wantRefused(t, "the same run", err, "used before")
	if got := stop(ctx, t, bob, run); len(got) != 1 || got[0] != "carol" {
		t.Fatalf("approvers %v, want carol once", got)
	}

	next := r.startApprovable(ctx, t, bob, id, "write for 12h")
	_, err = approve(ctx, attacker, id, next.GetRunID())
	wantRefused(t, "a new run", err, "another run")
	if got := stop(ctx, t, bob, next); len(got) != 0 {
		t.Fatalf("the new run was approved by %v", got)
	}
}
