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

	errOversized       = fmt.Errorf("oversized header: %w", identity.ErrUnauthenticated)
	errMalformedHeader = fmt.Errorf("malformed header: %w", identity.ErrUnauthenticated)
)

// isIdentityError reports whether err is one of identity's (non-retryable) errors.
func isIdentityError(err error) bool {
	var expired *identity.TokenExpiredError
	return errors.Is(err, identity.ErrUnauthenticated) || errors.Is(err, identity.ErrForbidden) ||
		errors.Is(err, identity.ErrReauthRequired) || errors.As(err, &expired)
}
