package login

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// DefaultRedirectURL is LoginOptions.RedirectURL's default: a loopback redirect on a free
// port. The identity provider must accept any port on the client's registered loopback
// redirect (RFC 8252 section 7.3), as Ory Hydra, Keycloak and Okta do.
const DefaultRedirectURL = "http://127.0.0.1:0/callback"

// DefaultScopes are LoginOptions.Scopes' default: an ID token, a refresh token for the worker
// pool (offline_access), and the person's name and email.
var DefaultScopes = []string{"openid", "offline_access", "profile", "email"}

// LoginOptions configure Login.
type LoginOptions struct {
	Options
	// Browser shows the person the authorization URL: it opens a browser, prints the URL, or
	// (tests, the dev stack) follows it itself. Login waits for the identity provider's
	// redirect to RedirectURL while Browser runs and after it returned. Required.
	Browser func(ctx context.Context, authURL string) error
	// RedirectURL is the loopback http URL Login listens on for the redirect (RFC 8252
	// section 7.3); port 0 picks a free port. Default DefaultRedirectURL.
	RedirectURL string
	// Scopes are the scopes asked for; openid is needed. Default DefaultScopes.
	Scopes []string
}

// Login runs the authorization code flow with PKCE (RFC 7636) through a loopback redirect,
// verifies the ID token (and its nonce, OIDC Core 3.1.3.7), saves the session in the cache,
// replacing what was there, and returns a TokenSource over it. The replaced session's refresh
// token is revoked at the identity provider unless it was handed over to workflows (best
// effort: a failed revocation does not fail the login). ctx bounds the whole login: give it a
// deadline. It does not support device authorization (the starter CLI does).
func Login(ctx context.Context, opts LoginOptions) (*TokenSource, error) {
	o, err := opts.Options.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Browser == nil {
		return nil, errors.New("login: LoginOptions.Browser is required")
	}
	if opts.RedirectURL == "" {
		opts.RedirectURL = DefaultRedirectURL
	}
	if len(opts.Scopes) == 0 {
		opts.Scopes = DefaultScopes
	}
	cache, err := NewCache(CacheOptions{Path: o.CachePath})
	if err != nil {
		return nil, err
	}
	ep, err := discover(ctx, o.HTTPClient, o.Issuer)
	if err != nil {
		return nil, err
	}
	if o.Verifier, err = o.verifier(ctx); err != nil {
		return nil, err
	}
	cfg := ep.config(o.ClientID)
	cfg.Scopes = opts.Scopes
	tok, nonce, err := Authorize(ctx, cfg, opts.RedirectURL, opts.Browser, o.HTTPClient)
	if err != nil {
		return nil, err
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("login: the identity provider returned no ID token; ask for the openid scope")
	}
	id, err := o.Verifier.VerifyIDToken(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("login: the new ID token did not verify: %w", err)
	}
	if err := CheckNonce(raw, nonce); err != nil {
		return nil, err
	}
	prev, prevErr := cache.Load()
	if err := cache.Save(NewSession(tok, id, o.ClientID, time.Now())); err != nil {
		return nil, err
	}
	if prevErr == nil && prev.RefreshToken != "" && prev.HandedOver.IsZero() && prev.Issuer == o.Issuer && ep.revocation != "" {
		_ = revoke(ctx, o.HTTPClient, ep.revocation, prev.ClientID, prev.RefreshToken)
	}
	return NewTokenSource(ctx, SourceOptions{Cache: cache, Config: cfg, Verifier: o.Verifier, Skew: o.Skew, HTTPClient: o.HTTPClient})
}

// ErrRedirectURL: the redirect URL is not a loopback http URL, or nothing can listen on it
// (another login may be waiting on that port).
var ErrRedirectURL = errors.New("login: unusable redirect URL")

