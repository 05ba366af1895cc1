package attacks_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/pgaccess"
	"github.com/oidcflow/oidcflow/workflows"
)

// accessStatus queries a run's status until its identity is verified.
func accessStatus(ctx context.Context, t *testing.T, c client.Client, id, runID string) workflows.AccessStatus {
	t.Helper()
	for {
		v, err := c.QueryWorkflow(ctx, id, runID, workflows.QueryStatus)
		if err == nil {
			var st workflows.AccessStatus
			if err := v.Get(&st); err != nil {
				t.Fatal(err)
			}
			return st
		}
		sleep(ctx, t)
	}
}

func send(ctx context.Context, c client.Client, opts client.UpdateWorkflowOptions) error {
	opts.WaitForStage = client.WorkflowUpdateStageCompleted
	h, err := c.UpdateWorkflow(ctx, opts)
	if err != nil {
		return err
	}
	var st workflows.AccessStatus
	return h.Get(ctx, &st)
}

// TestAttackReplayedApprovalOntoNewAccessRequest: carol
// approves bob's read access for an hour; the run ends; bob starts a new run under the same
// workflow id for write access for 12 hours, and replays carol's sealed approve header from
// history, with her original arguments or with arguments naming the new run. Both are
// refused; the new run stays pending and no write role exists.
func TestAttackReplayedApprovalOntoNewAccessRequest(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t, 3*time.Minute)
	bob, _ := apptest.Client(t, r.st, "bob")
	carol, _ := apptest.Client(t, r.st, "carol")
	id := "attack-approval-" + r.queue
	read := workflows.AccessRequestInput{Resource: "demo", Role: workflows.AccessRead, Duration: time.Hour, Reason: "incident 42"}
	first, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue},
		workflows.AccessRequestWorkflow, read)
	if err != nil {
		t.Fatal(err)
	}
	st := accessStatus(ctx, t, carol, id, first.GetRunID())
	approval := workflows.ApproveAccess(id, st, "ok")
	if err := send(ctx, carol, approval); err != nil {
		t.Fatalf("carol's approval: %v", err)
	}
	copied := copyHeader(ctx, t, bob, id, first.GetRunID(), updateAccepted, interceptors.EnvelopeHeader)
	for accessStatus(ctx, t, bob, id, first.GetRunID()).State != workflows.StateGranted {
		sleep(ctx, t)
	}
	if err := send(ctx, bob, client.UpdateWorkflowOptions{WorkflowID: id, RunID: first.GetRunID(),
		UpdateName: workflows.UpdateRevoke, Args: []any{workflows.RevokeInput{Reason: "done"}}}); err != nil {
		t.Fatalf("bob's revoke: %v", err)
	}
	if err := first.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}

	write := workflows.AccessRequestInput{Resource: "demo", Role: workflows.AccessWrite, Duration: 12 * time.Hour, Reason: "incident 42"}
	second, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE}, workflows.AccessRequestWorkflow, write)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bob.TerminateWorkflow(context.Background(), id, second.GetRunID(), "test over") })
	now := accessStatus(ctx, t, bob, id, second.GetRunID())
	attacker := r.st.PlainClient(t, copied)
	replayed := approval
	replayed.RunID = "" // to whatever run is current
	if err := send(ctx, attacker, replayed); err == nil {
		t.Fatal("carol's approval, replayed as it was, approved the new run")
	} else {
		wantRefused(t, "as it was", err, "another run")
	}
	if err := send(ctx, attacker, workflows.ApproveAccess(id, now, "ok")); err == nil {
		t.Fatal("carol's approval, replayed with arguments naming the new run, approved it")
	} else {
		wantRefused(t, "renamed", err, "other arguments")
	}
	if got := accessStatus(ctx, t, bob, id, second.GetRunID()); got.State != workflows.StatePending || len(got.Approvers) != 0 {
		t.Fatalf("the new run is %s, approved by %v", got.State, got.Approvers)
	}
	if role := pgaccess.RoleName(id, "bob"); roleExists(ctx, t, r, role) {
		t.Fatalf("role %s exists", role)
	}
}

// roleExists looks the role up in the stack's PostgreSQL.
func roleExists(ctx context.Context, t *testing.T, r *rig, role string) bool {
	t.Helper()
	conn, err := pgx.Connect(ctx, r.st.Env("OIDCFLOW_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}
