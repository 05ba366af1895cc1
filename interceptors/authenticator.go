package interceptors

import (
	"context"
	"fmt"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// TokenVerifier verifies an ID token; *identity.Verifier is one.
type TokenVerifier interface {
	VerifyIDToken(ctx context.Context, raw string) (*identity.Identity, error)
}

// SessionStore keeps a person's tokens between steps; the Vault-backed token store is one.
type SessionStore interface {
	// Deposit stores the tokens of a verified identity for holder (a workflow, or an update
	// of one) and returns the session id. Deposits of the same refresh token share one
	// session, so that one refresh serves every run started from one login.
	Deposit(ctx context.Context, id *identity.Identity, c envelope.Contents, holder string) (sessionID string, err error)
	// CurrentIDToken returns the session's ID token, refreshing the session when it is due.
	CurrentIDToken(ctx context.Context, sessionID string) (string, error)
	// End releases holder's hold on the session; the last one out revokes the refresh token
	// at the IdP and destroys the session.
	End(ctx context.Context, sessionID, holder string) error
}

// AuthenticatorOptions configure NewAuthenticator. All fields are required.
type AuthenticatorOptions struct {
	Keyring  *envelope.Keyring // the pool's current and previous envelope keys
	Verifier TokenVerifier
	Sessions SessionStore
}

// NewAuthenticator returns the production Authenticator: envelopes are opened with the
// pool's keyring, tokens verified with the Verifier, and sessions kept in the SessionStore.
func NewAuthenticator(opts AuthenticatorOptions) (Authenticator, error) {
	if opts.Keyring == nil || opts.Verifier == nil || opts.Sessions == nil {
		return nil, fmt.Errorf("interceptors: AuthenticatorOptions needs Keyring, Verifier and Sessions")
	}
	return &authenticator{opts}, nil
}

type authenticator struct{ AuthenticatorOptions }

func (a *authenticator) Open(ctx context.Context, b envelope.Binding, sealed []byte, holder string) (*identity.Identity, error) {
	contents, err := a.Keyring.Open(b, sealed)
	if err != nil {
		return nil, err
	}
	id, err := a.verify(ctx, contents.IDToken)
	if err != nil {
		return nil, err
	}
	if holder != "" {
		if id.SessionID, err = a.Sessions.Deposit(ctx, id, contents, holder); err != nil {
			return nil, err
		}
	}
	return id, nil
}

func (a *authenticator) Resume(ctx context.Context, sessionID string) (*identity.Identity, error) {
	raw, err := a.Sessions.CurrentIDToken(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	return a.verify(ctx, raw) // the caller names the session
}

// verify returns a copy of the verified identity, which callers may change: a verifier
// with a cache hands out shared values.
func (a *authenticator) verify(ctx context.Context, raw string) (*identity.Identity, error) {
	id, err := a.Verifier.VerifyIDToken(ctx, raw)
	if err != nil {
		return nil, err
	}
	c := *id
	return &c, nil
}

func (a *authenticator) End(ctx context.Context, sessionID, holder string) error {
	return a.Sessions.End(ctx, sessionID, holder)
}
