package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/workflows"
)

// TestEnsureSweeperScheduleIdempotent: the workers of a pool start at once and all ensure
// the schedule: one creates it, the others find it as they want it; a worker with another
// interval updates it; the schedule runs Sweeper on the pool's queue without overlap.
func TestEnsureSweeperScheduleIdempotent(t *testing.T) {
	st := testharness.Load(t)
	c, err := client.Dial(st.TemporalOptions(st.OperatorTokenSource()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // after the schedule's deletion below (LIFO)
	b := make([]byte, 4)
	rand.Read(b)
	queue := "sweeper-schedule-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := c.ScheduleClient().GetHandle(ctx, workflows.SweeperScheduleID(queue))
	t.Cleanup(func() { _ = h.Delete(context.Background()) })

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- EnsureSweeperSchedule(ctx, c, queue, time.Hour) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a worker could not ensure the schedule: %v", err)
		}
	}
	d, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || a.Workflow != workflows.SweeperWorkflow || a.TaskQueue != queue {
		t.Fatalf("schedule action %+v, want %s on %s", d.Schedule.Action, workflows.SweeperWorkflow, queue)
	}
	if iv := d.Schedule.Spec.Intervals; len(iv) != 1 || iv[0].Every != time.Hour {
		t.Fatalf("schedule intervals %+v, want every hour", iv)
	}
	if d.Schedule.Policy.Overlap != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP {
		t.Errorf("overlap policy %v, want skip", d.Schedule.Policy.Overlap)
	}
	if !sameSweeper(d.Schedule, sweeperSchedule(queue, time.Hour)) {
		t.Errorf("the described schedule does not compare equal to the wanted one: %+v", d.Schedule)
	}

	if err := EnsureSweeperSchedule(ctx, c, queue, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if d, err = h.Describe(ctx); err != nil {
		t.Fatal(err)
	}
	if iv := d.Schedule.Spec.Intervals; len(iv) != 1 || iv[0].Every != 2*time.Hour {
		t.Fatalf("after a worker with another interval: %+v, want every 2h", iv)
	}
}