// Authorize runs the authorization code flow with PKCE (RFC 7636) of Login without its
// session handling: it listens on the loopback redirectURL (port 0 picks a free one; RFC 8252
// section 7.3), sets cfg.RedirectURL, hands the authorization URL (with state, nonce and the
// S256 challenge) to browser, and exchanges the code the redirect brings with hc. It returns
// the tokens and the nonce it asked for: verify the ID token, then CheckNonce. A redirect with
// another state is refused and ignored. ctx bounds the wait.
func Authorize(ctx context.Context, cfg *oauth2.Config, redirectURL string, browser func(context.Context, string) error, hc *http.Client) (*oauth2.Token, string, error) {
	redirect, err := url.Parse(redirectURL)
	if err != nil || redirect.Scheme != "http" || !isLoopback(redirect.Hostname()) {
		return nil, "", fmt.Errorf("%w: %q must be a loopback http URL such as %s (RFC 8252 section 7.3)", ErrRedirectURL, redirectURL, DefaultRedirectURL)
	}
	if redirect.Path == "" {
		redirect.Path = "/"
	}
	ln, err := net.Listen("tcp", redirect.Host)
	if err != nil {
		return nil, "", fmt.Errorf("%w: listen for the redirect on %s: %w", ErrRedirectURL, redirect.Host, err)
	}
	defer ln.Close()
	redirect.Host = ln.Addr().String()
	cfg.RedirectURL = redirect.String()

	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))
	type callback struct {
		code string
		err  error
	}
	got := make(chan callback, 1)
	mux := http.NewServeMux()
	mux.HandleFunc(redirect.Path, func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		var cb callback
		switch {
		case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1:
			// Not this login (or a forged redirect): ignore it and keep waiting.
			http.Error(w, "state does not match this login; ignored", http.StatusBadRequest)
			return
		case q.Get("error") != "":
			cb.err = fmt.Errorf("login: the identity provider refused the login: %s %s", q.Get("error"), q.Get("error_description"))
			http.Error(w, "Login failed; see the program that started it.", http.StatusForbidden)
		case q.Get("code") == "":
			http.Error(w, "no code in the redirect", http.StatusBadRequest)
			return
		default:
			cb.code = q.Get("code")
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "Logged in. You can close this window.")
		}
		select {
		case got <- cb:
		default:
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	browserErr := make(chan error, 1)
	go func() { browserErr <- browser(ctx, authURL) }()
	var cb callback
	for cb.code == "" && cb.err == nil {
		select {
		case cb = <-got:
		case err := <-browserErr:
			if err != nil {
				return nil, "", fmt.Errorf("login: browser: %w", err)
			}
			browserErr = nil // done; keep waiting for the redirect
		case <-ctx.Done():
			return nil, "", fmt.Errorf("login: no redirect came back: %w", ctx.Err())
		}
	}
	if cb.err != nil {
		return nil, "", cb.err
	}
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, hc), cb.code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) { // never the response body: the error code is enough
			return nil, "", fmt.Errorf("login: the identity provider refused the code: %s %s", re.ErrorCode, re.ErrorDescription)
		}
		return nil, "", fmt.Errorf("login: exchange the code: %w: %w", ErrIdPUnreachable, err)
	}
	return tok, nonce, nil
}

// revoke revokes token at endpoint as the public client clientID (RFC 7009 section 2.1).
func revoke(ctx context.Context, hc *http.Client, endpoint, clientID, token string) error {
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}, "client_id": {clientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login: revocation endpoint answered %s", resp.Status)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CheckNonce checks that the verified ID token raw carries the nonce Authorize asked for
// (OIDC Core 3.1.3.7): a token from another login cannot be slipped into this one.
func CheckNonce(raw, nonce string) error {
	if got, err := payloadString(raw, "nonce"); err != nil || subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
		return errors.New("login: the ID token does not carry this login's nonce (OIDC Core 3.1.3.7)")
	}
	return nil
}

// payloadString reads one string claim of an already verified JWT.
func payloadString(raw, name string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		return "", err
	}
	s, _ := claims[name].(string)
	return s, nil
}
