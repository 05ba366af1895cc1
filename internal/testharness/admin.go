package testharness

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oidcflow/oidcflow/internal/devstack/idp"
)

// ClientOptions describe a public client made for one test through Hydra's admin API.
// Zero durations keep Hydra's global lifetimes.
type ClientOptions struct {
	// AccessTokenTTL is the access token lifetime for the code and refresh grants.
	AccessTokenTTL time.Duration
	// IDTokenTTL is the ID token lifetime for the code and refresh grants.
	IDTokenTTL time.Duration
	// RefreshTokenTTL is the refresh token lifetime for the code and refresh grants.
	RefreshTokenTTL time.Duration
	// Scopes the client may request. Default: openid offline_access profile email.
	Scopes []string
}

// Client is a test's own public client (auth code + PKCE, refresh_token), deleted when the
// test ends.
type Client struct {
	ID     string
	Config *oauth2.Config
	stack  *Stack
}

// NewClient registers a public client with opts' lifetimes (Hydra's per-client lifespans,
// PUT /admin/clients/{id}/lifespans) and deletes it at the end of t.
func (s *Stack) NewClient(t testing.TB, opts ClientOptions) *Client {
	t.Helper()
	if opts.Scopes == nil {
		opts.Scopes = []string{"openid", "offline_access", "profile", "email"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := "test-" + random()[:12]
	admin := s.env["OIDCFLOW_IDP_ADMIN_URL"]
	body := map[string]any{
		"client_id": id, "client_name": t.Name(),
		"grant_types":    []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}, "scope": strings.Join(opts.Scopes, " "),
		"redirect_uris":              []string{s.env["OIDCFLOW_REDIRECT_URL"]},
		"token_endpoint_auth_method": "none",
	}
	if aud := s.env["OIDCFLOW_TEMPORAL_AUDIENCE"]; aud != "" {
		body["audience"] = []string{aud} // its access tokens reach the Temporal frontend
	}
	if _, err := s.call(ctx, http.MethodPost, admin+"/admin/clients", body, nil); err != nil {
		t.Fatalf("testharness: create client: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = s.call(ctx, http.MethodDelete, admin+"/admin/clients/"+id, nil, nil)
	})
	life := map[string]any{}
	set := func(d time.Duration, keys ...string) {
		if d > 0 {
			for _, k := range keys {
				life[k] = d.String()
			}
		}
	}
	set(opts.AccessTokenTTL, "authorization_code_grant_access_token_lifespan", "refresh_token_grant_access_token_lifespan")
	set(opts.IDTokenTTL, "authorization_code_grant_id_token_lifespan", "refresh_token_grant_id_token_lifespan")
	set(opts.RefreshTokenTTL, "authorization_code_grant_refresh_token_lifespan", "refresh_token_grant_refresh_token_lifespan")
	if len(life) > 0 {
		if _, err := s.call(ctx, http.MethodPut, admin+"/admin/clients/"+id+"/lifespans", life, nil); err != nil {
			t.Fatalf("testharness: client lifespans: %v", err)
		}
	}
	cfg := s.OAuth2Config()
	cfg.ClientID, cfg.Scopes = id, opts.Scopes
	return &Client{ID: id, Config: cfg, stack: s}
}

// Login logs persona in through this client.
func (c *Client) Login(t testing.TB, persona string) *oauth2.Token {
	t.Helper()
	return c.stack.LoginWith(t, c.Config, persona)
}

// Refresh runs a refresh grant through this client.
func (c *Client) Refresh(t testing.TB, tok *oauth2.Token) *oauth2.Token {
	t.Helper()
	return c.stack.RefreshWith(t, c.Config, tok)
}

// WorkerConfig is the confidential worker client's client credentials configuration.
func (s *Stack) WorkerConfig() *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID: s.env["OIDCFLOW_WORKER_CLIENT_ID"], ClientSecret: s.env["OIDCFLOW_WORKER_CLIENT_SECRET"],
		TokenURL: s.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInHeader,
	}
}

// Introspection is Hydra's answer to token introspection (RFC 7662 section 2.2).
type Introspection struct {
	Active    bool     `json:"active"`
	Subject   string   `json:"sub"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope"`
	TokenUse  string   `json:"token_use"`
	Expiry    int64    `json:"exp"`
	Audience  []string `json:"aud"`
	IssuedAt  int64    `json:"iat"`
	TokenType string   `json:"token_type"`
}

