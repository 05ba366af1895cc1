package pool

import (
	"context"
	"fmt"
	"slices"
	"time"

	vault "github.com/hashicorp/vault/api"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/payloadcodec"
	"github.com/oidcflow/oidcflow/telemetry"
	"github.com/oidcflow/oidcflow/tokenstore"
	"github.com/oidcflow/oidcflow/tokenstore/vaultauth"
	"github.com/oidcflow/oidcflow/tokenstore/workercreds"
	"github.com/oidcflow/oidcflow/workflows"
)

// Parts are the identity machinery of a pool member, without Temporal: what New puts into
// a worker, and what a time-skipping test puts into its test environment
// (worker.Options.Interceptors and RegisterActivity(SessionActivities)).
type Parts struct {
	// Vault is logged in as the worker; Run keeps its token alive.
	Vault *vault.Client
	// Verifier verifies ID tokens (Config.Issuer, ClientID, Leeway, Claims, RoleHierarchy).
	Verifier *identity.Verifier
	// Store keeps people's sessions in Vault; Refresher refreshes and revokes them.
	Store     *tokenstore.Store
	Refresher *tokenstore.Refresher
	// Sessions is the session lifecycle: one session per refresh chain, its holders, the
	// last holder revokes (interceptors.SessionStore).
	Sessions *tokenstore.SharedSessions
	// OneTime records the envelopes and references the pool honoured once.
	OneTime *tokenstore.OneTime
	// Telemetry receives the pool's metrics and spans (Config.Telemetry).
	Telemetry *telemetry.Telemetry
	// Interceptors are the worker interceptors: tracing (Config.Tracing), identity, then
	// denial counting.
	Interceptors []interceptor.WorkerInterceptor
	// SessionActivities keep sessions fresh, end the sessions of runs that CloseWatch does
	// not see close (the interceptor schedules EndSession) and sweep them; New registers them.
	SessionActivities *activities.SessionActivities
	// CloseWatch ends each run's session once the server accepted the run's end; New
	// installs it on the worker's client (CloseWatch.DialOption). A worker built from Parts
	// on a client without it ends sessions in EndSession, one round trip more per run.
	CloseWatch *interceptors.CloseWatch
	// PayloadCodec encrypts payloads (Config.EncryptPayloads); nil when it is off.
	PayloadCodec *payloadcodec.Codec

	cfg          Config
	vaultSession *vaultauth.Session
	leftovers    *leftovers
}

