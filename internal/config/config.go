// Package config loads oidcflow's configuration from environment variables. Vars is the one
// list of every variable the binaries read; the README's table is checked against it.
//
// An env file (KEY=value lines, as the dev stack writes) named by OIDCFLOW_ENV_FILE fills in
// what the environment leaves unset; the environment always wins.
package config

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Var documents one environment variable.
type Var struct {
	Name    string
	Default string
	Usage   string
	Secret  bool // never printed
}

// Vars lists every environment variable oidcflow's binaries read.
var Vars = []Var{
	{"OIDCFLOW_ENV_FILE", "", "env file (KEY=value lines) filling in unset variables; `make up` writes `.stack/env`", false},
	{"TEMPORAL_ADDRESS", "127.0.0.1:7233", "Temporal frontend host:port", false},
	{"TEMPORAL_NAMESPACE", "oidcflow", "Temporal namespace (part of every envelope binding)", false},
	{"OIDCFLOW_TASK_QUEUE", "oidcflow", "task queue of the worker pool", false},
	{"OIDCFLOW_TEMPORAL_UI_URL", "http://127.0.0.1:8233", "Temporal Web UI base URL, for links the CLI prints", false},
	{"OIDCFLOW_ISSUER", "", "OIDC issuer URL, exactly as in the tokens' `iss` (required)", false},
	{"OIDCFLOW_CLIENT_ID", "starter", "public OAuth client people log in with (the starter CLI, package login: authorization code + PKCE); the `aud` ID tokens must carry, and the client the workers refresh and revoke sessions as: give workers and starters the same value", false},
	{"OIDCFLOW_REDIRECT_URL", "http://127.0.0.1:8765/callback", "loopback redirect URL of the starter client", false},
	{"OIDCFLOW_SCOPES", "openid offline_access profile email", "scopes the starter asks for", false},
	{"OIDCFLOW_TOKEN_CACHE", "", "starter's session file (mode 0600); default `oidcflow/tokens.json` in the user's config folder ($XDG_CONFIG_HOME or ~/.config)", false},
	{"OIDCFLOW_LOGIN_URL", "", "dev stack's login/consent app, through which the demo and the tests log personas in", false},
	{"OIDCFLOW_WORKER_CLIENT_ID", "worker", "confidential client of the worker, used only for its bearer token to Temporal (`OIDCFLOW_TEMPORAL_AUTH=client-credentials`); sessions are refreshed and revoked as OIDCFLOW_CLIENT_ID", false},
	{"OIDCFLOW_WORKER_CLIENT_SECRET", "", "secret of OIDCFLOW_WORKER_CLIENT_ID (required with `OIDCFLOW_TEMPORAL_AUTH=client-credentials`)", true},
	{"OIDCFLOW_TEMPORAL_AUTH", "none", "`none`, or `client-credentials`: the worker sends a bearer token from the worker client to Temporal, and starters send the person's access token", false},
	{"OIDCFLOW_TEMPORAL_AUDIENCE", "temporal", "audience the Temporal frontend requires in bearer tokens: the worker asks for it in its client credentials grant, and `worker codec-server` requires it of the access tokens sent to it", false},
	{"OIDCFLOW_ENVELOPE_PUBLIC_KEY", "", "the worker pool's envelope public key, text form with key id (starters need it)", false},
	{"OIDCFLOW_ENVELOPE_KEYS_PATH", "envelope/keys", "KV path (in OIDCFLOW_VAULT_KV_MOUNT) of the pool's private envelope keys (`current`, `previous`); the propagation secrets derive from them", false},
	{"VAULT_ADDR", "http://127.0.0.1:8200", "Vault address", false},
	{"OIDCFLOW_VAULT_AUTH", "approle", "Vault auth method of the worker: `approle`, `token` or `kubernetes`", false},
	{"OIDCFLOW_VAULT_ROLE_ID", "", "AppRole role id (approle)", false},
	{"OIDCFLOW_VAULT_SECRET_ID", "", "AppRole secret id (approle)", true},
	{"OIDCFLOW_VAULT_K8S_ROLE", "", "Vault role for Kubernetes auth (kubernetes)", false},
	{"VAULT_TOKEN", "", "Vault token (token auth; the dev stack's root token for tests)", true},
	{"OIDCFLOW_VAULT_KV_MOUNT", "oidcflow", "KV v2 mount holding the pool's keys, sessions and one-time records (cas_required; layout in package pool)", false},
	{"OIDCFLOW_VAULT_TRANSIT_KEY", "oidcflow", "dev stack: name of a Transit key the launcher creates and its worker policy allows (encrypt, decrypt); payloads use OIDCFLOW_PAYLOAD_TRANSIT_KEY", false},
	{"OIDCFLOW_ENCRYPT_PAYLOADS", "false", "worker: `true` encrypts the payloads the worker writes to Temporal (inputs, results, memos, the recorded identity) with AES-256-GCM under data keys from Vault Transit (package payloadcodec), and decrypts them; payloads written before stay readable. Starters then need OIDCFLOW_CODEC_ENDPOINT, and the Web UI the codec server (`worker codec-server`)", false},
	{"OIDCFLOW_PAYLOAD_TRANSIT_KEY", "oidcflow-payloads", "Transit key (aes256-gcm96, in mount `transit`) that wraps the payload data keys; the worker and the codec server need `update` on transit/datakey/plaintext/<key> and transit/decrypt/<key>", false},
	{"OIDCFLOW_CODEC_ENDPOINT", "", "starter: https URL of the codec server (`worker codec-server`), through which the starter encrypts what it sends and decrypts what it reads, with the person's access token; set it when the pool sets OIDCFLOW_ENCRYPT_PAYLOADS. Empty: payloads go as they are", false},
	{"OIDCFLOW_CODEC_CA_FILE", "", "starter: PEM file of the CA that signed the codec server's certificate (dev stack: `.stack/tls/ca.pem`); default: the system's roots", false},
	{"OIDCFLOW_CODEC_LISTEN", "127.0.0.1:8234", "`worker codec-server`: HTTPS listen address; it decodes for `<namespace>:read` and encodes for `<namespace>:write` or a role above (worker, admin) in the top-level `permissions` claim, for TEMPORAL_NAMESPACE only", false},
	{"OIDCFLOW_CODEC_TLS_CERT", "", "`worker codec-server`: PEM certificate (chain) of the listener (required; dev stack: `.stack/tls/cert.pem`)", false},
	{"OIDCFLOW_CODEC_TLS_KEY", "", "`worker codec-server`: PEM private key of the listener (required; dev stack: `.stack/tls/key.pem`)", false},
	{"OIDCFLOW_CODEC_ORIGINS", "http://127.0.0.1:8233", "`worker codec-server`: browser origins allowed through CORS (the Temporal Web UI's), separated by spaces or commas", false},
	{"OIDCFLOW_REFRESH_SKEW", "30s", "worker: refresh a session when its access or ID token expires within this (the starter refreshes its own login a minute ahead)", false},
	{"OIDCFLOW_REFRESH_TIMEOUT", "60s", "worker: how long one refresh request to the IdP's token endpoint may take; it goes on when the activity that asked gives up, and its answer is kept (a request cut short may lose a rotated refresh token)", false},
	{"OIDCFLOW_REFRESH_ROTATION_GRACE", "0s", "the IdP's refresh token rotation grace period (Hydra's rotation_grace_period, Okta's grace period for token rotation, Auth0's reuse interval): the worker retries a refresh whose answer was lost only within it; set it to the IdP's value, never above. Dev stack (`make up`): Hydra gets it (at most 5m; 2m outlasts the worker's token request) and .stack/env passes it on to workers", false},
	{"OIDCFLOW_MAX_CONCURRENT_REFRESHES", "16", "worker: how many sessions it refreshes at the IdP at once; more wait their turn", false},
	{"OIDCFLOW_LEEWAY", "60s", "clock leeway for exp/nbf/iat, and between sealers' clocks and the server's", false},
	{"OIDCFLOW_ENVELOPE_MAX_AGE", "5m", "how old a start's envelope may be when the server records the start; the pool honours each envelope once within this", false},
	{"OIDCFLOW_MAX_BACKLOG", "1h", "how long an update or signal bound to its run may wait for a worker before its envelope is refused (keep it equal on every worker of a pool)", false},
	{"OIDCFLOW_CLAIMS", "generic", "claim mapping preset: `generic`, `hydra`, `keycloak`, `okta`, `entra`, `auth0`, `google`", false},
	{"OIDCFLOW_CLAIMS_NAMESPACE", "", "Auth0: the namespace of custom claims; Keycloak: the client whose roles count (default OIDCFLOW_CLIENT_ID)", false},
	{"OIDCFLOW_ROLE_HIERARCHY", "", "nested roles: inline JSON or @file, `{\"role_implies\": {...}, \"group_implies\": {...}}`", false},
	{"OIDCFLOW_POSTGRES_URL", "", "PostgreSQL admin URL for just-in-time database grants (CREATEROLE, and pg_signal_backend to end the sessions of revoked roles)", true},
	{"OIDCFLOW_ADMIN_ROLE", "admin", "role the starter of an AdminTask must hold (its activities check it again); the worker's setting, never the input's", false},
	{"OIDCFLOW_SWEEP_INTERVAL", "1m", "how often the pool's Temporal Schedule runs the sweeper, which drops expired or orphaned just-in-time roles and ends their database sessions, and ends the token sessions of runs that are gone (at least 10s); `0`: the worker leaves the schedule alone", false},
	{"OIDCFLOW_WEBHOOK_URL", "", "Slack-compatible webhook for notifications (empty: none)", false},
	{"OIDCFLOW_HTTP_ADDR", "127.0.0.1:9090", "worker's metrics (/metrics) and health (/healthz, /readyz) listener", false},
	{"OIDCFLOW_MAX_CONCURRENT_ACTIVITIES", "0", "worker's max concurrent activity executions (0: SDK default)", false},
	{"OIDCFLOW_MAX_CONCURRENT_WORKFLOW_TASKS", "0", "worker's max concurrent workflow task executions (0: SDK default)", false},
	{"OIDCFLOW_POLLERS", "autoscaling", "how the worker polls its task queue: `autoscaling` (the pollers of workflow and of activity tasks scale on the server's feedback, 2 to 100 each; see \"Running a worker pool\") or a number N of at least 2 (at most N pollers of each kind; 2 is the SDK's default)", false},
	{"OIDCFLOW_DEPLOYMENT_NAME", "", "Temporal Worker Deployment the worker belongs to (Worker Deployment Versioning; no `.` or `:`); required with OIDCFLOW_BUILD_ID", false},
	{"OIDCFLOW_BUILD_ID", "", "this worker's build within OIDCFLOW_DEPLOYMENT_NAME (an image tag or commit); set, the worker is versioned and gets only the runs Temporal routes to its build (see \"Deploying a new version\"); empty: versioning off, the worker takes every task of its queue", false},
	{"OIDCFLOW_DEPLOYMENT_SET_CURRENT_IF_UNSET", "false", "`true`: when the deployment has never had a current version (its first build), the worker makes its own build current; it never replaces a current version or an operator's choice (dev and first deploys)", false},
	{"OIDCFLOW_SHUTDOWN_TIMEOUT", "30s", "how long a stopping worker (SIGTERM) lets in-flight activities finish", false},
	{"OIDCFLOW_LOG_FORMAT", "json", "`json` or `text`", false},
	{"OIDCFLOW_LOG_LEVEL", "info", "`debug`, `info`, `warn` or `error`", false},

	// Read by the dev stack launcher and the tests only.
	{"OIDCFLOW_UI_CLIENT_ID", "temporal-ui", "dev stack: confidential client for the Web UI / codec side", false},
	{"OIDCFLOW_UI_CLIENT_SECRET", "", "dev stack: its secret", true},
	{"OIDCFLOW_OPERATOR_CLIENT_ID", "operator", "dev stack: confidential client with Temporal admin permission (the tests' terminate and reset)", false},
	{"OIDCFLOW_OPERATOR_CLIENT_SECRET", "", "dev stack: its secret", true},
	{"OIDCFLOW_IDP_ADMIN_URL", "http://127.0.0.1:4445", "dev stack: Hydra's admin API (tests set token lifetimes, introspect)", false},
	{"OIDCFLOW_ACCESS_TOKEN_TTL", "1h", "dev stack (`make up`): Hydra's access token lifetime; seconds work", false},
	{"OIDCFLOW_ID_TOKEN_TTL", "1h", "dev stack (`make up`): Hydra's ID token lifetime", false},
	{"OIDCFLOW_REFRESH_TOKEN_TTL", "720h", "dev stack (`make up`): Hydra's refresh token lifetime", false},
	{"OIDCFLOW_POSTGRES_BIN", "", "dev stack: folder of the PostgreSQL server binaries (default: the newest under /usr/lib/postgresql)", false},
	{"OIDCFLOW_IDP_HOOK_KEY", "", "dev stack: key Hydra's token hook presents to the login/consent app (set by the launcher)", true},
	{"OIDCFLOW_FAULTS", "", "tests: `1` runs the fault tests, which pause and restart the stack's Vault and Hydra and rotate Hydra's signing key (`make test` runs them alone, after the rest)", false},
	{"OIDCFLOW_POOL_RUNS", "200", "tests: how many access requests the worker pool test runs", false},
	{"OIDCFLOW_REQUIRE_STACK", "", "tests: `1` makes integration tests fail instead of skip without a dev stack (`make test` sets it)", false},
}

