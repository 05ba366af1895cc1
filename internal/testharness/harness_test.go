package testharness_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/oidcflow/oidcflow/internal/devstack/idp"
	"github.com/oidcflow/oidcflow/internal/testharness"
)

// tokenClaims are the custom claims the dev IdP puts in ID and access tokens.
type tokenClaims struct {
	Issuer      string   `json:"iss"`
	Subject     string   `json:"sub"`
	ClientID    string   `json:"client_id"`
	Name        string   `json:"name"`
	Email       string   `json:"email"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
	Department  string   `json:"department"`
	Groups      []string `json:"groups"`
	Expiry      int64    `json:"exp"`
}

// jwtClaims decodes a JWT's payload without checking it (the ID token is verified
// separately with go-oidc; here we only read what Hydra put in).
func jwtClaims(t *testing.T, raw string) tokenClaims {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (%d parts)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c tokenClaims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func verifier(t *testing.T, s *testharness.Stack, clientID string) *oidc.IDTokenVerifier {
	t.Helper()
	p, err := oidc.NewProvider(context.Background(), s.Env("OIDCFLOW_ISSUER"))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return p.Verifier(&oidc.Config{ClientID: clientID})
}

func checkClaims(t *testing.T, what string, got tokenClaims, p idp.Persona) {
	t.Helper()
	if got.Subject != p.Subject || got.Email != p.Email || got.Name != p.DisplayName || got.Department != p.Department ||
		!slices.Equal(got.Roles, nonNil(p.Roles)) || !slices.Equal(got.Permissions, nonNil(p.Permissions)) || !slices.Equal(got.Groups, nonNil(p.Groups)) {
		t.Errorf("%s claims = %+v, want persona %+v", what, got, p)
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestLoginEveryPersona(t *testing.T) {
	s := testharness.Load(t)
	v := verifier(t, s, s.Env("OIDCFLOW_CLIENT_ID"))
	personas := s.Personas(t).Personas
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin", "frank"} {
		if !slices.ContainsFunc(personas, func(p idp.Persona) bool { return p.Name == name }) {
			t.Errorf("persona %s missing from the persona file", name)
		}
	}
	for _, p := range personas {
		t.Run(p.Name, func(t *testing.T) {
			tok := s.Login(t, p.Name)
			if tok.AccessToken == "" || tok.RefreshToken == "" {
				t.Fatalf("missing access or refresh token")
			}
			raw, _ := tok.Extra("id_token").(string)
			idt, err := v.Verify(context.Background(), raw)
			if err != nil {
				t.Fatalf("ID token does not verify: %v", err)
			}
			var idc tokenClaims
			if err := idt.Claims(&idc); err != nil {
				t.Fatal(err)
			}
			checkClaims(t, "ID token", idc, p)
			at := jwtClaims(t, tok.AccessToken)
			checkClaims(t, "access token", at, p)
			if at.Issuer != s.Env("OIDCFLOW_ISSUER") || idc.Issuer != s.Env("OIDCFLOW_ISSUER") {
				t.Errorf("iss = %q / %q, want %q", at.Issuer, idc.Issuer, s.Env("OIDCFLOW_ISSUER"))
			}
			if at.ClientID != s.Env("OIDCFLOW_CLIENT_ID") {
				t.Errorf("access token client_id = %q", at.ClientID)
			}
		})
	}
}

func TestRefreshRotatesAndRecomputesClaims(t *testing.T) {
	s := testharness.Load(t)
	p := s.NewPersona(t, "refresh", idp.Persona{Department: "engineering", Roles: []string{"db-approver"}, Permissions: []string{"can_request_access"}})
	tok := s.Login(t, p.Name)
	if got := jwtClaims(t, tok.AccessToken).Roles; !slices.Equal(got, []string{"db-approver"}) {
		t.Fatalf("roles before = %v", got)
	}

	s.SetPersonaRoles(t, p.Name) // the IdP removes the role
	refreshed := s.Refresh(t, tok)
	if refreshed.RefreshToken == "" || refreshed.RefreshToken == tok.RefreshToken {
		t.Errorf("refresh token not rotated")
	}
	if refreshed.AccessToken == tok.AccessToken {
		t.Errorf("access token not renewed")
	}
	if got := jwtClaims(t, refreshed.AccessToken).Roles; len(got) != 0 {
		t.Errorf("access token roles after removal = %v, want none", got)
	}
	raw, _ := refreshed.Extra("id_token").(string)
	idt, err := verifier(t, s, s.Env("OIDCFLOW_CLIENT_ID")).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("refreshed ID token does not verify: %v", err)
	}
	var idc tokenClaims
	_ = idt.Claims(&idc)
	if idc.Subject != p.Subject || len(idc.Roles) != 0 {
		t.Errorf("refreshed ID token sub=%q roles=%v", idc.Subject, idc.Roles)
	}

	// The rotated token works again; the used one is refused (rotation, no grace period
	// by default).
	again := s.Refresh(t, refreshed)
	if again.AccessToken == "" {
		t.Fatal("second refresh gave no access token")
	}
	if _, err := testharness.RefreshToken(context.Background(), s.OAuth2Config(), tok); err == nil {
		t.Errorf("reusing a rotated refresh token succeeded")
	}
}

func TestRemovedPersonaCannotRefresh(t *testing.T) {
	s := testharness.Load(t)
	p := s.NewPersona(t, "gone", idp.Persona{Department: "sales"})
	tok := s.Login(t, p.Name)
	req, _ := http.NewRequest(http.MethodDelete, s.Env("OIDCFLOW_LOGIN_URL")+"/admin/personas/"+p.Name, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := testharness.RefreshToken(context.Background(), s.OAuth2Config(), tok); err == nil {
		t.Errorf("refresh for a removed persona succeeded")
	}
}

func TestShortAccessTokenExpires(t *testing.T) {
	s := testharness.Load(t)
	const ttl = 3 * time.Second
	c := s.NewClient(t, testharness.ClientOptions{AccessTokenTTL: ttl})
	tok := c.Login(t, "bob")
	in := s.Introspect(t, tok.AccessToken)
	if !in.Active || in.Subject != "bob" || in.ClientID != c.ID {
		t.Fatalf("introspection right after login = %+v", in)
	}
	exp := time.Unix(in.Expiry, 0)
	if life := exp.Sub(time.Unix(in.IssuedAt, 0)); life > ttl+time.Second {
		t.Fatalf("access token lifetime %s, want %s", life, ttl)
	}
	if code := userinfo(t, s, tok.AccessToken); code != http.StatusOK {
		t.Fatalf("userinfo with a fresh token: %d", code)
	}
	// Wait only until the expiry has passed, then poll briefly.
	time.Sleep(time.Until(exp) + 200*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for s.Introspect(t, tok.AccessToken).Active {
		if time.Now().After(deadline) {
			t.Fatalf("access token still active 5s after its expiry %s", exp)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if code := userinfo(t, s, tok.AccessToken); code != http.StatusUnauthorized {
		t.Errorf("userinfo with an expired token: %d, want 401", code)
	}
	// The refresh token outlives the access token.
	fresh := c.Refresh(t, tok)
	if !s.Introspect(t, fresh.AccessToken).Active {
		t.Errorf("refreshed access token inactive")
	}
}

func userinfo(t *testing.T, s *testharness.Stack, access string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, strings.TrimRight(s.Env("OIDCFLOW_ISSUER"), "/")+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestWorkerClientCredentials(t *testing.T) {
	s := testharness.Load(t)
	tok, err := s.WorkerConfig().Token(context.Background())
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	in := s.Introspect(t, tok.AccessToken)
	if !in.Active || in.ClientID != s.Env("OIDCFLOW_WORKER_CLIENT_ID") {
		t.Errorf("worker token introspection = %+v", in)
	}
}

func TestStarterRevokesItsRefreshToken(t *testing.T) {
	s := testharness.Load(t)
	tok := s.Login(t, "erin")
	if !s.Introspect(t, tok.RefreshToken).Active {
		t.Fatal("refresh token inactive after login")
	}
	// RFC 7009: a public client revokes its own tokens with its client id and no secret.
	form := strings.NewReader("token=" + tok.RefreshToken + "&token_type_hint=refresh_token&client_id=" + s.Env("OIDCFLOW_CLIENT_ID"))
	resp, err := http.Post(strings.TrimRight(s.Env("OIDCFLOW_ISSUER"), "/")+"/oauth2/revoke", "application/x-www-form-urlencoded", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %s", resp.Status)
	}
	if s.Introspect(t, tok.RefreshToken).Active {
		t.Errorf("refresh token still active after revocation")
	}
}

func TestEnvFileNamesAndMode(t *testing.T) {
	s := testharness.Load(t)
	st, err := os.Stat(s.EnvFile())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("env file mode %o, want 600", st.Mode().Perm())
	}
	for _, k := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "OIDCFLOW_TEMPORAL_UI_URL", "OIDCFLOW_TASK_QUEUE",
		"OIDCFLOW_ISSUER", "OIDCFLOW_CLIENT_ID", "OIDCFLOW_REDIRECT_URL", "OIDCFLOW_WORKER_CLIENT_ID",
		"OIDCFLOW_WORKER_CLIENT_SECRET", "OIDCFLOW_IDP_ADMIN_URL", "OIDCFLOW_LOGIN_URL", "VAULT_ADDR",
		"OIDCFLOW_VAULT_AUTH", "OIDCFLOW_VAULT_ROLE_ID", "OIDCFLOW_VAULT_SECRET_ID", "OIDCFLOW_VAULT_KV_MOUNT",
		"OIDCFLOW_VAULT_TRANSIT_KEY", "OIDCFLOW_ENVELOPE_PUBLIC_KEY", "OIDCFLOW_ENVELOPE_KEYS_PATH",
		"OIDCFLOW_POSTGRES_URL", "VAULT_TOKEN"} {
		if s.Env(k) == "" {
			t.Errorf("%s missing from %s", k, filepath.Base(s.EnvFile()))
		}
	}
}