// NewParts validates cfg, logs in to Vault, loads the pool's envelope keys and session-id
// key, and builds the verifier, the session store, refresher and shared sessions, the
// one-time store, the worker interceptors and the session activities. It dials no Temporal.
func NewParts(ctx context.Context, cfg Config) (*Parts, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var err error
	if cfg.Telemetry == nil {
		if cfg.Telemetry, err = telemetry.New(telemetry.Options{Logger: cfg.Logger}); err != nil {
			return nil, err
		}
	}
	p := &Parts{cfg: cfg, Telemetry: cfg.Telemetry}
	if p.Vault, p.vaultSession, err = vaultLogin(ctx, cfg); err != nil {
		return nil, err
	}
	ring, secrets, err := LoadEnvelopeKeys(ctx, p.Vault, cfg.VaultKVMount, cfg.EnvelopeKeysPath)
	if err != nil {
		return nil, err
	}
	if p.Verifier, err = cfg.NewVerifier(ctx); err != nil {
		return nil, err
	}
	if p.Store, err = tokenstore.NewStore(tokenstore.StoreOptions{Client: p.Vault, Mount: cfg.VaultKVMount}); err != nil {
		return nil, err
	}
	ro := tokenstore.RefresherOptions{
		Store: p.Store,
		// The refresh tokens were issued to the client people log in with (a public one).
		OAuth2:  oauth2.Config{ClientID: cfg.ClientID},
		Issuer:  cfg.Issuer,
		Checker: p.Verifier,
		Skew:    cfg.RefreshSkew,
		Logger:  cfg.Logger,

		RefreshTimeout:         cfg.RefreshTimeout,
		RotationGracePeriod:    cfg.RefreshRotationGrace,
		MaxConcurrentRefreshes: cfg.MaxConcurrentRefreshes,
	}
	if cfg.Hooks.Refresher != nil {
		cfg.Hooks.Refresher(&ro)
	}
	refresher, err := cfg.Telemetry.NewRefresher(ro) // counts, times and traces refreshes
	if err != nil {
		return nil, err
	}
	p.Refresher = refresher.Refresher
	idKey, err := LoadSessionIDKey(ctx, p.Vault, cfg.VaultKVMount, SessionIDKeyPath, secrets[0])
	if err != nil {
		return nil, err
	}
	// Activities check a session that is not yet due for refresh from an in-process copy
	// (for at most tokenstore.DefaultFreshCacheMaxAge) instead of reading Vault each time.
	fresh, err := tokenstore.NewFreshCache(tokenstore.FreshCacheOptions{Refresher: refresher, Due: refresher.RefreshDue})
	if err != nil {
		return nil, err
	}
	if p.Sessions, err = tokenstore.NewSharedSessions(tokenstore.SharedSessionsOptions{
		Store: p.Store, Refresher: fresh, IDKey: idKey,
	}); err != nil {
		return nil, err
	}
	if p.OneTime, err = tokenstore.NewOneTime(tokenstore.OneTimeOptions{Client: p.Vault, Mount: cfg.VaultKVMount}); err != nil {
		return nil, err
	}
	p.leftovers = &leftovers{sessions: p.Sessions, oneTime: p.OneTime}
	if cfg.EncryptPayloads {
		if p.PayloadCodec, err = cfg.NewPayloadCodec(p.Vault); err != nil {
			return nil, err
		}
	}
	ao := interceptors.AuthenticatorOptions{
		Keyring:    ring,
		Verifier:   p.Verifier,
		OneTime:    p.OneTime,
		MaxAge:     cfg.EnvelopeMaxAge,
		MaxBacklog: cfg.MaxBacklog,
		Leeway:     cfg.Leeway,
		Sessions:   p.Sessions,
	}
	if cfg.Hooks.Authenticator != nil {
		cfg.Hooks.Authenticator(&ao)
	}
	auth, err := interceptors.NewAuthenticator(ao)
	if err != nil {
		return nil, err
	}
	observed := cfg.Telemetry.Authenticator(auth)
	p.CloseWatch = interceptors.NewCloseWatch(cfg.Logger)
	wi, err := interceptors.NewWorkerInterceptor(interceptors.WorkerOptions{
		CloseWatch:              p.CloseWatch,
		Authenticator:           observed,
		PropagationSecrets:      secrets,
		AllowAnonymous:          append(slices.Clone(cfg.AllowAnonymous), workflows.SweeperWorkflow),
		IdentityWorkflows:       cfg.IdentityWorkflows,
		ReferenceTTL:            cfg.MaxBacklog,
		ListingSearchAttributes: cfg.ListingSearchAttributes,
		ListingMemo:             cfg.ListingMemo,
		PayloadCodec:            p.payloadCodec(),
	})
	if err != nil {
		return nil, err
	}
	p.Interceptors = []interceptor.WorkerInterceptor{wi, cfg.Telemetry.Denials()}
	if cfg.Tracing {
		// First, so that the run's span is the parent of oidcflow's verification spans.
		p.Interceptors = append([]interceptor.WorkerInterceptor{cfg.Telemetry.TracingInterceptor()}, p.Interceptors...)
	}
	if cfg.Hooks.Interceptors != nil {
		p.Interceptors = cfg.Hooks.Interceptors(p.Interceptors)
	}
	// EndSession ends a run's session through the same Authenticator as the interceptor's
	// local activities and CloseWatch (interceptors.EndSessionActivity).
	p.SessionActivities = &activities.SessionActivities{Refresher: refresher, Sweeper: p.leftovers,
		Sessions: observed, Logger: cfg.Logger}
	return p, nil
}

// DataConverter is the data converter of the pool's Temporal client: the SDK's default,
// wrapped in PayloadCodec when payloads are encrypted. That one may call Vault (a data key
// not yet cached), so workflow code runs it with deadlock detection paused
// (workflow.DataConverterWithoutDeadlockDetection). A test environment that runs the pool's
// parts sets it (testsuite's SetDataConverter) to see what the pool sees.
func (p *Parts) DataConverter() converter.DataConverter {
	if p.PayloadCodec == nil {
		return converter.GetDefaultDataConverter()
	}
	return workflow.DataConverterWithoutDeadlockDetection(
		converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), p.PayloadCodec))
}

// payloadCodec is PayloadCodec as an interface: nil when payloads are not encrypted.
func (p *Parts) payloadCodec() converter.PayloadCodec {
	if p.PayloadCodec == nil {
		return nil
	}
	return p.PayloadCodec
}

// NewVerifier builds the ID token verifier c describes: Issuer, ClientID, Leeway, Claims
// (with ClaimsNamespace) and RoleHierarchy. It fetches the issuer's discovery document and
// keys; starters use it to check their own login as the pool will.
func (c Config) NewVerifier(ctx context.Context) (*identity.Verifier, error) {
	return c.newVerifier(ctx, "")
}

