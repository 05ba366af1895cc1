package pool

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/telemetry"
	"github.com/oidcflow/oidcflow/tokenstore"
	"github.com/oidcflow/oidcflow/tokenstore/vaultauth"
)

// ErrConfig is wrapped by every error of FromEnv and Config.Validate: a setting cannot be
// used. The message names the environment variable and the Config field.
var ErrConfig = errors.New("pool: bad configuration")

// The Temporal authentication modes of Config.TemporalAuth.
const (
	TemporalAuthNone              = "none"
	TemporalAuthClientCredentials = "client-credentials"
)

// MinSweepInterval is the shortest positive Config.SweepInterval.
const MinSweepInterval = 10 * time.Second

// maxWindow bounds EnvelopeMaxAge and MaxBacklog (interceptors.AuthenticatorOptions).
const maxWindow = 24 * time.Hour

// Config configures a pool member. Each field's zero value means its default, which its
// comment names along with the environment variable FromEnv reads it from (the README's
// configuration table lists the same). Validate checks it without touching the network.
type Config struct {
	// TemporalAddress is the Temporal frontend, host:port. TEMPORAL_ADDRESS; default
	// "127.0.0.1:7233".
	TemporalAddress string
	// Namespace is the Temporal namespace; starters must seal for the same one.
	// TEMPORAL_NAMESPACE; default "oidcflow".
	Namespace string
	// TaskQueue is the task queue the pool polls. OIDCFLOW_TASK_QUEUE; default "oidcflow".
	TaskQueue string
	// TemporalAuth is how the worker authenticates to Temporal: TemporalAuthNone, or
	// TemporalAuthClientCredentials (a bearer token of WorkerClientID, client credentials
	// grant). OIDCFLOW_TEMPORAL_AUTH; default "none".
	TemporalAuth string
	// WorkerClientID is the worker's own confidential OAuth client, used only for its
	// bearer token to Temporal (TemporalAuthClientCredentials); it does not refresh or revoke
	// people's sessions (ClientID does). OIDCFLOW_WORKER_CLIENT_ID; default "worker".
	WorkerClientID string
	// WorkerClientSecret is WorkerClientID's secret; required with
	// TemporalAuthClientCredentials. OIDCFLOW_WORKER_CLIENT_SECRET; default none.
	WorkerClientSecret string
	// TemporalAudience is the audience the worker asks for in its client credentials grant
	// (the frontend's). OIDCFLOW_TEMPORAL_AUDIENCE; default "temporal".
	TemporalAudience string

	// Issuer is the OIDC issuer URL, exactly as in the tokens' iss. OIDCFLOW_ISSUER;
	// required.
	Issuer string
	// ClientID is the OAuth client people log in with: ID tokens must name it in aud, and the
	// pool refreshes and revokes their refresh tokens as this client (a public client: no
	// secret). OIDCFLOW_CLIENT_ID; default "starter".
	ClientID string
	// Claims names the claim mapping preset (identity.ClaimsPreset): generic, hydra,
	// keycloak, okta, entra, auth0 or google. OIDCFLOW_CLAIMS; default "generic".
	Claims string
	// ClaimsNamespace is Auth0's namespace of custom claims, or the Keycloak client whose
	// roles count (default ClientID). OIDCFLOW_CLAIMS_NAMESPACE; default none.
	ClaimsNamespace string
	// RoleHierarchy is the nested-role configuration (identity.ParseHierarchy): inline JSON
	// or "@" and a file. OIDCFLOW_ROLE_HIERARCHY; default none.
	RoleHierarchy string
	// Leeway is the clock leeway for exp, nbf and iat, and between sealers' clocks and the
	// server's. OIDCFLOW_LEEWAY; default 60s.
	Leeway time.Duration
	// RefreshSkew: a session is refreshed when its access or ID token expires within it.
	// OIDCFLOW_REFRESH_SKEW; default 30s.
	RefreshSkew time.Duration
	// RefreshTimeout bounds one refresh request to the identity provider's token endpoint;
	// it goes on when the activity that asked gives up, and its answer is stored
	// (tokenstore.RefresherOptions.RefreshTimeout). OIDCFLOW_REFRESH_TIMEOUT; default 60s.
	RefreshTimeout time.Duration
	// RefreshRotationGrace is the identity provider's refresh token rotation grace period:
	// the pool retries a refresh whose answer was lost only within it
	// (tokenstore.RefresherOptions.RotationGracePeriod). Set it to the provider's value, never
	// above. OIDCFLOW_REFRESH_ROTATION_GRACE; default 0s: none.
	RefreshRotationGrace time.Duration
	// MaxConcurrentRefreshes caps how many sessions this worker refreshes at the identity
	// provider at once (tokenstore.RefresherOptions.MaxConcurrentRefreshes).
	// OIDCFLOW_MAX_CONCURRENT_REFRESHES; default 16.
	MaxConcurrentRefreshes int
	// EnvelopeMaxAge is how old a start's envelope may be when the server records the
	// start; the pool honours each envelope once within it. At most 24h.
	// OIDCFLOW_ENVELOPE_MAX_AGE; default 5m.
	EnvelopeMaxAge time.Duration
	// MaxBacklog is how long an update or signal bound to its run may wait for a worker
	// before its envelope is refused; keep it equal on every worker of a pool. At most 24h.
	// OIDCFLOW_MAX_BACKLOG; default 1h.
	MaxBacklog time.Duration

	// VaultAddress is Vault's address. VAULT_ADDR; default "http://127.0.0.1:8200".
	VaultAddress string
	// VaultAuth is the worker's Vault auth method: approle, token or kubernetes.
	// OIDCFLOW_VAULT_AUTH; default "approle".
	VaultAuth string
	// VaultRoleID is the AppRole role id; required with approle. OIDCFLOW_VAULT_ROLE_ID;
	// default none.
	VaultRoleID string
	// VaultSecretID is the AppRole secret id. OIDCFLOW_VAULT_SECRET_ID; default none.
	VaultSecretID string
	// VaultKubernetesRole is the Vault role of Kubernetes auth; required with kubernetes.
	// OIDCFLOW_VAULT_K8S_ROLE; default none.
	VaultKubernetesRole string
	// VaultToken is the Vault token of token auth; required with token. VAULT_TOKEN;
	// default none.
	VaultToken string
	// VaultKVMount is the KV v2 mount that holds the pool's keys and sessions (see the
	// package documentation's Vault layout). OIDCFLOW_VAULT_KV_MOUNT; default "oidcflow".
	VaultKVMount string
	// EnvelopeKeysPath is where the pool's envelope keys live in VaultKVMount.
	// OIDCFLOW_ENVELOPE_KEYS_PATH; default "envelope/keys".
	EnvelopeKeysPath string
	// EncryptPayloads makes the worker's Temporal client encrypt every payload it writes
	// (workflow and activity inputs and results, memos, the recorded identity, ...) with
	// package payloadcodec under PayloadTransitKey, and decrypt what it reads; payloads
	// written without it still read. Starters then encode through the codec server
	// (interceptors.DialOptions.CodecEndpoint). Turned off again, the worker cannot read the
	// encrypted payloads of runs still open. OIDCFLOW_ENCRYPT_PAYLOADS; default false.
	EncryptPayloads bool
	// PayloadTransitKey is the Vault Transit key (mount "transit", type aes256-gcm96) that
	// wraps the payload data keys; the worker needs "update" on
	// transit/datakey/plaintext/<key> and transit/decrypt/<key>.
	// OIDCFLOW_PAYLOAD_TRANSIT_KEY; default "oidcflow-payloads".
	PayloadTransitKey string

	// SweepInterval is how often the pool's Temporal Schedule runs the sweeper; at least
	// MinSweepInterval. Negative: this worker leaves the schedule alone (FromEnv reads
	// OIDCFLOW_SWEEP_INTERVAL=0 so). OIDCFLOW_SWEEP_INTERVAL; default 1m.
	SweepInterval time.Duration
	// MaxConcurrentActivities caps concurrent activity executions.
	// OIDCFLOW_MAX_CONCURRENT_ACTIVITIES; default 0: the SDK's default.
	MaxConcurrentActivities int
	// MaxConcurrentWorkflowTasks caps concurrent workflow task executions.
	// OIDCFLOW_MAX_CONCURRENT_WORKFLOW_TASKS; default 0: the SDK's default.
	MaxConcurrentWorkflowTasks int
	// Pollers is how the worker polls its task queue: "autoscaling" scales the pollers of
	// workflow and of activity tasks, each between 2 and 100, on the server's feedback
	// (worker.NewPollerBehaviorAutoscaling), so that a backlog on the sticky queue does not
	// hold up new runs, while an idle worker keeps a poller on its sticky queue and one on
	// the normal queue; a number N keeps at most N pollers of each
	// (worker.NewPollerBehaviorSimpleMaximum). OIDCFLOW_POLLERS; default "autoscaling".
	Pollers string
	// ShutdownTimeout is how long Run lets in-flight activities finish once its context is
	// done. OIDCFLOW_SHUTDOWN_TIMEOUT; default 30s.
	ShutdownTimeout time.Duration

	// DeploymentName is the Temporal Worker Deployment this worker belongs to (Worker
	// Deployment Versioning): every build of one pool shares it. It may not contain "." or
	// ":" nor start with "__". Required with BuildID. OIDCFLOW_DEPLOYMENT_NAME; default none.
	DeploymentName string
	// BuildID names this worker's code within DeploymentName: an image tag or a commit, new
	// for every build whose workflow code may differ. With a BuildID the worker is versioned:
	// it gets the runs pinned to its build, and new runs and auto-upgrade runs once its build
	// is the deployment's current version (`temporal worker deployment set-current-version`,
	// or SetCurrentIfUnset). Workflow types run with the versioning behaviour they are
	// registered with (workflow.RegisterOptions.VersioningBehavior), else
	// DefaultVersioningBehavior. OIDCFLOW_BUILD_ID; default none: versioning off, the worker
	// is unversioned and takes every task of TaskQueue, as a pool that never opted in does.
	BuildID string
	// SetCurrentIfUnset makes Run set this worker's build as the deployment's current version
	// when the deployment has never had one (its first build): see SetCurrentIfUnset. It
	// never replaces a current version, nor an operator's choice of unversioned workers, so
	// it is safe on every worker; leave it off where unversioned workers still serve the
	// queue and the move to versioned ones is the operator's to make. Needs BuildID.
	// OIDCFLOW_DEPLOYMENT_SET_CURRENT_IF_UNSET; default false.
	SetCurrentIfUnset bool

	// The fields below are not read from the environment.

	// IdentityWorkflows, when not empty, makes identity opt-in: only these workflow types
	// (and AllowAnonymous) are checked; every other type passes through untouched, and its
	// activities run with no identity (interceptors.WorkerOptions.IdentityWorkflows). Default
	// none: every workflow type needs a person's identity.
	IdentityWorkflows []string
	// AllowAnonymous lists workflow types that may start without identity; their activities
	// run under the pool's own authority. workflows.SweeperWorkflow is always allowed.
	// Default none.
	AllowAnonymous []string
	// ListingSearchAttributes and ListingMemo are search attributes and memo keys only the
	// worker may set (interceptors.WorkerOptions.ListingSearchAttributes). Default none.
	ListingSearchAttributes []interceptors.ListingKey
	ListingMemo             []string
	// DefaultVersioningBehavior is the versioning behaviour of the workflow types registered
	// without one, when the worker is versioned (BuildID): workflow.VersioningBehaviorPinned
	// or workflow.VersioningBehaviorAutoUpgrade. Pinned runs finish on the build they started
	// on, so a code change never reaches them and needs no patching; their build's workers
	// must run until the last of them ends. Auto-upgrade runs move to each new current build
	// at their next workflow task, so every change to their code must be patched
	// (workflow.GetVersion) and replay-tested. Choose per type with
	// workflow.RegisterOptions.VersioningBehavior: pinned for runs of minutes, auto-upgrade
	// for runs that outlive deploys. Ignored without BuildID. Default
	// workflow.VersioningBehaviorPinned.
	DefaultVersioningBehavior workflow.VersioningBehavior
	// Sweeper is the workflow registered as workflows.SweeperWorkflow, which the pool's
	// schedule runs. Default workflows.SessionSweeper (the token store's sweep); oidcflow's
	// own worker sets workflows.Sweeper, which also drops database grants.
	Sweeper any
	// Logger receives the pool's records (never a token). Default slog.Default().
	Logger *slog.Logger
	// Telemetry receives the SDK's metrics and oidcflow's (telemetry.MetricVerifications,
	// ...) and oidcflow's spans; serve it at /metrics. Default: telemetry.New with Logger
	// (a Prometheus registry of its own, the global TracerProvider).
	Telemetry *telemetry.Telemetry
	// Tracing installs the SDK's OpenTelemetry tracing interceptor (Telemetry's
	// TracerProvider) first in the worker's and the worker client's interceptors, so that
	// oidcflow's verification and refresh spans join the runs' traces. Default false:
	// without an exporter the spans go nowhere, and the interceptor would only add headers.
	Tracing bool
	// Hooks adjust the parts' options before they are built (tests, benchmarks). Default
	// none.
	Hooks Hooks
}

