package tokenstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/oidcflow/oidcflow/identity"
)

// endpoints are the identity provider URLs the Refresher uses; missing ones are discovered
// (identity.Discover) once and cached. Concurrent callers share one discovery request, and
// no lock is held while it runs.
type endpoints struct {
	issuer     string
	httpClient *http.Client
	group      singleflight.Group

	mu         sync.Mutex
	token      string
	revocation string
	discovered bool
}

func (e *endpoints) get(ctx context.Context) (token, revocation string, err error) {
	e.mu.Lock()
	token, revocation = e.token, e.revocation
	done := e.discovered || e.issuer == "" || (token != "" && revocation != "")
	e.mu.Unlock()
	if done {
		return token, revocation, nil
	}
	_, err, _ = e.group.Do("discover", func() (any, error) {
		md, err := identity.Discover(ctx, e.httpClient, e.issuer)
		if errors.Is(err, identity.ErrProviderUnavailable) {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.token == "" {
			e.token = md.TokenEndpoint
		}
		if e.revocation == "" {
			e.revocation = md.RevocationEndpoint
		}
		e.discovered = true // a provider that names no revocation endpoint is not asked again
		return nil, nil
	})
	if err != nil {
		return "", "", err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.token, e.revocation, nil
}

// errOutcomeUnknown marks a failed token request that may have reached the identity provider
// and been answered: it may have rotated the refresh token, and the answer is lost. It
// wraps ErrUnavailable.
var errOutcomeUnknown = fmt.Errorf("tokenstore: the token request's outcome is unknown: %w", ErrUnavailable)

// classifyTokenError turns an error of the token endpoint into this package's errors:
// invalid_grant wraps identity.ErrReauthRequired (RFC 6749 section 5.2: the refresh token is
// invalid, expired or revoked, so only a new consent helps), 429 is a *RateLimitedError,
// 5xx and network errors wrap ErrUnavailable. Failures after which the identity provider
// may have answered (a timeout, a broken connection, an unreadable answer, a gateway's 502
// or 504) wrap errOutcomeUnknown too; an answer of the provider itself (500, 503, 4xx) and
// a connection that could not be opened do not. The response body is never included: only
// the RFC 6749 error code.
func classifyTokenError(id string, err error, now time.Time) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		var header http.Header
		if re.Response != nil {
			status, header = re.Response.StatusCode, re.Response.Header
		}
		switch {
		case re.ErrorCode == "invalid_grant":
			return fmt.Errorf("tokenstore: the identity provider refused to refresh session %s (invalid_grant: expired, revoked or reused); the person must sign in and consent again: %w",
				id, identity.ErrReauthRequired)
		case status == http.StatusTooManyRequests:
			return fmt.Errorf("tokenstore: refresh session %s: %w", id,
				&RateLimitedError{Op: "identity provider token endpoint", RetryAfter: retryAfter(header, now)})
		case status == http.StatusBadGateway || status == http.StatusGatewayTimeout:
			// A gateway lost the provider's answer, or gave up waiting for it.
			return fmt.Errorf("tokenstore: refresh session %s: a gateway answered %d: %w", id, status, errOutcomeUnknown)
		case status >= 500:
			return fmt.Errorf("tokenstore: refresh session %s: identity provider answered %d: %w", id, status, ErrUnavailable)
		default:
			code := re.ErrorCode
			if code == "" {
				code = "no error code"
			}
			return fmt.Errorf("tokenstore: refresh session %s: identity provider answered %d (%s)", id, status, code)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("tokenstore: refresh session %s: %w: %w", id, errOutcomeUnknown, err)
	}
	// Network errors (*url.Error) name the token URL; the refresh token travels in the body.
	var ue *url.Error
	if errors.As(err, &ue) {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("tokenstore: refresh session %s: %w: %w", id, ErrUnavailable, ue)
		}
		return fmt.Errorf("tokenstore: refresh session %s: %w: %w", id, errOutcomeUnknown, ue)
	}
	// Anything else (an answer cut off, one without access_token) is described without its
	// text, which might quote the response.
	return fmt.Errorf("tokenstore: refresh session %s: unusable token endpoint answer: %w", id, errOutcomeUnknown)
}

// retryAfter parses a Retry-After header (delay-seconds or HTTP-date, RFC 9110 section
// 10.2.3); zero when absent or unparsable. It caps the delay at one hour.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		d = time.Duration(min(n, 3600)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// revoke sends an RFC 7009 revocation request for token, authenticating as clientID (HTTP
// Basic, RFC 6749 section 2.3.1, when secret is set; client_id in the body for a public
// client). RFC 7009 section 2.2: 200 also answers an unknown or already revoked token, so
// revocation is idempotent. 503 (section 2.2.1), other 5xx and network errors wrap
// ErrUnavailable.
func revoke(ctx context.Context, hc *http.Client, endpoint, clientID, secret, token, hint string) error {
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	if secret == "" {
		form.Set("client_id", clientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("tokenstore: revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// url.Error's message names the method and URL only.
			return fmt.Errorf("tokenstore: revoke at %s: %w: %w", endpoint, ErrUnavailable, ue.Err)
		}
		return fmt.Errorf("tokenstore: revoke at %s: %w", endpoint, ErrUnavailable)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("tokenstore: revoke: %w", &RateLimitedError{Op: "identity provider revocation endpoint",
			RetryAfter: retryAfter(resp.Header, time.Now())})
	case resp.StatusCode >= 500:
		return fmt.Errorf("tokenstore: revoke at %s answered %d: %w", endpoint, resp.StatusCode, ErrUnavailable)
	default:
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = "no error code"
		}
		return fmt.Errorf("tokenstore: revoke at %s answered %d (%s)", endpoint, resp.StatusCode, e.Error)
	}
}
