package identity

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// Defaults of VerifierOptions.
const (
	DefaultLeeway          = 60 * time.Second
	DefaultMaxTokenSize    = 8 << 10
	DefaultJWKSCooldown    = 30 * time.Second
	DefaultCacheTTL        = time.Minute
	DefaultCacheSize       = 10000
	DefaultMaxResponseSize = 1 << 20
	DefaultHTTPTimeout     = 10 * time.Second
)

// DefaultAlgorithms are the signature algorithms accepted when VerifierOptions.Algorithms is
// empty.
var DefaultAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// permittedAlgorithms are all the algorithms that may be allowed: asymmetric signatures only.
// "none" and HMAC (HS256...) are never accepted, whatever the options say (RFC 8725 section
// 3.1, 3.2).
var permittedAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// backchannelLogoutEvent marks a logout token (OIDC Back-Channel Logout 1.0 section 2.4).
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// VerifierOptions configures a Verifier. Issuer and ClientID are required.
//
// Keys come from, in order: StaticKeys; JWKSURL; else OIDC discovery at
// Issuer + "/.well-known/openid-configuration" (which NewVerifier fetches, and which must
// name exactly Issuer).
type VerifierOptions struct {
	// Issuer is the IdP's issuer identifier, compared byte for byte with iss (a trailing
	// slash matters). Required.
	Issuer string
	// ClientID is our OAuth client id: ID tokens must list it in aud. Required.
	ClientID string
	// JWKSURL is the IdP's JWKS endpoint, for static configuration without discovery.
	// Default: from discovery.
	JWKSURL string
	// StaticKeys are fixed verification keys by kid ("" for a key without kid): RSA, ECDSA
	// or Ed25519 public keys. Nothing is fetched. Default: none.
	StaticKeys map[string]crypto.PublicKey
	// Algorithms is the allow-list of JWS algorithms. Default: DefaultAlgorithms. "none" and
	// HS* are refused by NewVerifier.
	Algorithms []string
	// TrustedAudiences may appear in aud next to ClientID (an ID token with several
	// audiences also needs azp == ClientID). Any other audience is refused. Default: none.
	TrustedAudiences []string
	// Leeway is the clock skew allowed on exp, nbf and iat. Default (0): DefaultLeeway
	// (60 s); a negative value means no leeway.
	Leeway time.Duration
	// MaxTokenSize caps a token's length in bytes, checked before any parsing. Default:
	// DefaultMaxTokenSize (8 KiB).
	MaxTokenSize int
	// JWKSCooldown is the minimum time between two JWKS fetches: a token with an unknown kid
	// triggers at most one refetch per cooldown, and is refused in between with the
	// retryable ErrKeyNotYetKnown (so a start right after an IdP key rotation succeeds on a
	// retry once the cooldown has passed). Shorter means faster recovery from a rotation and
	// more requests to the IdP under a flood of made-up kids. Default (0):
	// DefaultJWKSCooldown (30 s).
	JWKSCooldown time.Duration
	// CacheTTL bounds how long a verified token is remembered (never past its exp).
	// Default (0): DefaultCacheTTL (1 min); negative disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached tokens. Default: DefaultCacheSize.
	CacheSize int
	// Claims maps claims to Identity fields. Default (zero value): GenericClaims().
	Claims *ClaimMapping
	// Hierarchy expands roles and groups into effective roles. Default: none.
	Hierarchy Hierarchy

	// AccessTokenAudience is the resource identifier that JWT and introspected access
	// tokens must carry in aud (RFC 9068 section 4). Default "": instead, the token's
	// client_id (or the ClientID mapping) must equal ClientID and every aud it has must be
	// ClientID or trusted: then any access token issued to our client is accepted.
	AccessTokenAudience string
	// AccessTokenTypes are the accepted typ headers of JWT access tokens, compared without
	// the "application/" prefix and case. Default: ["at+jwt"] (RFC 9068 section 2.1).
	// IdPs that type access tokens "JWT" (Ory Hydra, Keycloak) need "JWT" added; the
	// client_id/audience rules still keep ID tokens out.
	AccessTokenTypes []string
	// IntrospectionClientID and IntrospectionClientSecret enable RFC 7662 introspection of
	// opaque access tokens (client_secret_basic). Default: opaque tokens are refused unless
	// UserInfo is set.
	IntrospectionClientID, IntrospectionClientSecret string
	// IntrospectionURL is the introspection endpoint. Default: introspection_endpoint from
	// discovery.
	IntrospectionURL string
	// UserInfo makes VerifyAccessToken accept opaque tokens by calling the userinfo endpoint
	// (OIDC Core 5.3) when introspection is not configured. The result has no expiry, so it
	// is cached for CacheTTL only. Default: false.
	UserInfo bool
	// UserInfoURL is the userinfo endpoint. Default: userinfo_endpoint from discovery.
	UserInfoURL string

	// HTTPClient makes discovery, JWKS, introspection and userinfo requests. Default: a
	// client with a DefaultHTTPTimeout timeout.
	HTTPClient *http.Client
	// MaxResponseSize caps IdP response bodies. Default: DefaultMaxResponseSize (1 MiB).
	MaxResponseSize int64
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives key fetch failures (never a token). Default: slog.Default().
	Logger *slog.Logger
}

