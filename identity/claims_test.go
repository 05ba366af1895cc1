package identity

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func parseJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMapClaimsPresets(t *testing.T) {
	for _, c := range []struct {
		name    string
		mapping ClaimMapping
		claims  string
		h       Hierarchy
		want    Identity
	}{
		{
			name:    "keycloak",
			mapping: KeycloakClaims("app.example.com"),
			claims: `{"name":"Carol","email":"carol@example.com","azp":"app.example.com","department":"engineering",
				"realm_access":{"roles":["offline_access","db-approver"]},
				"resource_access":{"app.example.com":{"roles":["approver"]},"account":{"roles":["manage-account"]}},
				"groups":["/engineering"]}`,
			want: Identity{Name: "Carol", Email: "carol@example.com", ClientID: "app.example.com", Department: "engineering",
				Roles: []string{"approver", "db-approver", "offline_access"}, Groups: []string{"/engineering"}},
		},
		{
			name:    "okta groups imply roles",
			mapping: OktaClaims(),
			claims:  `{"name":"Frank","preferred_username":"frank@example.com","cid":"0oa1","groups":["sre","Everyone"]}`,
			h:       Hierarchy{GroupImplies: map[string][]string{"sre": {"oncall"}}, RoleImplies: map[string][]string{"oncall": {"engineer"}}},
			want: Identity{Name: "Frank", Email: "frank@example.com", ClientID: "0oa1",
				Roles: []string{"engineer", "oncall"}, Groups: []string{"Everyone", "sre"}},
		},
		{
			name:    "entra id",
			mapping: EntraIDClaims(),
			claims:  `{"name":"Dave","preferred_username":"dave@contoso.com","tid":"72f988bf","roles":["Invoice.Approve"],"groups":["a1b2"],"appid":"c0ffee"}`,
			want: Identity{Name: "Dave", Email: "dave@contoso.com", Tenant: "72f988bf", ClientID: "c0ffee",
				Roles: []string{"Invoice.Approve"}, Groups: []string{"a1b2"}},
		},
		{
			name:    "auth0 namespaced",
			mapping: Auth0Claims("https://oidcflow.example.com"),
			claims: `{"name":"Alice","email":"alice@example.com","azp":"abc","permissions":["read:db"],
				"https://oidcflow.example.com/roles":["admin"],"https://oidcflow.example.com/department":"it",
				"https://oidcflow.example.com/groups":"ops"}`,
			want: Identity{Name: "Alice", Email: "alice@example.com", ClientID: "abc", Department: "it",
				Roles: []string{"admin"}, Permissions: []string{"read:db"}, Groups: []string{"ops"}},
		},
		{
			name:    "google",
			mapping: GoogleClaims(),
			claims:  `{"name":"Erin","email":"erin@example.com","hd":"example.com","azp":"123.apps.googleusercontent.com"}`,
			want:    Identity{Name: "Erin", Email: "erin@example.com", Tenant: "example.com", ClientID: "123.apps.googleusercontent.com"},
		},
		{
			name:    "generic / hydra ID token",
			mapping: GenericClaims(),
			claims: `{"name":"Dave","email":"dave@example.com","roles":["finance-approver","finance-approver"],
				"permissions":["can_approve_invoice"],"department":"finance","groups":["finance"]}`,
			want: Identity{Name: "Dave", Email: "dave@example.com", Department: "finance", Roles: []string{"finance-approver"},
				Permissions: []string{"can_approve_invoice"}, Groups: []string{"finance"}},
		},
		{
			name:    "hydra access token ext",
			mapping: GenericClaims(),
			claims:  `{"client_id":"starter","ext":{"roles":["engineer"],"department":"engineering","email":"bob@example.com"}}`,
			want:    Identity{Email: "bob@example.com", Department: "engineering", ClientID: "starter", Roles: []string{"engineer"}},
		},
		{
			name:    "custom dotted paths",
			mapping: ClaimMapping{Roles: []string{"authz.roles", "extra"}, Department: []string{"org.unit.name"}},
			claims:  `{"authz":{"roles":["b","a"]},"extra":"c","org":{"unit":{"name":"ops"}}}`,
			want:    Identity{Roles: []string{"a", "b", "c"}, Department: "ops"},
		},
		{
			name:    "wrong types are ignored",
			mapping: GenericClaims(),
			claims:  `{"name":42,"email":["x"],"roles":[1,null,"ok",{"a":1}],"department":{"x":1},"groups":true}`,
			want:    Identity{Roles: []string{"ok"}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := MapClaims(parseJSON(t, c.claims), c.mapping, c.h)
			if !reflect.DeepEqual(*got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, c.want)
			}
		})
	}
}

func TestHierarchy(t *testing.T) {
	h := Hierarchy{
		RoleImplies: map[string][]string{
			"admin":            {"db-approver", "finance-approver"},
			"db-approver":      {"engineer"},
			"engineer":         {"viewer"},
			"finance-approver": {"viewer"},
			"loop-a":           {"loop-b"},
			"loop-b":           {"loop-a", "viewer"},
			"self":             {"self"},
		},
		GroupImplies: map[string][]string{"sre": {"engineer", "oncall"}},
	}
	for _, c := range []struct {
		roles, groups, want []string
	}{
		{[]string{"admin"}, nil, []string{"admin", "db-approver", "engineer", "finance-approver", "viewer"}},
		{nil, []string{"sre"}, []string{"engineer", "oncall", "viewer"}},
		{[]string{"loop-a"}, nil, []string{"loop-a", "loop-b", "viewer"}},
		{[]string{"self", "self"}, nil, []string{"self"}},
		{[]string{"unknown"}, []string{"unknown"}, []string{"unknown"}},
		{nil, nil, nil},
	} {
		if got := h.Expand(c.roles, c.groups); !slices.Equal(got, c.want) {
			t.Errorf("Expand(%v, %v) = %v, want %v", c.roles, c.groups, got, c.want)
		}
	}
}

func TestLookup(t *testing.T) {
	claims := parseJSON(t, `{"a":{"b":{"c":"abc"}},"a.b":"dotted","x.y.z":{"w":"deep"},"https://ns.example/roles":["r"]}`)
	for path, want := range map[string]any{
		"a.b.c":                    "abc",    // "a.b" is a dead end: back off to "a"
		"a.b":                      "dotted", // the longest key wins
		"x.y.z.w":                  "deep",
		"https://ns.example/roles": []any{"r"},
		"missing":                  nil,
		"a.missing":                nil,
		"":                         nil,
		strings.Repeat("a.", 40):   nil,
	} {
		got, ok := lookup(claims, path)
		if want == nil {
			if ok {
				t.Errorf("lookup(%q) = %v, want nothing", path, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("lookup(%q) = %v, want %v", path, got, want)
		}
	}
}