// NewAccessTokenVerifier is NewVerifier for JWT access tokens issued for audience (RFC 9068
// section 4: aud must contain it), typed "at+jwt" or "JWT" (Ory Hydra and Keycloak type
// them "JWT"): what the codec server checks the bearer tokens of the Web UI and starters
// with, audience being the one Temporal's frontend requires. Opaque tokens are refused.
func (c Config) NewAccessTokenVerifier(ctx context.Context, audience string) (*identity.Verifier, error) {
	if audience == "" {
		return nil, fmt.Errorf("%w: the access token audience (OIDCFLOW_TEMPORAL_AUDIENCE) is required", ErrConfig)
	}
	return c.newVerifier(ctx, audience)
}

func (c Config) newVerifier(ctx context.Context, audience string) (*identity.Verifier, error) {
	c = c.withDefaults()
	if c.Issuer == "" {
		return nil, fmt.Errorf("%w: OIDCFLOW_ISSUER (Config.Issuer) is required", ErrConfig)
	}
	h, err := identity.ParseHierarchy(c.RoleHierarchy)
	if err != nil {
		return nil, fmt.Errorf("%w: OIDCFLOW_ROLE_HIERARCHY (Config.RoleHierarchy): %w", ErrConfig, err)
	}
	claims, err := identity.ClaimsPreset(c.Claims, c.ClaimsNamespace, c.ClientID)
	if err != nil {
		return nil, fmt.Errorf("%w: OIDCFLOW_CLAIMS (Config.Claims): %w", ErrConfig, err)
	}
	opts := identity.VerifierOptions{
		Issuer: c.Issuer, ClientID: c.ClientID, Leeway: c.Leeway, Claims: &claims, Hierarchy: h,
	}
	if audience != "" {
		opts.AccessTokenAudience, opts.AccessTokenTypes = audience, []string{"at+jwt", "JWT"}
	}
	return identity.NewVerifier(ctx, opts)
}

// Pool is one running member of a worker pool.
type Pool struct {
	*Parts
	// Client is the worker's Temporal client: no person's identity rides on its calls
	// (starters dial with package login or interceptors.Dial).
	Client client.Client
	// Worker polls Config.TaskQueue with the interceptors installed; register your
	// workflows and activities on it before Run.
	Worker worker.Worker
}

// New builds a pool member from cfg: NewParts, then it dials Temporal as the worker, creates
// the worker on cfg.TaskQueue (versioned as build cfg.BuildID of cfg.DeploymentName when
// cfg.BuildID is set) and registers the session activities and the sweeper workflow
// (cfg.Sweeper, pinned). Nothing polls until Run. Close releases it.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	parts, err := NewParts(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cfg = parts.cfg
	p := &Pool{Parts: parts}
	if p.Client, err = dialTemporal(ctx, cfg, parts.DataConverter(), parts.CloseWatch.DialOption()); err != nil {
		return nil, err
	}
	pollers, err := cfg.pollerBehavior()
	if err != nil {
		return nil, err
	}
	wo := worker.Options{
		WorkflowTaskPollerBehavior:             pollers,
		ActivityTaskPollerBehavior:             pollers,
		Interceptors:                           parts.Interceptors,
		MaxConcurrentActivityExecutionSize:     cfg.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.MaxConcurrentWorkflowTasks,
		WorkerStopTimeout:                      cfg.ShutdownTimeout,
		DeploymentOptions:                      cfg.deploymentOptions(),
	}
	if cfg.Hooks.Worker != nil {
		cfg.Hooks.Worker(&wo)
	}
	p.Worker = worker.New(p.Client, cfg.TaskQueue, wo)
	sweeper := cfg.Sweeper
	if sweeper == nil {
		sweeper = workflows.SessionSweeper
	}
	p.Worker.RegisterWorkflowWithOptions(sweeper, workflow.RegisterOptions{
		Name: workflows.SweeperWorkflow, VersioningBehavior: sweeperVersioning,
	})
	p.Worker.RegisterActivity(p.SessionActivities)
	p.leftovers.runs = activities.TemporalRuns{Client: p.Client}
	return p, nil
}

