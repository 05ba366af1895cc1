package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/internal/testharness"
)

// loginSource is a person's token source for a benchmark client: a real login through the
// dev IdP, repeated (a new login, never a refresh) when the tokens have less than margin
// left, so that a long benchmark never seals an expiring ID token.
type loginSource struct {
	mu     sync.Mutex
	tok    *oauth2.Token
	login  func(context.Context) (*oauth2.Token, error)
	margin time.Duration
}

func (s *loginSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok == nil || time.Until(s.tok.Expiry) < s.margin {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		tok, err := s.login(ctx)
		if err != nil {
			return nil, err
		}
		s.tok = tok
	}
	return s.tok, nil
}

// personaLogin logs persona in through cfg on the stack's login/consent app.
func personaLogin(st *testharness.Stack, cfg *oauth2.Config, persona string) func(context.Context) (*oauth2.Token, error) {
	return func(ctx context.Context) (*oauth2.Token, error) {
		return testharness.PersonaLogin(ctx, cfg, st.Env("OIDCFLOW_LOGIN_URL"), persona)
	}
}

// shortClient is a public client of the IdP made for one benchmark, with its own token
// lifetimes (Hydra's per-client lifespans); delete removes it.
type shortClient struct {
	id     string
	config *oauth2.Config
	admin  string
	hc     *http.Client
}

// newShortClient registers a public client (authorization code with PKCE, refresh tokens)
// whose access and ID tokens live ttl, through Hydra's admin API.
func newShortClient(ctx context.Context, st *testharness.Stack, ttl time.Duration) (*shortClient, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	c := &shortClient{id: "bench-" + hex.EncodeToString(b), admin: st.Env("OIDCFLOW_IDP_ADMIN_URL"),
		hc: &http.Client{Timeout: 20 * time.Second}}
	scopes := []string{"openid", "offline_access", "profile", "email"}
	if err := c.call(ctx, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": c.id, "client_name": "oidcflow benchmark",
		"grant_types":    []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}, "scope": strings.Join(scopes, " "),
		"redirect_uris":              []string{st.Env("OIDCFLOW_REDIRECT_URL")},
		"token_endpoint_auth_method": "none",
	}); err != nil {
		return nil, fmt.Errorf("bench: create the IdP client: %w", err)
	}
	life := map[string]any{}
	for _, k := range []string{"authorization_code_grant_access_token_lifespan", "refresh_token_grant_access_token_lifespan",
		"authorization_code_grant_id_token_lifespan", "refresh_token_grant_id_token_lifespan"} {
		life[k] = ttl.String()
	}
	if err := c.call(ctx, http.MethodPut, "/admin/clients/"+c.id+"/lifespans", life); err != nil {
		c.delete()
		return nil, fmt.Errorf("bench: set the IdP client's token lifetimes: %w", err)
	}
	c.config = st.OAuth2Config()
	c.config.ClientID, c.config.Scopes = c.id, scopes
	return c, nil
}

func (c *shortClient) delete() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.call(ctx, http.MethodDelete, "/admin/clients/"+c.id, nil)
}

func (c *shortClient) call(ctx context.Context, method, path string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.admin+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
