package identity

import (
	"slices"
	"strings"
)

// ClaimMapping says where an IdP puts the claims an Identity is made of. Each field lists
// claim paths: dotted paths into the claims ("realm_access.roles"). A key that itself holds
// dots (an Auth0 namespace URL, a Keycloak client id) is found too: at each level the longest
// run of segments that names a key is tried first, then shorter ones, so
// "https://example.com/roles" and "resource_access.app.example.com.roles" both work without
// escaping.
//
// For single-valued fields (Name, Email, Department, Tenant, ClientID) the first path that
// holds a non-empty string wins. For list fields (Roles, Permissions, Groups) the values of
// all paths are merged: a path may hold a string or an array of strings (other values are
// ignored). subject, issuer, audience and expiry are never mapped: the Verifier sets them
// from the checked registered claims.
type ClaimMapping struct {
	Name, Email, Department, Tenant, ClientID []string
	Roles, Permissions, Groups                []string
}

// GenericClaims is the mapping for IdPs that issue the claims by their plain names, as our
// dev IdP (Ory Hydra with a token hook) does: name, email, roles, permissions, department,
// groups. Hydra nests extra claims of JWT access tokens and introspection results under
// "ext", so each claim is also read from there.
func GenericClaims() ClaimMapping {
	return ClaimMapping{
		Name:        []string{"name", "ext.name", "preferred_username"},
		Email:       []string{"email", "ext.email"},
		Department:  []string{"department", "ext.department"},
		Tenant:      []string{"tenant", "ext.tenant"},
		ClientID:    []string{"azp", "client_id"},
		Roles:       []string{"roles", "ext.roles"},
		Permissions: []string{"permissions", "ext.permissions"},
		Groups:      []string{"groups", "ext.groups"},
	}
}

// HydraClaims is GenericClaims: Ory Hydra issues whatever its login/consent app and token
// hook put in the session.
func HydraClaims() ClaimMapping { return GenericClaims() }

// KeycloakClaims maps Keycloak tokens: realm roles (realm_access.roles) and the roles of
// clientID (resource_access.<clientID>.roles) become roles; groups come from the "groups"
// claim, which needs Keycloak's group membership mapper. Department is read from a
// "department" user attribute mapped into the token.
func KeycloakClaims(clientID string) ClaimMapping {
	m := ClaimMapping{
		Name:       []string{"name", "preferred_username"},
		Email:      []string{"email"},
		Department: []string{"department"},
		ClientID:   []string{"azp", "client_id"},
		Roles:      []string{"realm_access.roles"},
		Groups:     []string{"groups"},
	}
	if clientID != "" {
		m.Roles = append(m.Roles, "resource_access."+clientID+".roles")
	}
	return m
}

// OktaClaims maps Okta tokens: "groups" (needs a groups claim on the authorization server);
// Okta has no role claim, so derive roles with Hierarchy.GroupImplies. cid is the client id
// in Okta access tokens.
func OktaClaims() ClaimMapping {
	return ClaimMapping{
		Name:       []string{"name", "preferred_username"},
		Email:      []string{"email", "preferred_username"},
		Department: []string{"department"},
		ClientID:   []string{"azp", "cid", "client_id"},
		Groups:     []string{"groups"},
	}
}

// EntraIDClaims maps Microsoft Entra ID tokens: app roles ("roles"), group object ids
// ("groups"; overage claims pointing at Microsoft Graph are not followed), tenant ("tid").
func EntraIDClaims() ClaimMapping {
	return ClaimMapping{
		Name:       []string{"name"},
		Email:      []string{"email", "preferred_username", "upn"},
		Department: []string{"department"},
		Tenant:     []string{"tid"},
		ClientID:   []string{"azp", "appid"},
		Roles:      []string{"roles"},
		Groups:     []string{"groups"},
	}
}

// Auth0Claims maps Auth0 tokens, whose custom claims must be namespaced
// ("https://example.com/roles"): namespace is that prefix (a trailing "/" is added when
// missing). RBAC "permissions" (access tokens) are read as well.
func Auth0Claims(namespace string) ClaimMapping {
	if namespace != "" && !strings.HasSuffix(namespace, "/") {
		namespace += "/"
	}
	return ClaimMapping{
		Name:        []string{"name", "nickname"},
		Email:       []string{"email"},
		Department:  []string{namespace + "department"},
		Tenant:      []string{namespace + "tenant"},
		ClientID:    []string{"azp"},
		Roles:       []string{namespace + "roles"},
		Permissions: []string{"permissions", namespace + "permissions"},
		Groups:      []string{namespace + "groups"},
	}
}