// Verifier verifies ID and access tokens and maps them to an Identity. It wraps go-oidc's
// IDTokenVerifier with the checks go-oidc leaves out (iat, sub, azp, token type, size,
// trusted audiences, JWKS refetch cooldown) and remembers verified tokens for a short time,
// so interceptors can verify on every call. It is safe for concurrent use.
type Verifier struct {
	opts        VerifierOptions
	issuer      string
	clientID    string
	algs        []string
	leeway      time.Duration
	maxSize     int
	now         func() time.Time
	client      *http.Client
	keys        *keySet
	oidc        *oidc.IDTokenVerifier
	claims      ClaimMapping
	trusted     map[string]bool
	accessTypes []string
	introURL    string
	userinfoURL string
	cache       *tokenCache
	log         *slog.Logger
}

// NewVerifier checks opts, runs discovery when no keys or JWKS URL are configured, and
// returns a Verifier. Signing keys are fetched on first use, not here.
func NewVerifier(ctx context.Context, opts VerifierOptions) (*Verifier, error) {
	if opts.Issuer == "" {
		return nil, configError("VerifierOptions.Issuer is required (e.g. OIDCFLOW_ISSUER)")
	}
	if opts.ClientID == "" {
		return nil, configError("VerifierOptions.ClientID is required (e.g. OIDCFLOW_CLIENT_ID)")
	}
	v := &Verifier{
		opts:     opts,
		issuer:   opts.Issuer,
		clientID: opts.ClientID,
		leeway:   opts.Leeway,
		maxSize:  opts.MaxTokenSize,
		now:      opts.Now,
		client:   opts.HTTPClient,
		log:      opts.Logger,
		trusted:  map[string]bool{opts.ClientID: true},
	}
	switch {
	case v.leeway == 0:
		v.leeway = DefaultLeeway
	case v.leeway < 0:
		v.leeway = 0
	}
	if v.maxSize <= 0 {
		v.maxSize = DefaultMaxTokenSize
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	maxBody := opts.MaxResponseSize
	if maxBody <= 0 {
		maxBody = DefaultMaxResponseSize
	}
	v.algs = opts.Algorithms
	if len(v.algs) == 0 {
		v.algs = DefaultAlgorithms
	}
	for _, a := range v.algs {
		if !permittedAlgorithms[a] {
			return nil, configError("algorithm %q is not allowed; use asymmetric ones (RS256, PS256, ES256, EdDSA, ...): none and HMAC are never accepted", a)
		}
	}
	for _, a := range opts.TrustedAudiences {
		v.trusted[a] = true
	}
	for _, t := range opts.AccessTokenTypes {
		v.accessTypes = append(v.accessTypes, mediaType(t))
	}
	if len(v.accessTypes) == 0 {
		v.accessTypes = []string{"at+jwt"}
	}
	if opts.Claims != nil {
		v.claims = *opts.Claims
	} else {
		v.claims = GenericClaims()
	}
	v.introURL, v.userinfoURL = opts.IntrospectionURL, opts.UserInfoURL

	joseAlgs := make([]jose.SignatureAlgorithm, len(v.algs))
	for i, a := range v.algs {
		joseAlgs[i] = jose.SignatureAlgorithm(a)
	}
	cooldown := opts.JWKSCooldown
	if cooldown <= 0 {
		cooldown = DefaultJWKSCooldown
	}
	switch {
	case len(opts.StaticKeys) > 0:
		ks, err := newStaticKeySet(opts.StaticKeys, joseAlgs)
		if err != nil {
			return nil, err
		}
		v.keys = ks
	default:
		jwksURL := opts.JWKSURL
		needIntro := opts.IntrospectionClientID != "" && v.introURL == ""
		needUserinfo := opts.UserInfo && v.userinfoURL == ""
		if jwksURL == "" || needIntro || needUserinfo {
			md, err := discover(ctx, v.client, maxBody, opts.Issuer)
			if err != nil {
				return nil, err
			}
			if jwksURL == "" {
				jwksURL = md.JWKSURI
			}
			if v.introURL == "" {
				v.introURL = md.IntrospectionEndpoint
			}
			if v.userinfoURL == "" {
				v.userinfoURL = md.UserInfoEndpoint
			}
		}
		if jwksURL == "" {
			return nil, configError("the issuer's discovery document has no jwks_uri; set VerifierOptions.JWKSURL")
		}
		v.keys = &keySet{url: jwksURL, client: v.client, now: v.now, cooldown: cooldown, maxBody: maxBody, algs: joseAlgs}
	}
	if opts.IntrospectionClientID != "" && v.introURL == "" {
		return nil, configError("introspection is configured but the issuer advertises no introspection_endpoint; set VerifierOptions.IntrospectionURL")
	}
	if opts.UserInfo && v.userinfoURL == "" {
		return nil, configError("UserInfo is set but the issuer advertises no userinfo_endpoint; set VerifierOptions.UserInfoURL")
	}
	// go-oidc checks the signature (through our key set, with the alg allow-list) and
	// decodes the claims; every claim check is ours, so that none is skipped or loosened
	// (go-oidc allows 5 minutes on nbf, accepts Google's issuer without scheme, ignores iat).
	v.oidc = oidc.NewVerifier(opts.Issuer, v.keys, &oidc.Config{
		SupportedSigningAlgs: v.algs,
		SkipClientIDCheck:    true,
		SkipExpiryCheck:      true,
		SkipIssuerCheck:      true,
		Now:                  v.now,
	})
	if opts.CacheTTL >= 0 {
		ttl := opts.CacheTTL
		if ttl == 0 {
			ttl = DefaultCacheTTL
		}
		size := opts.CacheSize
		if size <= 0 {
			size = DefaultCacheSize
		}
		v.cache = newTokenCache(ttl, size)
	}
	return v, nil
}

// Kinds of token, part of the cache key so a token verified as one kind is never served as
// another. kindKept is an ID token a refresh kept (see VerifyKeptIDToken): every ID token
// rule applies but the exp comparison; it is never cached.
const (
	kindID     byte = 'i'
	kindAccess byte = 'a'
	kindKept   byte = 'k'
)

// VerifyIDToken verifies an OIDC ID token (OIDC Core 3.1.3.7) and returns the Identity it
// proves. Errors wrap ErrMalformedToken or ErrInvalidToken (and ErrUnauthenticated), or
// are a *TokenExpiredError; ErrProviderUnavailable when the JWKS could not be fetched, and
// ErrKeyNotYetKnown when the token names a key the JWKS held no key for and the JWKS may
// not be refetched yet (both retryable).
// Nonce and at_hash are not checked here: that is the login flow's job.
func (v *Verifier) VerifyIDToken(ctx context.Context, raw string) (*Identity, error) {
	return v.verifyCached(ctx, kindID, raw)
}

// VerifyAccessToken verifies an access token: a JWT access token (RFC 9068) when the token
// has the form of a JWS, otherwise an opaque token through introspection (RFC 7662) or
// userinfo, if configured.
func (v *Verifier) VerifyAccessToken(ctx context.Context, raw string) (*Identity, error) {
	return v.verifyCached(ctx, kindAccess, raw)
}

// VerifyIDTokenAt is VerifyIDToken with exp, nbf and iat judged at `at` instead of the
// clock: for an operation that the server recorded at `at` and that then waited for a worker.
// It neither reads nor fills the verified-token cache, whose entries are judged by the clock.
func (v *Verifier) VerifyIDTokenAt(ctx context.Context, raw string, at time.Time) (*Identity, error) {
	if len(raw) > v.maxSize { // check:size-at
		return nil, malformed("token is %d bytes, more than the %d-byte cap (VerifierOptions.MaxTokenSize); check that a token, not some other value, is sent", len(raw), v.maxSize)
	}
	if at.IsZero() {
		return nil, invalid("no verification time given")
	}
	return v.verifyJWT(context.WithValue(ctx, atKey{}, at), kindID, raw)
}

// atKey carries VerifyIDTokenAt's time through verifyJWT.
type atKey struct{}

func atFrom(ctx context.Context) time.Time {
	at, _ := ctx.Value(atKey{}).(time.Time)
	return at
}

func (v *Verifier) verifyCached(ctx context.Context, kind byte, raw string) (*Identity, error) {
	if len(raw) > v.maxSize { // check:size
		return nil, malformed("token is %d bytes, more than the %d-byte cap (VerifierOptions.MaxTokenSize); check that a token, not some other value, is sent", len(raw), v.maxSize)
	}
	var key [sha256.Size]byte
	if v.cache != nil {
		h := sha256.New()
		h.Write([]byte{kind})
		h.Write([]byte(raw))
		h.Sum(key[:0])
		if id, ok := v.cache.get(key, v.now()); ok {
			return id, nil
		}
	}
	var id *Identity
	var err error
	switch {
	case kind == kindID:
		id, err = v.verifyJWT(ctx, kind, raw)
	case strings.Count(raw, ".") == 2:
		id, err = v.verifyJWT(ctx, kind, raw)
	default:
		id, err = v.verifyOpaque(ctx, raw)
	}
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(key, id, v.now())
		return id.clone(), nil
	}
	return id, nil
}