// Env reads variables: the process environment first, then the env file, then Vars'
// defaults.
type Env struct {
	lookup func(string) (string, bool)
	file   map[string]string
}

// FromEnvironment returns an Env over the process environment and OIDCFLOW_ENV_FILE.
func FromEnvironment() (*Env, error) {
	return New(os.LookupEnv)
}

// New returns an Env over lookup (os.LookupEnv in production) and the env file it names.
func New(lookup func(string) (string, bool)) (*Env, error) {
	e := &Env{lookup: lookup, file: map[string]string{}}
	if path, ok := lookup("OIDCFLOW_ENV_FILE"); ok && path != "" {
		f, err := ReadEnvFile(path)
		if err != nil {
			return nil, err
		}
		e.file = f
	}
	return e, nil
}

// ReadEnvFile parses KEY=value lines; blank lines and lines starting with # are skipped.
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: read env file: %w (point OIDCFLOW_ENV_FILE at an existing file, or unset it)", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config: %s: a line without '=' (want KEY=value)", path)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, sc.Err()
}

// String returns the variable's value, or its documented default.
func (e *Env) String(name string) string {
	if v, ok := e.lookup(name); ok && v != "" {
		return v
	}
	if v, ok := e.file[name]; ok && v != "" {
		return v
	}
	for _, v := range Vars {
		if v.Name == name {
			return v.Default
		}
	}
	panic("config: undocumented variable " + name + "; add it to config.Vars")
}

