package devstack_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/interceptors/envelope"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/internal/devstack"
	"github.com/oidcflow/oidcflow/internal/testharness"
)

func TestUpWhenUpIsANoop(t *testing.T) {
	testharness.Load(t)
	var out bytes.Buffer
	// No executable: this Up must start nothing (the test binary is no login app).
	l, err := devstack.New(devstack.Options{Out: &out, Executable: "/nonexistent/devstack"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "already up") {
		t.Errorf("second up said:\n%s", out.String())
	}
	for _, st := range l.Status(context.Background()) {
		if !st.Healthy || st.Pid == 0 {
			t.Errorf("%s: pid %d, %s", st.Server, st.Pid, st.Detail)
		}
	}
}

func TestEnvFileMatchesSpec(t *testing.T) {
	s := testharness.Load(t)
	want := map[string]string{
		devstack.EnvTemporalAddress: devstack.TemporalAddress(), devstack.EnvTemporalNamespace: devstack.TemporalNamespace,
		devstack.EnvTemporalUIURL: devstack.TemporalUIURL(), devstack.EnvTaskQueue: devstack.TaskQueue,
		devstack.EnvIssuer: devstack.Issuer(), devstack.EnvClientID: devstack.ClientStarter,
		devstack.EnvRedirectURL: devstack.StarterRedirectURL, devstack.EnvWorkerClientID: devstack.ClientWorker,
		devstack.EnvUIClientID: devstack.ClientUI, devstack.EnvIDPAdminURL: devstack.HydraAdminURL(),
		devstack.EnvLoginURL: devstack.LoginURL(), devstack.EnvVaultAddr: devstack.VaultAddr(),
		devstack.EnvVaultAuth: "approle", devstack.EnvVaultKVMount: devstack.VaultKVMount,
		devstack.EnvVaultTransitKey: devstack.VaultTransitKey, devstack.EnvEnvelopeKeysPath: devstack.VaultEnvelopeKeysPath,
	}
	for k, v := range want {
		if got := s.Env(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	file, err := config.ReadEnvFile(s.EnvFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{devstack.EnvWorkerClientSecret, devstack.EnvUIClientSecret, devstack.EnvVaultRoleID,
		devstack.EnvVaultSecretID, devstack.EnvEnvelopePublicKey, devstack.EnvPostgresURL, devstack.EnvVaultToken} {
		if file[k] == "" {
			t.Errorf("%s missing from the env file", k)
		}
	}
	for k, v := range file {
		if v == "" || !slices.ContainsFunc(config.Vars, func(d config.Var) bool { return d.Name == k }) {
			t.Errorf("%s=%q: empty, or not in config.Vars", k, v)
		}
	}
}

func TestTemporalSeeded(t *testing.T) {
	s := testharness.Load(t)
	c, err := client.Dial(s.TemporalOptions(s.OperatorTokenSource()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.OperatorService().ListSearchAttributes(context.Background(),
		&operatorservice.ListSearchAttributesRequest{Namespace: devstack.TemporalNamespace})
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range devstack.SearchAttributes {
		got, ok := resp.GetCustomAttributes()[name]
		if !ok {
			t.Errorf("search attribute %s missing", name)
			continue
		}
		if want := map[string]enums.IndexedValueType{"Keyword": enums.INDEXED_VALUE_TYPE_KEYWORD, "KeywordList": enums.INDEXED_VALUE_TYPE_KEYWORD_LIST}[typ]; got != want {
			t.Errorf("search attribute %s is %v, want %v", name, got, want)
		}
	}
}

func TestVaultSeeded(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	cfg := vault.DefaultConfig()
	cfg.Address = s.Env(devstack.EnvVaultAddr)
	root, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(s.Env(devstack.EnvVaultToken))
	conf, err := root.Logical().ReadWithContext(ctx, devstack.VaultKVMount+"/config")
	if err != nil || conf == nil || conf.Data["cas_required"] != true {
		t.Fatalf("kv config = %v, %v; want cas_required", conf, err)
	}

	// The worker's AppRole reaches its envelope keys and sessions, nothing else.
	worker, _ := vault.NewClient(cfg)
	login, err := worker.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id": s.Env(devstack.EnvVaultRoleID), "secret_id": s.Env(devstack.EnvVaultSecretID)})
	if err != nil {
		t.Fatalf("approle login: %v", err)
	}
	worker.SetToken(login.Auth.ClientToken)
	keys, err := worker.KVv2(devstack.VaultKVMount).Get(ctx, s.Env(devstack.EnvEnvelopeKeysPath))
	if err != nil {
		t.Fatalf("worker reads envelope keys: %v", err)
	}
	var kp envelope.KeyPair
	if err := kp.UnmarshalText([]byte(keys.Data["current"].(string))); err != nil {
		t.Fatal(err)
	}
	pub, err := envelope.ParsePublicKey(s.Env(devstack.EnvEnvelopePublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if pub.String() != kp.Public().String() {
		t.Errorf("env public key %s is not the public half of the key in Vault (%s)", pub.ID(), kp.ID())
	}
	kv := worker.KVv2(devstack.VaultKVMount)
	path := devstack.VaultSessionsPrefix + "/stack-test"
	if _, err := kv.Put(ctx, path, map[string]any{"x": "y"}, vault.WithCheckAndSet(0)); err != nil {
		t.Errorf("worker writes a session: %v", err)
	}
	_ = kv.DeleteMetadata(ctx, path)
	var re *vault.ResponseError
	if _, err := kv.Put(ctx, "elsewhere/x", map[string]any{"x": "y"}, vault.WithCheckAndSet(0)); !errors.As(err, &re) || re.StatusCode != 403 {
		t.Errorf("worker writes outside its paths: %v, want 403", err)
	}
	if _, err := kv.Put(ctx, devstack.VaultEnvelopeKeysPath, map[string]any{"current": "x"}, vault.WithCheckAndSet(1)); !errors.As(err, &re) || re.StatusCode != 403 {
		t.Errorf("worker overwrites envelope keys: %v, want 403", err)
	}
	if _, err := worker.Logical().WriteWithContext(ctx, devstack.VaultTransitMount+"/encrypt/"+devstack.VaultTransitKey,
		map[string]any{"plaintext": "aGk="}); err != nil {
		t.Errorf("worker uses its transit key: %v", err)
	}
}

func TestPostgresSeeded(t *testing.T) {
	s := testharness.Load(t)
	conn, err := pgx.Connect(context.Background(), s.Env(devstack.EnvPostgresURL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var db string
	if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil || db != devstack.PostgresDatabase {
		t.Errorf("database = %q, %v", db, err)
	}
}

// The worker policy lets a worker create a key under the pool's folder (the session-id key)
// once and read it, but never change or delete it, while it still may do all of that with
// its sessions. The policy text of this devstack is checked under a policy and token of the
// test's own, so the running stack's worker policy (seeded by whichever devstack started
// it) is not touched.
func TestVaultSessionIDKeyCreateOnly(t *testing.T) {
	s := testharness.Load(t)
	ctx := context.Background()
	cfg := vault.DefaultConfig()
	cfg.Address = s.Env(devstack.EnvVaultAddr)
	root, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(s.Env(devstack.EnvVaultToken))
	suffix := strings.ToLower(rand.Text()[:8])
	policy := devstack.VaultWorkerPolicy + "-test-" + suffix
	if err := root.Sys().PutPolicyWithContext(ctx, policy, devstack.WorkerPolicy()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Sys().DeletePolicyWithContext(context.Background(), policy) })
	tok, err := root.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{
		Policies: []string{policy}, TTL: "5m", NoParent: true, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Auth().Token().RevokeOrphanWithContext(context.Background(), tok.Auth.ClientToken) })
	worker, _ := vault.NewClient(cfg)
	worker.SetToken(tok.Auth.ClientToken)
	kv := worker.KVv2(devstack.VaultKVMount)
	path := strings.TrimSuffix(devstack.VaultSessionIDKeyPath, "session-id-key") + "stack-test-" + suffix
	t.Cleanup(func() { _ = root.KVv2(devstack.VaultKVMount).DeleteMetadata(context.Background(), path) })

	if _, err := kv.Put(ctx, path, map[string]any{"key": "first"}, vault.WithCheckAndSet(0)); err != nil {
		t.Fatalf("worker creates the key: %v", err)
	}
	if sec, err := kv.Get(ctx, path); err != nil || sec.Data["key"] != "first" {
		t.Fatalf("worker reads the key: %v", err)
	}
	var re *vault.ResponseError
	if _, err := kv.Put(ctx, path, map[string]any{"key": "second"}, vault.WithCheckAndSet(1)); !errors.As(err, &re) || re.StatusCode != 403 {
		t.Errorf("worker overwrites the key: %v, want 403", err)
	}
	if _, err := kv.Put(ctx, path, map[string]any{"key": "again"}, vault.WithCheckAndSet(0)); !errors.As(err, &re) || re.StatusCode != 403 {
		t.Errorf("worker creates the key a second time: %v, want 403", err)
	}
	if err := kv.Delete(ctx, path); !errors.As(err, &re) || re.StatusCode != 403 {
		t.Errorf("worker deletes the key: %v, want 403", err)
	}
	if err := kv.DeleteMetadata(ctx, path); !errors.As(err, &re) || re.StatusCode != 403 {
		t.Errorf("worker destroys the key: %v, want 403", err)
	}
	if err := kv.Destroy(ctx, path, []int{1}); !errors.As(err, &re) || re.StatusCode != 403 {
		t.Errorf("worker destroys the key's version: %v, want 403", err)
	}
	if sec, err := root.KVv2(devstack.VaultKVMount).Get(ctx, path); err != nil || sec.Data["key"] != "first" {
		t.Fatalf("the key changed: %v", err)
	}

	// Its sessions stay the worker's to write and destroy.
	session := devstack.VaultSessionsPrefix + "/stack-test-" + suffix
	t.Cleanup(func() { _ = root.KVv2(devstack.VaultKVMount).DeleteMetadata(context.Background(), session) })
	if _, err := kv.Put(ctx, session, map[string]any{"x": "1"}, vault.WithCheckAndSet(0)); err != nil {
		t.Fatalf("worker creates a session: %v", err)
	}
	if _, err := kv.Put(ctx, session, map[string]any{"x": "2"}, vault.WithCheckAndSet(1)); err != nil {
		t.Errorf("worker updates a session: %v", err)
	}
	if err := kv.DeleteMetadata(ctx, session); err != nil {
		t.Errorf("worker destroys a session: %v", err)
	}
}