func (v *Verifier) verifyJWT(ctx context.Context, kind byte, raw string) (*Identity, error) {
	h, err := parseHeader(raw, v.maxSize)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(v.algs, h.Alg) { // check:alg
		return nil, invalid("algorithm %s is not allowed (allowed: %v); the IdP must sign with one of them", quote(h.Alg), v.algs)
	}
	if h.Crit { // check:crit
		return nil, invalid("token has critical header extensions (crit), none of which are supported")
	}
	typ := mediaType(h.Typ)
	if kind != kindAccess && typ != "" && typ != "jwt" { // check:id-typ
		return nil, invalid("token type %s is not an ID token (an access or logout token?); send the ID token", quote(h.Typ))
	}
	if kind == kindAccess && !slices.Contains(v.accessTypes, typ) { // check:at-typ
		return nil, invalid("token type %s is not an accepted access token type %v (RFC 9068 wants at+jwt); send the access token, or add the IdP's type to AccessTokenTypes", quote(h.Typ), v.accessTypes)
	}

	var sigErr error
	tok, err := v.oidc.Verify(context.WithValue(ctx, sigErrKey{}, &sigErr), raw)
	if err != nil {
		if sigErr != nil {
			if errors.Is(sigErr, ErrProviderUnavailable) {
				v.log.Warn("identity: jwks fetch failed", "issuer", v.issuer, "err", sigErr)
			}
			return nil, sigErr
		}
		return nil, malformed("%v", err)
	}
	var payload jsonRaw
	if err := tok.Claims(&payload); err != nil {
		return nil, malformed("claims: %v", err)
	}
	c, err := decodeClaims(payload)
	if err != nil {
		return nil, err
	}
	return v.checkClaims(kind, c, true, atFrom(ctx))
}

