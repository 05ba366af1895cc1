package identity

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// verifyOpaque verifies an access token that is not a JWT: by introspection (RFC 7662) when
// IntrospectionClientID is set, else by userinfo (OIDC Core 5.3) when UserInfo is set. The
// token goes only to the configured endpoint, in the request body or Authorization header.
func (v *Verifier) verifyOpaque(ctx context.Context, raw string) (*Identity, error) {
	switch {
	case v.opts.IntrospectionClientID != "":
		return v.introspect(ctx, raw)
	case v.opts.UserInfo:
		return v.userinfo(ctx, raw)
	default:
		return nil, malformed("access token is not a JWT and neither introspection nor userinfo is configured; configure one, or have the IdP issue JWT access tokens")
	}
}

// introspect asks the IdP whether the token is active (RFC 7662 section 2), authenticating
// with client_secret_basic (RFC 6749 section 2.3.1), and applies the access token rules to
// the answer: active, iss (when given), sub, exp, nbf, iat, audience or client_id, and
// token_use/token_type (when given) naming an access token.
func (v *Verifier) introspect(ctx context.Context, raw string) (*Identity, error) {
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.introURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, unavailable("introspection URL: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(v.opts.IntrospectionClientID), url.QueryEscape(v.opts.IntrospectionClientSecret))
	body, err := doBounded(v.client, req, v.maxResponse())
	if err != nil {
		return nil, unavailable("token introspection failed (%v); retry later", err)
	}
	c, err := decodeClaims(body)
	if err != nil {
		return nil, unavailable("introspection answer is not a JSON object")
	}
	if active, _ := c["active"].(bool); !active { // check:active
		return nil, invalid("the IdP reports the access token inactive (expired, revoked or unknown)")
	}
	for _, name := range []string{"token_use", "token_type"} {
		if t, _, _ := c.str(name); t != "" && !strings.EqualFold(t, "access_token") && !strings.EqualFold(t, "Bearer") { // check:token-use
			return nil, invalid("introspected token is a %s, not an access token; send the access token", quote(t))
		}
	}
	if _, ok := c["iss"]; !ok {
		c["iss"] = v.issuer // RFC 7662 makes iss optional; the answer comes from our IdP.
	}
	return v.checkClaims(kindAccess, c, false, time.Time{})
}

// userinfo calls the userinfo endpoint with the token. The answer proves the token is
// accepted by the IdP now, but carries no expiry, audience or client: use it only where the
// IdP offers nothing better. Signed userinfo (application/jwt) is not supported.
func (v *Verifier) userinfo(ctx context.Context, raw string) (*Identity, error) {
	c, sub, err := v.userinfoClaims(ctx, raw)
	if err != nil {
		return nil, err
	}
	id := MapClaims(c, v.claims, v.opts.Hierarchy)
	id.Subject, id.Issuer = sub, v.issuer
	return id, nil
}

// userinfoClaims asks the userinfo endpoint (OIDC Core 5.3) who the access token raw speaks
// for and returns the answer's claims and its subject, which must be present.
func (v *Verifier) userinfoClaims(ctx context.Context, raw string) (claimSet, string, error) {
	if v.userinfoURL == "" {
		return nil, "", configError("the issuer advertises no userinfo_endpoint; set VerifierOptions.UserInfoURL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.userinfoURL, nil)
	if err != nil {
		return nil, "", unavailable("userinfo URL: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+raw)
	req.Header.Set("Accept", "application/json")
	body, err := doBounded(v.client, req, v.maxResponse())
	var status *statusError
	if errors.As(err, &status) && (status.code == http.StatusUnauthorized || status.code == http.StatusForbidden) {
		return nil, "", invalid("the IdP's userinfo endpoint refuses the access token (%d)", status.code)
	}
	if err != nil {
		return nil, "", unavailable("userinfo request failed (%v); retry later", err)
	}
	c, err := decodeClaims(body)
	if err != nil {
		return nil, "", unavailable("userinfo answer is not a JSON object")
	}
	sub, _, err := c.str("sub")
	if err != nil {
		return nil, "", err
	}
	if sub == "" { // check:userinfo-sub
		return nil, "", invalid("userinfo answer has no subject (sub)")
	}
	return c, sub, nil
}

func (v *Verifier) maxResponse() int64 {
	if v.opts.MaxResponseSize > 0 {
		return v.opts.MaxResponseSize
	}
	return DefaultMaxResponseSize
}
