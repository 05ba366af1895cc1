package identity

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDiscover(t *testing.T) {
	p := newIDP(t, newKey(t, "RS256", "k1"))
	md, err := Discover(context.Background(), p.srv.Client(), p.issuer)
	if err != nil {
		t.Fatal(err)
	}
	if md.Issuer != p.issuer || md.JWKSURI != p.issuer+"/jwks" || md.TokenEndpoint != p.issuer+"/token" ||
		md.AuthorizationEndpoint != p.issuer+"/auth" || len(md.IDTokenSigningAlgs) != 1 || md.RevocationEndpoint != "" {
		t.Errorf("metadata = %+v", md)
	}
}

// TestDiscoverErrors: what retrying may fix wraps ErrProviderUnavailable, what only a
// configuration change fixes wraps ErrInvalidConfig.
func TestDiscoverErrors(t *testing.T) {
	var status int
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tc := range []struct {
		name, issuer, body string
		status             int
		want               error
	}{
		{"unavailable", srv.URL, "", http.StatusServiceUnavailable, ErrProviderUnavailable},
		{"rate limited", srv.URL, "", http.StatusTooManyRequests, ErrProviderUnavailable},
		{"unreachable", gone.URL, "", 0, ErrProviderUnavailable},
		{"no document", srv.URL, "", http.StatusNotFound, ErrInvalidConfig},
		{"not JSON", srv.URL, "<html>", http.StatusOK, ErrInvalidConfig},
		{"other issuer", srv.URL, `{"issuer": "https://evil.example"}`, http.StatusOK, ErrInvalidConfig},
		{"no issuer", srv.URL, `{"token_endpoint": "https://x/token"}`, http.StatusOK, ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body = tc.status, tc.body
			_, err := Discover(context.Background(), nil, tc.issuer)
			other := ErrInvalidConfig
			if tc.want == ErrInvalidConfig {
				other = ErrProviderUnavailable
			}
			if !errors.Is(err, tc.want) || errors.Is(err, other) {
				t.Errorf("err = %v, want %v only", err, tc.want)
			}
		})
	}
}
