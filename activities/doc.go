// Package activities holds the activities of the oidcflow workflows, grouped in structs by
// the dependencies they share: DatabaseActivities (just-in-time PostgreSQL roles) and
// NotifyActivities (Slack-compatible webhook). Register pointers to them with the worker.
//
// Sensitive activities check the claims of the fresh, verified identity the activity
// interceptor puts into the context (identity.FromActivity) before they touch anything.
package activities

import (
	"context"

	"github.com/oidcflow/oidcflow/identity"
)

// requireClaims is the first step of every sensitive activity: it reads the fresh identity
// from the activity context and runs check on it. Refusals come back as non-retryable
// ApplicationErrors with the identity package's constant types. It does not cache anything:
// the interceptor already verified the token moments ago.
func requireClaims(ctx context.Context, check func(*identity.Identity) error) (*identity.Identity, error) {
	id, err := identity.FromActivity(ctx)
	if err != nil {
		return nil, identity.ApplicationError(err)
	}
	if err := check(id); err != nil {
		return nil, identity.ApplicationError(err)
	}
	return id, nil
}
