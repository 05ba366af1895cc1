// Package vaultauth logs a worker into Vault and keeps its token alive: AppRole (default),
// a given token, or Kubernetes service-account login; the token is renewed with Vault's
// LifetimeWatcher and re-acquired by a new login when renewal ends (max TTL reached, token
// revoked, renewal refused).
//
// It logs through slog, never a token, secret id or service-account JWT.
package vaultauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Method names a Vault auth method.
type Method string

// The supported methods.
const (
	AppRole    Method = "approle"
	Token      Method = "token"
	Kubernetes Method = "kubernetes"
)

// DefaultKubernetesJWTPath is where Kubernetes mounts the pod's service-account token.
const DefaultKubernetesJWTPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Options configures a Session.
type Options struct {
	// Client is the Vault client whose token this package sets and renews (required).
	Client *vault.Client
	// Method is the auth method. Default AppRole.
	Method Method
	// Mount is the auth mount path. Default: the method name ("approle", "kubernetes").
	Mount string

	// RoleID and SecretID are the AppRole credentials (RoleID required for AppRole;
	// SecretID may be empty for a role without bind_secret_id).
	RoleID, SecretID string

	// Token is the Vault token of the Token method (required for it). It cannot be
	// re-acquired: when it expires, the Session reports the error and keeps trying to
	// renew it.
	Token string

	// KubernetesRole is the Vault role of the Kubernetes method (required for it).
	KubernetesRole string
	// KubernetesJWTPath is the file of the service-account JWT, read at each login. Default
	// DefaultKubernetesJWTPath.
	KubernetesJWTPath string

	// MinBackoff and MaxBackoff bound the wait between failed logins. Defaults 1s and 10s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives login and renewal records. Default slog.Default().
	Logger *slog.Logger
}

// Session is the worker's own login to Vault: it logs in and keeps the client's token
// valid. Use Login once at start-up, then run Run in a goroutine for the life of the
// process. It is not a person's session (that is tokenstore.Session) and does not verify
// anyone (that is interceptors.Authenticator).
type Session struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	secret *vault.Secret // the current login
	logins int
}

// New checks opts and returns a Session.
func New(opts Options) (*Session, error) {
	if opts.Client == nil {
		return nil, errors.New("vaultauth: Options.Client is required")
	}
	if opts.Method == "" {
		opts.Method = AppRole
	}
	switch opts.Method {
	case AppRole:
		if opts.RoleID == "" {
			return nil, errors.New("vaultauth: Options.RoleID is required for approle")
		}
	case Token:
		if opts.Token == "" {
			return nil, errors.New("vaultauth: Options.Token is required for token")
		}
	case Kubernetes:
		if opts.KubernetesRole == "" {
			return nil, errors.New("vaultauth: Options.KubernetesRole is required for kubernetes")
		}
		if opts.KubernetesJWTPath == "" {
			opts.KubernetesJWTPath = DefaultKubernetesJWTPath
		}
	default:
		return nil, fmt.Errorf("vaultauth: unknown method %q (want approle, token or kubernetes)", opts.Method)
	}
	if opts.Mount == "" {
		opts.Mount = string(opts.Method)
	}
	opts.Mount = strings.Trim(opts.Mount, "/")
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(10*time.Second, opts.MinBackoff)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Session{opts: opts, log: log.With("vault_auth", string(opts.Method))}, nil
}

// Logins returns how many successful logins happened (for tests and metrics).
func (a *Session) Logins() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logins
}

// Login authenticates once and sets the client's token.
func (a *Session) Login(ctx context.Context) error {
	c := a.opts.Client
	var sec *vault.Secret
	var err error
	switch a.opts.Method {
	case AppRole:
		data := map[string]any{"role_id": a.opts.RoleID}
		if a.opts.SecretID != "" {
			data["secret_id"] = a.opts.SecretID
		}
		sec, err = a.write(ctx, data)
	case Kubernetes:
		jwt, rerr := os.ReadFile(a.opts.KubernetesJWTPath)
		if rerr != nil {
			return fmt.Errorf("vaultauth: read service-account token: %w", rerr)
		}
		sec, err = a.write(ctx, map[string]any{"role": a.opts.KubernetesRole, "jwt": strings.TrimSpace(string(jwt))})
	case Token:
		c.SetToken(a.opts.Token)
		sec, err = c.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return fmt.Errorf("vaultauth: look up token: %w", clean(err))
		}
		sec, err = tokenSecret(a.opts.Token, sec)
	}
	if err != nil {
		return err
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return errors.New("vaultauth: login answered without a token")
	}
	c.SetToken(sec.Auth.ClientToken)
	a.mu.Lock()
	a.secret = sec
	a.logins++
	a.mu.Unlock()
	a.log.InfoContext(ctx, "vaultauth: logged in",
		"ttl", time.Duration(sec.Auth.LeaseDuration)*time.Second,
		"renewable", sec.Auth.Renewable, "policies", sec.Auth.Policies)
	return nil
}