// Introspect asks Hydra's admin introspection endpoint (/admin/oauth2/introspect) about
// token (an access or refresh token).
func (s *Stack) Introspect(t testing.TB, token string) Introspection {
	t.Helper()
	in, err := s.IntrospectToken(context.Background(), token)
	if err != nil {
		t.Fatalf("testharness: %v", err)
	}
	return in
}

// IntrospectToken is Introspect without a testing.TB.
func (s *Stack) IntrospectToken(ctx context.Context, token string) (Introspection, error) {
	var in Introspection
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.env["OIDCFLOW_IDP_ADMIN_URL"]+"/admin/oauth2/introspect",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return in, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return in, fmt.Errorf("introspect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return in, fmt.Errorf("introspect: %s", resp.Status)
	}
	return in, decode(resp, &in)
}

// Personas returns the login/consent app's current persona file.
func (s *Stack) Personas(t testing.TB) *idp.File {
	t.Helper()
	var f idp.File
	if err := s.get(context.Background(), s.env["OIDCFLOW_LOGIN_URL"]+"/admin/personas", &f); err != nil {
		t.Fatalf("testharness: personas: %v", err)
	}
	return &f
}

// Persona returns one persona's current attributes.
func (s *Stack) Persona(t testing.TB, name string) idp.Persona {
	t.Helper()
	p, ok := s.Personas(t).Find(name)
	if !ok {
		t.Fatalf("testharness: unknown persona %q", name)
	}
	return p
}

// UpdatePersona changes persona at the login/consent app (the next token issued or
// refreshed carries the change) and restores it when t ends.
func (s *Stack) UpdatePersona(t testing.TB, name string, change func(*idp.Persona)) idp.Persona {
	t.Helper()
	before := s.Persona(t, name)
	after := before
	after.Roles = slices.Clone(before.Roles)
	after.Permissions = slices.Clone(before.Permissions)
	after.Groups = slices.Clone(before.Groups)
	change(&after)
	s.putPersona(t, name, after)
	t.Cleanup(func() { s.putPersona(t, name, before) })
	return after
}

// SetPersonaRoles replaces persona's roles until t ends.
func (s *Stack) SetPersonaRoles(t testing.TB, name string, roles ...string) {
	t.Helper()
	s.UpdatePersona(t, name, func(p *idp.Persona) { p.Roles = append([]string{}, roles...) })
}

func (s *Stack) putPersona(t testing.TB, name string, p idp.Persona) {
	t.Helper()
	if _, err := s.call(context.Background(), http.MethodPut, s.env["OIDCFLOW_LOGIN_URL"]+"/admin/personas/"+url.PathEscape(name), p, nil); err != nil {
		t.Errorf("testharness: update persona %s: %v", name, err)
	}
}

// NewPersona adds a persona for this test only (name made unique from base) and removes it
// when t ends; tests that change roles use one so that tests running in parallel, in other
// packages too, never see the change. Unless p names a Temporal permission of the stack's
// namespace, it gets write there, as a person who starts runs has. It returns the persona as
// stored (Name and Subject filled).
func (s *Stack) NewPersona(t testing.TB, base string, p idp.Persona) idp.Persona {
	t.Helper()
	ns := s.env["TEMPORAL_NAMESPACE"]
	if !slices.ContainsFunc(p.Permissions, func(x string) bool { return strings.HasPrefix(x, ns+":") }) {
		p.Permissions = append(slices.Clone(p.Permissions), ns+":write")
	}
	p.Name = base + "-" + random()[:8]
	p.Subject = p.Name
	if p.Email == "" {
		p.Email = p.Name + "@example.com"
	}
	if p.DisplayName == "" {
		p.DisplayName = p.Name
	}
	login := s.env["OIDCFLOW_LOGIN_URL"]
	if _, err := s.call(context.Background(), http.MethodPost, login+"/admin/personas", p, nil); err != nil {
		t.Fatalf("testharness: add persona: %v", err)
	}
	t.Cleanup(func() {
		_, _ = s.call(context.Background(), http.MethodDelete, login+"/admin/personas/"+url.PathEscape(p.Name), nil, nil)
	})
	return p
}
