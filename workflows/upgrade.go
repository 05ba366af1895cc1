package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// Runs last longer than releases. The code in this file lets a run that an earlier release
// started (or left in the middle of a step) finish on this one: it replays what the earlier
// release recorded, command for command, and switches to this release's behaviour at the
// first step it takes live. Each switch is a workflow.GetVersion change: GetVersion answers
// workflow.DefaultVersion only while replaying events recorded without its marker, so a new
// run, or an old run's first live step, always takes the current behaviour. Nothing here lets
// an input of a new run do what this release refuses.

// Change ids of the switches (workflow.GetVersion).
const (
	// holdChange: an AccessRequest hold that began on a release that honoured
	// AccessConfig.KeepAliveEvery replays its keep-alive ticks (legacyHold).
	holdChange = "oidcflow.hold-without-keep-alive"
	// holdTickChange, with the tick's number appended, ends legacyHold's ticks at the first
	// one that runs live: the rest of the hold is one durable timer.
	holdTickChange = "oidcflow.hold-without-keep-alive-tick-"
	// keepAliveBoundsChange: a KeepAlive run whose first workflow task ran on a release
	// without KeepAliveInput's bounds replays as that release ran it (legacy).
	keepAliveBoundsChange = "oidcflow.keep-alive-bounds"
	// keepAliveTickChange, with the iteration's number appended, makes such a run continue
	// as new within the bounds at its first live iteration.
	keepAliveTickChange = "oidcflow.keep-alive-bounds-tick-"
	// poolRetryChange: an activity task that an earlier release scheduled without the
	// pool's authority, refused by this release's worker, is scheduled again under it.
	poolRetryChange = "oidcflow.pool-authority-retry"
)

// legacyHold is the hold of a run whose hold began on a release that kept the requester's
// session fresh every KeepAliveEvery (a keep-alive tick: a timer, then RefreshSession under
// the requester's session). It replays those ticks as that release recorded them; at the
// first tick that fires live it stops ticking and waits out the rest of the hold on one
// timer, as every hold of this release does: the revoke at the end runs under the pool's
// authority and needs no session. So an input's keep_alive_every (even 1 ns, which once filled
// a run's history until Temporal ended it before its revoke) makes no run tick on this
// release; ticks recorded before the upgrade are only replayed.
func (w *accessRequest) legacyHold(ctx workflow.Context, until time.Time) (canceled bool) {
	for tick := 0; ; tick++ {
		remaining := until.Sub(workflow.Now(ctx))
		if remaining <= 0 {
			return false
		}
		wait := min(w.cfg.KeepAliveEvery, remaining)
		revoked, err := workflow.AwaitWithTimeout(ctx, wait, func() bool { return w.revokeBy != nil })
		if err != nil {
			return true
		}
		if revoked {
			return false
		}
		if wait < remaining {
			if workflow.GetVersion(ctx, fmt.Sprintf("%s%d", holdTickChange, tick), workflow.DefaultVersion, 1) != workflow.DefaultVersion {
				return w.holdOnOneTimer(ctx, until)
			}
			w.legacyKeepAlive(ctx)
		}
	}
}

// legacyKeepAlive is a keep-alive tick as the earlier release ran it: refresh the requester's
// session, and only log a refusal (the hold must end on time).
func (w *accessRequest) legacyKeepAlive(ctx workflow.Context) {
	if _, err := refreshSession(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("requester's session could not be refreshed during the hold", "error", err.Error())
	}
}

// keepAliveLegacy reports whether this KeepAlive run's first workflow task ran on a release
// that did not bound KeepAliveInput. Such a run was accepted by that release and replays as
// it ran; see KeepAlive.
func keepAliveLegacy(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, keepAliveBoundsChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion
}

// keepAliveGoesLive reports, for iteration i of a legacy KeepAlive run, whether it runs live
// on this release (and so must continue as new within the bounds) rather than replay.
func keepAliveGoesLive(ctx workflow.Context, i int) bool {
	return workflow.GetVersion(ctx, fmt.Sprintf("%s%d", keepAliveTickChange, i), workflow.DefaultVersion, 1) != workflow.DefaultVersion
}

// legacyDefaults fills in KeepAliveInput's defaults as the release without bounds did (zero
// or negative: the default).
func (in KeepAliveInput) legacyDefaults() KeepAliveInput {
	if in.Every <= 0 {
		in.Every = time.Hour
	}
	if in.RefreshesPerRun <= 0 {
		in.RefreshesPerRun = 24
	}
	return in
}

// withinBounds returns in (defaults filled in) brought within KeepAliveInput's bounds at now:
// Every raised to KeepAliveMinEvery, RefreshesPerRun lowered to KeepAliveMaxRefreshesPerRun,
// Until brought forward to KeepAliveMaxSpan after now. It is for inputs the pool's own code
// carries into a continued run (a run an earlier release accepted), never for a start.
func (in KeepAliveInput) withinBounds(now time.Time) KeepAliveInput {
	in = in.legacyDefaults()
	in.Every = max(in.Every, KeepAliveMinEvery)
	in.RefreshesPerRun = min(in.RefreshesPerRun, KeepAliveMaxRefreshesPerRun)
	if in.Until.Sub(now) > KeepAliveMaxSpan {
		in.Until = now.Add(KeepAliveMaxSpan)
	}
	return in
}

// refusedForAuthority reports whether err is the refusal, by this release's activity
// interceptor or activity, of a task that lacks the authority this release schedules it with
// (oidcflow.Unauthenticated): an earlier release scheduled notifications without a reference
// and revocations under the requester's session, and this release runs both only under the
// pool's authority. When it is, and the run is live (poolRetryChange), the caller schedules
// the activity once more, now under the pool's authority: the same activity, input and run
// binding, so an earlier release's task gains nothing it could not get from this release's
// code.
func refusedForAuthority(ctx workflow.Context, err error) bool {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != identity.TypeUnauthenticated {
		return false
	}
	return workflow.GetVersion(ctx, poolRetryChange, workflow.DefaultVersion, 1) != workflow.DefaultVersion
}
