package interceptors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// Authenticator is what the worker interceptor needs to turn headers into identities. All of
// its methods run inside (local) activities, never in workflow code. NewAuthenticator builds
// the production one; tests may pass a fake.
type Authenticator interface {
	// Open opens a sealed envelope for binding b and verifies the ID token in it. With a
	// holder (the workflow id, or an update of it) it also deposits the tokens in a session
	// held by holder, and the identity names the session in SessionID.
	Open(ctx context.Context, b envelope.Binding, sealed []byte, holder string) (*identity.Identity, error)
	// Resume loads the session's current token (refreshed when due) and verifies it.
	Resume(ctx context.Context, sessionID string) (*identity.Identity, error)
	// End releases holder's hold on the session; when no holder is left the refresh token
	// is revoked and the session destroyed. It is idempotent.
	End(ctx context.Context, sessionID, holder string) error
}

// WorkerOptions configure NewWorkerInterceptor.
type WorkerOptions struct {
	// Authenticator opens envelopes and resumes sessions. Required.
	Authenticator Authenticator
	// PropagationSecrets are the pool's secrets (at least 32 bytes each) from which session
	// reference MAC keys are derived; the first signs, all verify, so a rotation lists the
	// new secret first and keeps the old one until running workflows have moved on. Every
	// worker of a pool needs the same list. Required.
	PropagationSecrets [][]byte
	// AllowAnonymous lists workflow types that may start without an identity. Default none:
	// every workflow needs one.
	AllowAnonymous []string
	// VerifyTimeout bounds each attempt of a verification local activity. Default 30s.
	// Transient failures (Vault or the IdP unreachable) are retried with backoff for up to
	// ten minutes; identity errors fail at once.
	VerifyTimeout time.Duration
}

// NewWorkerInterceptor returns the worker interceptor: it verifies the identity that arrives
// with starts, updates and signals, records it in history, and propagates it to activities,
// local activities, child workflows, continue-as-new and external signals.
func NewWorkerInterceptor(opts WorkerOptions) (interceptor.WorkerInterceptor, error) {
	if opts.Authenticator == nil {
		return nil, fmt.Errorf("interceptors: WorkerOptions.Authenticator is required")
	}
	keys, err := newMACKeys(opts.PropagationSecrets)
	if err != nil {
		return nil, err
	}
	if opts.VerifyTimeout <= 0 {
		opts.VerifyTimeout = 30 * time.Second
	}
	w := &workerInterceptor{opts: opts, keys: keys}
	w.la = &localActivities{auth: opts.Authenticator, keys: keys}
	return w, nil
}

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	opts WorkerOptions
	keys macKeys
	la   *localActivities
}

func (w *workerInterceptor) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &workflowInbound{
		WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next},
		root:                           w,
		state: &runState{
			senders: map[string][]*identity.Identity{}, seen: map[string]bool{}, adopted: map[string]bool{},
		},
	}
}

func (w *workerInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, root: w}
}

// runState is the interceptor's per-run state. It changes only in workflow code, in the
// same order on replay.
type runState struct {
	starter    *identity.Identity // the run's identity; re-consent replaces its session
	reconsents int                // re-consent updates accepted so far
	adopted    map[string]bool    // sessions of updates that became the run's session
	owner      bool               // this run ends the session when it closes
	seq        int                // counter for signal reference ids
	pending    []pendingSignal
	senders    map[string][]*identity.Identity // verified senders of delivered signals, FIFO
	seen       map[string]bool                 // signal reference ids already accepted
}

type pendingSignal struct {
	ctx    workflow.Context
	in     *interceptor.HandleSignalInput
	sealed []byte
	ref    *reference
}

type stateKey struct{}

