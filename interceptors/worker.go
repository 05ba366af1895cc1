package interceptors

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// Authenticator is what the worker interceptor needs to turn headers into identities. All of
// its methods run inside (local) activities, never in workflow code. NewAuthenticator builds
// the production one; tests may pass a fake.
type Authenticator interface {
	// Open opens the envelope that arrived with op, checks that it commits to op (binding,
	// run, input digest, age, once in the pool) and verifies the ID token in it. With a
	// holder it also deposits the tokens in a session held by op.Holder, and the identity
	// names the session in SessionID.
	Open(ctx context.Context, op Operation, sealed []byte) (*identity.Identity, error)
	// Resume loads the session's current token (refreshed when due) and verifies it.
	Resume(ctx context.Context, sessionID string) (*identity.Identity, error)
	// End releases holder's hold on the session; when no holder is left the refresh token
	// is revoked and the session destroyed. It is idempotent.
	End(ctx context.Context, sessionID, holder string) error
	// Spend records a one-time id (a signal reference's) for owner until `until`; a second
	// owner is refused with an error wrapping identity.ErrUnauthenticated.
	Spend(ctx context.Context, id, owner string, until time.Time) error
	// SpendEnvelope spends an envelope's id for op without honouring it: the start envelope
	// that a signal-with-start carries to a run that may already be running, which the
	// server records with the signal.
	SpendEnvelope(ctx context.Context, op Operation, sealed []byte) error
}

// Operation is what the worker knows of the operation an envelope arrived with; the envelope
// must commit to it.
type Operation struct {
	Binding envelope.Binding
	// RunID is the run handling the operation; RunStart is when the server started it.
	RunID    string
	RunStart time.Time
	// At is when the server recorded the operation: the run's start time for a start, the
	// time of the workflow task that accepts an update or delivers a signal.
	At time.Time
	// Digest is InputDigest of the operation's name and arguments as received.
	Digest []byte
	// Discriminator tells apart operations of one run that share a binding (an update's id).
	Discriminator string `json:",omitempty"`
	// Holder holds the deposited session; "": verify only, deposit nothing.
	Holder string `json:",omitempty"`
}

// owner names the operation in the pool's one-time store: a retry of the same operation may
// spend an id again, nothing else may.
func (op Operation) owner() string {
	b := op.Binding
	return b.Namespace + "/" + b.WorkflowID + "/" + op.RunID + "/" + b.Operation + "/" + op.Discriminator
}

// WorkerOptions configure NewWorkerInterceptor.
type WorkerOptions struct {
	// Authenticator opens envelopes and resumes sessions. Required.
	Authenticator Authenticator
	// PropagationSecrets are the pool's secrets (at least 32 bytes each) from which reference
	// MAC keys are derived; the first signs, all verify, so a rotation lists the new secret
	// first and keeps the old one until running workflows have moved on. Every worker of a
	// pool needs the same list. Required.
	PropagationSecrets [][]byte
	// AllowAnonymous lists workflow types that may start without an identity. Their activities
	// run under the pool's own authority (identity.AsPool), so list only types whose input
	// cannot widen what they do. Default none: every workflow needs an identity.
	AllowAnonymous []string
	// IdentityWorkflows, when not empty, makes identity opt-in per workflow type, so that the
	// interceptor can join a worker that runs other workflows too: the types listed here (and
	// in AllowAnonymous) are handled as described above; every other type passes through
	// untouched. A pass-through run is not checked and carries no identity, and its
	// activities run with none and without the pool's authority: identity.FromActivity fails
	// with identity.ErrUnauthenticated and identity.RequirePool fails, so an activity that
	// begins with identity.Require refuses them. Children and signals of identity workflows
	// that a pass-through run starts or sends fail as if from a client without identity.
	// Default none: every workflow type needs an identity.
	IdentityWorkflows []string
	// ListingSearchAttributes are search attributes that only the worker may set (requester,
	// state, ...): values a client set at start are cleared at the run's first workflow task,
	// before the identity is verified, so a list filtered by them shows only what verified
	// identities wrote, and a run whose identity fails lists under nobody. Memo keys in
	// ListingMemo, and every memo key that starts with "oidcflow.", are cleared likewise.
	// Default none.
	ListingSearchAttributes []ListingKey
	// ListingMemo: see ListingSearchAttributes. Default none.
	ListingMemo []string
	// ReferenceTTL bounds how long a signal reference stays valid after it was sent: a copy
	// taken from history is refused once it is older. Default 1h.
	ReferenceTTL time.Duration
	// VerifyTimeout bounds each attempt of a verification local activity. Default 30s.
	// Transient failures (Vault or the IdP unreachable) are retried with backoff for up to
	// ten minutes; identity errors fail at once.
	VerifyTimeout time.Duration
	// PayloadCodec is the codec of the worker's data converter, when it has one (package
	// payloadcodec: pool.Config.EncryptPayloads). Signal arguments reach the interceptor as
	// history holds them, so they are decoded with it before their digest is matched with the
	// sender's envelope. Default none: arguments are digested as they arrive.
	PayloadCodec converter.PayloadCodec
	// CloseWatch, installed on the worker's client too (CloseWatch.DialOption), ends each
	// run's session once the server accepted the run's end, instead of in one more activity
	// before it. Default none: runs end their sessions in EndSessionActivity.
	CloseWatch *CloseWatch
}

