// Package activities holds the activities of the oidcflow workflows, grouped in structs by
// the dependencies they share: DatabaseActivities (just-in-time PostgreSQL roles, named and
// bootstrapped by package pgaccess) and NotifyActivities (Slack-compatible webhook).
// Register pointers to them with the worker.
//
// Sensitive activities check the claims of the fresh, verified identity the activity
// interceptor puts into the context (identity.FromActivity) before they touch anything.
package activities

import (
	"context"

	"github.com/oidcflow/oidcflow/identity"
)

// requireClaims is the first step of every sensitive activity: identity.Require on the fresh
// identity the activity interceptor verified, with refusals turned into non-retryable
// ApplicationErrors of the identity package's constant types. It caches nothing.
func requireClaims(ctx context.Context, p identity.Policy) (*identity.Identity, error) {
	id, err := identity.Require(ctx, p)
	if err != nil {
		return nil, identity.ApplicationError(err)
	}
	return id, nil
}

// subjectIs is the policy "the identity is subject": activities that act on behalf of one
// person (the requester) run only with that person's own verified identity.
type subjectIs string

func (s subjectIs) Check(id *identity.Identity) error {
	if id == nil {
		return identity.ErrUnauthenticated
	}
	if id.Subject != string(s) {
		return &identity.DeniedError{Subject: id.Subject, Reason: "needs subject " + string(s) + " (the requester)"}
	}
	return nil
}

func (s subjectIs) String() string { return "subject(" + string(s) + ")" }