// SignalSender returns the verified identity of whoever sent the oldest delivered, not yet
// asked about signal of that name, or nil when it carried none. Call it once after each
// receive from the signal's channel.
func SignalSender(ctx workflow.Context, signalName string) *identity.Identity {
	st, _ := ctx.Value(stateKey{}).(*runState)
	if st == nil || len(st.senders[signalName]) == 0 {
		return nil
	}
	id := st.senders[signalName][0]
	st.senders[signalName] = st.senders[signalName][1:]
	return id
}

type workflowInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	root  *workerInterceptor
	state *runState
}

func (w *workflowInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return w.Next.Init(&workflowOutbound{
		WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound},
		root:                            w.root,
		state:                           w.state,
	})
}

func (w *workflowInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	info := workflow.GetInfo(ctx)
	id, err := w.startIdentity(ctx, info)
	if err != nil {
		workflow.GetLogger(ctx).Error("identity refused; the run fails", "error", err.Error())
		return nil, identity.ApplicationError(err)
	}
	ctx = workflow.WithValue(ctx, stateKey{}, w.state)
	workflow.Go(ctx, w.deliverSignals)
	if id == nil { // an AllowAnonymous workflow started without identity
		return w.Next.ExecuteWorkflow(ctx, in)
	}
	ctx = identity.WithWorkflow(ctx, id)
	w.state.starter = id
	if err := workflow.UpsertMemo(ctx, map[string]any{"oidcflow.started_by": startedBy(id)}); err != nil {
		return nil, err
	}
	if err := workflow.SetUpdateHandler(ctx, ReconsentUpdate, w.reconsent); err != nil {
		return nil, err
	}

	result, err := w.Next.ExecuteWorkflow(ctx, in)
	var can *workflow.ContinueAsNewError
	if w.state.owner && !errors.As(err, &can) {
		w.root.la.end(ctx, w.root.opts.VerifyTimeout, w.state.starter.SessionID, info.WorkflowExecution.ID)
	}
	return result, err
}

// ReconsentUpdate is the update that renews the consent of a run whose session can no longer
// be refreshed (identity.TypeReauthRequired): the starter sends it with a fresh login, and
// the run continues on the new session. Only the starter (same issuer and subject) may.
const ReconsentUpdate = "oidcflow.reconsent"

// reconsent adopts the caller's new session as the run's, ends the old one, and wakes
// AwaitReconsent.
func (w *workflowInbound) reconsent(ctx workflow.Context) error {
	caller, err := identity.FromWorkflow(ctx)
	if err != nil {
		return err
	}
	starter := w.state.starter
	if caller.Issuer != starter.Issuer || caller.Subject != starter.Subject {
		return identity.ApplicationError(&identity.DeniedError{Subject: caller.Subject,
			Reason: "only " + starter.Subject + ", who started this run, can renew its consent"})
	}
	old := starter.SessionID
	*starter = *caller // every holder of the run's identity now sees the new session and claims
	w.state.adopted[caller.SessionID] = true
	if w.state.owner && old != caller.SessionID {
		w.root.la.end(ctx, w.root.opts.VerifyTimeout, old, workflow.GetInfo(ctx).WorkflowExecution.ID)
	}
	w.state.owner = true
	w.state.reconsents++
	return nil
}

// AwaitReconsent blocks until the run's starter renews consent through ReconsentUpdate.
// Workflows call it when an activity failed with identity.TypeReauthRequired: the run parks
// instead of failing, and resumes on the new session.
func AwaitReconsent(ctx workflow.Context) error {
	st, _ := ctx.Value(stateKey{}).(*runState)
	if st == nil {
		return ErrNoIdentity
	}
	n := st.reconsents
	return workflow.Await(ctx, func() bool { return st.reconsents > n })
}

