// Package testharness connects integration tests to the running dev stack (`make up`):
// it reads .stack/env, and gets real tokens for dev personas through the authorization code
// flow with PKCE against Hydra and our login/consent app, exactly as a browser would
// (cookies, redirects, the persona form), never by signing tokens itself.
//
// Integration tests call Load(t) first: without a stack they are skipped, unless
// OIDCFLOW_REQUIRE_STACK=1 (set by `make test` and CI), which makes them fail.
package testharness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/internal/devstack/idp"
)

// RequireStackEnv, when "1", turns a missing stack into a test failure instead of a skip.
const RequireStackEnv = "OIDCFLOW_REQUIRE_STACK"

// EnvFileEnv overrides the env file's path (default: .stack/env at the module root).
const EnvFileEnv = "OIDCFLOW_ENV_FILE"

// Stack is the running dev stack as described by its env file.
type Stack struct {
	path string
	env  map[string]string
	http *http.Client
	// overrides win over the env file in worker processes (WithPlainTemporal).
	overrides map[string]string
}

var (
	loadMu sync.Mutex
	loaded = map[string]*Stack{}
)

// Load returns the running stack, or skips t (fails it when OIDCFLOW_REQUIRE_STACK=1)
// when there is none. The stack is probed once per process.
func Load(t testing.TB) *Stack {
	t.Helper()
	s, err := Open()
	if err != nil {
		if os.Getenv(RequireStackEnv) == "1" {
			t.Fatalf("testharness: dev stack required (%s=1) but not usable: %v", RequireStackEnv, err)
		}
		t.Skipf("testharness: no dev stack (%v); run `make test` (or `make up` first)", err)
	}
	return s
}

// Open is Load without a testing.TB: it reads the env file and probes the stack.
func Open() (*Stack, error) {
	path, err := EnvFile()
	if err != nil {
		return nil, err
	}
	loadMu.Lock()
	defer loadMu.Unlock()
	if s, ok := loaded[path]; ok {
		return s, nil
	}
	env, err := config.ReadEnvFile(path)
	if err != nil {
		return nil, err
	}
	s := &Stack{path: path, env: env, http: &http.Client{Timeout: 30 * time.Second}}
	// A generous deadline: a stack that is not there refuses the connection at once, a
	// running one on a busy machine may take seconds to answer; skipping (or failing, with
	// OIDCFLOW_REQUIRE_STACK=1) because it was slow would be wrong.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, u := range []string{strings.TrimRight(s.env["OIDCFLOW_ISSUER"], "/") + "/.well-known/openid-configuration", s.env["OIDCFLOW_LOGIN_URL"] + "/healthz"} {
		if err := s.get(ctx, u, nil); err != nil {
			return nil, fmt.Errorf("stack in %s not reachable: %w", path, err)
		}
	}
	loaded[path] = s
	return s, nil
}

