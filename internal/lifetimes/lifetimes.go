// Package lifetimes holds the integration tests of long-lived tokens on the dev stack (issue
// 5's acceptance: frequent refreshes, one refresh per rotation across workers, Vault and IdP
// faults, a role removed mid-run) and the small workflow they drive.
//
// Steps is a run that performs sensitive steps for its starter, either on a timer (Every)
// or one per "step" signal, and reports what each step saw. It does not refresh by itself:
// the worker interceptor resumes the run's session (refreshing it when due) before every
// activity, which is exactly the path under test.
package lifetimes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// Names of the workflow, its signals and its query.
const (
	StepsWorkflow = "LifetimesSteps"
	StepSignal    = "step"     // one more step (signal mode)
	FinishSignal  = "finish"   // end the run after the current step
	ProgressQuery = "progress" // returns Result so far
)

// TypeStale is the ApplicationError type of a step that saw an expired access token.
const TypeStale = "lifetimes.Stale"

// Input starts Steps.
type Input struct {
	// Steps is how many steps to run; 0 with Every set runs until FinishSignal.
	Steps int `json:"steps,omitempty"`
	// Every is the pause between steps. Zero: signal mode, one step per StepSignal.
	Every time.Duration `json:"every,omitempty"`
	// Role, when set, is required of the starter at every step (identity.Require).
	Role string `json:"role,omitempty"`
	// ParkOnReauth parks the run on ReauthRequired until the starter renews consent
	// (identity.ReconsentUpdate), then repeats the step.
	ParkOnReauth bool `json:"park_on_reauth,omitempty"`
}

// Step is what one sensitive step saw.
type Step struct {
	At        time.Time     `json:"at"`
	Expiry    time.Time     `json:"expiry"`
	Validity  time.Duration `json:"validity"` // Expiry - At
	SessionID string        `json:"session_id"`
	Subject   string        `json:"sub"`
}

// Result is the run's record.
type Result struct {
	Steps     []Step `json:"steps"`
	SessionID string `json:"session_id"`
	Parked    bool   `json:"parked"`
	Parks     int    `json:"parks"`
}

// StepInput is the input of the Sensitive activity.
type StepInput struct {
	Role string `json:"role,omitempty"`
}

// Sensitive is a step that acts for the run's starter: it needs a verified identity whose
// access token is still valid, and the role when one is asked for.
func Sensitive(ctx context.Context, in StepInput) (Step, error) {
	id, err := identity.FromActivity(ctx)
	if err != nil {
		return Step{}, identity.ApplicationError(err)
	}
	if in.Role != "" {
		if id, err = identity.Require(ctx, identity.HasRole(in.Role)); err != nil {
			return Step{}, identity.ApplicationError(err)
		}
	}
	now := time.Now()
	s := Step{At: now, Expiry: id.Expiry, Validity: id.Expiry.Sub(now), SessionID: id.SessionID, Subject: id.Subject}
	if !id.Expiry.After(now) {
		return s, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("step %s saw a token that expired at %s", activity.GetInfo(ctx).ActivityID, id.Expiry.Format(time.RFC3339Nano)),
			TypeStale, nil)
	}
	return s, nil
}

var stepOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 2 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
		NonRetryableErrorTypes: []string{identity.TypeUnauthenticated, identity.TypeForbidden,
			identity.TypeTokenExpired, identity.TypeInvalidToken, identity.TypeReauthRequired, TypeStale},
	},
}

// Steps runs sensitive steps for its starter (see Input).
func Steps(ctx workflow.Context, in Input) (*Result, error) {
	res := &Result{}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (*Result, error) { return res, nil }); err != nil {
		return nil, err
	}
	if id, err := identity.FromWorkflow(ctx); err == nil {
		res.SessionID = id.SessionID
	}
	steps, finish := workflow.GetSignalChannel(ctx, StepSignal), workflow.GetSignalChannel(ctx, FinishSignal)
	finished := false
	workflow.Go(ctx, func(ctx workflow.Context) { finish.Receive(ctx, nil); finished = true })
	actx := workflow.WithActivityOptions(ctx, stepOptions)
	for i := 0; in.Steps == 0 || i < in.Steps; i++ {
		if in.Every > 0 {
			if i > 0 {
				if _, err := workflow.AwaitWithTimeout(ctx, in.Every, func() bool { return finished }); err != nil {
					return res, err
				}
			}
		} else {
			workflow.Await(ctx, func() bool { return finished || steps.Len() > 0 })
			steps.ReceiveAsync(nil)
		}
		if finished {
			break
		}
		for {
			var s Step
			err := workflow.ExecuteActivity(actx, Sensitive, StepInput{Role: in.Role}).Get(ctx, &s)
			var appErr *temporal.ApplicationError
			if err != nil && in.ParkOnReauth && errors.As(err, &appErr) && appErr.Type() == identity.TypeReauthRequired {
				res.Parked, res.Parks = true, res.Parks+1
				if err := identity.AwaitReconsent(ctx); err != nil {
					return res, err
				}
				res.Parked = false
				continue
			}
			if err != nil {
				return res, err
			}
			res.Steps = append(res.Steps, s)
			if id, err := identity.FromWorkflow(ctx); err == nil {
				res.SessionID = id.SessionID
			}
			break
		}
	}
	return res, nil
}

// Register adds Steps and Sensitive to a worker.
func Register(r worker.Registry) {
	r.RegisterWorkflowWithOptions(Steps, workflow.RegisterOptions{Name: StepsWorkflow})
	r.RegisterActivity(Sensitive)
}

// LogTail reads what a log file gained since it was opened (the dev stack's logs are
// append-only while the servers run).
type LogTail struct {
	path   string
	offset int64
}

// NewLogTail starts watching path at its current end.
func NewLogTail(path string) (*LogTail, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	return &LogTail{path: path, offset: fi.Size()}, nil
}

// Count returns how many lines written since NewLogTail contain every one of parts. A
// shrunk file (a restarted server truncated it) is read from its start.
func (l *LogTail) Count(parts ...string) (int, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < l.offset {
		l.offset = 0
	}
	if _, err := f.Seek(l.offset, io.SeekStart); err != nil {
		return 0, err
	}
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
lines:
	for sc.Scan() {
		line := sc.Text()
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		n++
	}
	return n, sc.Err()
}
