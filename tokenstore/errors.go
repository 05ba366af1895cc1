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
	// ErrUnsupportedFormat: a stored record (a session, a holder list, a one-time record, the
	// session-id key) carries a format
	// newer than this build reads, so a newer worker wrote it. Nothing is read from it and
	// nothing is written over it; upgrade the worker. Errors wrapping it are *FormatError.
	// It is not an identity error: an activity that meets it fails retryably, so a newer
	// worker of the pool can take the retry, and this one never honours the record.
	ErrUnsupportedFormat = errors.New("tokenstore: stored in a newer format than this worker reads; upgrade the worker")
)

// FormatError reports a stored record whose format this build does not read. It wraps
// ErrUnsupportedFormat.
type FormatError struct {
	// What names the record, e.g. "session <id>" (never a secret).
	What string
	// Format is the record's format; Newest is the newest one this build reads.
	Format, Newest int
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("tokenstore: %s is stored in format %d, and this worker reads formats up to %d: "+
		"a newer worker wrote it; upgrade this worker (the record is left as it is)", e.What, e.Format, e.Newest)
}

// Is makes errors.Is(err, ErrUnsupportedFormat) true.
func (e *FormatError) Is(target error) bool { return target == ErrUnsupportedFormat }

// CheckFormat returns a *FormatError when format (a stored record's, 0 when the record names
// none) is newer than newest or negative, else nil. Stores of other records kept next to the
// sessions (holder lists, say) use it so that every record fails the same way.
func CheckFormat(what string, format, newest int) error {
	if format < 0 || format > newest {
		return &FormatError{What: what, Format: format, Newest: newest}
	}
	return nil
}

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
