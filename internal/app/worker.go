// Package app wires oidcflow's parts into a running worker: Vault login, the pool's envelope
// keys, the ID token verifier, the session store and refresher, the interceptors, and the
// workflows and activities. The worker binary and the integration tests both use it, so
// what the tests prove is what the binary runs.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/internal/metrics"
	"github.com/oidcflow/oidcflow/tokenstore"
	"github.com/oidcflow/oidcflow/tokenstore/vaultauth"
	"github.com/oidcflow/oidcflow/tokenstore/workercreds"
	"github.com/oidcflow/oidcflow/workflows"
)

// WorkerOptions configure NewWorker.
type WorkerOptions struct {
	// Env is the configuration (config.Vars). Required.
	Env *config.Env
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Register adds more workflows and activities (tests register the conformance set).
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
	// Metrics receives the SDK's and oidcflow's metrics. Default: a new registry.
	Metrics *metrics.Registry
}

// Parts are the identity machinery of a worker, without Temporal: what NewWorker puts into
// a worker, and what time-skipping tests put into a test environment.
type Parts struct {
	Vault        *vault.Client
	Verifier     *identity.Verifier
	Store        *tokenstore.Store
	Refresher    *tokenstore.Refresher
	Interceptors []interceptor.WorkerInterceptor // identity first, then denial counting
	Sessions     *activities.SessionActivities
	Logger       *slog.Logger
	Metrics      *metrics.Registry

	vaultAuth *vaultauth.Session
	leftovers *leftovers
}

// Worker is one member of a worker pool.
type Worker struct {
	*Parts
	Client client.Client
	Worker worker.Worker

	queue      string
	sweepEvery time.Duration // 0: the schedule is left alone
	closers    []func()
}

// NewParts logs in to Vault, loads the pool's keys and builds the verifier, the session
// store and refresher, and the worker interceptors.
func NewParts(ctx context.Context, opts WorkerOptions) (*Parts, error) {
	env := opts.Env
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	w := &Parts{Logger: logger, Metrics: opts.Metrics}
	var err error
	if w.Vault, w.vaultAuth, err = VaultClient(ctx, env, logger); err != nil {
		return nil, err
	}
	mount := env.String("OIDCFLOW_VAULT_KV_MOUNT")
	ring, secrets, err := LoadKeyring(ctx, w.Vault, mount, env.String("OIDCFLOW_ENVELOPE_KEYS_PATH"))
	if err != nil {
		return nil, err
	}
	if w.Verifier, err = NewVerifier(ctx, env); err != nil {
		return nil, err
	}
	if w.Store, err = tokenstore.NewStore(tokenstore.StoreOptions{Client: w.Vault, Mount: mount}); err != nil {
		return nil, err
	}
	skew, err := env.Duration("OIDCFLOW_REFRESH_SKEW")
	if err != nil {
		return nil, err
	}
	ro := tokenstore.RefresherOptions{
		Store:   w.Store,
		OAuth2:  oauth2.Config{ClientID: env.String("OIDCFLOW_CLIENT_ID")},
		Issuer:  env.String("OIDCFLOW_ISSUER"),
		Checker: w.Verifier,
		Skew:    skew,
		Logger:  logger,
	}
	counts := &refreshCounter{
		refreshes: opts.Metrics.Counter(MetricRefreshes, nil),
		failures:  opts.Metrics.Counter(MetricRefreshFailures, nil),
	}
	ro.OnRefreshed = func(context.Context, string) { counts.refreshes.Inc() }
	if opts.Refresher != nil {
		opts.Refresher(&ro)
	}
	if w.Refresher, err = tokenstore.NewRefresher(ro); err != nil {
		return nil, err
	}
	idKey, err := LoadSessionIDKey(ctx, w.Vault, mount, SessionIDKeyPath, secrets[0])
	if err != nil {
		return nil, err
	}
	oneTime, err := tokenstore.NewOneTime(tokenstore.OneTimeOptions{Client: w.Vault, Mount: mount})
	if err != nil {
		return nil, err
	}
	maxAge, err := env.Duration("OIDCFLOW_ENVELOPE_MAX_AGE")
	if err != nil {
		return nil, err
	}
	maxBacklog, err := env.Duration("OIDCFLOW_MAX_BACKLOG")
	if err != nil {
		return nil, err
	}
	leeway, err := env.Duration("OIDCFLOW_LEEWAY")
	if err != nil {
		return nil, err
	}
	sess := &sessions{
		store: w.Store, refresher: w.Refresher, counts: counts, vault: w.Vault, mount: mount,
		kv: w.Vault.KVv2(mount), prefix: "sessions/holders", idKey: idKey,
	}
	w.leftovers = &leftovers{sessions: sess, oneTime: oneTime}
	ao := interceptors.AuthenticatorOptions{
		Keyring:    ring,
		Verifier:   w.Verifier,
		OneTime:    oneTime,
		MaxAge:     maxAge,
		MaxBacklog: maxBacklog,
		Leeway:     leeway,
		Sessions:   sess,
	}
	if opts.Authenticator != nil {
		opts.Authenticator(&ao)
	}
	auth, err := interceptors.NewAuthenticator(ao)
	if err != nil {
		return nil, err
	}
	wi, err := interceptors.NewWorkerInterceptor(interceptors.WorkerOptions{
		Authenticator:      newCountingAuth(auth, opts.Metrics),
		PropagationSecrets: secrets,
		AllowAnonymous:     append(slices.Clone(opts.AllowAnonymous), workflows.SweeperWorkflow),
		ReferenceTTL:       maxBacklog,
		ListingSearchAttributes: []interceptors.ListingKey{workflows.RequesterKey, workflows.RequesterDepartmentKey,
			workflows.ResourceKey, workflows.ApprovalStateKey, workflows.ApproversKey},
		ListingMemo: []string{workflows.MemoRequester},
	})
	if err != nil {
		return nil, err
	}
	deny := &denials{activities: opts.Metrics.Counter(MetricDenials, map[string]string{"surface": "activity"})}
	w.Interceptors = []interceptor.WorkerInterceptor{wi, deny}
	w.Sessions = &activities.SessionActivities{Refresher: w.Refresher, Sweeper: w.leftovers, Logger: logger}
	return w, nil
}

