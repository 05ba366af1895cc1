package authz

import (
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/tools/temporal/internal/testjwks"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

const (
	testIssuer   = "https://idp.example"
	testAudience = "temporal"
)

func newMapper(t *testing.T, claim string) (*ClaimMapper, *testjwks.Issuer) {
	t.Helper()
	iss, err := testjwks.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	m, err := NewClaimMapper(Config{
		JWKSURL: iss.JWKSURL, Issuer: testIssuer, Audience: testAudience, PermissionsClaim: claim,
	}, log.NewNoopLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, iss
}

func good(perms ...string) map[string]any {
	return map[string]any{"iss": testIssuer, "aud": []string{testAudience, "other"}, "sub": "alice", "permissions": perms}
}

func with(c map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestClaimMapperMapsPermissions(t *testing.T) {
	m, iss := newMapper(t, "")
	c, err := m.GetClaims(&authorization.AuthInfo{
		AuthToken: "Bearer " + iss.Token(good("ns:read", "ns:worker", "can_request_access", "temporal-system:read")),
		Audience:  testAudience,
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" {
		t.Errorf("subject %q", c.Subject)
	}
	if got := c.Namespaces["ns"]; got != authorization.RoleReader|authorization.RoleWorker {
		t.Errorf("ns role %v", got)
	}
	if len(c.Namespaces) != 1 {
		t.Errorf("app permissions became namespaces: %v", c.Namespaces)
	}
	if c.System != authorization.RoleReader {
		t.Errorf("system role %v", c.System)
	}
}

func TestClaimMapperCustomClaim(t *testing.T) {
	m, iss := newMapper(t, "temporal_roles")
	tok := iss.Token(with(good("ns:admin"), "temporal_roles", []string{"ns:write"}))
	c, err := m.GetClaims(&authorization.AuthInfo{AuthToken: "Bearer " + tok, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Namespaces["ns"]; got != authorization.RoleWriter {
		t.Errorf("ns role %v, want write from the configured claim only", got)
	}
}

func TestClaimMapperRefuses(t *testing.T) {
	m, iss := newMapper(t, "")
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]*authorization.AuthInfo{
		"wrong issuer":        {AuthToken: "Bearer " + iss.Token(with(good("ns:admin"), "iss", "https://evil.example")), Audience: testAudience},
		"issuer with slash":   {AuthToken: "Bearer " + iss.Token(with(good("ns:admin"), "iss", testIssuer+"/")), Audience: testAudience},
		"no issuer":           {AuthToken: "Bearer " + iss.Token(with(good("ns:admin"), "iss", nil)), Audience: testAudience},
		"issuer not a string": {AuthToken: "Bearer " + iss.Token(with(good("ns:admin"), "iss", 7)), Audience: testAudience},
		"wrong audience":      {AuthToken: "Bearer " + iss.Token(with(good("ns:admin"), "aud", "someone-else")), Audience: testAudience},
		"no audience":         {AuthToken: "Bearer " + iss.Token(with(good("ns:admin"), "aud", nil)), Audience: testAudience},
		// without an audience getter the mapper still checks its configured audience
		"wrong audience, no getter": {AuthToken: "Bearer " + iss.Token(with(good("ns:admin"), "aud", "someone-else"))},
		"expired":                   {AuthToken: "Bearer " + iss.Token(with(good("ns:admin"), "exp", time.Now().Add(-time.Minute).Unix())), Audience: testAudience},
		"not yet valid":             {AuthToken: "Bearer " + iss.Token(with(good("ns:admin"), "nbf", time.Now().Add(time.Hour).Unix())), Audience: testAudience},
		"unpublished key":           {AuthToken: "Bearer " + iss.TokenWithKey(other, good("ns:admin")), Audience: testAudience},
		"no sub":                    {AuthToken: "Bearer " + iss.Token(with(good("ns:admin"), "sub", nil)), Audience: testAudience},
		"not bearer":                {AuthToken: "Basic " + iss.Token(good("ns:admin")), Audience: testAudience},
		"bare token":                {AuthToken: iss.Token(good("ns:admin")), Audience: testAudience},
		"garbage":                   {AuthToken: "Bearer a.b.c", Audience: testAudience},
		"empty":                     {AuthToken: "", Audience: testAudience},
		"unsigned":                  {AuthToken: "Bearer eyJhbGciOiJub25lIiwia2lkIjoidGVzdC1rZXktMSJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwiYXVkIjoidGVtcG9yYWwiLCJzdWIiOiJhbGljZSIsInBlcm1pc3Npb25zIjpbIm5zOmFkbWluIl19.", Audience: testAudience},
	}
	for name, ai := range cases {
		if c, err := m.GetClaims(ai); err == nil {
			t.Errorf("%s: accepted, claims %+v", name, c)
		}
	}
	if _, err := m.GetClaims(nil); err == nil {
		t.Error("nil auth info accepted")
	}
}

func TestNewClaimMapperNeedsIssuerAndAudience(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no jwks":     {Issuer: testIssuer, Audience: testAudience},
		"no issuer":   {JWKSURL: "http://127.0.0.1:1/jwks", Audience: testAudience},
		"no audience": {JWKSURL: "http://127.0.0.1:1/jwks", Issuer: testIssuer},
	} {
		if _, err := NewClaimMapper(cfg, log.NewNoopLogger()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestAudienceGetter(t *testing.T) {
	if got := AudienceGetter("aud-1")(nil).Audience(nil, nil, nil); got != "aud-1" {
		t.Fatalf("audience %q", got)
	}
}

type recorder struct {
	log.Logger
	warned, debugged []string
}

func (r *recorder) Warn(msg string, _ ...tag.Tag)  { r.warned = append(r.warned, msg) }
func (r *recorder) Debug(msg string, _ ...tag.Tag) { r.debugged = append(r.debugged, msg) }

func TestAppPermissionsAreNotWarnings(t *testing.T) {
	rec := &recorder{Logger: log.NewNoopLogger()}
	q := quietItems{rec}
	q.Warn("ignoring permission in unexpected format: can_request_access")
	q.Warn("something else")
	if len(rec.debugged) != 1 || len(rec.warned) != 1 || rec.warned[0] != "something else" {
		t.Fatalf("warned %v, debugged %v", rec.warned, rec.debugged)
	}
}
