// Package identity holds the verified identity of a person acting through a workflow: the
// Identity type, the OIDC Verifier that produces it (go-oidc plus hardening), claim mapping
// for common IdPs, the Policy language that sensitive steps check, and the typed errors.
//
// identity imports nothing else of oidcflow. It never stores or logs a token.
package identity

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Identity is a person's verified identity: what a token proved, with no secrets in it. It is
// recorded in workflow history (as the result of the local activity that verified it), so
// every field is safe to show in the Temporal Web UI.
type Identity struct {
	Subject     string    `json:"sub"`
	Issuer      string    `json:"iss"`
	Audience    []string  `json:"aud,omitempty"`
	Name        string    `json:"name,omitempty"`
	Email       string    `json:"email,omitempty"`
	Roles       []string  `json:"roles,omitempty"`       // effective roles, nested roles already expanded
	Permissions []string  `json:"permissions,omitempty"` // fine-grained permissions (e.g. can_approve_invoice)
	Groups      []string  `json:"groups,omitempty"`
	Department  string    `json:"department,omitempty"`
	Tenant      string    `json:"tenant,omitempty"`     // Entra ID tid, Google hd, ...
	ClientID    string    `json:"client_id,omitempty"`  // the OAuth client the token was issued to
	SessionID   string    `json:"session_id,omitempty"` // token store session reference, not a secret
	Expiry      time.Time `json:"exp"`                  // expiry of the token that proved this identity
}

// HasRole reports whether the identity holds role (after nested-role expansion).
func (id *Identity) HasRole(role string) bool { return id != nil && slices.Contains(id.Roles, role) }

// HasPermission reports whether the identity holds permission.
func (id *Identity) HasPermission(p string) bool {
	return id != nil && slices.Contains(id.Permissions, p)
}

// InGroup reports whether the identity is a member of group.
func (id *Identity) InGroup(g string) bool { return id != nil && slices.Contains(id.Groups, g) }

// String names the identity for logs and messages: subject and issuer, never a token.
func (id *Identity) String() string {
	if id == nil {
		return "<anonymous>"
	}
	return id.Subject + " (" + id.Issuer + ")"
}

type ctxKey struct{}

// WithActivity returns a copy of ctx that carries id. The activity interceptor calls it after
// verifying the session's current token.
func WithActivity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromActivity returns the fresh, verified identity of the person on whose behalf the
// activity runs, or ErrUnauthenticated when the activity carries none.
func FromActivity(ctx context.Context) (*Identity, error) {
	if id, ok := ctx.Value(ctxKey{}).(*Identity); ok && id != nil {
		return id, nil
	}
	return nil, ErrUnauthenticated
}

// WithWorkflow returns a copy of ctx that carries id. The workflow interceptor calls it with
// the starter's identity for the run and with the caller's identity for an update handler.
func WithWorkflow(ctx workflow.Context, id *Identity) workflow.Context {
	return workflow.WithValue(ctx, ctxKey{}, id)
}

// AsPool returns a copy of ctx that carries no person's identity: what a workflow does from
// it runs under the worker pool's own authority. An activity scheduled from it carries a pool
// reference (bound to the scheduling run, under a key only the pool holds) instead of a
// person's session, so it never depends on a session that may have ended or been revoked:
// notifications, revocations, sweeps. Only the pool's own workflow code can mint such a
// reference; a task that carries neither kind is refused before any activity code runs.
func AsPool(ctx workflow.Context) workflow.Context {
	return workflow.WithValue(ctx, ctxKey{}, (*Identity)(nil))
}

type poolKey struct{}

// WithPool returns a copy of ctx that marks an activity as running under the pool's own
// authority. The activity interceptor calls it after checking the task's pool reference.
func WithPool(ctx context.Context) context.Context {
	return context.WithValue(ctx, poolKey{}, true)
}

// RequirePool returns nil when the activity runs under the pool's own authority (scheduled
// from AsPool by one of the pool's workflows), else ErrUnauthenticated. Activities that
// only the pool may run (revocation, sweeps) start with it.
func RequirePool(ctx context.Context) error {
	if ok, _ := ctx.Value(poolKey{}).(bool); ok {
		return nil
	}
	return fmt.Errorf("identity: this activity runs only under the worker pool's own authority: %w", ErrUnauthenticated)
}

// FromWorkflow returns the verified identity ctx carries, or ErrUnauthenticated when it
// carries none:
//
//   - in the workflow function and everything it runs (goroutines, selectors, receives from
//     signal channels): the run's starter (for a child or a continued run, the identity it
//     was started with; after a re-consent, the renewed one);
//   - in an update handler: the update's caller (an approver, say), whose own envelope the
//     worker interceptor verified before the handler ran;
//   - in an update validator, which runs before the caller is verified, in a context made by
//     AsPool, and in a workflow started without identity (AllowAnonymous): none.
//
// A signal does not change it: Go workflows receive signals from a channel, in the workflow
// function's context, so FromWorkflow there still names the starter, never the signal's
// sender. Read the sender with SignalSender(ctx, signalName, value) once after each
// receive; it is nil when the signal carried no verified identity.
func FromWorkflow(ctx workflow.Context) (*Identity, error) {
	if id, ok := ctx.Value(ctxKey{}).(*Identity); ok && id != nil {
		return id, nil
	}
	return nil, ErrUnauthenticated
}