// NewWorker connects to Vault, Temporal and PostgreSQL and builds a worker; Run starts it.
func NewWorker(ctx context.Context, opts WorkerOptions) (w *Worker, err error) {
	parts, err := NewParts(ctx, opts)
	if err != nil {
		return nil, err
	}
	env, logger := opts.Env, parts.Logger
	w = &Worker{Parts: parts}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if w.Client, err = DialTemporal(ctx, env, logger, parts.Metrics); err != nil {
		return nil, err
	}
	wo := worker.Options{Interceptors: parts.Interceptors}
	if n, err := env.Int("OIDCFLOW_MAX_CONCURRENT_ACTIVITIES"); err != nil {
		return nil, err
	} else if n > 0 {
		wo.MaxConcurrentActivityExecutionSize = n
	}
	if n, err := env.Int("OIDCFLOW_MAX_CONCURRENT_WORKFLOW_TASKS"); err != nil {
		return nil, err
	} else if n > 0 {
		wo.MaxConcurrentWorkflowTaskExecutionSize = n
	}
	if wo.WorkerStopTimeout, err = env.Duration("OIDCFLOW_SHUTDOWN_TIMEOUT"); err != nil {
		return nil, err
	}
	if opts.Worker != nil {
		opts.Worker(&wo)
	}
	w.queue = env.String("OIDCFLOW_TASK_QUEUE")
	if w.sweepEvery, err = sweepInterval(env.Duration("OIDCFLOW_SWEEP_INTERVAL")); err != nil {
		return nil, err
	}
	w.Worker = worker.New(w.Client, w.queue, wo)

	if err := w.register(ctx, env, opts.Register); err != nil {
		return nil, err
	}
	return w, nil
}

