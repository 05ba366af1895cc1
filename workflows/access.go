package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/pgaccess"
)

// grantOptions: the grant retries transient failures (database restarts, network) a bounded
// number of times; identity refusals and bad input fail at once.
var grantOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    30 * time.Second,
		MaximumAttempts:    10,
		NonRetryableErrorTypes: append(slices.Clone(identityErrorTypes),
			activities.TypeInvalidInput, activities.TypeNotManaged, activities.TypeNotBootstrap),
	},
}

// revokeOptions: leaving a grant behind is worse than retrying, so the revoke retries without
// an attempt limit (backing off to one try a minute) unless the failure can never heal. It
// runs under the pool's authority and depends on no person's session, so no identity error
// type is listed: nothing a requester does to their own tokens can stop it.
var revokeOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        time.Minute,
		NonRetryableErrorTypes: []string{activities.TypeInvalidInput, activities.TypeNotManaged},
	},
}

// AccessRequest asks for time-bound access to a database for the verified starter (the
// requester). The request is routed by the requester's department claim to an approver role
// (AccessConfig.Routes); Required distinct approvers approve through the approve update (no
// self-approval), any eligible approver may deny. Without decisions the escalation role is
// notified after EscalateAfter and the request expires after ExpireAfter. Once approved, a
// login role with VALID UNTIL is granted, held for Duration on a durable timer and revoked
// automatically; the requester or an admin may revoke earlier (revoke update). The revoke
// runs under the worker pool's own authority and retries until it is done; if the run never
// gets there (terminated, reset, timed out), the sweeper drops the role within its interval.
//
// History stays bounded without continue-as-new: a run has a fixed number of timers, one
// activity per notification, grant and revoke, and one event group per update; MaxDuration
// (default 12 h) caps the hold.
func AccessRequest(ctx workflow.Context, in AccessRequestInput) (AccessRequestResult, error) {
	w, err := newAccessRequest(ctx, in)
	if err != nil {
		return AccessRequestResult{}, err
	}
	return w.run(ctx)
}

// accessRequest is the state of one AccessRequest run.
type accessRequest struct {
	trail
	in        AccessRequestInput
	cfg       AccessConfig
	route     Route
	requester *identity.Identity
	requestID string
	runID     string
	digest    string // accessDigest: what approvers decide on

	state     State
	escalated bool
	approvals []string // subjects, in order
	decideBy  time.Time
	grant     *activities.Grant
	revokeBy  *identity.Identity // set by an accepted revoke once approved
	revokeWhy string
}

// withDefaults fills the zero fields of c from DefaultAccessConfig.
func (c AccessConfig) withDefaults() AccessConfig {
	d := DefaultAccessConfig()
	if c.Routes == nil {
		c.Routes = d.Routes
	}
	if c.AdminRole == "" {
		c.AdminRole = d.AdminRole
	}
	if c.EscalateAfter == 0 {
		c.EscalateAfter = d.EscalateAfter
	}
	if c.ExpireAfter == 0 {
		c.ExpireAfter = d.ExpireAfter
	}
	if c.MaxDuration == 0 {
		c.MaxDuration = d.MaxDuration
	}
	return c
}

// routeFor returns the route for department, with defaults filled in.
func (c AccessConfig) routeFor(department string) (Route, bool) {
	r, ok := c.Routes[department]
	if !ok {
		if c.Fallback == nil {
			return Route{}, false
		}
		r = *c.Fallback
	}
	if r.Required <= 0 {
		r.Required = 1
	}
	if r.EscalationRole == "" {
		r.EscalationRole = c.AdminRole
	}
	return r, r.ApproverRole != ""
}