// Lookup returns the variable's value from the environment or the env file, without its
// default; ok is false when neither sets it.
func (e *Env) Lookup(name string) (value string, ok bool) {
	if v, ok := e.lookup(name); ok && v != "" {
		return v, true
	}
	if v, ok := e.file[name]; ok && v != "" {
		return v, true
	}
	return "", false
}

// Required returns the variable's value or an error that says how to set it.
func (e *Env) Required(name string) (string, error) {
	if v := e.String(name); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("config: %s is not set; export it, or point OIDCFLOW_ENV_FILE at the dev stack's .stack/env", name)
}

// Duration parses a Go duration variable.
func (e *Env) Duration(name string) (time.Duration, error) {
	d, err := time.ParseDuration(e.String(name))
	if err != nil {
		return 0, fmt.Errorf("config: %s: %w", name, err)
	}
	return d, nil
}

// Bool parses a boolean variable (strconv.ParseBool: true, false, 1, 0, ...).
func (e *Env) Bool(name string) (bool, error) {
	b, err := strconv.ParseBool(e.String(name))
	if err != nil {
		return false, fmt.Errorf("config: %s: %w (want true or false)", name, err)
	}
	return b, nil
}

// Int parses an integer variable.
func (e *Env) Int(name string) (int, error) {
	n, err := strconv.Atoi(e.String(name))
	if err != nil {
		return 0, fmt.Errorf("config: %s: %w", name, err)
	}
	return n, nil
}

// Default returns the default of variable name in Vars ("" when it has none or is unknown).
func Default(name string) string {
	for _, v := range Vars {
		if v.Name == name {
			return v.Default
		}
	}
	return ""
}