// ListingKey is a search attribute key the worker owns; every temporal.SearchAttributeKey*
// type is one.
type ListingKey interface {
	temporal.SearchAttributeKey
	ValueUnset() temporal.SearchAttributeUpdate
}

// NewWorkerInterceptor returns the worker interceptor: it verifies the identity that arrives
// with starts, updates and signals, records it in history, propagates it to activities,
// local activities, child workflows, continue-as-new and external signals, and refuses every
// activity task that carries neither a person's reference nor the pool's. The worker must
// also register EndSessionActivity (activities.SessionActivities), which ends the sessions of
// runs that WorkerOptions.CloseWatch does not see close.
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
	if opts.ReferenceTTL <= 0 {
		opts.ReferenceTTL = time.Hour
	}
	w := &workerInterceptor{opts: opts, keys: keys}
	w.la = &localActivities{auth: opts.Authenticator, keys: keys, timeout: opts.VerifyTimeout, closes: opts.CloseWatch}
	if opts.CloseWatch != nil {
		opts.CloseWatch.bind(opts.Authenticator.End)
	}
	return w, nil
}

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	opts WorkerOptions
	keys macKeys
	la   *localActivities
}

func (w *workerInterceptor) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	if w.passThrough(workflow.GetInfo(ctx).WorkflowType.Name) {
		return next
	}
	return &workflowInbound{
		WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next},
		root:                           w,
		state: &runState{
			senders: map[string][]sentSignal{}, seen: map[string]bool{}, adopted: map[string]bool{},
		},
	}
}

func (w *workerInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, root: w}
}

func (w *workerInterceptor) anonymous(workflowType string) bool {
	return slices.Contains(w.opts.AllowAnonymous, workflowType)
}

// passThrough reports whether runs of workflowType are left alone (WorkerOptions.IdentityWorkflows).
func (w *workerInterceptor) passThrough(workflowType string) bool {
	return len(w.opts.IdentityWorkflows) > 0 && !slices.Contains(w.opts.IdentityWorkflows, workflowType) &&
		!w.anonymous(workflowType)
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
	senders    map[string][]sentSignal // verified senders of delivered signals, by name
	seen       map[string]bool         // envelopes and reference ids this run honoured
}

// run is the identity.Run of one run: what workflow code reaches through
// identity.SignalSender and identity.AwaitReconsent.
type run struct{ st *runState }

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
	id, err := w.startIdentity(ctx, info, in)
	if err != nil {
		// A run whose identity fails lists under nobody, whoever started it (a child's or a
		// continued run's listing is the pool's only once its reference checks out).
		if cerr := w.root.clearListing(ctx); cerr != nil {
			return nil, cerr
		}
		workflow.GetLogger(ctx).Error("identity refused; the run fails", "error", err.Error())
		return nil, identity.ApplicationError(err)
	}
	ctx = identity.WithRun(ctx, run{w.state})
	workflow.Go(ctx, w.deliverSignals)
	if id == nil { // an AllowAnonymous workflow started without identity
		return w.Next.ExecuteWorkflow(ctx, in)
	}
	ctx = identity.WithWorkflow(ctx, id)
	w.state.starter = id
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoStartedBy: startedBy(id)}); err != nil {
		return nil, err
	}
	if err := workflow.SetUpdateHandler(ctx, identity.ReconsentUpdate, w.reconsent); err != nil {
		return nil, err
	}

	result, err := w.Next.ExecuteWorkflow(ctx, in)
	var can *workflow.ContinueAsNewError
	if w.state.owner && !errors.As(err, &can) {
		w.root.la.endRun(ctx, w.state.starter.SessionID, runHolder(info))
	}
	return result, err
}

// MemoStartedBy is the memo key under which the worker records who started a run (subject,
// issuer, name, email: no secrets).
const MemoStartedBy = "oidcflow.started_by"