func newAccessRequest(ctx workflow.Context, in AccessRequestInput) (*accessRequest, error) {
	requester, err := identity.FromWorkflow(ctx)
	if err != nil {
		return nil, identity.ApplicationError(err)
	}
	cfg := DefaultAccessConfig()
	if in.Config != nil {
		cfg = in.Config.withDefaults()
		if err := cfg.tighterThan(DefaultAccessConfig()); err != nil {
			return nil, err
		}
	}
	switch {
	case !pgaccess.ValidDatabase(in.Resource):
		return nil, invalidInput("resource %q is not a database name (a-z, 0-9, _; at most 40)", in.Resource)
	case !in.Role.Valid():
		return nil, invalidInput("role must be %q or %q, not %q", AccessRead, AccessWrite, in.Role)
	case in.Duration <= 0 || in.Duration > cfg.MaxDuration:
		return nil, invalidInput("duration must be between 0 and %s, not %s", cfg.MaxDuration, in.Duration)
	case in.Reason == "" || len(in.Reason) > maxComment:
		return nil, invalidInput("reason is required (at most %d bytes)", maxComment)
	case cfg.ExpireAfter <= 0:
		return nil, invalidInput("expire_after must be positive")
	}
	route, ok := cfg.routeFor(requester.Department)
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"workflows: no approver route for department %q of %s", requester.Department, requester.Subject),
			TypeNoRoute, nil)
	}
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	return &accessRequest{
		trail:     trail{workflowID: id},
		in:        in,
		cfg:       cfg,
		route:     route,
		requester: requester,
		requestID: id,
		runID:     workflow.GetInfo(ctx).WorkflowExecution.RunID,
		digest:    accessDigest(requester, in, route),
		state:     StatePending,
	}, nil
}

func (w *accessRequest) run(ctx workflow.Context) (AccessRequestResult, error) {
	if err := w.register(ctx); err != nil {
		return AccessRequestResult{}, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		RequesterKey.ValueSet(w.requester.Subject),
		RequesterDepartmentKey.ValueSet(w.requester.Department),
		ResourceKey.ValueSet(w.in.Resource),
		ApprovalStateKey.ValueSet(string(w.state)),
	); err != nil {
		return AccessRequestResult{}, err
	}
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoRequester: actorOf(w.requester)}); err != nil {
		return AccessRequestResult{}, err
	}
	w.decideBy = workflow.Now(ctx).Add(w.cfg.ExpireAfter)
	w.record(ctx, "requested", w.requester, OutcomeOK, fmt.Sprintf("%s access to %s for %s: %s",
		w.in.Role, w.in.Resource, w.in.Duration, w.in.Reason))
	w.notify(ctx, w.route.ApproverRole, "access.requested", fmt.Sprintf(
		"*%s* (%s) asks for %s access to *%s* for %s: %s. %d approval(s) needed by %s.",
		w.requester.Subject, w.requester.Department, w.in.Role, w.in.Resource, w.in.Duration,
		w.in.Reason, w.route.Required, w.decideBy.UTC().Format(time.RFC3339)))

	open := func() bool { return w.state == StatePending || w.state == StateEscalated }
	decided := func() bool { return !open() }
	if w.cfg.EscalateAfter > 0 && w.cfg.EscalateAfter < w.cfg.ExpireAfter {
		ok, err := workflow.AwaitWithTimeout(ctx, w.cfg.EscalateAfter, decided)
		if err != nil {
			return w.finish(ctx, err)
		}
		if !ok {
			w.escalated = true
			w.setState(ctx, StateEscalated)
			w.record(ctx, "escalated", nil, OutcomeOK, "no decision after "+w.cfg.EscalateAfter.String())
			w.notify(ctx, w.route.EscalationRole, "access.escalated", fmt.Sprintf(
				"Escalated: %s access to *%s* for *%s* waits for %s (%d of %d approvals). Decide by %s.",
				w.in.Role, w.in.Resource, w.requester.Subject, w.route.ApproverRole, len(w.approvals),
				w.route.Required, w.decideBy.UTC().Format(time.RFC3339)))
		}
	}
	ok, err := workflow.AwaitWithTimeout(ctx, w.decideBy.Sub(workflow.Now(ctx)), decided)
	if err != nil {
		return w.finish(ctx, err)
	}
	if !ok {
		w.setState(ctx, StateExpired)
		w.record(ctx, "expired", nil, OutcomeOK, "no decision by "+w.decideBy.UTC().Format(time.RFC3339))
		w.notify(ctx, w.requester.Subject, "access.expired", fmt.Sprintf(
			"Your request for %s access to *%s* expired without a decision.", w.in.Role, w.in.Resource))
	}
	if w.state != StateApproved {
		return w.finish(ctx, nil)
	}
	return w.grantHoldRevoke(ctx)
}