// startIdentity verifies what the run was started with: an envelope from a client, or a
// reference from a parent (child workflow) or from the previous run (continue-as-new).
func (w *workflowInbound) startIdentity(ctx workflow.Context, info *workflow.Info) (*identity.Identity, error) {
	header := interceptor.WorkflowHeader(ctx)
	var sealed []byte
	hasEnvelope, err := getHeader(header, EnvelopeHeader, &sealed)
	if err != nil {
		return nil, err
	}
	if hasEnvelope {
		b := envelope.Binding{Namespace: info.Namespace, WorkflowID: info.WorkflowExecution.ID, Operation: "start"}
		w.state.owner = true
		return w.root.la.open(ctx, w.root.opts.VerifyTimeout, b, sealed, info.WorkflowExecution.ID)
	}
	var ref reference
	hasRef, err := getHeader(header, SessionHeader, &ref)
	if err != nil {
		return nil, err
	}
	switch {
	case hasRef && info.ContinuedExecutionRunID != "":
		w.state.owner = ref.Owner
		return w.root.la.resume(ctx, w.root.opts.VerifyTimeout, ref, opContinue, "", info.ContinuedExecutionRunID)
	case hasRef && info.ParentWorkflowExecution != nil:
		return w.root.la.resume(ctx, w.root.opts.VerifyTimeout, ref, opChild, "", info.ParentWorkflowExecution.RunID)
	case hasRef:
		return nil, ErrBadReference
	case slices.Contains(w.root.opts.AllowAnonymous, info.WorkflowType.Name):
		return nil, nil
	}
	return nil, ErrNoIdentity
}

// ExecuteUpdate verifies the caller's own envelope before the handler runs, so the handler
// sees the caller (an approver, say) through identity.FromWorkflow. A refusal fails the
// update, which history records. The caller's session lives as long as the handler.
func (w *workflowInbound) ExecuteUpdate(ctx workflow.Context, in *interceptor.UpdateInput) (any, error) {
	info := workflow.GetInfo(ctx)
	var sealed []byte
	ok, err := getHeader(interceptor.WorkflowHeader(ctx), EnvelopeHeader, &sealed)
	switch {
	case err != nil:
		return nil, identity.ApplicationError(err)
	case !ok && slices.Contains(w.root.opts.AllowAnonymous, info.WorkflowType.Name):
		return w.Next.ExecuteUpdate(ctx, in)
	case !ok:
		return nil, identity.ApplicationError(ErrNoIdentity)
	}
	b := envelope.Binding{Namespace: info.Namespace, WorkflowID: info.WorkflowExecution.ID, Operation: "update:" + in.Name}
	// The caller's session lives for the handler; a re-consent's becomes the run's.
	holder := info.WorkflowExecution.ID + "/update/" + workflow.GetCurrentUpdateInfo(ctx).ID
	if in.Name == ReconsentUpdate {
		holder = info.WorkflowExecution.ID
	}
	caller, err := w.root.la.open(ctx, w.root.opts.VerifyTimeout, b, sealed, holder)
	if err != nil {
		return nil, identity.ApplicationError(err)
	}
	result, err := w.Next.ExecuteUpdate(identity.WithWorkflow(ctx, caller), in)
	if !w.state.adopted[caller.SessionID] {
		w.root.la.end(ctx, w.root.opts.VerifyTimeout, caller.SessionID, holder)
	}
	return result, err
}

// HandleSignal queues a signal that carries an identity; deliverSignals verifies and
// delivers queued signals in arrival order. HandleSignal itself may not block.
func (w *workflowInbound) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	header := interceptor.WorkflowHeader(ctx)
	p := pendingSignal{ctx: ctx, in: in}
	key := EnvelopeHeader
	if header[SignalEnvelopeHeader] != nil { // a signal-with-start: the other one is the start's
		key = SignalEnvelopeHeader
	}
	hasEnvelope, err := getHeader(header, key, &p.sealed)
	if err != nil {
		hasEnvelope, p.sealed = false, nil // delivered without a sender
	}
	var ref reference
	if ok, err := getHeader(header, SessionHeader, &ref); ok && err == nil {
		p.ref = &ref
	}
	if !hasEnvelope && p.ref == nil && len(w.state.pending) == 0 {
		w.state.senders[in.SignalName] = append(w.state.senders[in.SignalName], nil)
		return w.Next.HandleSignal(ctx, in)
	}
	w.state.pending = append(w.state.pending, p)
	return nil
}

