package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
)

// DefaultClientID is the OAuth client people log in with when Options.ClientID is empty: the
// dev stack's and the starter CLI's default (OIDCFLOW_CLIENT_ID).
const DefaultClientID = "starter"

// Options name a login: where it is kept and which identity provider and client it belongs to.
type Options struct {
	// Issuer is the OIDC issuer URL, exactly as in the tokens' iss (the pool's
	// OIDCFLOW_ISSUER). Required.
	Issuer string
	// ClientID is the public OAuth client people log in with; the worker pool verifies ID
	// tokens for it and refreshes the sessions it holds as it. Default DefaultClientID.
	ClientID string
	// CachePath is the session file. Default DefaultPath(), where `starter login` keeps it.
	CachePath string
	// Verifier checks refreshed ID tokens (and, in Login, the new one). Default: an
	// identity.Verifier for Issuer and ClientID.
	Verifier Verifier
	// HTTPClient makes discovery, token and revocation requests. Default: a client with a
	// 30 s timeout.
	HTTPClient *http.Client
	// Skew: the session is refreshed when its access or ID token expires within Skew.
	// Default DefaultSkew.
	Skew time.Duration
}

// Open returns a TokenSource over the login cached at opts.CachePath: it discovers the
// issuer's endpoints and builds the verifier, so both must be reachable. It fails with
// ErrNotLoggedIn when there is no cached login, and with a *SessionExpiredError when the
// cached one belongs to another issuer. It does not refresh anything yet.
func Open(ctx context.Context, opts Options) (*TokenSource, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c, err := NewCache(CacheOptions{Path: opts.CachePath})
	if err != nil {
		return nil, err
	}
	s, err := c.Load()
	if err != nil {
		return nil, err
	}
	if s.Issuer != "" && s.Issuer != opts.Issuer {
		return nil, &SessionExpiredError{Reason: fmt.Sprintf("the cached login is from %s, not %s", s.Issuer, opts.Issuer)}
	}
	ep, err := discover(ctx, opts.HTTPClient, opts.Issuer)
	if err != nil {
		return nil, err
	}
	if opts.Verifier, err = opts.verifier(ctx); err != nil {
		return nil, err
	}
	return NewTokenSource(ctx, SourceOptions{Cache: c, Config: ep.config(opts.ClientID), Verifier: opts.Verifier,
		Skew: opts.Skew, HTTPClient: opts.HTTPClient})
}

func (o Options) withDefaults() (Options, error) {
	if o.Issuer == "" {
		return o, errors.New("login: Options.Issuer is required")
	}
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return o, nil
}

// verifier returns o.Verifier, or builds one for o.Issuer and o.ClientID.
func (o Options) verifier(ctx context.Context) (Verifier, error) {
	if o.Verifier != nil {
		return o.Verifier, nil
	}
	v, err := identity.NewVerifier(ctx, identity.VerifierOptions{Issuer: o.Issuer, ClientID: o.ClientID, HTTPClient: o.HTTPClient})
	if err != nil {
		if errors.Is(err, identity.ErrProviderUnavailable) {
			return nil, fmt.Errorf("login: %w: %w", ErrIdPUnreachable, err)
		}
		return nil, err
	}
	return v, nil
}

// endpoints are the identity provider's endpoints a login uses.
type endpoints struct {
	auth, token, revocation string
}

// discover reads the issuer's discovery document (OIDC Discovery 1.0 section 3; RFC 8414
// section 2 for the revocation endpoint).
func discover(ctx context.Context, hc *http.Client, issuer string) (endpoints, error) {
	md, err := identity.Discover(ctx, hc, issuer)
	if err != nil {
		if errors.Is(err, identity.ErrProviderUnavailable) {
			return endpoints{}, fmt.Errorf("login: discovery at %s: %w: %v", issuer, ErrIdPUnreachable, err)
		}
		return endpoints{}, fmt.Errorf("login: discovery at %s: %w", issuer, err)
	}
	return endpoints{auth: md.AuthorizationEndpoint, token: md.TokenEndpoint, revocation: md.RevocationEndpoint}, nil
}

// config is the OAuth configuration of the public client clientID (no secret: PKCE protects
// the code, RFC 7636; the client id goes in the body).
func (e endpoints) config(clientID string) *oauth2.Config {
	return &oauth2.Config{ClientID: clientID,
		Endpoint: oauth2.Endpoint{AuthURL: e.auth, TokenURL: e.token, AuthStyle: oauth2.AuthStyleInParams}}
}
