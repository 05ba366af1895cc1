// Package workercreds gives the worker its own bearer token, from the OAuth 2.0 client
// credentials grant (RFC 6749 section 4.4), refreshed before it expires, and hands it to the
// Temporal client as credentials.
//
// The token is the worker's, not a person's: it authenticates the worker process towards the
// Temporal frontend. It never appears in a log or an error of this package.
package workercreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"go.temporal.io/sdk/client"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Options configures TokenSource.
type Options struct {
	// TokenURL is the token endpoint. Default: token_endpoint discovered from Issuer.
	TokenURL string
	// Issuer is the OIDC issuer, used when TokenURL is empty.
	Issuer string
	// ClientID and ClientSecret are the confidential worker client's credentials (required).
	ClientID, ClientSecret string
	// Scopes requested. Default none (the client's default scopes).
	Scopes []string
	// Audience, when set, is sent as the "audience" parameter (Hydra, Auth0) so the token is
	// issued for the Temporal frontend. Default none.
	Audience string
	// EarlyExpiry: a token valid for less than this is replaced. Default 30s.
	EarlyExpiry time.Duration
	// HTTPClient talks to the identity provider. Default: a client with a 30s timeout.
	HTTPClient *http.Client
}

// TokenSource returns a token source of client-credentials tokens that caches the current
// token and fetches a new one when it is within EarlyExpiry of its expiry. ctx is used for
// discovery and for every token request, so it should live as long as the worker.
func TokenSource(ctx context.Context, opts Options) (oauth2.TokenSource, error) {
	if opts.ClientID == "" || opts.ClientSecret == "" {
		return nil, errors.New("workercreds: ClientID and ClientSecret are required")
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.TokenURL == "" {
		if opts.Issuer == "" {
			return nil, errors.New("workercreds: TokenURL or Issuer is required")
		}
		md, err := identity.Discover(ctx, hc, opts.Issuer)
		if err != nil {
			return nil, fmt.Errorf("workercreds: %w", err)
		}
		if md.TokenEndpoint == "" {
			return nil, fmt.Errorf("workercreds: the discovery document of %s names no token endpoint", opts.Issuer)
		}
		opts.TokenURL = md.TokenEndpoint
	}
	if opts.EarlyExpiry <= 0 {
		opts.EarlyExpiry = 30 * time.Second
	}
	cfg := &clientcredentials.Config{ClientID: opts.ClientID, ClientSecret: opts.ClientSecret,
		TokenURL: opts.TokenURL, Scopes: opts.Scopes, AuthStyle: oauth2.AuthStyleInHeader}
	if opts.Audience != "" {
		cfg.EndpointParams = url.Values{"audience": {opts.Audience}}
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	return oauth2.ReuseTokenSourceWithExpiry(nil, cleanSource{cfg.TokenSource(ctx)}, opts.EarlyExpiry), nil
}

// cleanSource drops response bodies from token errors.
type cleanSource struct{ ts oauth2.TokenSource }

func (c cleanSource) Token() (*oauth2.Token, error) {
	tok, err := c.ts.Token()
	if err == nil {
		return tok, nil
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		code := re.ErrorCode
		if code == "" {
			code = "no error code"
		}
		return nil, fmt.Errorf("workercreds: token endpoint answered %d (%s)", status, code)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return nil, fmt.Errorf("workercreds: token endpoint: %w", ue)
	}
	return nil, errors.New("workercreds: unusable token endpoint answer")
}

// TemporalCredentials returns Temporal client credentials that send ts's current access token
// as the bearer token of every request (client.NewAPIKeyDynamicCredentials). Like all API key
// credentials, they turn on TLS unless client.ConnectionOptions.TLSDisabled is set (a plain
// loopback dev server needs it set).
func TemporalCredentials(ts oauth2.TokenSource) client.Credentials {
	return client.NewAPIKeyDynamicCredentials(func(context.Context) (string, error) {
		tok, err := ts.Token()
		if err != nil {
			return "", err
		}
		return tok.AccessToken, nil
	})
}
