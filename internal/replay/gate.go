// Package replay is the deploy gate for workflow code: it replays recorded histories (the
// saved ones in testdata folders, and the open runs of a live namespace) against the current
// workflow code with the real worker interceptors, the way a new worker would take over
// those runs, and reports every run the code no longer replays as it ran, with its workflow
// type, workflow id and the event where the replay departed from the history.
//
// Nothing is reachable during a replay: the interceptors' authenticator is one that fails
// every call (identities come from the local activity results recorded in history), and the
// propagation secret is a placeholder (no workflow code verifies a reference).
package replay

import (
	"log/slog"
	"maps"
	"slices"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/workflows"
)

// Shipped returns the workflow types the worker pool registers, by type name: what every
// open run of a pool's task queue is one of. AdminTask is registered with its default admin
// role; each run recorded the role it checked (a side effect), so the configured role does
// not change a replay.
func Shipped() map[string]any {
	shipped := app.Workflows(defaultAdminRole)
	shipped[workflows.SweeperWorkflow] = workflows.Sweeper // the pool registers it
	return shipped
}

// PoolIdentity returns the worker interceptor's options the pool runs with, but for the
// authenticator and the secrets (New sets those): which types start without identity, and
// which search attributes and memo keys only the worker may set. These change the commands
// a workflow issues, so the gate must use what the pool uses; keep it equal to the pool's
// configuration.
func PoolIdentity() interceptors.WorkerOptions {
	return interceptors.WorkerOptions{
		AllowAnonymous:          []string{workflows.SweeperWorkflow},
		ListingSearchAttributes: app.ListingSearchAttributes,
		ListingMemo:             app.ListingMemo,
	}
}

// defaultAdminRole is OIDCFLOW_ADMIN_ROLE's default: the role only decides whether an
// AdminTask runs its steps, which history records either way.
var defaultAdminRole = config.Default("OIDCFLOW_ADMIN_ROLE")

// placeholderSecret stands for the pool's propagation secrets: no workflow code checks a
// reference's MAC (the checks run in local activities, whose results history holds).
var placeholderSecret = []byte("replay-needs-no-real-secret-0123456789")

// Options configure a Gate.
type Options struct {
	// Workflows are the workflow functions to replay with, by type name. Default Shipped().
	// A history of a type not listed fails the gate (ErrUnknownType).
	Workflows map[string]any
	// Identity is the worker interceptor's configuration. Default PoolIdentity(). Its
	// Authenticator and PropagationSecrets are ignored: the gate's authenticator reaches
	// nothing and the secret is a placeholder.
	Identity *interceptors.WorkerOptions
	// DataConverter decodes the histories' payloads: one with the pool's codec for runs of
	// a pool that encrypts them (interceptors.NewRemoteCodec). Default: the SDK's.
	DataConverter converter.DataConverter
	// Logger receives the SDK's logs of each replay (a failing replay logs the workflow
	// task's failure). Default: discarded.
	Logger *slog.Logger
}

// Gate replays histories with the current workflow code and interceptors.
type Gate struct {
	workflows map[string]any
	converter converter.DataConverter
	identity  interceptors.WorkerOptions
	logger    *slog.Logger
}

// New returns a Gate.
func New(opts Options) (*Gate, error) {
	g := &Gate{workflows: opts.Workflows, logger: opts.Logger, converter: opts.DataConverter}
	if g.workflows == nil {
		g.workflows = Shipped()
	}
	g.workflows = maps.Clone(g.workflows)
	if opts.Identity != nil {
		g.identity = *opts.Identity
	} else {
		g.identity = PoolIdentity()
	}
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	// Build once to report bad options here rather than at the first replay.
	if _, err := g.replayer(&offline{}); err != nil {
		return nil, err
	}
	return g, nil
}

// Types returns the workflow type names the gate replays, sorted.
func (g *Gate) Types() []string { return slices.Sorted(maps.Keys(g.workflows)) }

// Replay replays h. It returns nil when the current code replays h as it ran (or when no
// workflow task of h has completed yet: a run no worker has taken), a *Failure when it does
// not (or when the replay tried to reach Vault or the IdP, or h's type is not registered),
// and another error when h is not a workflow history.
func (g *Gate) Replay(h History) error {
	if err := h.check(); err != nil {
		return err
	}
	typ := h.WorkflowType()
	if _, ok := g.workflows[typ]; !ok {
		return h.failure(ErrUnknownType, nil, nil)
	}
	if !h.ran() {
		return nil
	}
	err := g.replay(h, h.Events.GetEvents())
	if err == nil {
		return nil
	}
	event, task := g.locate(h, err)
	return h.failure(err, event, task)
}

// replay replays events (all of h's, or a prefix) once.
func (g *Gate) replay(h History, events []*historypb.HistoryEvent) error {
	off := &offline{}
	r, err := g.replayer(off)
	if err != nil {
		return err
	}
	opts := worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: h.WorkflowID, RunID: h.RunID},
	}
	err = r.ReplayWorkflowHistoryWithOptions(sdklog.NewStructuredLogger(g.logger), &historypb.History{Events: events}, opts)
	if err == nil {
		err = off.err()
	}
	return err
}

// replayer builds a replayer with every workflow registered under its name and the worker
// interceptor in front.
func (g *Gate) replayer(auth interceptors.Authenticator) (worker.WorkflowReplayer, error) {
	wo := g.identity
	wo.Authenticator = auth
	wo.PropagationSecrets = [][]byte{placeholderSecret}
	wi, err := interceptors.NewWorkerInterceptor(wo)
	if err != nil {
		return nil, err
	}
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		Interceptors: []interceptor.WorkerInterceptor{wi}, DataConverter: g.converter,
	})
	if err != nil {
		return nil, err
	}
	for _, name := range g.Types() {
		r.RegisterWorkflowWithOptions(g.workflows[name], workflow.RegisterOptions{Name: name})
	}
	return r, nil
}
