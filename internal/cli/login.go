package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/login"
	"github.com/oidcflow/oidcflow/pool"
)

// idpError says the IdP could not be reached (or answered nonsense).
type idpError struct {
	issuer string
	err    error
}

func (e *idpError) Error() string {
	return fmt.Sprintf("cannot reach the identity provider at %s (%v); check OIDCFLOW_ISSUER and your network", e.issuer, e.err)
}
func (e *idpError) Unwrap() error { return e.err }

// discover reads the issuer's provider metadata (identity.Discover).
func (r *runner) discover(ctx context.Context) (string, *identity.ProviderMetadata, error) {
	issuer, err := r.env.Required("OIDCFLOW_ISSUER")
	if err != nil {
		return "", nil, err
	}
	md, err := identity.Discover(ctx, r.httpClient, issuer)
	switch {
	case errors.Is(err, identity.ErrProviderUnavailable):
		return "", nil, &idpError{issuer, err}
	case err != nil:
		return "", nil, fmt.Errorf("%w; set OIDCFLOW_ISSUER to the issuer exactly as the identity provider names it", err)
	case md.AuthorizationEndpoint == "" || md.TokenEndpoint == "":
		return "", nil, fmt.Errorf("the discovery document of %s has no authorization or token endpoint", issuer)
	}
	return issuer, md, nil
}

