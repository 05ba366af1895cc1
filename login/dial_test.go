package login

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"golang.org/x/oauth2"
)

// fakeOutbound answers every request with err.
type fakeOutbound struct {
	interceptor.ClientOutboundInterceptorBase
	err error
}

func (f *fakeOutbound) ExecuteWorkflow(context.Context, *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	return nil, f.err
}

func (f *fakeOutbound) UpdateWorkflow(context.Context, *interceptor.ClientUpdateWorkflowInput) (client.WorkflowUpdateHandle, error) {
	return nil, f.err
}

// TestHandOverRecordedWhenTheServerMayHaveIt: a start that reached the server, or may have
// (a timeout), hands the refresh token over, so the cache never refreshes it again; a start
// the server refused hands nothing over; only the re-consent update carries the token.
func TestHandOverRecordedWhenTheServerMayHaveIt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		update string // "" for a start
		err    error
		want   bool
	}{
		{"started", "", nil, true},
		{"timed out", "", context.DeadlineExceeded, true},
		{"server timeout", "", serviceerror.NewDeadlineExceeded("deadline"), true},
		{"unavailable", "", serviceerror.NewUnavailable("down"), true},
		{"already started", "", serviceerror.NewWorkflowExecutionAlreadyStarted("dup", "", ""), false},
		{"invalid", "", serviceerror.NewInvalidArgument("bad"), false},
		{"not permitted", "", serviceerror.NewPermissionDenied("no", ""), false},
		{"reconsent", identity.ReconsentUpdate, nil, true},
		{"other update", "approve", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t)
			if err := c.Save(session(time.Now().Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
			ts, err := NewTokenSource(context.Background(), SourceOptions{Cache: c, Config: &oauth2.Config{}, Verifier: fakeVerifier{}})
			if err != nil {
				t.Fatal(err)
			}
			var recordErr error
			h := &handOver{src: ts, onErr: func(err error) { recordErr = err }}
			out := h.InterceptClient(&fakeOutbound{err: tc.err})
			if tc.update == "" {
				_, _ = out.ExecuteWorkflow(context.Background(), &interceptor.ClientExecuteWorkflowInput{})
			} else {
				_, _ = out.UpdateWorkflow(context.Background(), &interceptor.ClientUpdateWorkflowInput{UpdateName: tc.update})
			}
			if recordErr != nil {
				t.Fatal(recordErr)
			}
			s, err := c.Load()
			if err != nil {
				t.Fatal(err)
			}
			if got := !s.HandedOver.IsZero(); got != tc.want {
				t.Errorf("handed over = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDialNeedsASource(t *testing.T) {
	if _, err := Dial(context.Background(), DialOptions{PublicKey: "x"}); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("Dial without a source: %v", err)
	}
}
