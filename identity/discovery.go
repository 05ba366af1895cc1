package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// ProviderMetadata is the part of an OpenID provider's discovery document that oidcflow uses
// (OpenID Connect Discovery 1.0 section 3; RFC 8414 section 2 for the revocation and
// introspection endpoints; RFC 8628 section 4 for device authorization). An endpoint the
// provider does not advertise is empty; Discover does not check which ones a caller needs.
type ProviderMetadata struct {
	Issuer                      string   `json:"issuer"`
	AuthorizationEndpoint       string   `json:"authorization_endpoint"`
	TokenEndpoint               string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint string   `json:"device_authorization_endpoint,omitempty"`
	RevocationEndpoint          string   `json:"revocation_endpoint,omitempty"`
	IntrospectionEndpoint       string   `json:"introspection_endpoint,omitempty"`
	UserInfoEndpoint            string   `json:"userinfo_endpoint,omitempty"`
	JWKSURI                     string   `json:"jwks_uri"`
	IDTokenSigningAlgs          []string `json:"id_token_signing_alg_values_supported,omitempty"`
}

// Discover reads the provider metadata of issuer from issuer +
// "/.well-known/openid-configuration" (OpenID Connect Discovery 1.0 section 4) with hc
// (nil: a client with a DefaultHTTPTimeout timeout), reading at most DefaultMaxResponseSize
// bytes. The document must name exactly issuer, trailing slash included (section 4.3). It
// caches nothing: callers keep what they need.
//
// Errors wrap ErrProviderUnavailable when the provider could not be reached or answered 5xx
// or 429 (retry later), and ErrInvalidConfig otherwise: a document naming another issuer, no
// document, one that is not JSON or too large (fix the issuer URL).
func Discover(ctx context.Context, hc *http.Client, issuer string) (*ProviderMetadata, error) {
	return discover(ctx, hc, DefaultMaxResponseSize, issuer)
}

func discover(ctx context.Context, hc *http.Client, maxBody int64, issuer string) (*ProviderMetadata, error) {
	if hc == nil {
		hc = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, configError("discovery URL %s: %v", u, err)
	}
	req.Header.Set("Accept", "application/json")
	body, err := doBounded(hc, req, maxBody)
	var status *statusError
	var large *tooLargeError
	switch {
	case errors.As(err, &status) && (status.code >= 500 || status.code == http.StatusTooManyRequests):
		return nil, unavailable("OIDC discovery: %v", err)
	case errors.As(err, &status):
		return nil, configError("OIDC discovery: %v; check the issuer URL (exact, trailing slash included)", err)
	case errors.As(err, &large):
		return nil, configError("OIDC discovery at %s: %v", u, err)
	case err != nil:
		return nil, unavailable("OIDC discovery at %s failed (%v)", u, err)
	}
	var md ProviderMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, configError("OIDC discovery at %s: the answer is not a discovery document (%v)", u, err)
	}
	if md.Issuer != issuer {
		return nil, configError("OIDC discovery at %s: the document names issuer %s, not %s; the issuer must match exactly (trailing slash included)",
			u, quote(md.Issuer), quote(issuer))
	}
	return &md, nil
}
