package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/devstack/idp"
)

// hydraSecrets are generated once and kept in .stack/hydra/secrets.json (mode 0600).
type hydraSecrets struct {
	System         string `json:"system"`
	HookKey        string `json:"hook_key"`
	WorkerSecret   string `json:"worker_secret"`
	UISecret       string `json:"ui_secret"`
	OperatorSecret string `json:"operator_secret"`
}

func (l *Launcher) hydraSecrets() (hydraSecrets, error) {
	var s hydraSecrets
	if err := os.MkdirAll(l.path("hydra"), 0o755); err != nil {
		return s, err
	}
	err := loadOrCreateJSON(l.path("hydra", "secrets.json"), &s, func() error {
		s = hydraSecrets{System: randomSecret(32), HookKey: randomSecret(24),
			WorkerSecret: randomSecret(24), UISecret: randomSecret(24), OperatorSecret: randomSecret(24)}
		return nil
	})
	return s, err
}

// DefaultRefreshGrace is the dev stack's refresh token rotation grace period
// (SettingRefreshGrace when unset): none, strict rotation, which the integration tests
// assume (a used refresh token is refused, and presenting it again revokes its family).
// The refresher keeps every session on it under load (its token requests are not cut short,
// see tokenstore.RefresherOptions). OIDCFLOW_REFRESH_ROTATION_GRACE=2m, longer than the
// refresher's 60s token request, also saves the answers lost in transit. Hydra v2.3.0 caps
// it at 5m.
const DefaultRefreshGrace = "0s"

// hydraDBPool sizes Hydra's database pool: query parameters of its DSN that ory/x/sqlcon
// reads and removes. Without them Hydra opens at most twice as many connections as it has
// CPUs (4 on a 2-core machine): with a few hundred sessions refreshing at once its token
// requests queued for a connection for about 20 s at a time. The stack's PostgreSQL allows
// 100 connections.
var hydraDBPool = [][2]string{
	{"max_conns", "20"},
	{"max_idle_conns", "10"},
	{"max_conn_idle_time", "5m"},
}

