// Package app is oidcflow's own worker: a pool member (package pool) with oidcflow's
// workflows (access requests, invoice approvals, admin tasks, keep-alive) and its database
// and notification activities registered. The worker binary and the integration tests both
// use it, so what the tests prove is what the binary runs.
package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/pool"
	"github.com/oidcflow/oidcflow/telemetry"
	"github.com/oidcflow/oidcflow/tokenstore"
	"github.com/oidcflow/oidcflow/workflows"
)

// MinSweepInterval is the shortest OIDCFLOW_SWEEP_INTERVAL.
const MinSweepInterval = pool.MinSweepInterval

// WorkerOptions configure NewWorker.
type WorkerOptions struct {
	// Env is the configuration (config.Vars). Required.
	Env *config.Env
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Register adds more workflows and activities (tests register the conformance set).
	// A workflow type registered without a versioning behaviour
	// (workflow.RegisterOptions.VersioningBehavior) is pinned when the worker is versioned
	// (pool.Config.DefaultVersioningBehavior).
	Register func(worker.Registry)
	// AllowAnonymous lists more workflow types that may run without identity. Default none;
	// workflows.SweeperWorkflow, which the pool's schedule starts, is always allowed.
	AllowAnonymous []string
	// Refresher adjusts the session refresher's options before it is built (tests: hooks).
	Refresher func(*tokenstore.RefresherOptions)
	// Authenticator adjusts the authenticator's options before it is built (benchmarks: the
	// one-time store).
	Authenticator func(*interceptors.AuthenticatorOptions)
	// Worker adjusts the Temporal worker options before the worker is built.
	Worker func(*worker.Options)
	// Telemetry receives the SDK's and oidcflow's metrics and oidcflow's spans. Default:
	// telemetry.New with its defaults (pool.Config.Telemetry).
	Telemetry *telemetry.Telemetry
}

// Worker is one member of oidcflow's worker pool.
type Worker struct {
	*pool.Pool

	closers []func()
}

// ListingSearchAttributes and ListingMemo are the search attributes and memo keys of
// oidcflow's workflows that only the worker may set (pool.Config's fields of those names).
// They change the commands a run issues, so the replay gate uses them too.
var (
	ListingSearchAttributes = []interceptors.ListingKey{workflows.RequesterKey, workflows.RequesterDepartmentKey,
		workflows.ResourceKey, workflows.ApprovalStateKey, workflows.ApproversKey}
	ListingMemo = []string{workflows.MemoRequester}
)

// Workflows returns oidcflow's workflow functions by type name, as its worker registers them
// (the pool registers the Sweeper); adminRole is OIDCFLOW_ADMIN_ROLE.
func Workflows(adminRole string) map[string]any {
	return map[string]any{
		workflows.AccessRequestWorkflow:   workflows.AccessRequest,
		workflows.InvoiceApprovalWorkflow: workflows.InvoiceApproval,
		workflows.AdminTaskWorkflow:       workflows.NewAdminTask(workflows.AdminTaskOptions{AdminRole: adminRole}),
		workflows.KeepAliveWorkflow:       workflows.KeepAlive,
	}
}

// Config returns the pool configuration of opts: the environment's, with oidcflow's listing
// keys, sweeper and the options' hooks.
func Config(opts *WorkerOptions) (pool.Config, error) {
	cfg, err := pool.FromLookup(opts.Env.Lookup)
	if err != nil {
		return pool.Config{}, err
	}
	cfg.Logger = opts.Logger
	cfg.Telemetry = opts.Telemetry
	cfg.AllowAnonymous = opts.AllowAnonymous
	cfg.ListingSearchAttributes = ListingSearchAttributes
	cfg.ListingMemo = ListingMemo
	cfg.Sweeper = workflows.Sweeper // with the database grants step
	cfg.Hooks = pool.Hooks{Refresher: opts.Refresher, Authenticator: opts.Authenticator, Worker: opts.Worker}
	return cfg, nil
}

