package tokenstore

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Errors of this package wrap one of them (or an identity error) and never
// contain a token.
var (
	// ErrNotFound: no session with this id (never created, or destroyed).
	ErrNotFound = errors.New("tokenstore: session not found")
	// ErrConflict: a check-and-set write lost against a concurrent writer; re-read and retry.
	ErrConflict = errors.New("tokenstore: session changed concurrently (check-and-set)")
	// ErrUnavailable: Vault or the identity provider failed transiently (5xx, 429, network).
	// The operation can be retried; Temporal activities retry it with backoff.
	ErrUnavailable = errors.New("tokenstore: backend temporarily unavailable")
	// ErrInvalidSessionID: the id is not one this package issues.
	ErrInvalidSessionID = errors.New("tokenstore: invalid session id")
)

// RateLimitedError reports an HTTP 429 answer. RetryAfter is the delay the server asked for
// (Retry-After, RFC 9110 section 10.2.3), zero when it named none.
type RateLimitedError struct {
	Op         string
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("tokenstore: %s: rate limited, retry after %s", e.Op, e.RetryAfter)
	}
	return fmt.Sprintf("tokenstore: %s: rate limited", e.Op)
}

// Is makes errors.Is(err, ErrUnavailable) true for a rate limit.
func (e *RateLimitedError) Is(target error) bool { return target == ErrUnavailable }