// Hooks adjust the options New builds its parts from; each runs once, after the options are
// filled from Config. A nil hook changes nothing.
type Hooks struct {
	Refresher     func(*tokenstore.RefresherOptions)
	Authenticator func(*interceptors.AuthenticatorOptions)
	Client        func(*client.Options)
	Worker        func(*worker.Options)
	// Interceptors may wrap or add worker interceptors (they run in the order given).
	Interceptors func([]interceptor.WorkerInterceptor) []interceptor.WorkerInterceptor
}

// FromEnv returns the Config the environment describes: each variable named in Config's
// field comments, from the process environment or else the env file named by
// OIDCFLOW_ENV_FILE, or else its default. A malformed value (a bad duration, say) fails with
// the variable's name; FromEnv does not Validate otherwise.
func FromEnv() (Config, error) {
	return FromLookup(os.LookupEnv)
}

// FromLookup is FromEnv over lookup instead of the process environment (os.LookupEnv).
func FromLookup(lookup func(string) (string, bool)) (Config, error) {
	env, err := config.New(lookup)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c := Config{}
	var errs []error
	str := func(name string, into *string) { *into = env.String(name) }
	dur := func(name string, into *time.Duration) {
		d, err := env.Duration(name)
		if err != nil {
			errs = append(errs, err)
		}
		*into = d
	}
	flag := func(name string, into *bool) {
		b, err := env.Bool(name)
		if err != nil {
			errs = append(errs, err)
		}
		*into = b
	}
	num := func(name string, into *int) {
		n, err := env.Int(name)
		if err != nil {
			errs = append(errs, err)
		}
		*into = n
	}
	for _, f := range c.fields() {
		switch p := f.ptr.(type) {
		case *string:
			str(f.env, p)
		case *time.Duration:
			dur(f.env, p)
		case *int:
			num(f.env, p)
		case *bool:
			flag(f.env, p)
		}
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = -1 // 0 in the environment: leave the schedule alone
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return c, nil
}

// field ties a Config field to its environment variable.
type field struct {
	name string // Config field
	env  string // environment variable (config.Vars)
	ptr  any    // *string, *time.Duration, *int or *bool
}

// fields lists the Config fields read from the environment.
func (c *Config) fields() []field {
	return []field{
		{"TemporalAddress", "TEMPORAL_ADDRESS", &c.TemporalAddress},
		{"Namespace", "TEMPORAL_NAMESPACE", &c.Namespace},
		{"TaskQueue", "OIDCFLOW_TASK_QUEUE", &c.TaskQueue},
		{"TemporalAuth", "OIDCFLOW_TEMPORAL_AUTH", &c.TemporalAuth},
		{"WorkerClientID", "OIDCFLOW_WORKER_CLIENT_ID", &c.WorkerClientID},
		{"WorkerClientSecret", "OIDCFLOW_WORKER_CLIENT_SECRET", &c.WorkerClientSecret},
		{"TemporalAudience", "OIDCFLOW_TEMPORAL_AUDIENCE", &c.TemporalAudience},
		{"Issuer", "OIDCFLOW_ISSUER", &c.Issuer},
		{"ClientID", "OIDCFLOW_CLIENT_ID", &c.ClientID},
		{"Claims", "OIDCFLOW_CLAIMS", &c.Claims},
		{"ClaimsNamespace", "OIDCFLOW_CLAIMS_NAMESPACE", &c.ClaimsNamespace},
		{"RoleHierarchy", "OIDCFLOW_ROLE_HIERARCHY", &c.RoleHierarchy},
		{"Leeway", "OIDCFLOW_LEEWAY", &c.Leeway},
		{"RefreshSkew", "OIDCFLOW_REFRESH_SKEW", &c.RefreshSkew},
		{"RefreshTimeout", "OIDCFLOW_REFRESH_TIMEOUT", &c.RefreshTimeout},
		{"RefreshRotationGrace", "OIDCFLOW_REFRESH_ROTATION_GRACE", &c.RefreshRotationGrace},
		{"MaxConcurrentRefreshes", "OIDCFLOW_MAX_CONCURRENT_REFRESHES", &c.MaxConcurrentRefreshes},
		{"EnvelopeMaxAge", "OIDCFLOW_ENVELOPE_MAX_AGE", &c.EnvelopeMaxAge},
		{"MaxBacklog", "OIDCFLOW_MAX_BACKLOG", &c.MaxBacklog},
		{"VaultAddress", "VAULT_ADDR", &c.VaultAddress},
		{"VaultAuth", "OIDCFLOW_VAULT_AUTH", &c.VaultAuth},
		{"VaultRoleID", "OIDCFLOW_VAULT_ROLE_ID", &c.VaultRoleID},
		{"VaultSecretID", "OIDCFLOW_VAULT_SECRET_ID", &c.VaultSecretID},
		{"VaultKubernetesRole", "OIDCFLOW_VAULT_K8S_ROLE", &c.VaultKubernetesRole},
		{"VaultToken", "VAULT_TOKEN", &c.VaultToken},
		{"VaultKVMount", "OIDCFLOW_VAULT_KV_MOUNT", &c.VaultKVMount},
		{"EnvelopeKeysPath", "OIDCFLOW_ENVELOPE_KEYS_PATH", &c.EnvelopeKeysPath},
		{"EncryptPayloads", "OIDCFLOW_ENCRYPT_PAYLOADS", &c.EncryptPayloads},
		{"PayloadTransitKey", "OIDCFLOW_PAYLOAD_TRANSIT_KEY", &c.PayloadTransitKey},
		{"SweepInterval", "OIDCFLOW_SWEEP_INTERVAL", &c.SweepInterval},
		{"MaxConcurrentActivities", "OIDCFLOW_MAX_CONCURRENT_ACTIVITIES", &c.MaxConcurrentActivities},
		{"MaxConcurrentWorkflowTasks", "OIDCFLOW_MAX_CONCURRENT_WORKFLOW_TASKS", &c.MaxConcurrentWorkflowTasks},
		{"Pollers", "OIDCFLOW_POLLERS", &c.Pollers},
		{"ShutdownTimeout", "OIDCFLOW_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout},
		{"DeploymentName", "OIDCFLOW_DEPLOYMENT_NAME", &c.DeploymentName},
		{"BuildID", "OIDCFLOW_BUILD_ID", &c.BuildID},
		{"SetCurrentIfUnset", "OIDCFLOW_DEPLOYMENT_SET_CURRENT_IF_UNSET", &c.SetCurrentIfUnset},
	}
}

// withDefaults returns c with every zero field read from the environment set to its
// default, which config.Vars holds.
func (c Config) withDefaults() Config {
	for _, f := range c.fields() {
		def := defaultOf(f.env)
		switch p := f.ptr.(type) {
		case *string:
			if *p == "" {
				*p = def
			}
		case *time.Duration:
			if *p == 0 {
				*p, _ = time.ParseDuration(def) // config's tests parse every default
			}
		case *int:
			if *p == 0 {
				*p, _ = strconv.Atoi(def)
			}
		}
	}
	if c.DefaultVersioningBehavior == workflow.VersioningBehaviorUnspecified {
		c.DefaultVersioningBehavior = workflow.VersioningBehaviorPinned
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// defaultOf returns the documented default of variable name.
func defaultOf(name string) string {
	for _, v := range config.Vars {
		if v.Name == name {
			return v.Default
		}
	}
	panic("pool: " + name + " is not in config.Vars")
}

// Validate checks c (zero fields standing for their defaults) without any network call: the
// required settings are there, durations and numbers are in range, the names of modes and
// presets are known, and the role hierarchy parses (a hierarchy file is read). Errors wrap
// ErrConfig and name the variable and the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(env, field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s (Config.%s) %s", ErrConfig, env, field, fmt.Sprintf(format, args...)))
	}
	if c.Issuer == "" {
		bad("OIDCFLOW_ISSUER", "Issuer", "is required: the OIDC issuer URL, exactly as in the tokens' iss")
	} else if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("OIDCFLOW_ISSUER", "Issuer", "is %q, not an http(s) URL", c.Issuer)
	}
	for _, f := range c.fields() {
		if d, ok := f.ptr.(*time.Duration); ok && *d < 0 && f.name != "SweepInterval" {
			bad(f.env, f.name, "is negative (%s)", *d)
		}
		if n, ok := f.ptr.(*int); ok && *n < 0 {
			bad(f.env, f.name, "is negative (%d)", *n)
		}
	}
	if c.EnvelopeMaxAge > maxWindow {
		bad("OIDCFLOW_ENVELOPE_MAX_AGE", "EnvelopeMaxAge", "is %s; at most %s", c.EnvelopeMaxAge, maxWindow)
	}
	if c.MaxBacklog > maxWindow {
		bad("OIDCFLOW_MAX_BACKLOG", "MaxBacklog", "is %s; at most %s", c.MaxBacklog, maxWindow)
	}
	if c.SweepInterval > 0 && c.SweepInterval < MinSweepInterval {
		bad("OIDCFLOW_SWEEP_INTERVAL", "SweepInterval", "is %s; use 0 (leave the schedule alone) or at least %s", c.SweepInterval, MinSweepInterval)
	}
	if _, err := c.pollerBehavior(); err != nil {
		bad("OIDCFLOW_POLLERS", "Pollers", "%s", err)
	}
	switch c.TemporalAuth {
	case TemporalAuthNone:
	case TemporalAuthClientCredentials:
		if c.WorkerClientSecret == "" {
			bad("OIDCFLOW_WORKER_CLIENT_SECRET", "WorkerClientSecret", "is required with OIDCFLOW_TEMPORAL_AUTH=%s", c.TemporalAuth)
		}
	default:
		bad("OIDCFLOW_TEMPORAL_AUTH", "TemporalAuth", "is %q; use %s or %s", c.TemporalAuth, TemporalAuthNone, TemporalAuthClientCredentials)
	}
	switch vaultauth.Method(c.VaultAuth) {
	case vaultauth.AppRole:
		if c.VaultRoleID == "" {
			bad("OIDCFLOW_VAULT_ROLE_ID", "VaultRoleID", "is required with OIDCFLOW_VAULT_AUTH=approle")
		}
	case vaultauth.Token:
		if c.VaultToken == "" {
			bad("VAULT_TOKEN", "VaultToken", "is required with OIDCFLOW_VAULT_AUTH=token")
		}
	case vaultauth.Kubernetes:
		if c.VaultKubernetesRole == "" {
			bad("OIDCFLOW_VAULT_K8S_ROLE", "VaultKubernetesRole", "is required with OIDCFLOW_VAULT_AUTH=kubernetes")
		}
	default:
		bad("OIDCFLOW_VAULT_AUTH", "VaultAuth", "is %q; use approle, token or kubernetes", c.VaultAuth)
	}
	if strings.ContainsAny(c.PayloadTransitKey, "/ ") {
		bad("OIDCFLOW_PAYLOAD_TRANSIT_KEY", "PayloadTransitKey", "is %q, not a Transit key name", c.PayloadTransitKey)
	}
	if u, err := url.Parse(c.VaultAddress); err != nil || u.Host == "" {
		bad("VAULT_ADDR", "VaultAddress", "is %q, not a URL", c.VaultAddress)
	}
	if _, err := identity.ClaimsPreset(c.Claims, c.ClaimsNamespace, c.ClientID); err != nil {
		bad("OIDCFLOW_CLAIMS", "Claims", "cannot be used: %v", err)
	}
	if _, err := identity.ParseHierarchy(c.RoleHierarchy); err != nil {
		bad("OIDCFLOW_ROLE_HIERARCHY", "RoleHierarchy", "cannot be used: %v", err)
	}
	c.validateVersioning(bad)
	switch c.DefaultVersioningBehavior {
	case workflow.VersioningBehaviorPinned, workflow.VersioningBehaviorAutoUpgrade:
	default:
		errs = append(errs, fmt.Errorf("%w: Config.DefaultVersioningBehavior is %d; use workflow.VersioningBehaviorPinned or workflow.VersioningBehaviorAutoUpgrade", ErrConfig, c.DefaultVersioningBehavior))
	}
	if c.Sweeper != nil && reflect.TypeOf(c.Sweeper).Kind() != reflect.Func {
		errs = append(errs, fmt.Errorf("%w: Config.Sweeper is a %T, not a workflow function", ErrConfig, c.Sweeper))
	}
	return errors.Join(errs...)
}

// maxVersionPart bounds DeploymentName and BuildID (the server derives workflow ids from
// both).
const maxVersionPart = 255

// validateVersioning checks the Worker Deployment Versioning settings as the server would,
// before any network call.
func (c Config) validateVersioning(bad func(env, field, format string, args ...any)) {
	switch {
	case c.BuildID != "" && c.DeploymentName == "":
		bad("OIDCFLOW_DEPLOYMENT_NAME", "DeploymentName", "is required with OIDCFLOW_BUILD_ID=%s: name the Worker Deployment every build of this pool shares", c.BuildID)
	case c.DeploymentName != "" && c.BuildID == "":
		bad("OIDCFLOW_BUILD_ID", "BuildID", "is required with OIDCFLOW_DEPLOYMENT_NAME=%s: name this build (an image tag or a commit), or unset both to run unversioned", c.DeploymentName)
	}
	if c.SetCurrentIfUnset && c.BuildID == "" {
		bad("OIDCFLOW_DEPLOYMENT_SET_CURRENT_IF_UNSET", "SetCurrentIfUnset", "needs OIDCFLOW_BUILD_ID: an unversioned worker has no version to make current")
	}
	if n := c.DeploymentName; n != "" {
		switch {
		case strings.ContainsAny(n, ".:"):
			bad("OIDCFLOW_DEPLOYMENT_NAME", "DeploymentName", "is %q; it may not contain \".\" or \":\"", n)
		case strings.HasPrefix(n, "__"):
			bad("OIDCFLOW_DEPLOYMENT_NAME", "DeploymentName", "is %q; it may not start with \"__\"", n)
		case len(n) > maxVersionPart:
			bad("OIDCFLOW_DEPLOYMENT_NAME", "DeploymentName", "is %d bytes long; at most %d", len(n), maxVersionPart)
		}
	}
	if id := c.BuildID; id != "" {
		switch {
		case strings.HasPrefix(id, "__"):
			bad("OIDCFLOW_BUILD_ID", "BuildID", "is %q; it may not start with \"__\"", id)
		case len(id) > maxVersionPart:
			bad("OIDCFLOW_BUILD_ID", "BuildID", "is %d bytes long; at most %d", len(id), maxVersionPart)
		}
	}
}

// pollerBehavior returns the worker's poller behaviour of c.Pollers (after withDefaults).
func (c Config) pollerBehavior() (worker.PollerBehavior, error) {
	if c.Pollers == "autoscaling" {
		return worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{MinimumNumberOfPollers: 2}), nil
	}
	n, err := strconv.Atoi(c.Pollers)
	if err != nil || n < 2 {
		return nil, fmt.Errorf("is %q; use autoscaling or a number of at least 2", c.Pollers)
	}
	return worker.NewPollerBehaviorSimpleMaximum(worker.PollerBehaviorSimpleMaximumOptions{MaximumNumberOfPollers: n}), nil
}
