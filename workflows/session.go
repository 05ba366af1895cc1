package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
)

// KeepAliveWorkflow is the name of KeepAlive.
const KeepAliveWorkflow = "KeepAlive"

// refreshOptions: a refresh may wait for another worker's claim (tokenstore ClaimTTL), and
// transient IdP or Vault failures retry with backoff for as long as it takes; a refused
// refresh (ReauthRequired) does not retry: the run parks instead.
var refreshOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 2 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        time.Minute,
		NonRetryableErrorTypes: identityErrorTypes,
	},
}

// refreshSession refreshes the session of the identity in ctx when it is due and returns
// when the next refresh is due. When the IdP refuses the refresh (identity.TypeReauthRequired)
// it parks the run until the starter renews consent (identity.AwaitReconsent), calling
// parked(true) before and parked(false) after, and tries again on the new session. With a
// nil parked it returns the refusal instead.
func refreshSession(ctx workflow.Context, parked func(bool)) (activities.RefreshSessionResult, error) {
	for {
		id, err := identity.FromWorkflow(ctx)
		if err != nil {
			return activities.RefreshSessionResult{}, err
		}
		var s *activities.SessionActivities
		var res activities.RefreshSessionResult
		err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, refreshOptions), s.RefreshSession,
			activities.RefreshSessionInput{SessionID: id.SessionID}).Get(ctx, &res)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != identity.TypeReauthRequired || parked == nil {
			return res, err
		}
		workflow.GetLogger(ctx).Warn("session can no longer be refreshed; waiting for the starter to renew consent",
			"update", identity.ReconsentUpdate)
		parked(true)
		if err := identity.AwaitReconsent(ctx); err != nil {
			return res, err
		}
		parked(false)
	}
}

// Bounds of KeepAliveInput: the starter writes the input, so how long the pool keeps a
// session alive, how often it wakes, and how large one run's history grows are capped.
const (
	// KeepAliveMaxSpan caps KeepAliveInput.Until: at most this long after the run starts.
	KeepAliveMaxSpan = 90 * 24 * time.Hour
	// KeepAliveMinEvery is the shortest KeepAliveInput.Every.
	KeepAliveMinEvery = time.Minute
	// KeepAliveMaxRefreshesPerRun caps KeepAliveInput.RefreshesPerRun.
	KeepAliveMaxRefreshesPerRun = 100
)

// KeepAliveInput starts KeepAlive.
type KeepAliveInput struct {
	// Until is when the run ends (and its session is revoked). Required; at most
	// KeepAliveMaxSpan after the start of each run.
	Until time.Time `json:"until"`
	// Every is the longest wait between two refreshes; refreshes also run when the access
	// token is due (RefreshSessionResult.RefreshDue). Default 1h; at least
	// KeepAliveMinEvery.
	Every time.Duration `json:"every,omitempty"`
	// RefreshesPerRun bounds one run's history: after that many refreshes the workflow
	// continues as new. Default 24; at most KeepAliveMaxRefreshesPerRun.
	RefreshesPerRun int `json:"refreshes_per_run,omitempty"`
	// Progress carries the counts across continue-as-new; leave it empty.
	Progress KeepAliveResult `json:"progress"`
}

// KeepAliveResult counts what the runs did.
type KeepAliveResult struct {
	Ticks      int `json:"ticks"`      // refresh activities run
	Refreshes  int `json:"refreshes"`  // of those, how many renewed the tokens at the IdP
	Runs       int `json:"runs"`       // runs, continue-as-new included
	Reconsents int `json:"reconsents"` // times the run parked for re-consent
}

// KeepAlive keeps its starter's session fresh until Until, with durable timers and
// continue-as-new, and ends it then (the worker interceptor revokes the refresh token and
// destroys the session when the last run completes). It is the long-running part of any
// workflow that acts for a person over days, and the reference for tests of token lifetimes.
// Each run's history holds at most RefreshesPerRun refresh activities and timers.
//
// A start outside KeepAliveInput's bounds is refused. A continued run brings its input within
// them instead (withinBounds): that input is the previous run's, which the pool's own code
// passed on, and a chain an earlier release accepted must not fail at its next
// continue-as-new. A run whose first workflow task ran on a release without the bounds
// replays as that release ran it, and continues as new within the bounds at its first
// iteration that runs live.
func KeepAlive(ctx workflow.Context, in KeepAliveInput) (KeepAliveResult, error) {
	if in.Until.IsZero() {
		return KeepAliveResult{}, invalidInput("KeepAliveInput.Until is required")
	}
	legacy := keepAliveLegacy(ctx)
	switch {
	case legacy:
		in = in.legacyDefaults()
	case workflow.GetInfo(ctx).ContinuedExecutionRunID != "":
		in = in.withinBounds(workflow.Now(ctx))
	case in.Until.Sub(workflow.Now(ctx)) > KeepAliveMaxSpan:
		return KeepAliveResult{}, invalidInput("KeepAliveInput.Until may be at most %s ahead", KeepAliveMaxSpan)
	case in.Every < 0 || (in.Every > 0 && in.Every < KeepAliveMinEvery):
		return KeepAliveResult{}, invalidInput("KeepAliveInput.Every must be at least %s", KeepAliveMinEvery)
	case in.RefreshesPerRun < 0 || in.RefreshesPerRun > KeepAliveMaxRefreshesPerRun:
		return KeepAliveResult{}, invalidInput("KeepAliveInput.RefreshesPerRun must be between 1 and %d", KeepAliveMaxRefreshesPerRun)
	}
	if in.Every == 0 {
		in.Every = time.Hour
	}
	if in.RefreshesPerRun == 0 {
		in.RefreshesPerRun = 24
	}
	p := in.Progress
	p.Runs++
	for i := range in.RefreshesPerRun {
		now := workflow.Now(ctx)
		if !now.Before(in.Until) {
			return p, nil
		}
		if legacy && keepAliveGoesLive(ctx, i) {
			in.Progress = p
			return p, workflow.NewContinueAsNewError(ctx, KeepAliveWorkflow, in.withinBounds(now))
		}
		res, err := refreshSession(ctx, func(parked bool) {
			if parked {
				p.Reconsents++
			}
		})
		if err != nil {
			return p, err
		}
		p.Ticks++
		if res.Refreshed {
			p.Refreshes++
		}
		next := now.Add(in.Every)
		if in.Until.Before(next) {
			next = in.Until
		}
		if due := res.RefreshDue; due.After(now) && due.Before(next) {
			next = due
		}
		if err := workflow.Sleep(ctx, max(next.Sub(workflow.Now(ctx)), time.Second)); err != nil {
			return p, err
		}
	}
	in.Progress = p
	if legacy {
		in = in.withinBounds(workflow.Now(ctx))
	}
	return p, workflow.NewContinueAsNewError(ctx, KeepAliveWorkflow, in)
}
