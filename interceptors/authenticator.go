package interceptors

import (
	"context"
	"fmt"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// TokenVerifier verifies an ID token; *identity.Verifier is one. VerifyKeptIDToken verifies
// one that a session kept past its exp and vouches for until until (see
// SessionStore.CurrentIDToken); it is used for session tokens only, never for a token from
// an envelope.
type TokenVerifier interface {
	VerifyIDToken(ctx context.Context, raw string) (*identity.Identity, error)
	VerifyKeptIDToken(ctx context.Context, raw string, until time.Time) (*identity.Identity, error)
}

// SessionStore keeps a person's tokens between steps; the Vault-backed token store is one.
type SessionStore interface {
	// Deposit stores the tokens of a verified identity for holder (a workflow, or an update
	// of one) and returns the session id. Deposits of the same refresh token share one
	// session, so that one refresh serves every run started from one login.
	Deposit(ctx context.Context, id *identity.Identity, c envelope.Contents, holder string) (sessionID string, err error)
	// CurrentIDToken returns the session's ID token, refreshing the session when it is due.
	// keptUntil is zero unless the last refresh returned no ID token (OIDC Core 12.2): then
	// raw is the verified one of before, whose person the store re-checked through the
	// userinfo endpoint, and the session vouches for it until keptUntil (its access
	// token's expiry), even past its exp.
	CurrentIDToken(ctx context.Context, sessionID string) (raw string, keptUntil time.Time, err error)
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
	raw, keptUntil, err := a.Sessions.CurrentIDToken(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if !keptUntil.IsZero() {
		// The identity provider renews this session without ID tokens: the kept one's exp
		// has no say, the session's vouching (until its access token expires) has. Kept
		// tokens are never cached, so the identity is the caller's own.
		return a.Verifier.VerifyKeptIDToken(ctx, raw, keptUntil)
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