// oauthConfig is the public starter client (no secret: PKCE protects the code, RFC 7636).
func (r *runner) oauthConfig(md *identity.ProviderMetadata) *oauth2.Config {
	return &oauth2.Config{
		ClientID: r.env.String("OIDCFLOW_CLIENT_ID"),
		Endpoint: oauth2.Endpoint{
			AuthURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint,
			DeviceAuthURL: md.DeviceAuthorizationEndpoint, AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: r.env.String("OIDCFLOW_REDIRECT_URL"),
		Scopes:      strings.Fields(r.env.String("OIDCFLOW_SCOPES")),
	}
}

// verifier builds the ID token verifier from the environment (issuer, client id, leeway,
// claims preset, nested roles), as the worker does (pool.Config.NewVerifier).
func (r *runner) verifier(ctx context.Context) (*identity.Verifier, error) {
	cfg, err := pool.FromLookup(r.env.Lookup)
	if err != nil {
		return nil, err
	}
	v, err := cfg.NewVerifier(ctx)
	if err != nil {
		if errors.Is(err, identity.ErrProviderUnavailable) {
			return nil, &idpError{r.env.String("OIDCFLOW_ISSUER"), err}
		}
		return nil, err
	}
	return v, nil
}

// tokenSource returns the cached session's self-refreshing token source.
func (r *runner) tokenSource(ctx context.Context) (*login.TokenSource, *identity.Verifier, error) {
	c, err := r.cache()
	if err != nil {
		return nil, nil, err
	}
	s, err := c.Load()
	if err != nil {
		return nil, nil, err
	}
	if s.Issuer != "" && s.Issuer != r.env.String("OIDCFLOW_ISSUER") {
		return nil, nil, &login.SessionExpiredError{Reason: fmt.Sprintf("the session is from %s, but OIDCFLOW_ISSUER is %s",
			s.Issuer, r.env.String("OIDCFLOW_ISSUER"))}
	}
	// Discovery and the verifier's key set need the IdP: without it, nothing could be
	// refreshed or verified, so say so at once.
	_, md, err := r.discover(ctx)
	if err != nil {
		return nil, nil, err
	}
	v, err := r.verifier(ctx)
	if err != nil {
		return nil, nil, err
	}
	ts, err := login.NewTokenSource(ctx, login.SourceOptions{
		Cache: c, Config: r.oauthConfig(md), Verifier: v, HTTPClient: r.httpClient, Now: r.now,
	})
	return ts, v, err
}

// LoginJSON is the --json output of `starter login`.
type LoginJSON struct {
	Subject string    `json:"subject"`
	Issuer  string    `json:"issuer"`
	Name    string    `json:"name,omitempty"`
	Email   string    `json:"email,omitempty"`
	Expiry  time.Time `json:"expiry"`  // ID token expiry; the session refreshes itself
	Refresh bool      `json:"refresh"` // a refresh token was granted (offline_access)
	Cache   string    `json:"cache"`   // path of the session file
	Flow    string    `json:"flow"`    // "authorization_code" or "device_code"
}

func (r *runner) login(ctx context.Context, args []string) error {
	fs := r.flags("login", "[--open] [--device] [--timeout 5m]")
	open := fs.Bool("open", false, "also try to open the URL in a browser")
	device := fs.Bool("device", false, "use device authorization (RFC 8628): enter a code on another device")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the login to finish")
	if _, err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	issuer, md, err := r.discover(ctx)
	if err != nil {
		return err
	}
	v, err := r.verifier(ctx)
	if err != nil {
		return err
	}
	cfg := r.oauthConfig(md)
	var tok *oauth2.Token
	var nonce string
	flowName := "authorization_code"
	if *device {
		flowName = "device_code"
		if md.DeviceAuthorizationEndpoint == "" {
			return fmt.Errorf("the identity provider at %s does not offer device authorization (its discovery document has no device_authorization_endpoint); run `starter login` without --device on a machine with a browser", issuer)
		}
		tok, err = r.deviceLogin(ctx, cfg)
	} else {
		tok, nonce, err = r.browserLogin(ctx, cfg, *open, *timeout)
	}
	if err != nil {
		return r.timeoutHint(ctx, err, *timeout)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return errors.New("the identity provider returned no ID token; OIDCFLOW_SCOPES must include openid")
	}
	id, err := v.VerifyIDToken(ctx, raw)
	if err != nil {
		return fmt.Errorf("the ID token from %s did not verify: %w", issuer, err)
	}
	if nonce != "" {
		if err := login.CheckNonce(raw, nonce); err != nil {
			return fmt.Errorf("%w; run `starter login` again", err)
		}
	}
	c, err := r.cache()
	if err != nil {
		return err
	}
	sess := login.NewSession(tok, id, cfg.ClientID, r.now())
	prev, prevErr := c.Load()
	if err := c.Save(sess); err != nil {
		return err
	}
	// The session replaced here would otherwise stay valid at the IdP until it expires.
	// A refresh token handed to running workflows is theirs: it is not revoked here.
	if prevErr == nil && prev.RefreshToken != "" && prev.HandedOver.IsZero() && prev.Issuer == issuer && md.RevocationEndpoint != "" {
		if err := r.revokeAtIdP(ctx, prev.ClientID, prev.RefreshToken, "refresh_token"); err != nil {
			fmt.Fprintf(r.stderr, "starter: warning: could not revoke the previous session of %s: %v\n", prev.Subject, err)
		}
	}
	out := LoginJSON{Subject: id.Subject, Issuer: id.Issuer, Name: id.Name, Email: id.Email, Expiry: id.Expiry.UTC(),
		Refresh: sess.RefreshToken != "", Cache: c.Path(), Flow: flowName}
	return r.emit(out, func(w io.Writer) {
		who := id.Subject
		if id.Name != "" {
			who = fmt.Sprintf("%s (%s)", id.Name, id.Subject)
		}
		fmt.Fprintf(w, "Logged in as %s at %s.\n", who, id.Issuer)
		if !out.Refresh {
			fmt.Fprintf(w, "No refresh token was granted: log in again after %s.\n", out.Expiry.Local().Format(time.Kitchen))
		}
		fmt.Fprintf(w, "Session saved in %s.\n", c.Path())
	})
}

func (r *runner) timeoutHint(ctx context.Context, err error, d time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("login did not finish within %s; run `starter login` again (--timeout to wait longer)", d)
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		// Never echo the response body; the error code and description are enough.
		return fmt.Errorf("the identity provider refused the login: %s %s", re.ErrorCode, re.ErrorDescription)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &idpError{r.env.String("OIDCFLOW_ISSUER"), err}
	}
	return err
}

// browserLogin runs the authorization code flow with PKCE through a loopback redirect
// (login.Authorize). It prints the URL to open; with open it also starts a browser; with
// Options.Browser set, that completes the login instead of a person.
func (r *runner) browserLogin(ctx context.Context, cfg *oauth2.Config, open bool, timeout time.Duration) (*oauth2.Token, string, error) {
	browse := func(ctx context.Context, authURL string) error {
		fmt.Fprintf(r.stderr, "Open this URL in your browser to log in:\n\n  %s\n\nWaiting up to %s for the login to finish...\n", authURL, timeout)
		switch {
		case r.browser != nil:
			return r.browser(ctx, authURL)
		case open:
			if err := r.openBrowser(authURL); err != nil {
				fmt.Fprintf(r.stderr, "Could not open a browser (%v); open the URL above yourself.\n", err)
			}
		}
		return nil
	}
	tok, nonce, err := login.Authorize(ctx, cfg, cfg.RedirectURL, browse, r.httpClient)
	if errors.Is(err, login.ErrRedirectURL) {
		return nil, "", fmt.Errorf("%w; is another `starter login` running? Or set OIDCFLOW_REDIRECT_URL", err)
	}
	return tok, nonce, err
}

