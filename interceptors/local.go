package interceptors

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// localActivities run the Authenticator where I/O is allowed; their results (identities, no
// secrets) are recorded in history, so replay never repeats the I/O. They run under the
// pool's own authority.
type localActivities struct {
	auth    Authenticator
	keys    macKeys
	timeout time.Duration
	closes  *CloseWatch // nil: runs end their sessions in EndSessionActivity
}

// openInput is the input of the OidcflowOpen local activity.
type openInput struct {
	Op     Operation
	Sealed []byte
}

// endInput is the input of the OidcflowEnd local activity.
type endInput struct {
	Session string
	Holder  string
}

// resumeInput is the input of the OidcflowResume local activity: a reference and what the
// receiver knows to check it against.
type resumeInput struct {
	Ref  reference
	Op   string
	From string
	// Signals only: the receiving workflow ("namespace/workflow id") and run, the digest of
	// the signal's arguments as received, and the receiver's workflow time.
	Target string    `json:",omitempty"`
	RunID  string    `json:",omitempty"`
	Digest string    `json:",omitempty"`
	Now    time.Time `json:",omitzero"`
}

func (l *localActivities) OidcflowOpen(ctx context.Context, in openInput) (*identity.Identity, error) {
	id, err := l.auth.Open(ctx, in.Op, in.Sealed)
	if err != nil {
		if isIdentityError(err) {
			return nil, identity.ApplicationError(err)
		}
		return nil, err // transient (Vault, IdP): retried
	}
	return id, nil
}

func (l *localActivities) OidcflowResume(ctx context.Context, in resumeInput) (*identity.Identity, error) {
	if err := l.keys.verify(&in.Ref, in.Op, in.From); err != nil {
		return nil, identity.ApplicationError(err)
	}
	if strings.HasPrefix(in.Op, opSignal) {
		if err := l.spendSignal(ctx, in); err != nil {
			if isIdentityError(err) {
				return nil, identity.ApplicationError(err)
			}
			return nil, err
		}
	}
	if in.Ref.Sender == nil { // references from before identities rode along
		return l.resumeSession(ctx, in.Ref)
	}
	if in.Ref.Sender.Subject != in.Ref.Subject {
		return nil, identity.ApplicationError(ErrBadReference)
	}
	id := *in.Ref.Sender
	if !strings.HasPrefix(in.Op, opSignal) { // a child or the next run acts on the session
		id.SessionID = in.Ref.Session
	}
	return &id, nil
}

// spendSignal checks what only the receiver of a signal reference knows (target, run,
// arguments, time) and spends the reference's id in the pool, once.
func (l *localActivities) spendSignal(ctx context.Context, in resumeInput) error {
	r := in.Ref
	switch {
	case r.Target != in.Target && r.Target != in.Target+"/"+in.RunID:
		return fmt.Errorf("interceptors: the signal reference was sent to another workflow or run: %w", ErrBadReference)
	case r.Digest != in.Digest:
		return fmt.Errorf("interceptors: the signal reference was sent with other arguments: %w", ErrBadReference)
	case !in.Now.Before(time.Unix(r.Expires, 0)):
		return fmt.Errorf("interceptors: the signal reference expired at %s: %w",
			time.Unix(r.Expires, 0).UTC().Format(time.RFC3339), ErrBadReference)
	}
	sum := sha256.Sum256([]byte(r.From))
	id := "sig-" + base64.RawURLEncoding.EncodeToString(sum[:])
	return l.auth.Spend(ctx, id, in.Target+"/"+in.RunID, time.Unix(r.Expires, 0).Add(time.Minute))
}

// resumeSession loads and verifies the session's current identity; it must still be the
// subject the reference was made for.
func (l *localActivities) resumeSession(ctx context.Context, ref reference) (*identity.Identity, error) {
	id, err := l.auth.Resume(ctx, ref.Session)
	if err != nil {
		if isIdentityError(err) {
			return nil, identity.ApplicationError(err)
		}
		return nil, err // transient (Vault, IdP): retried
	}
	if id.Subject != ref.Subject {
		return nil, identity.ApplicationError(ErrBadReference)
	}
	id.SessionID = ref.Session
	return id, nil
}

func (l *localActivities) OidcflowSpendEnvelope(ctx context.Context, in openInput) error {
	if err := l.auth.SpendEnvelope(ctx, in.Op, in.Sealed); err != nil && isIdentityError(err) {
		return identity.ApplicationError(err)
	} else if err != nil {
		return err
	}
	return nil
}

func (l *localActivities) OidcflowEnd(ctx context.Context, in endInput) error {
	return l.auth.End(ctx, in.Session, in.Holder)
}