func (w *workflowInbound) deliverSignals(ctx workflow.Context) {
	for {
		if err := workflow.Await(ctx, func() bool { return len(w.state.pending) > 0 }); err != nil {
			return
		}
		p := w.state.pending[0]
		w.state.pending = w.state.pending[1:]
		sender := w.signalSender(ctx, p)
		w.state.senders[p.in.SignalName] = append(w.state.senders[p.in.SignalName], sender)
		if err := w.Next.HandleSignal(p.ctx, p.in); err != nil {
			workflow.GetLogger(ctx).Error("signal not delivered", "signal", p.in.SignalName, "error", err.Error())
		}
	}
}

// signalSender verifies a queued signal's identity; a signal that fails verification is
// still delivered (Temporal cannot refuse a signal) but with no sender, and logged.
func (w *workflowInbound) signalSender(ctx workflow.Context, p pendingSignal) *identity.Identity {
	info := workflow.GetInfo(ctx)
	timeout := w.root.opts.VerifyTimeout
	var id *identity.Identity
	var err error
	switch {
	case p.sealed != nil:
		// An envelope is accepted once per run: a copy taken from history and sent again
		// does not speak for its sealer a second time.
		digest := sha256.Sum256(p.sealed)
		seen := "envelope:" + hex.EncodeToString(digest[:])
		b := envelope.Binding{Namespace: info.Namespace, WorkflowID: info.WorkflowExecution.ID, Operation: "signal:" + p.in.SignalName}
		if w.state.seen[seen] {
			err = fmt.Errorf("interceptors: this signal's envelope was used before: %w", ErrBadReference)
		} else if id, err = w.root.la.open(ctx, timeout, b, p.sealed, ""); err == nil {
			w.state.seen[seen] = true
		}
	case p.ref != nil:
		target := info.Namespace + "/" + info.WorkflowExecution.ID
		id, err = w.root.la.resume(ctx, timeout, *p.ref, opSignal+p.in.SignalName, target, p.ref.From)
		// A reference is accepted once; only a verified one marks its id as used, so a
		// forged copy cannot spend the id of a signal still to come.
		if err == nil && w.state.seen[p.ref.From] {
			err = ErrBadReference
		}
		if err == nil {
			w.state.seen[p.ref.From] = true
		}
	}
	if err != nil {
		workflow.GetLogger(ctx).Warn("signal identity refused; delivered without a sender",
			"signal", p.in.SignalName, "error", err.Error())
		return nil
	}
	return id
}

func startedBy(id *identity.Identity) map[string]any {
	return map[string]any{"sub": id.Subject, "iss": id.Issuer, "name": id.Name, "email": id.Email}
}

// workflowOutbound attaches session references to everything a workflow sends out.
type workflowOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	root  *workerInterceptor
	state *runState
}

// attach writes a signed reference for the identity in ctx, if any, into the call's header.
func (w *workflowOutbound) attach(ctx workflow.Context, r reference) {
	id, err := identity.FromWorkflow(ctx)
	if err != nil || id.SessionID == "" {
		return
	}
	r.Session, r.Subject = id.SessionID, id.Subject
	if r.Op != opActivity && r.Sender == nil {
		// The receiving run starts from the identity verified here, without a round trip to
		// Vault and the IdP; its activities check a fresh token as always.
		sender := *id
		sender.SessionID = ""
		r.Sender = &sender
	}
	w.root.keys.sign(&r)
	if err := setHeader(interceptor.WorkflowHeader(ctx), SessionHeader, r); err != nil {
		w.Next.GetLogger(ctx).Warn("session reference not attached", "error", err.Error())
	}
}

