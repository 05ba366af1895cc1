package devstack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// vaultInit is what `sys/init` returned; kept in .stack/vault/init.json (mode 0600).
type vaultInit struct {
	UnsealKey string `json:"unseal_key_b64"`
	RootToken string `json:"root_token"`
}

// VaultSessionIDKeyPath holds the pool's session-id key (in VaultKVMount): field "key", 32
// random bytes in base64, and "format" 1; the MAC key that maps a refresh token to its session id. It does
// not rotate with the envelope keys (see pool.LoadSessionIDKey, which uses the same path).
const VaultSessionIDKeyPath = VaultSessionsPrefix + "/pool/session-id-key"

// WorkerPolicy is the Vault policy of the worker's AppRole: its sessions, its envelope
// keys (read only), the pool's session-id key (create once and read: a worker may seed it
// but never change or delete it), the one-time record of honoured envelopes (spend, read
// the owner, sweep), its Transit key and the payload Transit key (new data keys, and
// unwrapping them; not reading, rotating or exporting the key); nothing else. Vault applies
// the most specific path, so the pool rules override the sessions rules for the key.
func WorkerPolicy() string {
	kv := VaultKVMount
	return fmt.Sprintf(`# oidcflow worker: sessions, envelope keys (read), session-id key (create, read), one-time records, transit keys
path "%[1]s/data/%[2]s/*" { capabilities = ["create", "read", "update", "delete"] }
path "%[1]s/metadata/%[2]s/*" { capabilities = ["read", "list", "delete"] }
path "%[1]s/delete/%[2]s/*" { capabilities = ["update"] }
path "%[1]s/destroy/%[2]s/*" { capabilities = ["update"] }
path "%[1]s/data/%[2]s/pool/*" { capabilities = ["create", "read"] }
path "%[1]s/metadata/%[2]s/pool/*" { capabilities = ["read"] }
path "%[1]s/delete/%[2]s/pool/*" { capabilities = ["deny"] }
path "%[1]s/destroy/%[2]s/pool/*" { capabilities = ["deny"] }
path "%[1]s/data/%[6]s/*" { capabilities = ["create", "read", "update"] }
path "%[1]s/metadata/%[6]s/*" { capabilities = ["list", "delete"] }
path "%[1]s/data/%[3]s" { capabilities = ["read"] }
path "%[4]s/encrypt/%[5]s" { capabilities = ["update"] }
path "%[4]s/decrypt/%[5]s" { capabilities = ["update"] }
path "%[4]s/datakey/plaintext/%[7]s" { capabilities = ["update"] }
path "%[4]s/decrypt/%[7]s" { capabilities = ["update"] }
`, kv, VaultSessionsPrefix, VaultEnvelopeKeysPath, VaultTransitMount, VaultTransitKey, VaultOneTimePrefix, VaultPayloadTransitKey)
}