func (a *Session) write(ctx context.Context, data map[string]any) (*vault.Secret, error) {
	// A login must not carry an old (perhaps expired) token.
	c, err := a.opts.Client.Clone()
	if err != nil {
		return nil, fmt.Errorf("vaultauth: %w", err)
	}
	c.ClearToken()
	sec, err := c.Logical().WriteWithContext(ctx, "auth/"+a.opts.Mount+"/login", data)
	if err != nil {
		return nil, fmt.Errorf("vaultauth: login at auth/%s: %w", a.opts.Mount, clean(err))
	}
	return sec, nil
}

// tokenSecret turns a lookup-self answer into a login secret the LifetimeWatcher can renew.
func tokenSecret(token string, s *vault.Secret) (*vault.Secret, error) {
	if s == nil {
		return nil, errors.New("vaultauth: token lookup answered nothing")
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("vaultauth: token lookup: %w", err)
	}
	renewable, _ := s.TokenIsRenewable()
	policies, _ := s.TokenPolicies()
	return &vault.Secret{Auth: &vault.SecretAuth{ClientToken: token, LeaseDuration: int(ttl / time.Second),
		Renewable: renewable, Policies: policies}}, nil
}

// clean keeps Vault's status and messages and drops anything else of err.
func clean(err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("vault answered %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return err
}

// Run keeps the token alive until ctx ends: it renews the current login with a
// LifetimeWatcher, and when the watcher ends (the token reached its max TTL, or a renewal
// failed), logs in again, retrying with backoff; the client keeps the old token until a login
// succeeds. It logs in first if Login was not called.
// A non-renewable token without expiry (a root token) is left alone. Run returns ctx's error.
func (a *Session) Run(ctx context.Context) error {
	backoff := a.opts.MinBackoff
	for {
		a.mu.Lock()
		sec := a.secret
		a.mu.Unlock()
		if sec == nil {
			if err := a.Login(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				a.log.ErrorContext(ctx, "vaultauth: login failed; retrying", "err", err, "in", backoff)
				if err := sleep(ctx, backoff); err != nil {
					return err
				}
				backoff = min(2*backoff, a.opts.MaxBackoff)
				continue
			}
			backoff = a.opts.MinBackoff
			continue
		}
		if sec.Auth.LeaseDuration == 0 && !sec.Auth.Renewable {
			a.log.InfoContext(ctx, "vaultauth: token does not expire; nothing to renew")
			<-ctx.Done()
			return ctx.Err()
		}
		if err := a.watch(ctx, sec); err != nil {
			return err
		}
		// Renewal is over: the token is at (or near) the end of its life.
		a.mu.Lock()
		a.secret = nil
		a.mu.Unlock()
		if a.opts.Method == Token {
			a.log.ErrorContext(ctx, "vaultauth: the configured token can no longer be renewed; give the worker a new token or use approle")
			if err := a.Login(ctx); err == nil { // the token may still be valid for a while
				if err := sleep(ctx, a.opts.MaxBackoff); err != nil {
					return err
				}
			}
		}
	}
}

// watch renews sec until the watcher ends; it returns ctx's error when ctx ended.
func (a *Session) watch(ctx context.Context, sec *vault.Secret) error {
	if !sec.Auth.Renewable {
		// A token that cannot be renewed (a batch token, say): log in again at two thirds of
		// its life.
		ttl := time.Duration(sec.Auth.LeaseDuration) * time.Second
		a.log.InfoContext(ctx, "vaultauth: token is not renewable; will log in again", "in", ttl*2/3)
		if err := sleep(ctx, ttl*2/3); err != nil {
			return err
		}
		return nil
	}
	// ErrorOnErrors: a failed renewal ends the watcher at once and Run logs in again (with
	// backoff while Vault is unreachable), instead of retrying the renewal for up to the
	// token's remaining life, which for short TTLs outlasts the token.
	w, err := a.opts.Client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: sec,
		RenewBehavior: vault.RenewBehaviorErrorOnErrors})
	if err != nil {
		return fmt.Errorf("vaultauth: %w", err)
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-w.DoneCh():
			if err != nil {
				a.log.WarnContext(ctx, "vaultauth: renewal ended; logging in again", "err", clean(err))
			} else {
				a.log.InfoContext(ctx, "vaultauth: token reached the end of its renewable life; logging in again")
			}
			return nil
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				a.log.DebugContext(ctx, "vaultauth: token renewed",
					"ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