// deviceLogin runs device authorization (RFC 8628): show a code, poll the token endpoint.
func (r *runner) deviceLogin(ctx context.Context, cfg *oauth2.Config) (*oauth2.Token, error) {
	hctx := context.WithValue(ctx, oauth2.HTTPClient, r.httpClient)
	resp, err := cfg.DeviceAuth(hctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.stderr, "To log in, open %s and enter the code %s\n", resp.VerificationURI, resp.UserCode)
	if resp.VerificationURIComplete != "" {
		fmt.Fprintf(r.stderr, "(or open %s)\n", resp.VerificationURIComplete)
	}
	fmt.Fprintln(r.stderr, "Waiting for you to finish...")
	return cfg.DeviceAccessToken(hctx, resp)
}

// LogoutJSON is the --json output of `starter logout`.
type LogoutJSON struct {
	LoggedOut bool   `json:"logged_out"` // a session was deleted
	Revoked   bool   `json:"revoked"`    // its refresh token was revoked at the IdP
	Subject   string `json:"subject,omitempty"`
}

// logout revokes the refresh token (RFC 7009 section 2.1, as a public client: client_id in
// the body) and deletes the cache. The cache is deleted even when revocation fails; the
// command then fails so that the caller knows the token may still be valid at the IdP. A
// cache written by a newer starter (login.ErrUnsupportedFormat) is neither revoked nor
// deleted: the command fails, and the newer starter can log out.
func (r *runner) logout(ctx context.Context, args []string) error {
	fs := r.flags("logout", "")
	if _, err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	c, err := r.cache()
	if err != nil {
		return err
	}
	s, err := c.Load()
	if errors.Is(err, login.ErrNotLoggedIn) {
		return r.emit(LogoutJSON{}, func(w io.Writer) { fmt.Fprintln(w, "Not logged in; nothing to do.") })
	}
	if errors.Is(err, login.ErrUnsupportedFormat) {
		// A newer starter's file: its tokens may be handed to running workflows in a way this
		// build cannot see, so nothing of it is revoked, and the file is left to the starter
		// that can (deleting it would lose the only way to revoke them).
		return err
	}
	if err != nil {
		// An unreadable cache is deleted all the same.
		if derr := c.Delete(); derr != nil {
			return derr
		}
		return r.emit(LogoutJSON{LoggedOut: true}, func(w io.Writer) { fmt.Fprintln(w, "Deleted an unreadable session file.") })
	}
	out := LogoutJSON{LoggedOut: true, Subject: s.Subject}
	var revokeErr error
	token, hint := s.RefreshToken, "refresh_token"
	if token == "" {
		token, hint = s.AccessToken, "access_token"
	}
	if !s.HandedOver.IsZero() {
		// The grant belongs to running workflows now; revoking any of its tokens could end
		// their session. They revoke it when the last of them ends.
		token = ""
	}
	if token != "" {
		revokeErr = r.revokeAtIdP(ctx, s.ClientID, token, hint)
		out.Revoked = revokeErr == nil
	}
	if err := c.Delete(); err != nil {
		return err
	}
	if revokeErr != nil {
		return fmt.Errorf("logged out locally, but revoking the session at the identity provider failed: %w", revokeErr)
	}
	return r.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "Logged out %s: session revoked at the identity provider and deleted.\n", s.Subject)
	})
}

func (r *runner) revokeAtIdP(ctx context.Context, clientID, token, hint string) error {
	_, md, err := r.discover(ctx)
	if err != nil {
		return err
	}
	if md.RevocationEndpoint == "" {
		return errors.New("the identity provider advertises no revocation_endpoint (RFC 7009); the refresh token stays valid until it expires")
	}
	if clientID == "" {
		clientID = r.env.String("OIDCFLOW_CLIENT_ID")
	}
	form := url.Values{"token": {token}, "token_type_hint": {hint}, "client_id": {clientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, md.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := r.httpClient.Do(req)
	if err != nil {
		return &idpError{r.env.String("OIDCFLOW_ISSUER"), err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		return fmt.Errorf("revocation endpoint answered %s %s", resp.Status, e.Error)
	}
	return nil
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// openBrowser starts the platform's URL opener.
func openBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
