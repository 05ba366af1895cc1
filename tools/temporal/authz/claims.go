// Package authz holds the claim mapper and the authorizer of the authorizing Temporal dev
// server (tools/temporal/server).
//
// The claim mapper is Temporal's default JWT claim mapper (signature from the IdP's JWKS,
// exp/nbf/iat, aud) plus the issuer check Temporal does not make. The authorizer is
// Temporal's default authorizer plus a worker role for the task queue APIs, admin-only
// destructive and namespace-changing APIs, and the cluster-level reads the Web UI needs.
package authz

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// DefaultPermissionsClaim is the JWT claim that carries "namespace:role" items.
const DefaultPermissionsClaim = "permissions"

// DefaultRefreshInterval is how often the IdP's JWKS is fetched again.
const DefaultRefreshInterval = time.Minute

// Config configures the claim mapper.
type Config struct {
	// JWKSURL is the IdP's JWKS (RS256 and ES256 keys with a kid).
	JWKSURL string
	// Issuer must equal the token's "iss".
	Issuer string
	// Audience must be one of the token's "aud".
	Audience string
	// PermissionsClaim names the claim with "namespace:role" items; DefaultPermissionsClaim
	// when empty. Items of another shape (an application's own permissions) are ignored.
	PermissionsClaim string
	// RefreshInterval is how often the JWKS is fetched again; DefaultRefreshInterval when
	// zero (Temporal's key provider cannot be closed with zero).
	RefreshInterval time.Duration
}

func (c Config) validate() error {
	switch {
	case c.JWKSURL == "":
		return errors.New("authz: a JWKS URL is required")
	case c.Issuer == "":
		return errors.New("authz: an issuer is required")
	case c.Audience == "":
		return errors.New("authz: an audience is required")
	case c.RefreshInterval < 0:
		return errors.New("authz: the JWKS refresh interval is negative")
	}
	return nil
}

// ClaimMapper maps a bearer JWT to Temporal claims. It implements authorization.ClaimMapper.
type ClaimMapper struct {
	inner    authorization.ClaimMapper
	keys     authorization.TokenKeyProvider
	issuer   string
	audience string
}

var _ authorization.ClaimMapper = (*ClaimMapper)(nil)

// NewClaimMapper builds the claim mapper and its key provider; the first JWKS fetch happens
// here (a failure is logged by Temporal's provider and retried on the refresh interval).
// Close stops the key provider.
func NewClaimMapper(cfg Config, logger log.Logger) (*ClaimMapper, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.PermissionsClaim == "" {
		cfg.PermissionsClaim = DefaultPermissionsClaim
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	ac := &config.Authorization{
		JWTKeyProvider: config.JWTKeyProvider{
			KeySourceURIs:   []string{cfg.JWKSURL},
			RefreshInterval: cfg.RefreshInterval,
		},
		PermissionsClaimName: cfg.PermissionsClaim,
		Audience:             cfg.Audience,
	}
	keys := authorization.NewDefaultTokenKeyProvider(ac, logger)
	return &ClaimMapper{
		inner:    authorization.NewDefaultJWTClaimMapper(keys, ac, quietItems{logger}),
		keys:     keys,
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
	}, nil
}

// GetClaims verifies the token with Temporal's default mapper (signature, exp/nbf/iat, and
// the audience, which is filled in here when no audience getter set it), then checks "iss".
// Any failure is an error, so the caller gets PermissionDenied.
func (m *ClaimMapper) GetClaims(info *authorization.AuthInfo) (*authorization.Claims, error) {
	if info == nil || info.AuthToken == "" {
		return nil, serviceerror.NewPermissionDenied("no bearer token", "")
	}
	ai := *info
	if strings.TrimSpace(ai.Audience) == "" {
		ai.Audience = m.audience
	}
	claims, err := m.inner.GetClaims(&ai)
	if err != nil {
		return nil, err
	}
	iss, err := tokenIssuer(ai.AuthToken)
	if err != nil {
		return nil, err
	}
	if iss != m.issuer {
		return nil, serviceerror.NewPermissionDenied(fmt.Sprintf("issuer mismatch: %q", iss), "")
	}
	return claims, nil
}

// Close stops the key provider's refresh.
func (m *ClaimMapper) Close() { m.keys.Close() }

// tokenIssuer reads "iss" from a bearer token whose signature the default mapper has
// already verified.
func tokenIssuer(header string) (string, error) {
	_, token, ok := strings.Cut(header, " ")
	if !ok {
		return "", serviceerror.NewPermissionDenied("unexpected authorization token format", "")
	}
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return "", serviceerror.NewPermissionDenied("malformed token", "")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", serviceerror.NewPermissionDenied("malformed token payload", "")
	}
	var body struct {
		Iss any `json:"iss"`
	}
	if err := json.Unmarshal(payload, &body); err != nil {
		return "", serviceerror.NewPermissionDenied("malformed token payload", "")
	}
	iss, ok := body.Iss.(string)
	if !ok || iss == "" {
		return "", serviceerror.NewPermissionDenied("token has no issuer", "")
	}
	return iss, nil
}

// quietItems logs at debug level the warning Temporal's mapper writes, on every call, for
// each item of the permissions claim that is not "namespace:role": the claim is shared with
// the application's own permissions, so such items are expected.
type quietItems struct{ log.Logger }

func (q quietItems) Warn(msg string, tags ...tag.Tag) {
	if strings.HasPrefix(msg, "ignoring permission") {
		q.Logger.Debug(msg, tags...)
		return
	}
	q.Logger.Warn(msg, tags...)
}

// AudienceGetter returns the getter for temporal.WithAudienceGetter: every call must carry
// a token for this audience.
func AudienceGetter(audience string) func(*config.Config) authorization.JWTAudienceMapper {
	return func(*config.Config) authorization.JWTAudienceMapper {
		return authorization.NewAudienceMapper(audience)
	}
}