// jsonRaw receives a token's payload bytes unchanged.
type jsonRaw []byte

func (j *jsonRaw) UnmarshalJSON(b []byte) error { *j = append((*j)[:0], b...); return nil }

// checkClaims applies the registered-claim rules to a verified payload (or an
// introspection response, where requireIat is false) and maps the rest.
func (v *Verifier) checkClaims(kind byte, c claimSet, requireIat bool, at time.Time) (*Identity, error) {
	iss, _, err := c.str("iss")
	if err != nil {
		return nil, err
	}
	if iss != v.issuer { // check:iss
		return nil, invalid("issuer %s is not the configured issuer %s (compared exactly, trailing slash included); check OIDCFLOW_ISSUER or log in at the right IdP", quote(iss), quote(v.issuer))
	}
	sub, _, err := c.str("sub")
	if err != nil {
		return nil, err
	}
	if sub == "" { // check:sub
		return nil, invalid("token has no subject (sub); the IdP must identify the person")
	}
	aud, err := c.audience()
	if err != nil {
		return nil, err
	}
	if err := v.checkEvents(c); err != nil {
		return nil, err
	}
	if kind != kindAccess {
		if err := v.checkIDAudience(c, aud); err != nil {
			return nil, err
		}
	}
	if err := v.checkTimes(c, requireIat, at, kind == kindKept); err != nil {
		return nil, err
	}
	id := MapClaims(c, v.claims, v.opts.Hierarchy)
	if kind == kindAccess {
		if err := v.checkAccessAudience(c, aud, id); err != nil {
			return nil, err
		}
	}
	if kind != kindAccess && id.ClientID == "" {
		id.ClientID = v.clientID
	}
	id.Subject, id.Issuer, id.Audience = sub, iss, aud
	id.Expiry, _, _ = c.time("exp")
	return id, nil
}