// register adds oidcflow's workflows and activities (and the caller's extras).
func (w *Worker) register(ctx context.Context, env *config.Env, extra func(worker.Registry)) error {
	adminRole := env.String("OIDCFLOW_ADMIN_ROLE")
	for name, fn := range map[string]any{
		workflows.AccessRequestWorkflow:   workflows.AccessRequest,
		workflows.InvoiceApprovalWorkflow: workflows.InvoiceApproval,
		workflows.AdminTaskWorkflow:       workflows.NewAdminTask(workflows.AdminTaskOptions{AdminRole: adminRole}),
		workflows.KeepAliveWorkflow:       workflows.KeepAlive,
		workflows.SweeperWorkflow:         workflows.Sweeper,
	} {
		w.Worker.RegisterWorkflowWithOptions(fn, workflow.RegisterOptions{Name: name})
	}
	if pgURL := env.String("OIDCFLOW_POSTGRES_URL"); pgURL != "" {
		pool, err := pgxpool.New(ctx, pgURL)
		if err != nil {
			return fmt.Errorf("app: OIDCFLOW_POSTGRES_URL: %w", err)
		}
		w.closers = append(w.closers, pool.Close)
		w.Worker.RegisterActivity(&activities.DatabaseActivities{
			DB: pool, AdminRole: adminRole, Runs: activities.TemporalRuns{Client: w.Client}, Logger: w.Logger,
		})
	} else {
		w.Logger.Warn("OIDCFLOW_POSTGRES_URL is not set; database grants are not available on this worker")
	}
	w.Worker.RegisterActivity(&activities.NotifyActivities{WebhookURL: env.String("OIDCFLOW_WEBHOOK_URL"), Logger: w.Logger})
	w.leftovers.runs = activities.TemporalRuns{Client: w.Client}
	w.Worker.RegisterActivity(w.Sessions)
	if extra != nil {
		extra(w.Worker)
	}
	return nil
}

// Run creates or updates the pool's sweeper schedule (EnsureSweeperSchedule, unless
// OIDCFLOW_SWEEP_INTERVAL is 0), starts polling and blocks until ctx is done, then stops,
// letting in-flight activities finish within OIDCFLOW_SHUTDOWN_TIMEOUT.
func (w *Worker) Run(ctx context.Context) error {
	if w.sweepEvery > 0 {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := EnsureSweeperSchedule(sctx, w.Client, w.queue, w.sweepEvery)
		cancel()
		if err != nil {
			return err
		}
	}
	vctx, stopVault := context.WithCancel(context.Background())
	vaultDone := make(chan struct{})
	go func() {
		defer close(vaultDone)
		w.vaultAuth.Run(vctx) // renews and re-acquires the worker's Vault token
	}()
	defer func() {
		stopVault()
		<-vaultDone
	}()
	if err := w.Worker.Start(); err != nil {
		return fmt.Errorf("app: start worker: %w", err)
	}
	<-ctx.Done()
	w.Worker.Stop() // drains in-flight activities for up to WorkerStopTimeout
	return nil
}

// Close releases connections. It is safe to call more than once.
func (w *Worker) Close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
	w.closers = nil
	if w.Client != nil {
		w.Client.Close()
		w.Client = nil
	}
}

// DialTemporal connects to TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE as the worker (no person's
// identity rides on the worker's own calls).
func DialTemporal(ctx context.Context, env *config.Env, logger *slog.Logger, m *metrics.Registry) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts := client.Options{
		HostPort:  env.String("TEMPORAL_ADDRESS"),
		Namespace: env.String("TEMPORAL_NAMESPACE"),
		Logger:    sdklog.NewStructuredLogger(logger),
	}
	if m != nil {
		opts.MetricsHandler = m.Handler()
	}
	switch mode := env.String("OIDCFLOW_TEMPORAL_AUTH"); mode {
	case "none":
	case "client-credentials":
		secret, err := env.Required("OIDCFLOW_WORKER_CLIENT_SECRET")
		if err != nil {
			return nil, err
		}
		ts, err := workercreds.TokenSource(ctx, workercreds.Options{
			Issuer: env.String("OIDCFLOW_ISSUER"), ClientID: env.String("OIDCFLOW_WORKER_CLIENT_ID"), ClientSecret: secret,
		})
		if err != nil {
			return nil, err
		}
		opts.Credentials = workercreds.TemporalCredentials(ts)
		// Bearer tokens ask for TLS; a loopback frontend (the dev server) has none.
		if host, _, _ := net.SplitHostPort(opts.HostPort); host == "localhost" || net.ParseIP(host).IsLoopback() {
			opts.ConnectionOptions.TLSDisabled = true
		}
	default:
		return nil, fmt.Errorf("app: OIDCFLOW_TEMPORAL_AUTH=%q; use none or client-credentials", mode)
	}
	c, err := client.DialContext(dctx, opts)
	if err != nil {
		return nil, fmt.Errorf("app: connect to Temporal at %s (is it up? `make up`): %w", env.String("TEMPORAL_ADDRESS"), err)
	}
	return c, nil
}
