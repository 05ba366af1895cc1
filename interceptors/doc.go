// Package interceptors carries a person's verified OIDC identity through Temporal.
//
// The client interceptor (NewClientInterceptor) seals the caller's tokens into an envelope
// (package envelope) bound to namespace, workflow id and operation, and writes it into the
// header of StartWorkflow, SignalWithStart, Signal and Update. Temporal keeps headers in
// history in plaintext; only the sealed envelope ever travels, never a token.
//
// The worker interceptor (NewWorkerInterceptor) opens and verifies the envelope inside a
// local activity, so workflow code stays free of I/O and clocks and the verified Identity
// (no secrets) is recorded in history for replay and for the Web UI. Workflow code reads it
// with identity.FromWorkflow; update handlers see the caller's (an approver's) identity the
// same way. Outbound calls carry only a session reference with a MAC: activities,
// local activities, child workflows, continue-as-new and signals to external workflows. On
// the receiving side the reference is checked and the session's current token is loaded from
// the token store and verified again, so every step sees a fresh identity.
//
// A workflow started without an envelope fails at once with a non-retryable
// identity.TypeUnauthenticated error, unless its type is listed in
// WorkerOptions.AllowAnonymous.
package interceptors