// NewParts builds the identity machinery of a worker without Temporal (pool.NewParts).
func NewParts(ctx context.Context, opts WorkerOptions) (*pool.Parts, error) {
	cfg, err := Config(&opts)
	if err != nil {
		return nil, err
	}
	return pool.NewParts(ctx, cfg)
}

// NewWorker connects to Vault, Temporal and PostgreSQL and builds a worker; Run starts it.
func NewWorker(ctx context.Context, opts WorkerOptions) (w *Worker, err error) {
	cfg, err := Config(&opts)
	if err != nil {
		return nil, err
	}
	p, err := pool.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	w = &Worker{Pool: p}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if err := w.register(ctx, opts.Env, opts.Logger, opts.Register); err != nil {
		return nil, err
	}
	return w, nil
}

// Versioning is the Worker Deployment Versioning behaviour of each of oidcflow's workflow
// types, which the worker uses when it is versioned (OIDCFLOW_BUILD_ID; ignored otherwise).
// The pool registers its sweeper pinned itself.
//
// Auto-upgrade: AccessRequest, InvoiceApproval and KeepAlive wait hours to weeks (approvals,
// grants that last their duration, sessions kept fresh for days). Pinned, each would keep
// its build's workers alive until it ended, and a grant or session would be revoked, and a
// fresh token checked, by code that may be weeks old: the fix of a revocation bug would not
// reach the runs that hold grants. Auto-upgrade moves them to each new current build at
// their next workflow task, so whatever code is current revokes and re-checks. The price:
// every change to their workflow code must be patched with workflow.GetVersion (the old
// branch kept until no run needs it) and pass `make replay-check` against the saved
// histories and the open runs before it is deployed.
//
// Pinned: AdminTask (and the Sweeper) run for seconds to minutes; a run finishes on the
// build it started on, so their code may change freely between builds, and the old build
// drains within minutes.
var Versioning = map[string]workflow.VersioningBehavior{
	workflows.AccessRequestWorkflow:   workflow.VersioningBehaviorAutoUpgrade,
	workflows.InvoiceApprovalWorkflow: workflow.VersioningBehaviorAutoUpgrade,
	workflows.KeepAliveWorkflow:       workflow.VersioningBehaviorAutoUpgrade,
	workflows.AdminTaskWorkflow:       workflow.VersioningBehaviorPinned,
}

// register adds oidcflow's workflows and activities (and the caller's extras).
func (w *Worker) register(ctx context.Context, env *config.Env, logger *slog.Logger, extra func(worker.Registry)) error {
	if logger == nil {
		logger = slog.Default()
	}
	adminRole := env.String("OIDCFLOW_ADMIN_ROLE")
	for name, fn := range Workflows(adminRole) {
		w.Worker.RegisterWorkflowWithOptions(fn, workflow.RegisterOptions{Name: name, VersioningBehavior: Versioning[name]})
	}
	if pgURL := env.String("OIDCFLOW_POSTGRES_URL"); pgURL != "" {
		db, err := pgxpool.New(ctx, pgURL)
		if err != nil {
			return fmt.Errorf("app: OIDCFLOW_POSTGRES_URL: %w", err)
		}
		w.closers = append(w.closers, db.Close)
		w.Worker.RegisterActivity(&activities.DatabaseActivities{
			DB: db, AdminRole: adminRole, Runs: activities.TemporalRuns{Client: w.Client}, Logger: logger,
		})
	} else {
		logger.Warn("OIDCFLOW_POSTGRES_URL is not set; database grants are not available on this worker")
	}
	w.Worker.RegisterActivity(&activities.NotifyActivities{WebhookURL: env.String("OIDCFLOW_WEBHOOK_URL"), Logger: logger})
	if extra != nil {
		extra(w.Worker)
	}
	return nil
}

// Close releases connections. It is safe to call more than once.
func (w *Worker) Close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
	w.closers = nil
	w.Pool.Close()
}