// EnvFile returns $OIDCFLOW_ENV_FILE, else .stack/env in the first folder holding go.mod
// above the working directory.
func EnvFile() (string, error) {
	if p := os.Getenv(EnvFileEnv); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".stack", "env"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testharness: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Env returns the env file's value of name ("" when absent).
func (s *Stack) Env(name string) string { return s.env[name] }

// EnvFile returns the path of the env file the stack was loaded from.
func (s *Stack) EnvFile() string { return s.path }

// Environ returns the env file as KEY=value pairs, to hand to a subprocess.
func (s *Stack) Environ() []string {
	out := make([]string, 0, len(s.env))
	for k, v := range s.env {
		out = append(out, k+"="+v)
	}
	return out
}

// Endpoint is Hydra's OAuth 2.0 endpoint (no discovery round trip).
func (s *Stack) Endpoint() oauth2.Endpoint {
	iss := strings.TrimRight(s.env["OIDCFLOW_ISSUER"], "/")
	return oauth2.Endpoint{AuthURL: iss + "/oauth2/auth", TokenURL: iss + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
}

// OAuth2Config is the public starter client's configuration (PKCE, offline_access).
func (s *Stack) OAuth2Config() *oauth2.Config {
	ep := s.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInParams
	return &oauth2.Config{
		ClientID: s.env["OIDCFLOW_CLIENT_ID"], Endpoint: ep, RedirectURL: s.env["OIDCFLOW_REDIRECT_URL"],
		Scopes: []string{"openid", "offline_access", "profile", "email"},
	}
}

// Login gets tokens for persona through the starter client: the authorization code flow
// with PKCE through Hydra and the login/consent app. The ID token is in
// tok.Extra("id_token"); with offline_access there is a refresh token.
func (s *Stack) Login(t testing.TB, persona string) *oauth2.Token {
	t.Helper()
	return s.LoginWith(t, s.OAuth2Config(), persona)
}

// LoginWith is Login through another client configuration (see NewClient).
func (s *Stack) LoginWith(t testing.TB, cfg *oauth2.Config, persona string) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := PersonaLogin(ctx, cfg, s.env["OIDCFLOW_LOGIN_URL"], persona)
	if err != nil {
		t.Fatalf("testharness: login as %s: %v", persona, err)
	}
	return tok
}

// Refresh runs a refresh grant for tok through the starter client and returns the new
// tokens (rotated refresh token included).
func (s *Stack) Refresh(t testing.TB, tok *oauth2.Token) *oauth2.Token {
	t.Helper()
	return s.RefreshWith(t, s.OAuth2Config(), tok)
}

// RefreshWith is Refresh through another client configuration.
func (s *Stack) RefreshWith(t testing.TB, cfg *oauth2.Config, tok *oauth2.Token) *oauth2.Token {
	t.Helper()
	nt, err := RefreshToken(context.Background(), cfg, tok)
	if err != nil {
		t.Fatalf("testharness: refresh: %v", err)
	}
	return nt
}

// RefreshToken forces a refresh grant with tok's refresh token, whatever its expiry.
func RefreshToken(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) (*oauth2.Token, error) {
	if tok == nil || tok.RefreshToken == "" {
		return nil, errors.New("testharness: token has no refresh token")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
}

// PersonaLogin runs the authorization code flow with PKCE for persona the way a browser
// does: follow Hydra's redirects with a cookie jar, pick the persona on the login page of
// loginURL, let consent pass, and capture the code at cfg.RedirectURL (nothing needs to
// listen there). It checks state and that an ID token came back.
func PersonaLogin(ctx context.Context, cfg *oauth2.Config, loginURL, persona string) (*oauth2.Token, error) {
	redirect, err := url.Parse(cfg.RedirectURL)
	if err != nil {
		return nil, fmt.Errorf("testharness: redirect URL: %w", err)
	}
	jar, _ := cookiejar.New(nil)
	var final *url.URL
	hc := &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme == redirect.Scheme && req.URL.Hostname() == redirect.Hostname() && req.URL.Path == redirect.Path {
				final = req.URL
				return http.ErrUseLastResponse
			}
			if len(via) > 20 {
				return errors.New("too many redirects")
			}
			return nil
		}}
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))

	resp, err := idp.PickPersona(ctx, hc, authURL, loginURL, persona)
	if err != nil {
		return nil, fmt.Errorf("testharness: %w", err)
	}
	if final == nil {
		return nil, fmt.Errorf("testharness: login did not come back to the redirect URL (ended at %s, %s)", resp.Request.URL.Redacted(), resp.Status)
	}
	q := final.Query()
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("testharness: authorization error %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != state {
		return nil, errors.New("testharness: state mismatch")
	}
	ectx := context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: 20 * time.Second})
	tok, err := cfg.Exchange(ectx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("testharness: code exchange: %w", err)
	}
	if id, _ := tok.Extra("id_token").(string); id == "" {
		return nil, errors.New("testharness: no id_token in the token response")
	}
	return tok, nil
}

func random() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// get decodes a JSON (or ignores a non-JSON) 2xx answer of u into out.
func (s *Stack) get(ctx context.Context, u string, out any) error {
	_, err := s.call(ctx, http.MethodGet, u, nil, out)
	return err
}

// call sends a JSON body and decodes a 2xx JSON answer into out.
func (s *Stack) call(ctx context.Context, method, u string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

func decode(resp *http.Response, out any) error {
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

// WorkerEnv returns the environment of a worker process on the stack: this process's
// environment without the variables oidcflow reads (they would win over the env file), the
// stack's env file, queue, a free metrics port and JSON logs, then extra (KEY=value).
func (s *Stack) WorkerEnv(queue string, extra ...string) ([]string, error) {
	envFile, err := filepath.Abs(s.path)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, v := range config.Vars {
		known[v.Name] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !known[k] {
			env = append(env, kv)
		}
	}
	env = append(env, "OIDCFLOW_ENV_FILE="+envFile, "OIDCFLOW_TASK_QUEUE="+queue,
		"OIDCFLOW_HTTP_ADDR=127.0.0.1:0", "OIDCFLOW_LOG_FORMAT=json")
	for _, k := range slices.Sorted(maps.Keys(s.overrides)) {
		env = append(env, k+"="+s.overrides[k])
	}
	return append(env, extra...), nil
}
