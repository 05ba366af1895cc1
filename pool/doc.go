// Package pool builds a member of an oidcflow worker pool from a Config: it logs in to Vault,
// loads the pool's envelope keys, builds the ID token verifier, the session store, refresher
// and shared sessions, the one-time store and the worker interceptors, dials Temporal as the
// worker, and hands back a Temporal worker with all of it installed. The caller registers its
// own workflows and activities; workflow code then reads identity.FromWorkflow, activity code
// identity.FromActivity and identity.Require.
//
//	cfg, err := pool.FromEnv() // the OIDCFLOW_* variables; or fill a Config
//	if err != nil {
//		return err
//	}
//	p, err := pool.New(ctx, cfg)
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//	p.Worker.RegisterWorkflow(DeployApproval)
//	p.Worker.RegisterActivity(&DeployActivities{})
//	return p.Run(ctx) // until ctx is done
//
// New registers what the identity machinery itself needs on the worker: the session
// activities (activities.SessionActivities, which keep sessions fresh and sweep), and the
// sweeper workflow (workflows.SweeperWorkflow) that the pool's Temporal Schedule runs (Run
// creates the schedule). By default every workflow type of the worker needs a person's
// identity; Config.IdentityWorkflows makes it opt-in per type, so that the pool can join a
// worker that runs other workflows too.
//
// Starters dial Temporal with package login (or interceptors.Dial) and the pool's public
// envelope key; they never need Vault.
//
// # Versions
//
// Config.DeploymentName and Config.BuildID (OIDCFLOW_DEPLOYMENT_NAME, OIDCFLOW_BUILD_ID) turn
// on Temporal's Worker Deployment Versioning: the worker polls as that build of that Worker
// Deployment. The server sends new runs, and the next workflow task of auto-upgrade runs, to
// the deployment's current version, and keeps each pinned run on the build it started on.
// Register each workflow type with the behaviour that suits how long its runs live
// (workflow.RegisterOptions.VersioningBehavior); types registered without one take
// Config.DefaultVersioningBehavior, pinned by default. The sweeper is pinned. Without a
// BuildID the worker is unversioned, and the behaviours are ignored.
//
// An operator rolls a new build by starting its workers next to the old ones, making it
// current (`temporal worker deployment set-current-version --deployment-name NAME
// --build-id NEW`), and stopping the old ones once `temporal worker deployment
// describe-version --deployment-name NAME --build-id OLD` reports them drained. The first
// build of a deployment can make itself current (Config.SetCurrentIfUnset,
// SetCurrentIfUnset).
//
// # Vault layout
//
// Everything lives in one KV v2 mount (Config.VaultKVMount, OIDCFLOW_VAULT_KV_MOUNT, default
// "oidcflow") with cas_required on:
//
//	envelope/keys                 Config.EnvelopeKeysPath (OIDCFLOW_ENVELOPE_KEYS_PATH): the
//	                              pool's envelope keys. "current" is the private text form of
//	                              the current key pair (envelope.KeyPair.MarshalText), and
//	                              "previous" a list of older ones still opened. Operators
//	                              seed it and rotate it by writing a new version (the new
//	                              pair as "current", the old one first in "previous"); the
//	                              propagation secrets that sign references between workflows
//	                              and activities derive from these keys and rotate with them.
//	                              Workers only read it. Starters get the public key
//	                              (envelope.KeyPair.PublicKey, text form) as configuration.
//	sessions/<id>                 one person's session (tokenstore.Store): tokens and the
//	                              facts needed to refresh and re-check them.
//	sessions/holders/<id>         the runs that hold session <id> (tokenstore.SharedSessions).
//	sessions/pool/session-id-key  SessionIDKeyPath: "key", 32 random bytes in base64, the MAC
//	                              key that maps a refresh token to its session id, and
//	                              "format" (SessionIDKeyFormat). Written once, create-only,
//	                              and never rotated: see LoadSessionIDKey.
//	onetime/<hour>/<id>           envelopes and references the pool honoured once
//	                              (tokenstore.OneTime).
//
// The worker's Vault policy, for mount "oidcflow" (what the dev stack gives its workers):
//
//	path "oidcflow/data/envelope/keys"            { capabilities = ["read"] }
//	path "oidcflow/data/sessions/*"               { capabilities = ["create", "read", "update", "delete"] }
//	path "oidcflow/metadata/sessions/*"           { capabilities = ["read", "list", "delete"] }
//	path "oidcflow/delete/sessions/*"             { capabilities = ["update"] }
//	path "oidcflow/destroy/sessions/*"            { capabilities = ["update"] }
//	path "oidcflow/data/sessions/pool/*"          { capabilities = ["create", "read"] }
//	path "oidcflow/metadata/sessions/pool/*"      { capabilities = ["read"] }
//	path "oidcflow/delete/sessions/pool/*"        { capabilities = ["deny"] }
//	path "oidcflow/destroy/sessions/pool/*"       { capabilities = ["deny"] }
//	path "oidcflow/data/onetime/*"                { capabilities = ["create", "read", "update"] }
//	path "oidcflow/metadata/onetime/*"            { capabilities = ["list", "delete"] }
//
// The sessions/pool rules let a worker create the session-id key but never change or delete
// it. Starters need no Vault access at all. With Config.EncryptPayloads (and for the codec
// server, `worker codec-server`) the worker also needs the payload Transit key
// (Config.PayloadTransitKey, here the default):
//
//	path "transit/datakey/plaintext/oidcflow-payloads" { capabilities = ["update"] }
//	path "transit/decrypt/oidcflow-payloads"           { capabilities = ["update"] }
//
// # Which OAuth client does what
//
// Config.ClientID (OIDCFLOW_CLIENT_ID) is the client people log in with (the starter's public
// client, authorization code with PKCE). The ID tokens must name it in aud, and the refresh
// tokens the pool keeps were issued to it, so the pool refreshes and revokes them as that
// client (RFC 6749 section 6 binds a refresh token to its client). Config.WorkerClientID
// (OIDCFLOW_WORKER_CLIENT_ID) is the worker's own confidential client: it is used only for
// the worker's bearer token to Temporal when Config.TemporalAuth is "client-credentials".
package pool