// hydraDSN returns dsn with the pool parameters of hydraDBPool that it does not set itself;
// a DSN that is not a database URL ("memory") is returned as it is.
func hydraDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql" && u.Scheme != "cockroach" && u.Scheme != "mysql") {
		return dsn
	}
	q := u.Query()
	for _, kv := range hydraDBPool {
		if !q.Has(kv[0]) {
			q.Set(kv[0], kv[1])
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// refreshGrace is the rotation grace period Hydra gets: SettingRefreshGrace, else
// DefaultRefreshGrace.
func refreshGrace(getenv func(string) string) string {
	if v := getenv(SettingRefreshGrace); v != "" {
		return v
	}
	return DefaultRefreshGrace
}

// HydraConfig returns Hydra v2.3.0's configuration for the dev stack. Keys checked against
// Hydra's spec/config.json at v2.3.0: oauth2.token_hook (called for every grant, refresh
// included; oauth2.refresh_token_hook also exists but is only called on refresh, and would
// be redundant), oauth2.grant.refresh_token.rotation_grace_period (at most 5m), ttl.*,
// strategies.access_token, oauth2.allowed_top_level_claims. The DSN gets the database pool
// of hydraDBPool.
func HydraConfig(dsn string, sec hydraSecrets, getenv func(string) string) map[string]any {
	setting := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	return map[string]any{
		"dsn": hydraDSN(dsn),
		"serve": map[string]any{
			"public":  map[string]any{"host": Host, "port": PortHydraPublic},
			"admin":   map[string]any{"host": Host, "port": PortHydraAdmin},
			"cookies": map[string]any{"same_site_mode": "Lax"},
		},
		"urls": map[string]any{
			"self":    map[string]any{"issuer": Issuer(), "public": Issuer()},
			"login":   LoginURL() + "/login",
			"consent": LoginURL() + "/consent",
			"logout":  LoginURL() + "/logout",
		},
		"strategies": map[string]any{
			"access_token": "jwt",
			"jwt":          map[string]any{"scope_claim": "list"},
		},
		"ttl": map[string]any{
			"access_token":          setting(SettingAccessTokenTTL, "1h"),
			"id_token":              setting(SettingIDTokenTTL, "1h"),
			"refresh_token":         setting(SettingRefreshTokenTTL, "720h"),
			"auth_code":             "10m",
			"login_consent_request": "30m",
		},
		"oauth2": map[string]any{
			"pkce":                     map[string]any{"enforced_for_public_clients": true},
			"allowed_top_level_claims": idp.ClaimNames,
			"mirror_top_level_claims":  false,
			"grant": map[string]any{"refresh_token": map[string]any{
				"rotation_grace_period": refreshGrace(getenv),
			}},
			"token_hook": map[string]any{
				"url": LoginURL() + "/hooks/token",
				"auth": map[string]any{"type": "api_key", "config": map[string]any{
					"in": "header", "name": idp.HookKeyHeader, "value": sec.HookKey,
				}},
			},
		},
		"secrets": map[string]any{"system": []string{sec.System}},
		"log":     map[string]any{"level": "info", "format": "text", "leak_sensitive_values": false},
	}
}

// HydraClient is a seeded OAuth 2.0 client (the admin API's JSON shape).
type HydraClient struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	Scope                   string   `json:"scope"`
	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Audience                []string `json:"audience,omitempty"`
	SkipConsent             bool     `json:"skip_consent,omitempty"`
}

// SeededClients are the clients `up` creates or updates in Hydra (secrets left empty here).
func SeededClients() []HydraClient {
	return []HydraClient{
		{
			ClientID: ClientStarter, ClientName: "oidcflow starter",
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			Scope: join(StarterScopes), RedirectURIs: []string{StarterRedirectURL},
			TokenEndpointAuthMethod: "none", Audience: []string{TemporalAudience},
		},
		{
			ClientID: ClientWorker, ClientName: "oidcflow worker",
			GrantTypes: []string{"client_credentials"}, ResponseTypes: []string{"token"},
			Scope: "temporal", TokenEndpointAuthMethod: "client_secret_basic", Audience: []string{TemporalAudience},
		},
		{
			ClientID: ClientUI, ClientName: "Temporal Web UI and codec server",
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			Scope: "openid profile email offline_access", RedirectURIs: []string{UIRedirectURL},
			TokenEndpointAuthMethod: "client_secret_basic", Audience: []string{TemporalAudience},
		},
		{
			ClientID: ClientOperator, ClientName: "oidcflow operator",
			GrantTypes: []string{"client_credentials"}, ResponseTypes: []string{"token"},
			Scope: "temporal", TokenEndpointAuthMethod: "client_secret_basic", Audience: []string{TemporalAudience},
		},
	}
}

func join(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	return b.String()
}

func (l *Launcher) hydra() *service {
	dir := l.path("hydra")
	cfgPath := filepath.Join(dir, "hydra.yaml")
	s := &service{name: "hydra", binary: cfgPath, ports: []int{PortHydraPublic, PortHydraAdmin}, stopSig: syscall.SIGTERM}
	config := func() ([]byte, error) {
		sec, err := l.hydraSecrets()
		if err != nil {
			return nil, err
		}
		// PostgreSQL, not SQLite: with SQLite, concurrent token requests fail with
		// "database is locked" (seen with a few parallel test packages).
		return json.MarshalIndent(HydraConfig(l.postgresURL(HydraDatabase), sec, l.getenv), "", "  ") // YAML is a superset of JSON
	}
	s.drift = func() string {
		want, err := config()
		have, err2 := os.ReadFile(cfgPath)
		if err != nil || err2 != nil || !bytes.Equal(want, have) {
			return "token lifetimes, rotation grace period or database pool"
		}
		return ""
	}
	s.prepare = func(ctx context.Context) error {
		// Hydra keeps its data in the stack's PostgreSQL: wait for it, create the database.
		if err := l.waitReady(ctx, l.postgres(), nil); err != nil {
			return fmt.Errorf("waiting for postgres: %w", err)
		}
		if err := l.createDatabase(ctx, HydraDatabase); err != nil {
			return err
		}
		b, err := config()
		if err != nil {
			return err
		}
		if err := writeSecretFile(cfgPath, b); err != nil {
			return err
		}
		bin, err := l.tool("hydra")
		if err != nil {
			return err
		}
		logf, err := os.OpenFile(l.logPath(s), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer logf.Close()
		fmt.Fprintf(logf, "\n=== %s devstack: hydra migrate sql up\n", time.Now().Format(time.RFC3339))
		cmd := exec.CommandContext(ctx, bin, "migrate", "sql", "up", "-e", "--yes", "--config", cfgPath)
		cmd.Env = baseEnv()
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("hydra migrate sql up: %w", err)
		}
		return nil
	}
	s.command = func() ([]string, []string, *syscall.Credential, error) {
		bin, err := l.tool("hydra")
		if err != nil {
			return nil, nil, nil, err
		}
		return []string{bin, "serve", "all", "--dev", "--sqa-opt-out", "--config", cfgPath}, baseEnv(), nil, nil
	}
	s.ready = func(ctx context.Context) error {
		if err := httpGetOK(ctx, HydraAdminURL()+"/health/ready"); err != nil {
			return err
		}
		_, err := identity.Discover(ctx, nil, Issuer())
		return err
	}
	s.seed = func(ctx context.Context) error {
		sec, err := l.hydraSecrets()
		if err != nil {
			return err
		}
		for _, c := range SeededClients() {
			switch c.ClientID {
			case ClientWorker:
				c.ClientSecret = sec.WorkerSecret
			case ClientUI:
				c.ClientSecret = sec.UISecret
			case ClientOperator:
				c.ClientSecret = sec.OperatorSecret
			}
			if err := upsertClient(ctx, c); err != nil {
				return fmt.Errorf("client %s: %w", c.ClientID, err)
			}
		}
		md, err := identity.Discover(ctx, nil, Issuer())
		if err != nil {
			return err
		}
		l.setEnv(EnvIssuer, md.Issuer, EnvClientID, ClientStarter, EnvRedirectURL, StarterRedirectURL,
			EnvWorkerClientID, ClientWorker, EnvWorkerClientSecret, sec.WorkerSecret,
			EnvUIClientID, ClientUI, EnvUIClientSecret, sec.UISecret,
			EnvOperatorClientID, ClientOperator, EnvOperatorClientSecret, sec.OperatorSecret,
			EnvTemporalAudience, TemporalAudience,
			EnvIDPAdminURL, HydraAdminURL(), EnvLoginURL, LoginURL(),
			// Workers read it to know how long Hydra accepts a refresh token again.
			SettingRefreshGrace, refreshGrace(l.getenv))
		return nil
	}
	return s
}

// upsertClient creates c or, when it exists, replaces it (keeping the given secret).
func upsertClient(ctx context.Context, c HydraClient) error {
	status, _, err := doJSON(ctx, http.MethodGet, HydraAdminURL()+"/admin/clients/"+c.ClientID, nil, nil)
	if err != nil {
		return err
	}
	if status == http.StatusNotFound {
		_, _, err = doJSON(ctx, http.MethodPost, HydraAdminURL()+"/admin/clients", c, nil)
		return err
	}
	_, _, err = doJSON(ctx, http.MethodPut, HydraAdminURL()+"/admin/clients/"+c.ClientID, c, nil)
	return err
}

// doJSON sends body as JSON and decodes a 2xx answer into out. A 404 is returned as a
// status without error; other non-2xx answers are errors.
func doJSON(ctx context.Context, method, url string, body, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusNotFound {
		return resp.StatusCode, b, nil
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, b, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, b, err
		}
	}
	return resp.StatusCode, b, nil
}

