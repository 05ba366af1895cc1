package bench

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// ThreeStepsWorkflow is the name of the measured workflow on both workers.
const ThreeStepsWorkflow = "BenchThreeSteps"

// errNoSubject fails a step whose identity names nobody.
var errNoSubject = errors.New("bench: the step's identity has no subject")

// Step is a small activity: on the oidcflow worker it reads the step's fresh identity (as an
// identity-checked step does), on the plain worker there is none and it does nothing else.
func Step(ctx context.Context, n int) (int, error) {
	if id, err := identity.FromActivity(ctx); err == nil && id.Subject == "" {
		return 0, errNoSubject
	}
	return n + 1, nil
}

// ThreeSteps runs Step three times in a row.
func ThreeSteps(ctx workflow.Context) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	n := 0
	for range 3 {
		if err := workflow.ExecuteActivity(ctx, Step, n).Get(ctx, &n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Register adds ThreeSteps and Step to a worker.
func Register(r worker.Registry) {
	r.RegisterWorkflowWithOptions(ThreeSteps, workflow.RegisterOptions{Name: ThreeStepsWorkflow})
	r.RegisterActivity(Step)
}
