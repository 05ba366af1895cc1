package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
)

// Temporal ApplicationError types the workflows fail with (or fail an update with). All are
// non-retryable and constant, so clients can match on them. Besides these, a workflow fails
// with identity's types for identity refusals (identity.ApplicationError) and with
// activities.TypeInvalidInput for an input that can never succeed. Messages never hold a
// token.
const (
	// TypeNoRoute: AccessRequest found no approver route for the requester's department.
	TypeNoRoute = "oidcflow.NoRoute"
	// TypeApprovalMismatch: an approve or deny update named another run or another request
	// than the one it reached, or none. Look at the request again and decide again.
	TypeApprovalMismatch = "oidcflow.ApprovalMismatch"
	// TypeLooserRules: a start whose Config would loosen the approval rules (tighten.go).
	TypeLooserRules = "oidcflow.LooserRules"
	// TypeGrantFailed: an AccessRequest whose grant failed.
	TypeGrantFailed = "oidcflow.GrantFailed"
	// TypeRevokeFailed: an AccessRequest whose revoke failed for good (the role is not
	// oidcflow's any more, or the activity was refused); the sweeper (SweeperWorkflow) drops
	// the role of a run that is no longer running at its next interval.
	TypeRevokeFailed = "oidcflow.RevokeFailed"
	// TypeSweepFailed: a Sweeper run in which a step failed; the next scheduled run tries
	// again.
	TypeSweepFailed = "oidcflow.SweepFailed"
)

// identityErrorTypes are the non-retryable error types of identity failures; no retry can fix
// them, so activities that check claims never retry on them.
var identityErrorTypes = []string{
	identity.TypeUnauthenticated, identity.TypeForbidden, identity.TypeTokenExpired,
	identity.TypeInvalidToken, identity.TypeReauthRequired,
}

// errClosed refuses a decision on a request that is no longer pending.
var errClosed = errors.New("workflows: request is no longer open for decisions")

// invalidInput refuses a workflow input that can never succeed (activities.TypeInvalidInput).
func invalidInput(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError("workflows: "+fmt.Sprintf(format, args...), activities.TypeInvalidInput, nil)
}

// looser refuses an input Config that would loosen the approval rules (TypeLooserRules).
func looser(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(
		"workflows: the request's config may only tighten the approval rules: "+fmt.Sprintf(format, args...),
		TypeLooserRules, nil)
}
