package activities

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
)

// Temporal ApplicationError types the activities fail with. They are constant, so workflows
// list them in retry policies and clients match on them. Identity refusals carry identity's
// types (identity.ApplicationError). Messages never hold a token.
const (
	// TypeInvalidInput: an input that can never succeed (non-retryable). The workflows fail
	// with it too when their own input is refused.
	TypeInvalidInput = "oidcflow.InvalidInput"
	// TypeNotManaged: the role to grant or revoke exists but is not one this package made
	// (non-retryable).
	TypeNotManaged = "oidcflow.RoleNotManaged"
	// TypeNotBootstrap: the database's group role is missing; run pgaccess.Bootstrap
	// (non-retryable).
	TypeNotBootstrap = "oidcflow.NotBootstrapped"
	// TypeDatabase is a retryable database failure (unreachable, timed out, a statement
	// refused). Its message names the kind of failure only: pgx's connection errors carry
	// the server's host and port, and history must not carry internal addresses; the worker
	// logs the full error.
	TypeDatabase = "oidcflow.DatabaseError"
	// TypeRunsUnavailable is a retryable failure to learn from Temporal whether a run is
	// still running (Runs); the sweep then keeps that run's role and fails after the rest.
	TypeRunsUnavailable = "oidcflow.RunsUnavailable"
	// TypeWebhookRejected (non-retryable): a webhook that answered with a redirect or a 4xx
	// other than 429, or whose URL is unusable.
	TypeWebhookRejected = "oidcflow.WebhookRejected"
	// TypeRateLimited: a refresh or revocation the identity provider or Vault rate-limited
	// (HTTP 429). It is retryable, after the server's Retry-After.
	TypeRateLimited = "oidcflow.RateLimited"
)

// ErrInvalidInput reports an activity input that can never succeed.
var ErrInvalidInput = errors.New("activities: invalid input")

func nonRetryable(typ, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), typ, nil)
}