// Run creates or updates the pool's sweeper schedule (EnsureSweeperSchedule, unless
// Config.SweepInterval is negative), keeps the worker's Vault token alive, starts polling and
// blocks until ctx is done; then it stops, letting in-flight activities, and the ends of
// sessions of runs that just closed, finish within Config.ShutdownTimeout each. It returns
// nil after a clean stop. With Config.SetCurrentIfUnset, once polling it makes its build the
// deployment's current version if the deployment never had one (SetCurrentIfUnset); a
// failure there is logged, not returned.
func (p *Pool) Run(ctx context.Context) error {
	if every := p.cfg.SweepInterval; every > 0 {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := EnsureSweeperSchedule(sctx, p.Client, p.cfg.TaskQueue, every)
		cancel()
		if err != nil {
			return err
		}
	}
	vctx, stopVault := context.WithCancel(context.Background())
	vaultDone := make(chan struct{})
	go func() {
		defer close(vaultDone)
		p.vaultSession.Run(vctx) // renews and re-acquires the worker's Vault token
	}()
	defer func() {
		stopVault()
		<-vaultDone
	}()
	if err := p.Worker.Start(); err != nil {
		return fmt.Errorf("pool: start worker: %w", err)
	}
	if p.cfg.BuildID != "" {
		done := p.announceVersion(ctx)
		defer func() { <-done }()
	}
	<-ctx.Done()
	p.Worker.Stop() // drains in-flight activities for up to WorkerStopTimeout
	// The sessions of runs that closed just before the stop end while Vault still answers.
	wctx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout)
	defer cancel()
	if err := p.CloseWatch.Wait(wctx); err != nil {
		p.cfg.Logger.Warn("pool: stopped before every closed run's session ended; the sweeper ends the rest", "err", err)
	}
	return nil
}

// Close releases the Temporal connection. It is safe to call more than once; call it after
// Run returned.
func (p *Pool) Close() {
	if p.Client != nil {
		p.Client.Close()
		p.Client = nil
	}
}

// ApplyTemporalAuth sets opts up to authenticate as the worker c describes: with
// TemporalAuthClientCredentials, a bearer token of WorkerClientID for TemporalAudience on
// every call (TLS stays off towards a loopback frontend, the dev server's); with
// TemporalAuthNone, nothing. ctx must live as long as the client: the token is renewed with
// it.
func (c Config) ApplyTemporalAuth(ctx context.Context, opts *client.Options) error {
	c = c.withDefaults()
	if c.TemporalAuth != TemporalAuthClientCredentials {
		return nil
	}
	ts, err := workercreds.TokenSource(ctx, workercreds.Options{
		Issuer: c.Issuer, ClientID: c.WorkerClientID, ClientSecret: c.WorkerClientSecret,
		Audience: c.TemporalAudience,
	})
	if err != nil {
		return err
	}
	opts.Credentials = workercreds.TemporalCredentials(ts)
	// Bearer tokens ask for TLS; a loopback frontend (the dev server) has none.
	if interceptors.IsLoopback(opts.HostPort) {
		opts.ConnectionOptions.TLSDisabled = true
	}
	return nil
}

// dialTemporal connects to c.TemporalAddress / c.Namespace as the worker, with data
// converter dc and the dial options given.
func dialTemporal(ctx context.Context, c Config, dc converter.DataConverter, dial ...grpc.DialOption) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts := client.Options{
		HostPort:       c.TemporalAddress,
		Namespace:      c.Namespace,
		DataConverter:  dc,
		Logger:         sdklog.NewStructuredLogger(c.Logger),
		MetricsHandler: c.Telemetry.MetricsHandler(),
	}
	opts.ConnectionOptions.DialOptions = dial
	if c.Tracing {
		opts.Interceptors = []interceptor.ClientInterceptor{c.Telemetry.TracingInterceptor()}
	}
	if err := c.ApplyTemporalAuth(ctx, &opts); err != nil {
		return nil, err
	}
	if c.Hooks.Client != nil {
		c.Hooks.Client(&opts)
	}
	cl, err := client.DialContext(dctx, opts)
	if err != nil {
		return nil, fmt.Errorf("pool: connect to Temporal at %s: %w", c.TemporalAddress, err)
	}
	return cl, nil
}

// leftovers is the token store's part of the pool's sweep (activities.SessionSweeper).
type leftovers struct {
	sessions *tokenstore.SharedSessions
	oneTime  *tokenstore.OneTime
	runs     tokenstore.WorkflowStates // set once the pool has a Temporal client
}

func (l *leftovers) SweepSessions(ctx context.Context) (int, error) {
	if l.runs == nil {
		return 0, nil
	}
	return l.sessions.Sweep(ctx, l.runs)
}

func (l *leftovers) SweepOneTime(ctx context.Context) (int, error) { return l.oneTime.Sweep(ctx) }