// grantHoldRevoke grants, holds for the duration (or until an early revoke) and revokes.
func (w *accessRequest) grantHoldRevoke(ctx workflow.Context) (AccessRequestResult, error) {
	var db *activities.DatabaseActivities
	var res activities.GrantAccessResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, grantOptions), db.GrantAccess,
		activities.GrantAccessInput{
			RequestID:  w.requestID,
			Requester:  w.requester.Subject,
			Department: w.requester.Department,
			Database:   w.in.Resource,
			Access:     w.in.Role,
			Duration:   w.in.Duration, // counted from the role's creation
		}).Get(ctx, &res)
	if err != nil {
		w.setState(ctx, StateFailed)
		w.record(ctx, "grant", nil, OutcomeFailed, errorText(err))
		// A failed or canceled attempt may have created the role: clean up.
		if rerr := w.revoke(ctx); rerr != nil {
			w.record(ctx, "revoke", nil, OutcomeFailed, errorText(rerr))
		}
		if ctx.Err() != nil {
			return w.finish(ctx, ctx.Err())
		}
		w.notify(ctx, w.requester.Subject, "access.failed", fmt.Sprintf(
			"Your %s access to *%s* could not be granted: %s", w.in.Role, w.in.Resource, errorText(err)))
		return w.finish(ctx, temporal.NewNonRetryableApplicationError(
			"workflows: grant failed: "+errorText(err), TypeGrantFailed, nil))
	}
	w.grant = &res.Grant
	w.setState(ctx, StateGranted)
	w.record(ctx, "granted", nil, OutcomeOK, fmt.Sprintf("role %s in group %s valid until %s",
		res.Grant.RoleName, res.Grant.GroupRole, res.Grant.ValidUntil.UTC().Format(time.RFC3339)))
	w.notify(ctx, w.requester.Subject, "access.granted", fmt.Sprintf(
		"Granted: %s access to *%s* as role `%s` until %s.", w.in.Role, w.in.Resource,
		res.Grant.RoleName, res.Grant.ValidUntil.UTC().Format(time.RFC3339)))

	canceled := w.hold(ctx, res.Grant.ValidUntil)

	if err := w.revoke(ctx); err != nil {
		w.setState(ctx, StateFailed)
		w.record(ctx, "revoke", nil, OutcomeFailed, errorText(err))
		w.notify(ctx, w.cfg.AdminRole, "access.revoke_failed", fmt.Sprintf(
			"Revoking role `%s` failed: %s. The sweeper drops it once this run has ended; check it is gone.",
			res.Grant.RoleName, errorText(err)))
		return w.finish(ctx, temporal.NewNonRetryableApplicationError(
			"workflows: revoke failed: "+errorText(err), TypeRevokeFailed, nil))
	}
	switch {
	case w.revokeBy != nil:
		w.setState(ctx, StateRevoked)
		w.record(ctx, "revoked", w.revokeBy, OutcomeOK, "revoked early: "+w.revokeWhy)
	case canceled:
		w.setState(ctx, StateRevoked)
		w.record(ctx, "revoked", nil, OutcomeOK, "workflow canceled")
	default:
		w.setState(ctx, StateEnded)
		w.record(ctx, "revoked", nil, OutcomeOK, "duration "+w.in.Duration.String()+" ended")
	}
	w.notify(ctx, w.requester.Subject, "access.revoked", fmt.Sprintf(
		"Revoked: %s access to *%s* (role `%s`).", w.in.Role, w.in.Resource, res.Grant.RoleName))
	if canceled {
		// The grant is gone; report the run as canceled.
		return w.finish(ctx, ctx.Err())
	}
	return w.finish(ctx, nil)
}

// hold waits until until, an early revoke, or cancellation (reported as true), on one durable
// timer. It does not keep the requester's session alive: the revoke does not need it. A hold
// that began on an earlier release with KeepAliveEvery set replays that release's keep-alive
// ticks (legacyHold).
func (w *accessRequest) hold(ctx workflow.Context, until time.Time) (canceled bool) {
	if w.revokeBy != nil {
		return false
	}
	if w.cfg.KeepAliveEvery > 0 && workflow.GetVersion(ctx, holdChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return w.legacyHold(ctx, until)
	}
	return w.holdOnOneTimer(ctx, until)
}

