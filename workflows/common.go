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
)

// notifyOptions: a failing webhook must never hold a workflow up for long, so notifications
// get a short timeout and three attempts, and their errors are only logged.
var notifyOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 10 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumAttempts:        3,
		NonRetryableErrorTypes: []string{activities.TypeWebhookRejected},
	},
}

// maxComment caps free text in updates and inputs (it is recorded in history and shown in UIs).
const maxComment = 1000

// actorOf copies the claims the audit trail shows out of a verified identity.
func actorOf(id *identity.Identity) *Actor {
	if id == nil {
		return nil
	}
	return &Actor{
		Subject:     id.Subject,
		Issuer:      id.Issuer,
		Name:        id.Name,
		Email:       id.Email,
		Roles:       slices.Clone(id.Roles),
		Permissions: slices.Clone(id.Permissions),
		Groups:      slices.Clone(id.Groups),
		Department:  id.Department,
	}
}

// samePerson reports whether a and b are the same person (same subject at the same issuer).
func samePerson(a, b *identity.Identity) bool {
	return a != nil && b != nil && a.Subject == b.Subject && a.Issuer == b.Issuer
}

// validateApprove is the validator of an approve update: a comment of at most maxComment
// bytes, a run id and digest of at most maxNameLength bytes, and open() (the request still
// takes decisions). Like every validator it only rejects; the handler checks who the caller
// is and that the approval names this run and request (checkNamed). A wrong or missing name
// is left to the handler on purpose, so that its refusal is in history and the audit trail.
func validateApprove(open func() error) func(workflow.Context, ApproveInput) error {
	return func(_ workflow.Context, in ApproveInput) error {
		if len(in.Comment) > maxComment {
			return fmt.Errorf("workflows: comment longer than %d bytes", maxComment)
		}
		if err := validateName(in.RunID, in.RequestDigest); err != nil {
			return err
		}
		return open()
	}
}

// validateDeny is the validator of a deny update: a comment of 1 to maxComment bytes, names
// as in validateApprove, and open().
func validateDeny(open func() error) func(workflow.Context, DenyInput) error {
	return func(_ workflow.Context, in DenyInput) error {
		if in.Comment == "" || len(in.Comment) > maxComment {
			return fmt.Errorf("workflows: a denial needs a comment (at most %d bytes)", maxComment)
		}
		if err := validateName(in.RunID, in.RequestDigest); err != nil {
			return err
		}
		return open()
	}
}

// validateName rejects a run id or request digest longer than any real one.
func validateName(runID, digest string) error {
	if len(runID) > maxNameLength || len(digest) > maxNameLength {
		return fmt.Errorf("workflows: run id and request digest are at most %d bytes", maxNameLength)
	}
	return nil
}

// errorText returns the message of err for the audit trail: the innermost ApplicationError
// message when there is one (activity errors wrap it), else err's message. Messages of this
// project never hold a token.
func errorText(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Error()
	}
	return err.Error()
}

// trail is the audit trail and notification bookkeeping shared by the workflows.
type trail struct {
	workflowID    string
	audit         []AuditEntry
	notifications int // running notification goroutines
}

func (t *trail) record(ctx workflow.Context, action string, actor *identity.Identity, outcome, detail string) {
	t.audit = append(t.audit, AuditEntry{
		Time:    workflow.Now(ctx),
		Action:  action,
		Actor:   actorOf(actor),
		Outcome: outcome,
		Detail:  detail,
	})
}

// notify posts a message in the background; the workflow never waits for it except briefly
// at the end (drain), and never fails because of it.
func (t *trail) notify(ctx workflow.Context, audience, event, text string) {
	t.notifications++
	// Notifications run under the pool's authority: they do not depend on a caller's
	// session, which ends with the update that sent them.
	workflow.Go(identity.AsPool(ctx), func(gctx workflow.Context) {
		defer func() { t.notifications-- }()
		var n *activities.NotifyActivities
		actx := workflow.WithActivityOptions(gctx, notifyOptions)
		in := activities.NotifyInput{Audience: audience, Event: event, Text: text, WorkflowID: t.workflowID}
		err := workflow.ExecuteActivity(actx, n.Notify, in).Get(actx, nil)
		if refusedForAuthority(actx, err) { // scheduled by an earlier release without a reference
			err = workflow.ExecuteActivity(actx, n.Notify, in).Get(actx, nil)
		}
		if err != nil {
			workflow.GetLogger(gctx).Warn("notification failed", "event", event, "error", err)
		}
	})
}

// drain waits (bounded) for background notifications and for running update handlers, so a
// run does not end in the middle of either.
func (t *trail) drain(ctx workflow.Context) {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	_, _ = workflow.AwaitWithTimeout(ctx, time.Minute, func() bool { return t.notifications == 0 })
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

func (t *trail) auditCopy() []AuditEntry { return slices.Clone(t.audit) }

// setState records s as the run's state and in its ApprovalState search attribute.
func setState(ctx workflow.Context, state *State, s State) {
	*state = s
	if err := workflow.UpsertTypedSearchAttributes(ctx, ApprovalStateKey.ValueSet(string(s))); err != nil {
		workflow.GetLogger(ctx).Warn("search attribute update failed", "error", err)
	}
}