// VaultConfig is the Vault server configuration of the dev stack with file storage in
// dataDir (docker-compose.yml uses the same, with its own folder).
func VaultConfig(dataDir string) string {
	return fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address         = %q
  cluster_address = %q
  tls_disable     = true
}
api_addr      = %q
cluster_addr  = "https://%s"
disable_mlock = true
ui            = false
`, dataDir, hostPort(PortVault), hostPort(PortVault+1), VaultAddr(), hostPort(PortVault+1))
}

func (l *Launcher) vaultClient(token string) (*vault.Client, error) {
	cfg := vault.DefaultConfig()
	cfg.Address = VaultAddr()
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	return c, nil
}

func (l *Launcher) vault() *service {
	dir := l.path("vault")
	cfgPath := filepath.Join(dir, "config.hcl")
	s := &service{name: "vault", binary: cfgPath, ports: []int{PortVault, PortVault + 1}, stopSig: syscall.SIGTERM}
	s.prepare = func(ctx context.Context) error {
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
			return err
		}
		cfg := "# written by devstack up\n" + VaultConfig(filepath.Join(dir, "data"))
		return os.WriteFile(cfgPath, []byte(cfg), 0o600)
	}
	s.command = func() ([]string, []string, *syscall.Credential, error) {
		bin, err := l.tool("vault")
		if err != nil {
			return nil, nil, nil, err
		}
		return []string{bin, "server", "-config=" + cfgPath, "-log-level=warn"}, baseEnv(), nil, nil
	}
	// ready: initialised (first time: by us) and unsealed (by us, at each start) and active.
	s.ready = func(ctx context.Context) error {
		c, err := l.vaultClient("")
		if err != nil {
			return err
		}
		st, err := c.Sys().SealStatusWithContext(ctx)
		if err != nil {
			return err
		}
		if !st.Initialized {
			if err := l.vaultInit(ctx, c); err != nil {
				return err
			}
		}
		if st.Sealed || !st.Initialized {
			var in vaultInit
			if err := readJSON(filepath.Join(dir, "init.json"), &in); err != nil {
				return fmt.Errorf("vault is sealed and %s is unreadable: %w", l.rel(filepath.Join(dir, "init.json")), err)
			}
			if _, err := c.Sys().UnsealWithContext(ctx, in.UnsealKey); err != nil {
				return err
			}
		}
		h, err := c.Sys().HealthWithContext(ctx)
		if err != nil {
			return err
		}
		if h.Sealed || h.Standby || !h.Initialized {
			return errors.New("vault not active yet")
		}
		return nil
	}
	s.seed = func(ctx context.Context) error { return l.vaultSeed(ctx) }
	return s
}

func (l *Launcher) vaultInit(ctx context.Context, c *vault.Client) error {
	path := l.path("vault", "init.json")
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("vault storage is uninitialised but %s exists; remove .stack/vault to start over", l.rel(path))
	}
	resp, err := c.Sys().InitWithContext(ctx, &vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return err
	}
	if len(resp.KeysB64) != 1 {
		return errors.New("vault init returned no unseal key")
	}
	b, _ := json.MarshalIndent(vaultInit{UnsealKey: resp.KeysB64[0], RootToken: resp.RootToken}, "", "  ")
	if err := writeSecretFile(path, b); err != nil {
		return err
	}
	l.printf("vault    initialised (1 key share; unseal key and root token in %s, mode 0600)", l.rel(path))
	return nil
}

func (l *Launcher) vaultSeed(ctx context.Context) error {
	var in vaultInit
	if err := readJSON(l.path("vault", "init.json"), &in); err != nil {
		return err
	}
	c, err := l.vaultClient(in.RootToken)
	if err != nil {
		return err
	}
	sys := c.Sys()
	mounts, err := sys.ListMountsWithContext(ctx)
	if err != nil {
		return err
	}
	if _, ok := mounts[VaultKVMount+"/"]; !ok {
		if err := sys.MountWithContext(ctx, VaultKVMount, &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			return fmt.Errorf("mount %s: %w", VaultKVMount, err)
		}
	}
	if _, err := c.Logical().WriteWithContext(ctx, VaultKVMount+"/config", map[string]any{"cas_required": true, "max_versions": 20}); err != nil {
		return fmt.Errorf("kv config: %w", err)
	}
	if _, ok := mounts[VaultTransitMount+"/"]; !ok {
		if err := sys.MountWithContext(ctx, VaultTransitMount, &vault.MountInput{Type: "transit"}); err != nil {
			return fmt.Errorf("mount transit: %w", err)
		}
	}
	for _, name := range []string{VaultTransitKey, VaultPayloadTransitKey} {
		key := VaultTransitMount + "/keys/" + name
		if sec, err := c.Logical().ReadWithContext(ctx, key); err != nil {
			return err
		} else if sec == nil {
			if _, err := c.Logical().WriteWithContext(ctx, key, map[string]any{"type": "aes256-gcm96"}); err != nil {
				return fmt.Errorf("transit key %s: %w", name, err)
			}
		}
	}
	auths, err := sys.ListAuthWithContext(ctx)
	if err != nil {
		return err
	}
	if _, ok := auths["approle/"]; !ok {
		if err := sys.EnableAuthWithOptionsWithContext(ctx, "approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
			return fmt.Errorf("enable approle: %w", err)
		}
	}
	if err := sys.PutPolicyWithContext(ctx, VaultWorkerPolicy, WorkerPolicy()); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	role := "auth/approle/role/" + VaultAppRole
	if _, err := c.Logical().WriteWithContext(ctx, role, map[string]any{
		"token_policies": []string{VaultWorkerPolicy},
		"token_ttl":      "1h", "token_max_ttl": "24h", "secret_id_ttl": "0",
	}); err != nil {
		return fmt.Errorf("approle role: %w", err)
	}
	roleID, err := c.Logical().ReadWithContext(ctx, role+"/role-id")
	if err != nil || roleID == nil {
		return fmt.Errorf("approle role-id: %v", err)
	}
	secretID, err := l.vaultSecretID(ctx, c, role)
	if err != nil {
		return err
	}
	pub, err := l.vaultEnvelopeKeys(ctx, c)
	if err != nil {
		return err
	}
	l.setEnv(
		EnvVaultAddr, VaultAddr(),
		EnvVaultAuth, "approle",
		EnvVaultRoleID, fmt.Sprint(roleID.Data["role_id"]),
		EnvVaultSecretID, secretID,
		EnvVaultKVMount, VaultKVMount,
		EnvVaultTransitKey, VaultTransitKey,
		EnvPayloadTransitKey, VaultPayloadTransitKey,
		EnvEnvelopePublicKey, pub,
		EnvEnvelopeKeysPath, VaultEnvelopeKeysPath,
		EnvVaultToken, in.RootToken,
	)
	return nil
}

// vaultSecretID reuses the AppRole secret id kept in .stack/vault/approle.json while Vault
// still knows it, else creates one.
func (l *Launcher) vaultSecretID(ctx context.Context, c *vault.Client, role string) (string, error) {
	path := l.path("vault", "approle.json")
	var saved struct {
		SecretID string `json:"secret_id"`
	}
	if readJSON(path, &saved) == nil && saved.SecretID != "" {
		sec, err := c.Logical().WriteWithContext(ctx, role+"/secret-id/lookup", map[string]any{"secret_id": saved.SecretID})
		if err == nil && sec != nil {
			return saved.SecretID, nil
		}
	}
	sec, err := c.Logical().WriteWithContext(ctx, role+"/secret-id", nil)
	if err != nil || sec == nil {
		return "", fmt.Errorf("approle secret-id: %v", err)
	}
	saved.SecretID = fmt.Sprint(sec.Data["secret_id"])
	b, _ := json.Marshal(saved)
	if err := writeSecretFile(path, b); err != nil {
		return "", err
	}
	return saved.SecretID, nil
}

// vaultEnvelopeKeys creates the worker pool's HPKE key pair on first use (a CAS write of
// version 0, so that two launchers never both create one) and returns the public text
// form of the current key. With a new key pair it also seeds a random session-id key
// (VaultSessionIDKeyPath), as no session exists yet; a stack whose keys predate it gets
// its key from the first worker, derived so that existing session ids stay the same.
func (l *Launcher) vaultEnvelopeKeys(ctx context.Context, c *vault.Client) (string, error) {
	kv := c.KVv2(VaultKVMount)
	sec, err := kv.Get(ctx, VaultEnvelopeKeysPath)
	if err != nil && !errors.Is(err, vault.ErrSecretNotFound) {
		return "", fmt.Errorf("read envelope keys: %w", err)
	}
	if sec == nil || sec.Data == nil {
		kp, err := envelope.GenerateKeyPair(EnvelopeKeyID, envelope.KEMHybrid)
		if err != nil {
			return "", err
		}
		text, err := kp.MarshalText()
		if err != nil {
			return "", err
		}
		if _, err := kv.Put(ctx, VaultEnvelopeKeysPath, map[string]any{"current": string(text), "previous": []string{}},
			vault.WithCheckAndSet(0)); err != nil {
			return "", fmt.Errorf("write envelope keys: %w", err)
		}
		if err := seedSessionIDKey(ctx, kv); err != nil {
			return "", err
		}
		if sec, err = kv.Get(ctx, VaultEnvelopeKeysPath); err != nil {
			return "", fmt.Errorf("read envelope keys: %w", err)
		}
	}
	cur, _ := sec.Data["current"].(string)
	var kp envelope.KeyPair
	if err := kp.UnmarshalText([]byte(cur)); err != nil {
		return "", fmt.Errorf("envelope keys in %s/%s: %w", VaultKVMount, VaultEnvelopeKeysPath, err)
	}
	return kp.Public().String(), nil
}

// seedSessionIDKey writes a random session-id key unless one exists (check-and-set 0).
func seedSessionIDKey(ctx context.Context, kv *vault.KVv2) error {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (it crashes the program instead)
	// "format" is pool.SessionIDKeyFormat (the record the workers create is the same).
	_, err := kv.Put(ctx, VaultSessionIDKeyPath, map[string]any{"format": 1, "key": base64.StdEncoding.EncodeToString(key)},
		vault.WithCheckAndSet(0))
	var re *vault.ResponseError
	if errors.As(err, &re) && slices.ContainsFunc(re.Errors, func(m string) bool { return strings.Contains(m, "check-and-set") }) {
		return nil // it exists: never replace it
	}
	if err != nil {
		return fmt.Errorf("write session-id key: %w", err)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// tool returns the path of a dev server built by tools/build.sh.
func (l *Launcher) tool(name string) (string, error) {
	p := filepath.Join(l.root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not built: run `make tools` (tools/build.sh %s)", p, name)
	}
	return p, nil
}

// baseEnv is the small environment servers get: no VAULT_*, DSN or other settings of the
// caller leak into them.
func baseEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	for _, k := range []string{"GOCACHE", "XDG_CACHE_HOME", "LANG"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}
