package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
)

// DefaultSkew is how long before expiry a token is refreshed when SourceOptions.Skew is 0.
const DefaultSkew = time.Minute

// Verifier verifies a refreshed ID token and checks that it speaks of the same person to the
// same client (OIDC Core 12.2). *identity.Verifier implements it.
type Verifier interface {
	VerifyIDToken(ctx context.Context, raw string) (*identity.Identity, error)
	CheckRefreshed(orig, refreshed *identity.Identity) error
}

// SourceOptions configure NewTokenSource.
type SourceOptions struct {
	// Cache is the session file. Required.
	Cache *Cache
	// Config is the OAuth client (ClientID and Endpoint.TokenURL are used). Required.
	Config *oauth2.Config
	// Verifier checks refreshed ID tokens before they are cached. Required.
	Verifier Verifier
	// Skew: the session is refreshed when its access token or ID token expires within Skew.
	// Default DefaultSkew (1 min).
	Skew time.Duration
	// HTTPClient makes the refresh request. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// TokenSource yields the cached session's tokens, refreshed when due. It is safe for
// concurrent use; it implements oauth2.TokenSource.
type TokenSource struct {
	ctx  context.Context
	opts SourceOptions

	mu  sync.Mutex
	cur *Session
}

// NewTokenSource returns a TokenSource over opts.Cache. ctx bounds refresh requests.
func NewTokenSource(ctx context.Context, opts SourceOptions) (*TokenSource, error) {
	if opts.Cache == nil || opts.Config == nil || opts.Verifier == nil {
		return nil, errors.New("login: SourceOptions.Cache, Config and Verifier are required")
	}
	if opts.Skew <= 0 {
		opts.Skew = DefaultSkew
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &TokenSource{ctx: ctx, opts: opts}, nil
}

// Token returns the current tokens (ID token in Extra("id_token")), refreshing them first
// when either expires within the skew. Errors wrap ErrNotLoggedIn, ErrSessionExpired or
// ErrIdPUnreachable.
func (ts *TokenSource) Token() (*oauth2.Token, error) {
	s, err := ts.Session()
	if err != nil {
		return nil, err
	}
	return s.Token(), nil
}

// Session is Token returning the whole (fresh) session.
func (ts *TokenSource) Session() (Session, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.cur != nil && ts.fresh(*ts.cur) {
		return *ts.cur, nil
	}
	var out Session
	err := ts.opts.Cache.locked(func() error {
		// Another process may have rotated the session since we last read it.
		s, err := ts.opts.Cache.Load()
		if err != nil {
			return err
		}
		if !ts.fresh(s) {
			if s, err = ts.refresh(s); err != nil {
				return err
			}
		}
		out = s
		return nil
	})
	if err != nil {
		ts.cur = nil
		return Session{}, err
	}
	ts.cur = &out
	return out, nil
}

func (ts *TokenSource) fresh(s Session) bool {
	limit := ts.opts.Now().Add(ts.opts.Skew)
	// A zero access token expiry means the IdP sent no expires_in: the ID token's exp bounds.
	return s.AccessToken != "" && s.IDToken != "" && (s.Expiry.IsZero() || limit.Before(s.Expiry)) &&
		limit.Before(s.IDTokenExpiry)
}

// refresh runs a refresh grant (RFC 6749 section 6), verifies the new ID token, and saves
// the rotated session before returning it.
func (ts *TokenSource) refresh(s Session) (Session, error) {
	if !s.HandedOver.IsZero() {
		return Session{}, &SessionExpiredError{Reason: fmt.Sprintf("tokens expired at %s; their refresh token was handed to "+
			"your running workflows at %s, which keep it fresh", s.Expiry.UTC().Format(time.RFC3339),
			s.HandedOver.UTC().Format(time.RFC3339))}
	}
	if s.RefreshToken == "" {
		return Session{}, &SessionExpiredError{Reason: fmt.Sprintf("tokens expired at %s and there is no refresh token (the offline_access scope was not granted)",
			s.Expiry.UTC().Format(time.RFC3339))}
	}
	ctx := context.WithValue(ts.ctx, oauth2.HTTPClient, ts.opts.HTTPClient)
	tok, err := ts.opts.Config.TokenSource(ctx, &oauth2.Token{RefreshToken: s.RefreshToken}).Token()
	if err != nil {
		return Session{}, ts.refreshError(err)
	}
	next := s
	next.AccessToken, next.Expiry, next.SavedAt = tok.AccessToken, tok.Expiry, ts.opts.Now().UTC()
	if tok.TokenType != "" {
		next.TokenType = tok.TokenType
	}
	if tok.RefreshToken != "" {
		next.RefreshToken = tok.RefreshToken
	}
	if sc, _ := tok.Extra("scope").(string); sc != "" {
		next.Scope = sc
	}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		id, err := ts.opts.Verifier.VerifyIDToken(ts.ctx, raw)
		if err == nil {
			err = ts.opts.Verifier.CheckRefreshed(s.identity(), id)
		}
		if err != nil {
			// The refresh token was consumed: keep the new one so that logout can revoke it,
			// but mark the tokens unusable.
			next.AccessToken, next.Expiry = "", time.Time{}
			_ = ts.opts.Cache.Save(next)
			if errors.Is(err, identity.ErrProviderUnavailable) {
				return Session{}, fmt.Errorf("login: verify the refreshed ID token: %w (%w)", ErrIdPUnreachable, err)
			}
			return Session{}, &SessionExpiredError{Reason: "the refreshed ID token was refused: " + err.Error()}
		}
		next.IDToken, next.IDTokenExpiry = raw, id.Expiry
	}
	if err := ts.opts.Cache.Save(next); err != nil {
		return Session{}, err
	}
	return next, nil
}

// HandOver records that the cached refresh token now belongs to the worker pool (it rode in
// a start envelope); see Session.HandedOver. It is a no-op without a refresh token.
func (ts *TokenSource) HandOver() error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.opts.Cache.locked(func() error {
		s, err := ts.opts.Cache.Load()
		if err != nil || s.RefreshToken == "" || !s.HandedOver.IsZero() {
			return err
		}
		s.HandedOver = ts.opts.Now().UTC()
		if err := ts.opts.Cache.Save(s); err != nil {
			return err
		}
		ts.cur = &s
		return nil
	})
}

