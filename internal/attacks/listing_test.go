package attacks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/workflows"
)

// count returns how many runs the visibility query lists.
func count(ctx context.Context, t *testing.T, c client.Client, query string) int {
	t.Helper()
	res, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
	if err != nil {
		t.Fatalf("list %s: %v", query, err)
	}
	return len(res.GetExecutions())
}

// TestAttackForgedListing: search attributes and memo set by a client at start are
// not trusted. A run started with Requester="alice" by someone who is not alice lists under
// nobody when its identity fails, and under its verified starter when it succeeds.
func TestAttackForgedListing(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t, 2*time.Minute)
	forged := temporal.NewSearchAttributes(workflows.RequesterKey.ValueSet("alice"),
		workflows.ApprovalStateKey.ValueSet(string(workflows.StateGranted)))
	memo := map[string]any{workflows.MemoRequester: map[string]string{"sub": "alice"}, "oidcflow.started_by": map[string]string{"sub": "alice"}}
	input := workflows.AccessRequestInput{Resource: "demo", Role: workflows.AccessRead, Duration: time.Hour, Reason: "listing"}

	// No identity at all: a plain SDK client.
	plain := r.st.PlainClient(t, nil)
	anonID := "attack-listing-anon-" + r.queue
	run, err := plain.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: anonID, TaskQueue: r.queue,
		TypedSearchAttributes: forged, Memo: memo}, workflows.AccessRequestWorkflow, input)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "a start without identity", run.Get(ctx, nil))

	// bob's own start, with alice's name on it.
	bob, _ := apptest.Client(t, r.st, "bob")
	bobID := "attack-listing-bob-" + r.queue
	if _, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: bobID, TaskQueue: r.queue,
		TypedSearchAttributes: forged, Memo: memo}, workflows.AccessRequestWorkflow, input); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bob.TerminateWorkflow(context.Background(), bobID, "", "test over") })
	for count(ctx, t, bob, fmt.Sprintf(`WorkflowId=%q AND Requester="bob" AND ApprovalState="pending"`, bobID)) == 0 {
		sleep(ctx, t)
	}

	for id, want := range map[string]string{anonID: "", bobID: "bob"} {
		if n := count(ctx, t, bob, fmt.Sprintf(`WorkflowId=%q AND Requester="alice"`, id)); n != 0 {
			t.Errorf("%s lists under alice", id)
		}
		d, err := bob.DescribeWorkflow(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{workflows.MemoRequester, "oidcflow.started_by"} {
			var who struct {
				Sub string `json:"sub"`
			}
			if p := d.RawResponse.GetWorkflowExecutionInfo().GetMemo().GetFields()[key]; p != nil {
				if err := r.st.DataConverter(t).FromPayload(p, &who); err != nil {
					t.Fatal(err)
				}
			}
			if who.Sub != want {
				t.Errorf("%s: memo %s names %q, want %q", id, key, who.Sub, want)
			}
		}
	}
	if n := count(ctx, t, bob, fmt.Sprintf(`WorkflowId=%q AND ApprovalState="granted"`, anonID)); n != 0 {
		t.Errorf("the refused run lists as granted")
	}
}
