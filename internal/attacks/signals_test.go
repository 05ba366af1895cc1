package attacks_test

import (
	"context"
	"slices"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/attacks"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
)

// startListener starts a Listener that takes count pings, as c.
func (r *rig) startListener(ctx context.Context, t *testing.T, c client.Client, id string, count int) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE}, attacks.ListenerName, count)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func (r *rig) ping(ctx context.Context, t *testing.T, c client.Client, target string, values ...string) {
	t.Helper()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: r.queue}, attacks.PingerName,
		attacks.PingerInput{Target: target, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func heard(ctx context.Context, t *testing.T, run client.WorkflowRun) []string {
	t.Helper()
	var got []string
	if err := run.Get(ctx, &got); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestAttackReplayedSignalReference: the reference alice's workflow sent with a
// signal, copied from history, does not speak for alice again: not on the same run, not with
// another payload, not on a later run of the target workflow id.
func TestAttackReplayedSignalReference(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t, 2*time.Minute)
	bob, _ := apptest.Client(t, r.st, "bob")
	alice, _ := apptest.Client(t, r.st, "alice")
	id := "attack-signal-" + r.queue

	first := r.startListener(ctx, t, bob, id, 3)
	r.ping(ctx, t, alice, id, "a1")
	var copied = map[string]*commonpb.Payload(nil)
	for copied == nil {
		for _, e := range testharness.History(ctx, t, bob, id, first.GetRunID()) {
			if h := testharness.EventHeader(e); signaled(e) && h[interceptors.SessionHeader] != nil {
				copied = map[string]*commonpb.Payload{interceptors.SessionHeader: h[interceptors.SessionHeader]}
			}
		}
		sleep(ctx, t)
	}
	attacker := r.st.PlainClient(t, copied)
	for _, v := range []string{"a1", "evil"} {
		if err := attacker.SignalWorkflow(ctx, id, "", attacks.PingSignal, v); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := heard(ctx, t, first), []string{"a1:alice", "a1:-", "evil:-"}; !slices.Equal(got, want) {
		t.Fatalf("the first run heard %v, want %v", got, want)
	}

	second := r.startListener(ctx, t, bob, id, 1)
	if err := attacker.SignalWorkflow(ctx, id, second.GetRunID(), attacks.PingSignal, "a1"); err != nil {
		t.Fatal(err)
	}
	if got, want := heard(ctx, t, second), []string{"a1:-"}; !slices.Equal(got, want) {
		t.Fatalf("a later run heard %v, want %v", got, want)
	}
}

// TestSignalSenderNotShiftedByUndecodableSignal: a signal whose payload the
// workflow cannot decode is dropped by the SDK; it must not hand its sender (nobody) to the
// next signal, nor shift every later attribution by one.
func TestSignalSenderNotShiftedByUndecodableSignal(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t, 2*time.Minute)
	bob, _ := apptest.Client(t, r.st, "bob")
	alice, _ := apptest.Client(t, r.st, "alice")
	dave, _ := apptest.Client(t, r.st, "dave")
	id := "attack-shift-" + r.queue
	run := r.startListener(ctx, t, bob, id, 2)

	attacker := r.st.PlainClient(t, nil)
	if err := attacker.SignalWorkflow(ctx, id, "", attacks.PingSignal, map[string]int{"not": 1}); err != nil {
		t.Fatal(err)
	}
	r.ping(ctx, t, alice, id, "x")
	if err := dave.SignalWorkflow(ctx, id, run.GetRunID(), attacks.PingSignal, "y"); err != nil {
		t.Fatal(err)
	}
	if got, want := heard(ctx, t, run), []string{"x:alice", "y:dave"}; !slices.Equal(got, want) {
		t.Fatalf("heard %v, want %v", got, want)
	}
}