// holdOnOneTimer waits until until, an early revoke, or cancellation (reported as true).
func (w *accessRequest) holdOnOneTimer(ctx workflow.Context, until time.Time) (canceled bool) {
	remaining := until.Sub(workflow.Now(ctx))
	if remaining <= 0 {
		return false
	}
	if _, err := workflow.AwaitWithTimeout(ctx, remaining, func() bool { return w.revokeBy != nil }); err != nil {
		return true
	}
	return false
}

// revoke runs RevokeAccess under the pool's own authority (identity.AsPool), never on the
// requester's session, on a disconnected context, so it also runs after cancellation. A
// revoke that an earlier release scheduled on the requester's session, refused by this
// release's activity, runs again under the pool's authority (refusedForAuthority).
func (w *accessRequest) revoke(ctx workflow.Context) error {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	dctx = workflow.WithActivityOptions(identity.AsPool(dctx), revokeOptions)
	var db *activities.DatabaseActivities
	in := activities.RevokeAccessInput{RequestID: w.requestID, Requester: w.requester.Subject}
	err := workflow.ExecuteActivity(dctx, db.RevokeAccess, in).Get(dctx, nil)
	if refusedForAuthority(dctx, err) {
		err = workflow.ExecuteActivity(dctx, db.RevokeAccess, in).Get(dctx, nil)
	}
	return err
}

func (w *accessRequest) setState(ctx workflow.Context, s State) { setState(ctx, &w.state, s) }

func (w *accessRequest) finish(ctx workflow.Context, err error) (AccessRequestResult, error) {
	w.drain(ctx)
	if err != nil {
		return AccessRequestResult{}, err
	}
	return AccessRequestResult{State: w.state, Grant: w.grant, Audit: w.auditCopy(), Status: w.status()}, nil
}

func (w *accessRequest) status() AccessStatus {
	st := AccessStatus{
		State:         w.state,
		Requester:     *actorOf(w.requester),
		Resource:      w.in.Resource,
		Role:          w.in.Role,
		Duration:      w.in.Duration,
		Reason:        w.in.Reason,
		ApproverRole:  w.route.ApproverRole,
		Required:      w.route.Required,
		Approvers:     slices.Clone(w.approvals),
		Escalated:     w.escalated,
		DecideBy:      w.decideBy,
		RunID:         w.runID,
		RequestDigest: w.digest,
	}
	if w.escalated {
		st.EscalationRole = w.route.EscalationRole
	}
	if w.grant != nil {
		g := *w.grant
		st.Grant = &g
	}
	return st
}

func (w *accessRequest) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (AccessStatus, error) {
		return w.status(), nil
	}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QueryAudit, func() ([]AuditEntry, error) {
		return w.auditCopy(), nil
	}); err != nil {
		return err
	}
	open := func() error {
		if w.state != StatePending && w.state != StateEscalated {
			return fmt.Errorf("%w (state %s)", errClosed, w.state)
		}
		return nil
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateApprove, w.approve,
		workflow.UpdateHandlerOptions{Validator: validateApprove(open)}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDeny, w.deny,
		workflow.UpdateHandlerOptions{Validator: validateDeny(open)}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateRevoke, w.revokeUpdate, workflow.UpdateHandlerOptions{
		Validator: func(_ workflow.Context, in RevokeInput) error {
			if len(in.Reason) > maxComment {
				return fmt.Errorf("workflows: reason longer than %d bytes", maxComment)
			}
			if w.state.Final() || w.revokeBy != nil {
				return fmt.Errorf("workflows: request is already %s", w.state)
			}
			return nil
		},
	})
}

// caller returns the verified identity of the update's caller, recording a refusal if none.
func (w *accessRequest) caller(ctx workflow.Context, action string) (*identity.Identity, error) {
	actor, err := identity.FromWorkflow(ctx)
	if err != nil {
		w.record(ctx, action, nil, OutcomeRefused, err.Error())
		return nil, identity.ApplicationError(err)
	}
	return actor, nil
}

func (w *accessRequest) refuse(ctx workflow.Context, action string, actor *identity.Identity, err error) error {
	w.record(ctx, action, actor, OutcomeRefused, err.Error())
	return identity.ApplicationError(err)
}