func (w *workflowOutbound) runID(ctx workflow.Context) string {
	return workflow.GetInfo(ctx).WorkflowExecution.RunID
}

func (w *workflowOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	w.attach(ctx, reference{Op: opActivity, From: w.runID(ctx)})
	return w.Next.ExecuteActivity(ctx, activityType, args...)
}

func (w *workflowOutbound) ExecuteLocalActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	if ctx.Value(internalKey{}) == nil {
		w.attach(ctx, reference{Op: opActivity, From: w.runID(ctx)})
	}
	return w.Next.ExecuteLocalActivity(ctx, activityType, args...)
}

func (w *workflowOutbound) ExecuteChildWorkflow(ctx workflow.Context, childWorkflowType string, args ...any) workflow.ChildWorkflowFuture {
	w.attach(ctx, reference{Op: opChild, From: w.runID(ctx)})
	return w.Next.ExecuteChildWorkflow(ctx, childWorkflowType, args...)
}

func (w *workflowOutbound) NewContinueAsNewError(ctx workflow.Context, wfn any, args ...any) error {
	w.attach(ctx, reference{Op: opContinue, From: w.runID(ctx), Owner: w.state.owner})
	return w.Next.NewContinueAsNewError(ctx, wfn, args...)
}

func (w *workflowOutbound) NewContinueAsNewErrorWithOptions(ctx workflow.Context, options workflow.ContinueAsNewErrorOptions, wfn any, args ...any) error {
	w.attach(ctx, reference{Op: opContinue, From: w.runID(ctx), Owner: w.state.owner})
	return w.Next.NewContinueAsNewErrorWithOptions(ctx, options, wfn, args...)
}

func (w *workflowOutbound) signalRef(ctx workflow.Context, workflowID, signalName string) {
	info := workflow.GetInfo(ctx)
	w.state.seq++
	w.attach(ctx, reference{
		Op:     opSignal + signalName,
		Target: info.Namespace + "/" + workflowID,
		From:   fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, w.state.seq),
	})
}

func (w *workflowOutbound) SignalExternalWorkflow(ctx workflow.Context, workflowID, runID, signalName string, arg any) workflow.Future {
	w.signalRef(ctx, workflowID, signalName)
	return w.Next.SignalExternalWorkflow(ctx, workflowID, runID, signalName, arg)
}

func (w *workflowOutbound) SignalExternalWorkflowWithOptions(ctx workflow.Context, workflowID, runID, signalName string, arg any, options workflow.SignalExternalWorkflowOptions) workflow.Future {
	w.signalRef(ctx, workflowID, signalName)
	return w.Next.SignalExternalWorkflowWithOptions(ctx, workflowID, runID, signalName, arg, options)
}

func (w *workflowOutbound) SignalChildWorkflow(ctx workflow.Context, workflowID, signalName string, arg any) workflow.Future {
	w.signalRef(ctx, workflowID, signalName)
	return w.Next.SignalChildWorkflow(ctx, workflowID, signalName, arg)
}

func (w *workflowOutbound) SignalChildWorkflowWithOptions(ctx workflow.Context, workflowID, signalName string, arg any, options workflow.SignalChildWorkflowOptions) workflow.Future {
	w.signalRef(ctx, workflowID, signalName)
	return w.Next.SignalChildWorkflowWithOptions(ctx, workflowID, signalName, arg, options)
}

// GetLogger adds the acting subject to every workflow log line.
func (w *workflowOutbound) GetLogger(ctx workflow.Context) log.Logger {
	logger := w.Next.GetLogger(ctx)
	if id, err := identity.FromWorkflow(ctx); err == nil {
		return log.With(logger, "subject", id.Subject)
	}
	return logger
}

// activityInbound resumes the session a reference names and puts the fresh identity into
// the activity context.
type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	root *workerInterceptor
}