// idp runs our login/consent app: a copy of the devstack binary with `serve-idp`, so that
// the process outlives a `go run` of the launcher.
func (l *Launcher) idp() *service {
	dir := l.path("idp")
	exe := filepath.Join(dir, "oidcflow-idp")
	s := &service{name: "idp", binary: exe, ports: []int{PortIDP}, stopSig: syscall.SIGTERM}
	s.prepare = func(ctx context.Context) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		// The persona state starts from the committed file at every start of the app.
		src := filepath.Join(l.root, "internal", "devstack", "idp", "personas.json")
		b, err := os.ReadFile(src)
		if err != nil {
			b = idp.DefaultPersonas
		}
		if _, err := idp.ParseFile(b); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "personas.default.json"), b, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "personas.json"), b, 0o644); err != nil {
			return err
		}
		return copyFile(l.exe, exe, 0o755)
	}
	s.command = func() ([]string, []string, *syscall.Credential, error) {
		sec, err := l.hydraSecrets()
		if err != nil {
			return nil, nil, nil, err
		}
		argv := []string{exe, "serve-idp",
			"--addr", hostPort(PortIDP), "--hydra-admin", HydraAdminURL(),
			"--personas", filepath.Join(dir, "personas.json"),
			"--defaults", filepath.Join(dir, "personas.default.json")}
		return argv, baseEnv("OIDCFLOW_IDP_HOOK_KEY=" + sec.HookKey), nil, nil
	}
	s.ready = func(ctx context.Context) error { return httpGetOK(ctx, LoginURL()+"/healthz") }
	return s
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp" + strconv.Itoa(os.Getpid())
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