// refreshError maps a refresh failure: a 4xx OAuth error (invalid_grant: expired, revoked or
// reused refresh token) ends the session; anything else is the IdP being unreachable.
func (ts *TokenSource) refreshError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
		code := re.ErrorCode
		if code == "" {
			code = re.Response.Status
		}
		return &SessionExpiredError{Reason: "the identity provider refused the refresh token: " + code}
	}
	if errors.As(err, &re) && re.Response != nil {
		return fmt.Errorf("login: refresh at %s: %s: %w", ts.opts.Config.Endpoint.TokenURL, re.Response.Status, ErrIdPUnreachable)
	}
	// oauth2 errors for transport failures carry the URL and the net error, never the body.
	return fmt.Errorf("login: refresh: %v: %w", err, ErrIdPUnreachable)
}

// identity returns what CheckRefreshed compares: iss, sub, aud, azp.
func (s Session) identity() *identity.Identity {
	return &identity.Identity{Issuer: s.Issuer, Subject: s.Subject, Audience: s.Audience, ClientID: s.AuthorizedBy}
}

// NewSession builds the session to cache after a login: tok from the token endpoint, id the
// verified identity of tok's ID token, clientID the OAuth client.
func NewSession(tok *oauth2.Token, id *identity.Identity, clientID string, now time.Time) Session {
	raw, _ := tok.Extra("id_token").(string)
	sc, _ := tok.Extra("scope").(string)
	return Session{
		Issuer: id.Issuer, ClientID: clientID, Subject: id.Subject, Audience: id.Audience, AuthorizedBy: id.ClientID,
		TokenType: tok.TokenType, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, IDToken: raw,
		Expiry: tok.Expiry, IDTokenExpiry: id.Expiry, Scope: sc, SavedAt: now.UTC(),
	}
}