// startIdentity verifies what the run was started with: an envelope from a client, or a
// reference from a parent (child workflow) or from the previous run (continue-as-new).
func (w *workflowInbound) startIdentity(ctx workflow.Context, info *workflow.Info, in *interceptor.ExecuteWorkflowInput) (*identity.Identity, error) {
	header := interceptor.WorkflowHeader(ctx)
	var ref reference
	hasRef, refErr := getHeader(header, SessionHeader, &ref)
	fromPool := hasRef && refErr == nil && (info.ContinuedExecutionRunID != "" || info.ParentWorkflowExecution != nil)
	if !fromPool {
		// Whatever a client wrote into the listing is not trusted; a verified identity
		// writes it again.
		if err := w.root.clearListing(ctx); err != nil {
			return nil, err
		}
	}
	var sealed []byte
	hasEnvelope, err := getHeader(header, EnvelopeHeader, &sealed)
	if err != nil {
		return nil, err
	}
	if hasEnvelope {
		digest, err := InputDigest(info.WorkflowType.Name, in.Args...)
		if err != nil {
			return nil, err
		}
		op := Operation{
			Binding:  envelope.Binding{Namespace: info.Namespace, WorkflowID: info.WorkflowExecution.ID, Operation: envelope.OpStart},
			RunID:    info.WorkflowExecution.RunID,
			RunStart: info.WorkflowStartTime,
			At:       info.WorkflowStartTime, // the server's, so a backlog does not age it
			Digest:   digest,
			Holder:   runHolder(info),
		}
		w.state.owner = true
		return w.root.la.open(ctx, op, sealed)
	}
	if refErr != nil {
		return nil, refErr
	}
	switch {
	case hasRef && info.ContinuedExecutionRunID != "":
		w.state.owner = ref.Owner
		return w.root.la.resume(ctx, resumeInput{Ref: ref, Op: opContinue, From: info.ContinuedExecutionRunID})
	case hasRef && info.ParentWorkflowExecution != nil:
		return w.root.la.resume(ctx, resumeInput{Ref: ref, Op: opChild, From: info.ParentWorkflowExecution.RunID})
	case hasRef:
		return nil, ErrBadReference
	case w.root.anonymous(info.WorkflowType.Name):
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
	case !ok && w.root.anonymous(info.WorkflowType.Name):
		return w.Next.ExecuteUpdate(ctx, in)
	case !ok:
		return nil, identity.ApplicationError(ErrNoIdentity)
	}
	seen := envelopeKey(sealed)
	if w.state.seen[seen] {
		return nil, identity.ApplicationError(ErrReplayedEnvelope)
	}
	digest, err := InputDigest(in.Name, in.Args...)
	if err != nil {
		return nil, identity.ApplicationError(err)
	}
	updateID := workflow.GetCurrentUpdateInfo(ctx).ID
	op := Operation{
		Binding:       envelope.Binding{Namespace: info.Namespace, WorkflowID: info.WorkflowExecution.ID, Operation: envelope.UpdateOp(in.Name)},
		RunID:         info.WorkflowExecution.RunID,
		RunStart:      info.WorkflowStartTime,
		At:            workflow.Now(ctx),
		Digest:        digest,
		Discriminator: updateID,
		// The caller's session lives for the handler; a re-consent's becomes the run's.
		Holder: info.WorkflowExecution.ID + "/update/" + updateID,
	}
	if in.Name == identity.ReconsentUpdate {
		op.Holder = runHolder(info)
	}
	caller, err := w.root.la.open(ctx, op, sealed)
	if err != nil {
		return nil, identity.ApplicationError(err)
	}
	w.state.seen[seen] = true
	result, err := w.Next.ExecuteUpdate(identity.WithWorkflow(ctx, caller), in)
	if !w.state.adopted[caller.SessionID] {
		w.root.la.end(ctx, caller.SessionID, op.Holder)
	}
	return result, err
}

// runHolder is the hold of a run's chain (the run, and the runs that continue it: continue-
// as-new, retries, cron) on its session: "<workflow id>/chain/<first run id>"
// (tokenstore.SharedSessions). A new chain under the same workflow id holds apart, so the
// late end of the run before it, which the CloseWatch sends once the server accepted it,
// releases only that run's hold.
func runHolder(info *workflow.Info) string {
	return info.WorkflowExecution.ID + "/chain/" + info.FirstRunID
}

// envelopeKey names a sealed envelope in the run's seen set. Only the sealer can make another
// envelope with the same contents, so the bytes name it.
func envelopeKey(sealed []byte) string {
	d := sha256.Sum256(sealed)
	return fmt.Sprintf("envelope:%x", d)
}

func startedBy(id *identity.Identity) map[string]any {
	return map[string]any{"sub": id.Subject, "iss": id.Issuer, "name": id.Name, "email": id.Email}
}
