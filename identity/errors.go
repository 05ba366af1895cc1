package identity

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
)

// Sentinel errors. Every error this package returns wraps one of them (or is one of the typed
// errors below), so callers test with errors.Is / errors.As. No message ever contains a token.
var (
	// ErrUnauthenticated: no identity, or a token that does not prove one.
	ErrUnauthenticated = errors.New("identity: unauthenticated")
	// ErrForbidden: a verified identity that a Policy refused.
	ErrForbidden = errors.New("identity: forbidden")
	// ErrMalformedToken: the token is not a well-formed JWT (or is larger than the size cap).
	ErrMalformedToken = errors.New("identity: malformed token")
	// ErrInvalidToken: well-formed, but the signature, issuer, audience, type or times are wrong.
	ErrInvalidToken = errors.New("identity: invalid token")
	// ErrReauthRequired: the session cannot be refreshed any more (invalid_grant); the person
	// must consent again.
	ErrReauthRequired = errors.New("identity: re-authentication required")
)

// Temporal ApplicationError type strings. They are constant so workflows and clients can match
// on them; see ApplicationError.
const (
	TypeUnauthenticated = "oidcflow.Unauthenticated"
	TypeForbidden       = "oidcflow.Forbidden"
	TypeTokenExpired    = "oidcflow.TokenExpired"
	TypeInvalidToken    = "oidcflow.InvalidToken"
	TypeReauthRequired  = "oidcflow.ReauthRequired"
)

// TokenExpiredError reports a token whose exp lies in the past (beyond the leeway).
type TokenExpiredError struct {
	Expiry time.Time
}

func (e *TokenExpiredError) Error() string {
	return "identity: token expired at " + e.Expiry.UTC().Format(time.RFC3339)
}

// Is makes errors.Is(err, ErrUnauthenticated) true for an expired token.
func (e *TokenExpiredError) Is(target error) bool { return target == ErrUnauthenticated }

// DeniedError is a policy refusal that explains itself: what was needed, what the identity has.
type DeniedError struct {
	Subject string
	Reason  string // "needs permission can_approve_invoice; has roles [viewer]"
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("identity: %s denied: %s", e.Subject, e.Reason)
}

// Is makes errors.Is(err, ErrForbidden) true for a denial.
func (e *DeniedError) Is(target error) bool { return target == ErrForbidden }

// ApplicationError converts an identity error into a non-retryable Temporal ApplicationError
// with a constant type string, keeping the message (which never holds a token). Errors that
// are not identity errors are returned unchanged, so transient failures stay retryable.
func ApplicationError(err error) error {
	if err == nil {
		return nil
	}
	var typ string
	var expired *TokenExpiredError
	switch {
	case errors.As(err, &expired):
		typ = TypeTokenExpired
	case errors.Is(err, ErrReauthRequired):
		typ = TypeReauthRequired
	case errors.Is(err, ErrForbidden):
		typ = TypeForbidden
	case errors.Is(err, ErrMalformedToken), errors.Is(err, ErrInvalidToken):
		typ = TypeInvalidToken
	case errors.Is(err, ErrUnauthenticated):
		typ = TypeUnauthenticated
	default:
		return err
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), typ, nil)
}

// ErrProviderUnavailable: the IdP's JWKS, discovery, introspection or userinfo endpoint could
// not be reached or answered with an error. It is deliberately not an ErrUnauthenticated:
// ApplicationError leaves it unchanged so Temporal retries, and nothing was accepted.
var ErrProviderUnavailable = errors.New("identity: identity provider unavailable")

// ErrKeyNotYetKnown: a token names a signing key (kid) that is not among the keys the
// Verifier holds, and the JWKS was requested too recently to be requested again
// (VerifierOptions.JWKSCooldown). Right after the IdP rotates its signing key, every new
// token meets it until the cooldown passes. It is deliberately not an ErrUnauthenticated
// (nor ErrInvalidToken): ApplicationError leaves it unchanged so Temporal retries, and the
// first verification after the cooldown refetches the JWKS; a kid still unknown then is
// refused for good (ErrInvalidToken). Nothing was accepted.
var ErrKeyNotYetKnown = errors.New("identity: signing key not yet known")

// ErrInvalidConfig: VerifierOptions or a policy text that cannot work. NewVerifier and
// ParsePolicy return it; fix the configuration, retrying does not help.
var ErrInvalidConfig = errors.New("identity: invalid configuration")

// configError reports a configuration mistake, wrapping ErrInvalidConfig.
func configError(format string, args ...any) error {
	return fmt.Errorf("identity: %s: %w", fmt.Sprintf(format, args...), ErrInvalidConfig)
}

// tokenError is the error every verification failure returns: one message (never the token)
// that matches both its kind (ErrMalformedToken or ErrInvalidToken) and ErrUnauthenticated.
type tokenError struct {
	kind error
	msg  string
}

func (e *tokenError) Error() string   { return e.msg }
func (e *tokenError) Unwrap() []error { return []error{e.kind, ErrUnauthenticated} }

// malformed reports a token that is not a well-formed JWT (or is over the size cap).
func malformed(format string, args ...any) error {
	return &tokenError{kind: ErrMalformedToken, msg: "identity: malformed token: " + fmt.Sprintf(format, args...)}
}

// invalid reports a well-formed token that must not be accepted.
func invalid(format string, args ...any) error {
	return &tokenError{kind: ErrInvalidToken, msg: "identity: invalid token: " + fmt.Sprintf(format, args...)}
}

// unavailable reports an IdP endpoint failure (retryable).
func unavailable(format string, args ...any) error {
	return fmt.Errorf("identity: %s: %w", fmt.Sprintf(format, args...), ErrProviderUnavailable)
}

// quote renders an attacker-controlled string (a kid, an issuer) for an error message:
// quoted, and cut to 64 bytes so a hostile value cannot flood logs.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...(%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}