// checkEvents refuses logout and other security event tokens (OIDC Back-Channel Logout 1.0
// section 2.4, RFC 8417) and Keycloak's typed tokens other than ID tokens.
func (v *Verifier) checkEvents(c claimSet) error {
	if ev, ok := c["events"]; ok { // check:events
		if m, ok := ev.(map[string]any); ok {
			if _, ok := m[backchannelLogoutEvent]; ok { // check:logout
				return invalid("this is a logout token, not an ID or access token")
			}
		}
		return invalid("this is a security event token (it has events), not an ID or access token")
	}
	if t, _, _ := c.str("typ"); t != "" && !strings.EqualFold(t, "ID") && !strings.EqualFold(t, "Bearer") { // check:claim-typ
		return invalid("token claims type %s (a refresh token?); send the ID or access token", quote(t))
	}
	return nil
}

// checkIDAudience applies OIDC Core 3.1.3.7 items 3 to 5: aud contains ClientID, every other
// audience is trusted, several audiences need azp, and azp (when present) is ClientID.
// Keycloak marks access tokens "typ": "Bearer" in the claims; that is refused here too.
func (v *Verifier) checkIDAudience(c claimSet, aud []string) error {
	if t, _, _ := c.str("typ"); strings.EqualFold(t, "Bearer") { // check:id-claim-typ
		return invalid("token claims type \"Bearer\": an access token, not an ID token; send the ID token")
	}
	if !slices.Contains(aud, v.clientID) { // check:aud
		return invalid("audience %v does not contain our client id %s; the token was issued to another client: log in through this application", quoteAll(aud), quote(v.clientID))
	}
	for _, a := range aud {
		if !v.trusted[a] { // check:aud-trusted
			return invalid("audience %s is not trusted (TrustedAudiences); a token for another party must not be accepted here", quote(a))
		}
	}
	azp, hasAzp, err := c.str("azp")
	if err != nil {
		return err
	}
	if len(aud) > 1 && !hasAzp { // check:azp-required
		return invalid("token has several audiences but no azp (authorized party); OIDC Core 3.1.3.7 requires one")
	}
	if hasAzp && azp != v.clientID { // check:azp
		return invalid("authorized party (azp) %s is not our client id %s; the token was issued to another client", quote(azp), quote(v.clientID))
	}
	return nil
}

