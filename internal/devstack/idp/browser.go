package idp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// Browser returns what stands in for a person at a browser on the dev stack (the starter's
// cli.Options.Browser, for the demo and tests): follow authURL to this app's login page, pick
// persona, and follow the redirects (consent passes by itself) back to the client's redirect
// URL, where the client's listener takes the code. Each call has a cookie jar of its own. It
// works only with this app at loginURL.
func Browser(loginURL, persona string) func(ctx context.Context, authURL string) error {
	return func(ctx context.Context, authURL string) error {
		jar, err := cookiejar.New(nil)
		if err != nil {
			return err
		}
		_, err = PickPersona(ctx, &http.Client{Jar: jar, Timeout: 30 * time.Second}, authURL, loginURL, persona)
		return err
	}
}

// PickPersona does what a person does in a browser on the dev stack: open authURL (Hydra
// redirects to this app's login page), pick persona on it, and follow the redirects
// (consent passes by itself) toward the client's redirect URL. hc needs a cookie jar; its
// CheckRedirect decides what happens at the redirect URL. It returns the last response.
func PickPersona(ctx context.Context, hc *http.Client, authURL, loginURL, persona string) (*http.Response, error) {
	resp, err := browse(ctx, hc, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, fmt.Errorf("idp: open the authorization URL: %w", err)
	}
	challenge := resp.Request.URL.Query().Get("login_challenge")
	if challenge == "" {
		return nil, fmt.Errorf("idp: the authorization URL did not lead to the dev login page (ended at %s, %s)",
			resp.Request.URL.Redacted(), resp.Status)
	}
	form := url.Values{"login_challenge": {challenge}, "persona": {persona}}
	resp, err = browse(ctx, hc, http.MethodPost, strings.TrimRight(loginURL, "/")+"/login", form)
	if err != nil {
		return nil, fmt.Errorf("idp: submit the login form: %w", err)
	}
	return resp, nil
}

// browse sends one request (a form POST when form is set), reads the body away, and treats
// an HTTP error status as an error.
func browse(ctx context.Context, hc *http.Client, method, u string, form url.Values) (*http.Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 400 {
		return resp, fmt.Errorf("%s %s: %s", method, resp.Request.URL.Redacted(), resp.Status)
	}
	return resp, nil
}