// GoogleClaims maps Google tokens: the Workspace domain ("hd") becomes the tenant. Google
// issues no roles or groups; derive them elsewhere or check Tenant in a Policy.
func GoogleClaims() ClaimMapping {
	return ClaimMapping{
		Name:     []string{"name"},
		Email:    []string{"email"},
		Tenant:   []string{"hd"},
		ClientID: []string{"azp"},
	}
}

// Hierarchy is the nested-role configuration: a role implies other roles, a group implies
// roles. Expansion is transitive and cycle-safe.
type Hierarchy struct {
	RoleImplies  map[string][]string
	GroupImplies map[string][]string
}

// Expand returns the effective roles of someone holding roles and groups: sorted and
// deduplicated.
func (h Hierarchy) Expand(roles, groups []string) []string {
	seen := make(map[string]bool, len(roles))
	queue := make([]string, 0, len(roles))
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			queue = append(queue, r)
		}
	}
	for _, r := range roles {
		add(r)
	}
	for _, g := range groups {
		for _, r := range h.GroupImplies[g] {
			add(r)
		}
	}
	for i := 0; i < len(queue); i++ { // check:role-implies
		for _, r := range h.RoleImplies[queue[i]] {
			add(r)
		}
	}
	if len(queue) == 0 {
		return nil
	}
	slices.Sort(queue)
	return queue
}

// maxListClaim bounds how many values one list claim contributes.
const maxListClaim = 1024

// maxPathSegments bounds the depth of a claim path.
const maxPathSegments = 16

// MapClaims builds the mapped part of an Identity (name, email, roles, permissions, groups,
// department, tenant, client id) from a token's claims; h turns roles and groups into
// effective roles. It never fails: claims of an unexpected type are ignored.
func MapClaims(claims map[string]any, m ClaimMapping, h Hierarchy) *Identity {
	id := &Identity{
		Name:        firstString(claims, m.Name),
		Email:       firstString(claims, m.Email),
		Department:  firstString(claims, m.Department),
		Tenant:      firstString(claims, m.Tenant),
		ClientID:    firstString(claims, m.ClientID),
		Permissions: stringList(claims, m.Permissions),
		Groups:      stringList(claims, m.Groups),
	}
	id.Roles = h.Expand(stringList(claims, m.Roles), id.Groups)
	return id
}

// lookup follows a dotted path through nested objects; see ClaimMapping.
func lookup(claims map[string]any, path string) (any, bool) {
	segs := strings.SplitN(path, ".", maxPathSegments+1)
	if len(segs) > maxPathSegments {
		return nil, false
	}
	return walk(claims, segs)
}

// walk resolves segs in cur, trying the longest run of segments that names a key first and
// backing off to shorter ones (at most 2^15 lookups for the 16 segments allowed).
func walk(cur any, segs []string) (any, bool) {
	if len(segs) == 0 {
		return cur, true
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, false
	}
	for j := len(segs); j > 0; j-- {
		if v, ok := m[strings.Join(segs[:j], ".")]; ok {
			if r, ok := walk(v, segs[j:]); ok {
				return r, true
			}
		}
	}
	return nil, false
}

func firstString(claims map[string]any, paths []string) string {
	for _, p := range paths {
		if v, ok := lookup(claims, p); ok {
			if s, ok := v.(string); ok && s != "" {
				return s
			}
		}
	}
	return ""
}

// stringList merges the string values of paths, sorted and deduplicated.
func stringList(claims map[string]any, paths []string) []string {
	var out []string
	for _, p := range paths {
		v, ok := lookup(claims, p)
		if !ok {
			continue
		}
		switch v := v.(type) {
		case string:
			if v != "" {
				out = append(out, v)
			}
		case []any:
			for i, e := range v {
				if i == maxListClaim {
					break
				}
				if s, ok := e.(string); ok && s != "" {
					out = append(out, s)
				}
			}
		case []string:
			for i, s := range v {
				if i == maxListClaim {
					break
				}
				if s != "" {
					out = append(out, s)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}
