package identity

import (
	"context"
	"time"
)

// VerifyKeptIDToken verifies an ID token that a refresh kept. OIDC Core 12.2 lets an
// identity provider renew the access token without a new ID token; the ID token of the
// last sign-in or refresh then stays the only signed statement of the person's claims while
// its exp passes. VerifyKeptIDToken applies every rule of VerifyIDToken but the exp
// comparison (exp must still be present): instead, the caller vouches for the person until
// until, having re-checked them with RecheckKeptIDToken and the access token that expires
// then. A passed until (beyond the leeway) is a *TokenExpiredError. The Identity's Expiry is
// the later of the token's exp and until.
//
// Nothing is cached, so VerifyIDToken never serves the same token past its exp. Use it only
// for a token the caller itself stored after verifying it; never for a token that arrives
// from a client, which would make an expired token good again.
func (v *Verifier) VerifyKeptIDToken(ctx context.Context, raw string, until time.Time) (*Identity, error) {
	if len(raw) > v.maxSize {
		return nil, malformed("token is %d bytes, more than the %d-byte cap (VerifierOptions.MaxTokenSize)", len(raw), v.maxSize)
	}
	if !v.now().Before(until.Add(v.leeway)) { // check:kept-until
		return nil, &TokenExpiredError{Expiry: until}
	}
	id, err := v.verifyJWT(ctx, kindKept, raw)
	if err != nil {
		return nil, err
	}
	if until.After(id.Expiry) {
		id.Expiry = until
	}
	return id, nil
}

// RecheckKeptIDToken re-checks the person of an ID token that a refresh kept (see
// VerifyKeptIDToken) with the access token that refresh returned, which expires at until:
// it verifies the kept token like VerifyKeptIDToken, asks the userinfo endpoint (OIDC Core
// 5.3) whom the access token speaks for, and returns the kept token's Identity only if
// the answer names the same subject (OIDC Core 5.3.2) and, for every authorization claim the
// answer carries (roles, permissions, groups, department, tenant under the ClaimMapping),
// the same values as the kept token. So kept claims never outlive a change the identity
// provider shows in userinfo, a role gained (which a not(role(...)) policy cares about) as
// much as a role lost; either means the person must sign in again for a fresh ID token.
//
// It does not compare claims the answer does not carry: with an identity provider whose
// userinfo shows no roles, a role removed at the provider shows at the next ID token only.
// Errors: ErrInvalidToken when the token or the answer is refused (a userinfo endpoint that
// answers 401 or 403 included), ErrProviderUnavailable when the endpoint fails,
// ErrInvalidConfig when the issuer advertises no userinfo endpoint and none is configured.
// The answer is not cached.
func (v *Verifier) RecheckKeptIDToken(ctx context.Context, idToken, accessToken string, until time.Time) (*Identity, error) {
	kept, err := v.VerifyKeptIDToken(ctx, idToken, until)
	if err != nil {
		return nil, err
	}
	c, sub, err := v.userinfoClaims(ctx, accessToken)
	if err != nil {
		return nil, err
	}
	if sub != kept.Subject { // check:kept-sub
		return nil, invalid("userinfo names subject %s, the kept ID token %s (OIDC Core 5.3.2); sign in again", quote(sub), quote(kept.Subject))
	}
	if what := v.changedClaims(kept, c); what != "" { // check:kept-claims
		return nil, invalid("userinfo shows other %s than the kept ID token; sign in again to get an ID token with them", what)
	}
	return kept, nil
}

// changedClaims names the first authorization claim that the userinfo answer c carries
// with other values than kept has ("" when none). Roles are compared as effective roles:
// the answer's roles expanded with its groups, or with kept's groups when it carries none.
func (v *Verifier) changedClaims(kept *Identity, c claimSet) string {
	m, h := v.claims, v.opts.Hierarchy
	groups := kept.Groups
	if carries(c, m.Groups) {
		groups = stringList(c, m.Groups)
		if !sameSet(groups, kept.Groups) {
			return "groups"
		}
	}
	if carries(c, m.Roles) && !sameSet(h.Expand(stringList(c, m.Roles), groups), kept.Roles) {
		return "roles"
	}
	if carries(c, m.Permissions) && !sameSet(stringList(c, m.Permissions), kept.Permissions) {
		return "permissions"
	}
	if carries(c, m.Department) && firstString(c, m.Department) != kept.Department {
		return "department"
	}
	if carries(c, m.Tenant) && firstString(c, m.Tenant) != kept.Tenant {
		return "tenant"
	}
	return ""
}

// carries reports whether claims hold any of paths.
func carries(claims map[string]any, paths []string) bool {
	for _, p := range paths {
		if _, ok := lookup(claims, p); ok {
			return true
		}
	}
	return false
}