// laContext runs oidcflow's own local activities under the pool's authority, with bounded
// retries of transient failures.
func (l *localActivities) laContext(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(identity.AsPool(ctx), workflow.LocalActivityOptions{
		StartToCloseTimeout: l.timeout, ScheduleToCloseTimeout: retryFor, RetryPolicy: retries(),
	})
}

// retryFor bounds the retries of oidcflow's own activities' transient failures.
const retryFor = 10 * time.Minute

func retries() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second}
}

func (l *localActivities) open(ctx workflow.Context, op Operation, sealed []byte) (*identity.Identity, error) {
	var id *identity.Identity
	err := workflow.ExecuteLocalActivity(l.laContext(ctx), l.OidcflowOpen, openInput{Op: op, Sealed: sealed}).Get(ctx, &id)
	return id, err
}

// spendEnvelope spends an envelope's id without honouring it (see Authenticator.SpendEnvelope).
func (l *localActivities) spendEnvelope(ctx workflow.Context, op Operation, sealed []byte) error {
	return workflow.ExecuteLocalActivity(l.laContext(ctx), l.OidcflowSpendEnvelope, openInput{Op: op, Sealed: sealed}).Get(ctx, nil)
}

func (l *localActivities) resume(ctx workflow.Context, in resumeInput) (*identity.Identity, error) {
	var id *identity.Identity
	err := workflow.ExecuteLocalActivity(l.laContext(ctx), l.OidcflowResume, in).Get(ctx, &id)
	return id, err
}

// end releases holder's hold on a session (an update's caller, say) even when the run was
// cancelled; a failure is logged, not returned: the pool's sweeper removes what is left.
func (l *localActivities) end(ctx workflow.Context, sessionID, holder string) {
	if sessionID == "" {
		return
	}
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if err := workflow.ExecuteLocalActivity(l.laContext(dctx), l.OidcflowEnd,
		endInput{Session: sessionID, Holder: holder}).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("session not ended; the pool's sweeper removes it", "error", err.Error())
	}
}

// EndSessionActivity is the activity type that ends a run's session when the run closes:
// activities.SessionActivities.EndSession, which the pool registers. A worker built on
// NewWorkerInterceptor without the pool registers it too.
const EndSessionActivity = "EndSession"

// endByActivity is the workflow.GetVersion change id of how a run's session ends.
//
// DefaultVersion: a local activity in the run's last workflow task. It ran before the server
// had accepted the run's end: when the server refused that task (a timer fired or a signal
// arrived meanwhile), the retried task could take another path, and the run's next step found
// its session revoked. Runs that began before replay it.
//
// 1: a regular activity, EndSessionActivity, after the workflow function returned. Its side
// effect happens only once the task that scheduled it is in history, so the run's path is
// settled by then; it costs one more round trip through the server. Runs whose workflow task
// did not pass through a CloseWatch still end so.
//
// 2: nothing in the run; the CloseWatch ends the session once the server accepted the task
// that ends the run.
const endByActivity = "oidcflow-end-by-activity"

const (
	endInRun    workflow.Version = 1
	endAfterRun workflow.Version = 2
)

// endSessionInput is the input of EndSessionActivity: activities.EndSessionInput, which this
// package may not import (activities sits above it).
type endSessionInput struct {
	SessionID string `json:"session_id"`
	Holder    string `json:"holder"`
}

// endRun ends the run's session as the run closes, cancelled or not; a failure is logged,
// not returned: the pool's sweeper removes what is left.
func (l *localActivities) endRun(ctx workflow.Context, sessionID, holder string) {
	if sessionID == "" {
		return
	}
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	runID := workflow.GetInfo(ctx).WorkflowExecution.RunID
	// Which way a new end goes depends on this worker; history keeps the choice for replay.
	newest := endInRun
	if workflow.IsReplaying(dctx) || l.closes.watching(runID) {
		newest = endAfterRun
	}
	switch workflow.GetVersion(dctx, endByActivity, workflow.DefaultVersion, newest) {
	case workflow.DefaultVersion:
		l.end(ctx, sessionID, holder)
		return
	case endAfterRun:
		if !workflow.IsReplaying(dctx) {
			l.closes.endAtClose(runID, sessionID, holder)
		}
		return
	}
	actx := workflow.WithActivityOptions(identity.AsPool(dctx), workflow.ActivityOptions{
		StartToCloseTimeout: l.timeout, ScheduleToCloseTimeout: retryFor, RetryPolicy: retries(),
	})
	if err := workflow.ExecuteActivity(actx, EndSessionActivity,
		endSessionInput{SessionID: sessionID, Holder: holder}).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("session not ended; the pool's sweeper removes it", "error", err.Error())
	}
}
