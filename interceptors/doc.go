// Package interceptors carries a person's verified OIDC identity through Temporal.
//
// The client interceptor (NewClientInterceptor) seals the caller's tokens into an envelope
// (package envelope) bound to namespace, workflow id and operation, and committing to the run
// the caller names, a digest of the operation's arguments (InputDigest), a random id and the
// sealing time; it writes it into the header of StartWorkflow, SignalWithStart, Signal and
// Update. Temporal keeps headers in history in plaintext; only the sealed envelope ever
// travels, never a token.
//
// The worker interceptor (NewWorkerInterceptor) opens and verifies the envelope inside a
// local activity, so workflow code stays free of I/O and clocks and the verified Identity
// (no secrets) is recorded in history for replay and for the Web UI. It checks each
// commitment against the operation that arrived, judges the envelope's age at the time the
// server recorded the operation (see NewAuthenticator), and spends its id in the pool's
// one-time store, so a header copied from history speaks for nobody. Workflow code reads it
// with identity.FromWorkflow; update handlers see the caller's (an approver's) identity the
// same way. Outbound calls carry only a session reference with a MAC: activities,
// local activities, child workflows, continue-as-new and signals to external workflows. On
// the receiving side the reference is checked and the session's current token is loaded from
// the token store and verified again, so every step sees a fresh identity. Activities that a
// workflow schedules without a person (identity.AsPool) carry the pool's own reference. Every
// activity task needs one kind or the other: a task scheduled by a workflow the pool does not
// run is refused before any activity code runs.
//
// A run's session ends only once the server has accepted the run's end: the CloseWatch on the
// worker's connection (WorkerOptions.CloseWatch) ends it right after; a run whose workflow
// task did not pass through one ends it from a regular activity under the pool's authority
// (EndSessionActivity), which the server dispatches only after accepting the task that
// scheduled it. Every worker that uses NewWorkerInterceptor registers
// activities.SessionActivities with Sessions set (package pool does).
//
// A workflow started without an envelope fails at once with a non-retryable
// identity.TypeUnauthenticated error, unless its type is listed in
// WorkerOptions.AllowAnonymous.
package interceptors