// checkAccessAudience applies RFC 9068 section 4: aud must contain AccessTokenAudience; when
// none is configured, the token must have been issued to our client (client_id) and carry
// only trusted audiences.
func (v *Verifier) checkAccessAudience(c claimSet, aud []string, id *Identity) error {
	if t, _, _ := c.str("typ"); strings.EqualFold(t, "ID") { // check:at-claim-typ
		return invalid("token claims type \"ID\": an ID token, not an access token; send the access token")
	}
	if want := v.opts.AccessTokenAudience; want != "" {
		if !slices.Contains(aud, want) { // check:at-aud
			return invalid("access token audience %v does not contain the resource %s (AccessTokenAudience); request a token for it", quoteAll(aud), quote(want))
		}
		return nil
	}
	if id.ClientID != v.clientID { // check:at-client
		return invalid("access token was issued to client %s, not to %s; use a token obtained by this application", quote(id.ClientID), quote(v.clientID))
	}
	for _, a := range aud {
		if !v.trusted[a] { // check:at-aud-trusted
			return invalid("access token audience %s is not trusted (set AccessTokenAudience or TrustedAudiences)", quote(a))
		}
	}
	return nil
}

// checkTimes checks exp (required), nbf and iat (required when requireIat) against the clock,
// or against `at` when it is set, with the leeway (RFC 7519 sections 4.1.4-4.1.6). kept skips
// the exp comparison only (see VerifyKeptIDToken): exp must still be present.
func (v *Verifier) checkTimes(c claimSet, requireIat bool, at time.Time, kept bool) error {
	now := at
	if now.IsZero() {
		now = v.now()
	}
	exp, hasExp, err := c.time("exp")
	if err != nil {
		return err
	}
	if !hasExp { // check:exp-required
		return invalid("token has no expiry (exp); the IdP must set one")
	}
	if !kept && !now.Before(exp.Add(v.leeway)) { // check:exp (RFC 7519 4.1.4: now must be before exp)
		return &TokenExpiredError{Expiry: exp}
	}
	nbf, hasNbf, err := c.time("nbf")
	if err != nil {
		return err
	}
	if hasNbf && nbf.After(now.Add(v.leeway)) { // check:nbf
		return invalid("token is not valid before %s (nbf), beyond the %s leeway; check the clocks of this host and the IdP", nbf.Format(time.RFC3339), v.leeway)
	}
	iat, hasIat, err := c.time("iat")
	if err != nil {
		return err
	}
	if requireIat && !hasIat { // check:iat-required
		return invalid("token has no issue time (iat); the IdP must set one")
	}
	if hasIat && iat.After(now.Add(v.leeway)) { // check:iat
		return invalid("token is issued in the future (iat %s), beyond the %s leeway; check the clocks of this host and the IdP", iat.Format(time.RFC3339), v.leeway)
	}
	return nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = quote(s)
	}
	return out
}

// CheckRefreshed checks that a refreshed ID token speaks of the same person to the same
// client as the original one (OIDC Core 12.2): same iss, sub, aud and authorized party. It
// does not verify either token; pass the Identities VerifyIDToken returned.
func (v *Verifier) CheckRefreshed(orig, refreshed *Identity) error {
	if orig == nil || refreshed == nil {
		return invalid("refresh check needs both the original and the refreshed identity")
	}
	if refreshed.Issuer != orig.Issuer { // check:refresh-iss
		return invalid("refreshed token issuer %s differs from the original %s (OIDC Core 12.2); log in again", quote(refreshed.Issuer), quote(orig.Issuer))
	}
	if refreshed.Subject != orig.Subject { // check:refresh-sub
		return invalid("refreshed token subject %s differs from the original %s (OIDC Core 12.2); log in again", quote(refreshed.Subject), quote(orig.Subject))
	}
	if !sameSet(refreshed.Audience, orig.Audience) { // check:refresh-aud
		return invalid("refreshed token audience %v differs from the original %v (OIDC Core 12.2); log in again", quoteAll(refreshed.Audience), quoteAll(orig.Audience))
	}
	if refreshed.ClientID != orig.ClientID { // check:refresh-azp
		return invalid("refreshed token was issued to client %s, the original to %s; log in again", quote(refreshed.ClientID), quote(orig.ClientID))
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// JWKSFetches reports how many JWKS requests the Verifier has made (0 with static keys).
func (v *Verifier) JWKSFetches() int64 { return v.keys.fetches.Load() }

// clone returns a deep copy, so callers cannot change a cached Identity.
func (id *Identity) clone() *Identity {
	c := *id
	c.Audience = slices.Clone(id.Audience)
	c.Roles = slices.Clone(id.Roles)
	c.Permissions = slices.Clone(id.Permissions)
	c.Groups = slices.Clone(id.Groups)
	return &c
}
