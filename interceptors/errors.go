package interceptors

import (
	"errors"
	"fmt"

	"github.com/oidcflow/oidcflow/identity"
)

// Errors of this package. Each wraps identity.ErrUnauthenticated, so
// identity.ApplicationError turns it into a non-retryable oidcflow.Unauthenticated failure.
var (
	// ErrNoIdentity: a workflow that needs an identity was started (or an update sent)
	// without a sealed envelope.
	ErrNoIdentity = fmt.Errorf("interceptors: no identity envelope; start workflows through a client "+
		"built with interceptors.NewClientInterceptor, or list the workflow type in "+
		"WorkerOptions.AllowAnonymous: %w", identity.ErrUnauthenticated)
	// ErrBadReference: a session reference whose MAC or binding does not check out.
	ErrBadReference = fmt.Errorf("interceptors: session reference does not check out "+
		"(copied from another workflow, or sealed by a worker with other keys): %w", identity.ErrUnauthenticated)

	// ErrNoReference: an activity task that carries no reference at all. Only the pool's own
	// workflows schedule activities that it runs; a task scheduled by any other workflow (a
	// plain SDK client's, say) is refused before any activity code runs.
	ErrNoReference = fmt.Errorf("interceptors: activity task carries no reference; only workflows run "+
		"by this worker pool may schedule activities on its task queue: %w", identity.ErrUnauthenticated)
	// ErrReplayedEnvelope: an envelope this run (or the pool) honoured before.
	ErrReplayedEnvelope = fmt.Errorf("interceptors: this envelope was used before; every start, update "+
		"and signal needs an envelope of its own (headers copied from history are refused): %w", identity.ErrUnauthenticated)
	// ErrLegacyEnvelope: an envelope of format 1, which commits to no run, input or time.
	ErrLegacyEnvelope = fmt.Errorf("interceptors: envelope format 1 is no longer honoured for new operations; "+
		"upgrade the client to this release: %w", identity.ErrUnauthenticated)
	// ErrOtherRun: an envelope sealed for another run of the workflow.
	ErrOtherRun = fmt.Errorf("interceptors: the envelope was sealed for another run of this workflow "+
		"(look at the workflow's current run and send the request again): %w", identity.ErrUnauthenticated)
	// ErrInputChanged: an envelope sealed for other arguments than the ones that arrived.
	ErrInputChanged = fmt.Errorf("interceptors: the envelope was sealed for other arguments than the ones "+
		"that arrived (copied onto another request?): %w", identity.ErrUnauthenticated)
	// ErrStaleEnvelope: an envelope too old for the time the server recorded the operation.
	ErrStaleEnvelope = fmt.Errorf("interceptors: the envelope is too old for the operation it arrived with; "+
		"send the request again: %w", identity.ErrUnauthenticated)

	errOversized       = fmt.Errorf("oversized header: %w", identity.ErrUnauthenticated)
	errMalformedHeader = fmt.Errorf("malformed header: %w", identity.ErrUnauthenticated)
)

// isIdentityError reports whether err is one of identity's (non-retryable) errors.
func isIdentityError(err error) bool {
	var expired *identity.TokenExpiredError
	return errors.Is(err, identity.ErrUnauthenticated) || errors.Is(err, identity.ErrForbidden) ||
		errors.Is(err, identity.ErrReauthRequired) || errors.As(err, &expired)
}