func (w *accessRequest) approve(ctx workflow.Context, in ApproveInput) (AccessStatus, error) {
	actor, err := w.caller(ctx, UpdateApprove)
	if err != nil {
		return AccessStatus{}, err
	}
	if w.state != StatePending && w.state != StateEscalated {
		return AccessStatus{}, w.refuse(ctx, UpdateApprove, actor, fmt.Errorf("%w (state %s)", errClosed, w.state))
	}
	if err := checkNamed(ctx, UpdateApprove, w.digest, in.RunID, in.RequestDigest); err != nil {
		return AccessStatus{}, w.refuse(ctx, UpdateApprove, actor, err)
	}
	if err := checkApprover(actor, w.requester, w.route, w.escalated); err != nil {
		return AccessStatus{}, w.refuse(ctx, UpdateApprove, actor, err)
	}
	if slices.Contains(w.approvals, actor.Subject) {
		return AccessStatus{}, w.refuse(ctx, UpdateApprove, actor,
			denied(actor, "already approved; %d distinct approvers are needed", w.route.Required))
	}
	w.approvals = append(w.approvals, actor.Subject)
	w.record(ctx, UpdateApprove, actor, OutcomeOK, in.Comment)
	if err := workflow.UpsertTypedSearchAttributes(ctx, ApproversKey.ValueSet(slices.Clone(w.approvals))); err != nil {
		workflow.GetLogger(ctx).Warn("search attribute update failed", "error", err)
	}
	if len(w.approvals) >= w.route.Required {
		w.setState(ctx, StateApproved)
	}
	return w.status(), nil
}

func (w *accessRequest) deny(ctx workflow.Context, in DenyInput) (AccessStatus, error) {
	actor, err := w.caller(ctx, UpdateDeny)
	if err != nil {
		return AccessStatus{}, err
	}
	if w.state != StatePending && w.state != StateEscalated {
		return AccessStatus{}, w.refuse(ctx, UpdateDeny, actor, fmt.Errorf("%w (state %s)", errClosed, w.state))
	}
	if err := checkNamed(ctx, UpdateDeny, w.digest, in.RunID, in.RequestDigest); err != nil {
		return AccessStatus{}, w.refuse(ctx, UpdateDeny, actor, err)
	}
	if err := checkApprover(actor, w.requester, w.route, w.escalated); err != nil {
		return AccessStatus{}, w.refuse(ctx, UpdateDeny, actor, err)
	}
	w.record(ctx, UpdateDeny, actor, OutcomeOK, in.Comment)
	w.setState(ctx, StateDenied)
	w.notify(ctx, w.requester.Subject, "access.denied", fmt.Sprintf(
		"Denied by %s: %s access to *%s*: %s", actor.Subject, w.in.Role, w.in.Resource, in.Comment))
	return w.status(), nil
}

// revokeUpdate withdraws a pending request at once; after approval it asks the main flow to
// revoke and returns when the revoke is done.
func (w *accessRequest) revokeUpdate(ctx workflow.Context, in RevokeInput) (AccessStatus, error) {
	actor, err := w.caller(ctx, UpdateRevoke)
	if err != nil {
		return AccessStatus{}, err
	}
	if err := checkRequesterOrAdmin(actor, w.requester, w.cfg.AdminRole); err != nil {
		return AccessStatus{}, w.refuse(ctx, UpdateRevoke, actor, err)
	}
	if w.state.Final() || w.revokeBy != nil {
		return AccessStatus{}, w.refuse(ctx, UpdateRevoke, actor, fmt.Errorf("workflows: request is already %s", w.state))
	}
	if w.state == StatePending || w.state == StateEscalated {
		w.record(ctx, UpdateRevoke, actor, OutcomeOK, "withdrawn before a decision: "+in.Reason)
		w.setState(ctx, StateRevoked)
		return w.status(), nil
	}
	w.record(ctx, UpdateRevoke, actor, OutcomeOK, in.Reason)
	w.revokeBy, w.revokeWhy = actor, in.Reason
	if err := workflow.Await(ctx, func() bool { return w.state.Final() }); err != nil {
		return AccessStatus{}, err
	}
	if w.state == StateFailed {
		return w.status(), errors.New("workflows: revoke failed; see the audit trail")
	}
	return w.status(), nil
}
