package pool

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/mocks"
)

// TestEnsureSweeperScheduleRetriesWhatMayPass: a schedule call that outlasts its deadline
// on a busy server (or finds it unavailable) is tried again within ctx, so that a worker does
// not stop at its start for it; a refusal is not tried again.
func TestEnsureSweeperScheduleRetriesWhatMayPass(t *testing.T) {
	for _, tc := range []struct {
		name    string
		first   error
		calls   int
		wantErr bool
	}{
		{"deadline of one call", serviceerror.NewDeadlineExceeded("context deadline exceeded"), 2, false},
		{"unavailable", serviceerror.NewUnavailable("try later"), 2, false},
		{"refused", serviceerror.NewPermissionDenied("no", ""), 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := mocks.NewScheduleClient(t)
			c := mocks.NewClient(t)
			c.On("ScheduleClient").Return(sc)
			sc.On("Create", mock.Anything, mock.Anything).Return(nil, tc.first).Once()
			if tc.calls > 1 {
				sc.On("Create", mock.Anything, mock.Anything).Return(mocks.NewScheduleHandle(t), nil).Once()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := EnsureSweeperSchedule(ctx, c, "q", time.Hour)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tc.wantErr)
			}
			sc.AssertNumberOfCalls(t, "Create", tc.calls)
		})
	}
}

// TestEnsureSweeperScheduleGivesUpWithCtx: a server that never answers in time makes it
// return once ctx ends, with the last error.
func TestEnsureSweeperScheduleGivesUpWithCtx(t *testing.T) {
	sc := mocks.NewScheduleClient(t)
	c := mocks.NewClient(t)
	c.On("ScheduleClient").Return(sc)
	sc.On("Create", mock.Anything, mock.Anything).Return(nil, serviceerror.NewDeadlineExceeded("context deadline exceeded"))
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := EnsureSweeperSchedule(ctx, c, "q", time.Hour); err == nil {
		t.Fatal("no error")
	}
}
