package vaultauth

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// fakeVault issues tokens with a TTL and a max TTL, renews them up to the max, and refuses
// expired ones, like Vault's token store.
type fakeVault struct {
	mu      sync.Mutex
	srv     *httptest.Server
	ttl     time.Duration
	maxTTL  time.Duration
	n       int
	tokens  map[string]time.Time // token -> expiry
	born    map[string]time.Time
	renewed int
	bodies  []string
	down    bool
}

func newFakeVault(t *testing.T, ttl, maxTTL time.Duration) *fakeVault {
	f := &fakeVault{ttl: ttl, maxTTL: maxTTL, tokens: map[string]time.Time{}, born: map[string]time.Time{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeVault) auth(tok string, lease time.Duration) map[string]any {
	return map[string]any{"auth": map[string]any{"client_token": tok, "lease_duration": int(lease / time.Second),
		"renewable": true, "policies": []string{"oidcflow-worker"}}}
}

func (f *fakeVault) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var body map[string]any
	if r.Body != nil {
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(r.Body)
		f.bodies = append(f.bodies, b.String())
		_ = json.Unmarshal(b.Bytes(), &body)
	}
	now := time.Now()
	w.Header().Set("Content-Type", "application/json")
	if f.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"errors":["Vault is sealed"]}`))
		return
	}
	deny := func() {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"errors":["permission denied"]}`))
	}
	switch r.URL.Path {
	case "/v1/auth/approle/login", "/v1/auth/kubernetes/login":
		if r.Header.Get("X-Vault-Token") != "" {
			deny() // logins must not send an old token
			return
		}
		if body["secret_id"] != "SECRET-ID-VALUE" && body["jwt"] != "SA-JWT-VALUE" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"errors":["invalid role or secret ID"]}`))
			return
		}
		f.n++
		tok := "hvs.SECRET-TOKEN-" + strconv.Itoa(f.n)
		f.tokens[tok], f.born[tok] = now.Add(f.ttl), now
		_ = json.NewEncoder(w).Encode(f.auth(tok, f.ttl))
	case "/v1/auth/token/renew-self":
		tok := r.Header.Get("X-Vault-Token")
		exp, ok := f.tokens[tok]
		if !ok || now.After(exp) {
			deny()
			return
		}
		lease := min(f.ttl, f.born[tok].Add(f.maxTTL).Sub(now))
		f.tokens[tok] = now.Add(lease)
		f.renewed++
		_ = json.NewEncoder(w).Encode(f.auth(tok, lease.Truncate(time.Second)))
	case "/v1/auth/token/lookup-self":
		tok := r.Header.Get("X-Vault-Token")
		exp, ok := f.tokens[tok]
		if !ok || now.After(exp) {
			deny()
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"ttl": int(exp.Sub(now) / time.Second), "renewable": true, "policies": []string{"p"}}})
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[]}`))
	}
}

func (f *fakeVault) client(t *testing.T) *vault.Client {
	cfg := vault.DefaultConfig()
	cfg.Address = f.srv.URL
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	return c
}

func (f *fakeVault) valid(tok string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	exp, ok := f.tokens[tok]
	return ok && time.Now().Before(exp)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestNewValidatesOptions(t *testing.T) {
	c, _ := vault.NewClient(vault.DefaultConfig())
	for _, o := range []Options{
		{}, {Client: c}, {Client: c, Method: Token}, {Client: c, Method: Kubernetes}, {Client: c, Method: "ldap", RoleID: "x"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o.Method)
		}
	}
}

// The token lives 2s and at most 3s: the Session renews it and logs in again when
// renewal ends, so the client always holds a valid token.
func TestRunRenewsAndReLogsIn(t *testing.T) {
	for _, m := range []Method{AppRole, Kubernetes} {
		t.Run(string(m), func(t *testing.T) {
			f := newFakeVault(t, 2*time.Second, 3*time.Second)
			c := f.client(t)
			var logs syncBuf
			opts := Options{Client: c, Method: m, RoleID: "role", SecretID: "SECRET-ID-VALUE",
				MinBackoff: 50 * time.Millisecond, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			if m == Kubernetes {
				p := filepath.Join(t.TempDir(), "token")
				if err := os.WriteFile(p, []byte("SA-JWT-VALUE\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				opts.KubernetesRole, opts.KubernetesJWTPath = "worker", p
			}
			a, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if err := a.Login(ctx); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			deadline := time.Now().Add(20 * time.Second)
			for a.Logins() < 3 && time.Now().Before(deadline) {
				if !f.valid(c.Token()) {
					t.Fatal("client holds an expired token")
				}
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != context.Canceled {
				t.Fatalf("Run: %v", err)
			}
			if a.Logins() < 3 {
				t.Fatalf("%d logins", a.Logins())
			}
			if strings.Contains(logs.String(), "SECRET") || strings.Contains(logs.String(), "SA-JWT") {
				t.Fatalf("secret in logs: %s", logs.String())
			}
			if !strings.Contains(logs.String(), "logging in again") {
				t.Fatalf("logs: %s", logs.String())
			}
		})
	}
}

func TestLoginFailureHasNoSecret(t *testing.T) {
	f := newFakeVault(t, time.Minute, time.Hour)
	a, err := New(Options{Client: f.client(t), RoleID: "role", SecretID: "SECRET-WRONG"})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Login(context.Background())
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "400") {
		t.Fatalf("err %v", err)
	}
}

func TestTokenMethod(t *testing.T) {
	f := newFakeVault(t, 2*time.Second, time.Hour)
	f.tokens["hvs.SECRET-GIVEN"], f.born["hvs.SECRET-GIVEN"] = time.Now().Add(time.Minute), time.Now()
	c := f.client(t)
	a, err := New(Options{Client: c, Method: Token, Token: "hvs.SECRET-GIVEN"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.Token() != "hvs.SECRET-GIVEN" {
		t.Fatal("token not set")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		n := f.renewed
		f.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not renewed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

// Vault down for longer than the token lives: once it is back, the Session logs in
// again within its backoff.
func TestRunRecoversAfterOutage(t *testing.T) {
	f := newFakeVault(t, 2*time.Second, time.Hour)
	c := f.client(t)
	a, err := New(Options{Client: c, RoleID: "role", SecretID: "SECRET-ID-VALUE", MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a.Login(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	f.mu.Lock()
	f.down = true
	f.mu.Unlock()
	time.Sleep(3 * time.Second) // the token expires meanwhile
	f.mu.Lock()
	f.down = false
	f.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for !f.valid(c.Token()) {
		if time.Now().After(deadline) {
			t.Fatalf("no valid token after the outage (%d logins)", a.Logins())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