func (a *activityInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	return a.Next.Init(&activityOutbound{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}})
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	var ref reference
	ok, err := getHeader(interceptor.Header(ctx), SessionHeader, &ref)
	if err != nil {
		return nil, identity.ApplicationError(err)
	}
	if !ok {
		return a.Next.ExecuteActivity(ctx, in)
	}
	if err := a.root.keys.verify(&ref, opActivity, "", activity.GetInfo(ctx).WorkflowExecution.RunID); err != nil {
		return nil, identity.ApplicationError(err)
	}
	id, err := a.root.la.resumeSession(ctx, ref)
	if err != nil {
		return nil, err
	}
	return a.Next.ExecuteActivity(identity.WithActivity(ctx, id), in)
}

type activityOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
}

// GetLogger adds the subject to every activity log line.
func (a *activityOutbound) GetLogger(ctx context.Context) log.Logger {
	logger := a.Next.GetLogger(ctx)
	if id, err := identity.FromActivity(ctx); err == nil {
		return log.With(logger, "subject", id.Subject)
	}
	return logger
}

// localActivities run the Authenticator where I/O is allowed; their results (identities, no
// secrets) are recorded in history, so replay never repeats the I/O.
type localActivities struct {
	auth Authenticator
	keys macKeys
}

// internalKey marks the context of the local activities below, which carry no reference.
type internalKey struct{}

// openInput is the input of the OidcflowOpen local activity.
type openInput struct {
	Binding envelope.Binding
	Sealed  []byte
	Holder  string // "": verify only
}

// endInput is the input of the OidcflowEnd local activity.
type endInput struct {
	Session string
	Holder  string
}

// resumeInput is the input of the OidcflowResume local activity: a reference and the binding
// the receiver expects.
type resumeInput struct {
	Ref    reference
	Op     string
	Target string
	From   string
}

func (l *localActivities) OidcflowOpen(ctx context.Context, in openInput) (*identity.Identity, error) {
	id, err := l.auth.Open(ctx, in.Binding, in.Sealed, in.Holder)
	if err != nil {
		return nil, identity.ApplicationError(err)
	}
	return id, nil
}

func (l *localActivities) OidcflowResume(ctx context.Context, in resumeInput) (*identity.Identity, error) {
	if err := l.keys.verify(&in.Ref, in.Op, in.Target, in.From); err != nil {
		return nil, identity.ApplicationError(err)
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

func (l *localActivities) OidcflowEnd(ctx context.Context, in endInput) error {
	return l.auth.End(ctx, in.Session, in.Holder)
}

func laContext(ctx workflow.Context, timeout time.Duration) workflow.Context {
	ctx = workflow.WithValue(ctx, internalKey{}, true)
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    timeout,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
		},
	})
}

func (l *localActivities) open(ctx workflow.Context, timeout time.Duration, b envelope.Binding, sealed []byte, holder string) (*identity.Identity, error) {
	var id *identity.Identity
	err := workflow.ExecuteLocalActivity(laContext(ctx, timeout), l.OidcflowOpen,
		openInput{Binding: b, Sealed: sealed, Holder: holder}).Get(ctx, &id)
	return id, err
}

func (l *localActivities) resume(ctx workflow.Context, timeout time.Duration, ref reference, op, target, from string) (*identity.Identity, error) {
	var id *identity.Identity
	err := workflow.ExecuteLocalActivity(laContext(ctx, timeout), l.OidcflowResume,
		resumeInput{Ref: ref, Op: op, Target: target, From: from}).Get(ctx, &id)
	return id, err
}

// end closes a session even when the run was cancelled; a failure is logged, not returned:
// the session then expires in the token store.
func (l *localActivities) end(ctx workflow.Context, timeout time.Duration, sessionID, holder string) {
	if sessionID == "" {
		return
	}
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if err := workflow.ExecuteLocalActivity(laContext(dctx, timeout), l.OidcflowEnd,
		endInput{Session: sessionID, Holder: holder}).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("session not ended; it expires in the token store", "error", err.Error())
	}
}
