package pool

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/tokenstore"
)

func TestSessionIDKeyCreatedWithItsFormat(t *testing.T) {
	f := newFakeKV(t)
	if _, err := LoadSessionIDKey(context.Background(), f.client(t), "oidcflow", SessionIDKeyPath, []byte("seed")); err != nil {
		t.Fatal(err)
	}
	if got := f.data[SessionIDKeyPath]["format"]; got != float64(SessionIDKeyFormat) {
		t.Fatalf("created key record format = %v, want %d", got, SessionIDKeyFormat)
	}
}

// TestSessionIDKeyWithoutFormatIsFormatOne: a key seeded before formats were numbered (the
// dev stack's, an operator's) is read as format 1, and not written again.
func TestSessionIDKeyWithoutFormatIsFormatOne(t *testing.T) {
	f := newFakeKV(t)
	want := strings.Repeat("k", sessionIDKeySize)
	f.set(SessionIDKeyPath, map[string]any{"key": base64.StdEncoding.EncodeToString([]byte(want))})
	key, err := LoadSessionIDKey(context.Background(), f.client(t), "oidcflow", SessionIDKeyPath, []byte("seed"))
	if err != nil || string(key) != want {
		t.Fatalf("LoadSessionIDKey = %q, %v", key, err)
	}
	if f.versions[SessionIDKeyPath] != 1 {
		t.Fatal("an unnumbered key was written again")
	}
}

// TestSessionIDKeyOfANewerFormatStopsTheWorker is the attack: a newer worker keeps the key
// record in a format this build does not know (say the key is wrapped, or derived from what
// "key" holds). Used as this build reads it, it maps refresh tokens to other session ids
// than the newer workers' do: two sessions then hold one rotating refresh token, and the
// IdP's reuse detection ends the chain. The worker does not start, and writes nothing.
func TestSessionIDKeyOfANewerFormatStopsTheWorker(t *testing.T) {
	for _, format := range []any{SessionIDKeyFormat + 1, "2", 1.5} {
		f := newFakeKV(t)
		f.set(SessionIDKeyPath, map[string]any{"format": format,
			"key": base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", sessionIDKeySize)))})
		key, err := LoadSessionIDKey(context.Background(), f.client(t), "oidcflow", SessionIDKeyPath, []byte("seed"))
		var fe *tokenstore.FormatError
		if !errors.Is(err, tokenstore.ErrUnsupportedFormat) || !errors.As(err, &fe) || key != nil ||
			!strings.Contains(err.Error(), "session-id key at oidcflow/"+SessionIDKeyPath) || !strings.Contains(err.Error(), "upgrade this worker") {
			t.Errorf("format %v: LoadSessionIDKey = %d bytes, %v; want a *FormatError naming the key", format, len(key), err)
		}
		if f.versions[SessionIDKeyPath] != 1 {
			t.Errorf("format %v: the key record was written over", format)
		}
	}
}

// TestSessionIDKeyRaceLostToANewerFormat: a worker that finds no key, and loses the create
// to a newer worker, fails on the newer record instead of reporting its lost write.
func TestSessionIDKeyRaceLostToANewerFormat(t *testing.T) {
	f := newFakeKV(t)
	f.createOnly[SessionIDKeyPath] = true
	f.onWrite = func(string) {
		f.onWrite = nil
		f.set(SessionIDKeyPath, map[string]any{"format": json.Number("2"), "key": "bmV3ZXI="})
	}
	_, err := LoadSessionIDKey(context.Background(), f.client(t), "oidcflow", SessionIDKeyPath, []byte("seed"))
	if !errors.Is(err, tokenstore.ErrUnsupportedFormat) {
		t.Fatalf("LoadSessionIDKey = %v, want ErrUnsupportedFormat", err)
	}
}

// On the real Vault, logged in as the worker: the key the first worker creates carries its
// format, and a record of a newer format stops the next worker without being written over.
func TestIntegrationSessionIDKeyFormat(t *testing.T) {
	st := testharness.Load(t)
	ctx := context.Background()
	cfg := vault.DefaultConfig()
	cfg.Address = st.Env("VAULT_ADDR")
	root, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(st.Env("VAULT_TOKEN"))
	worker, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	login, err := worker.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id": st.Env("OIDCFLOW_VAULT_ROLE_ID"), "secret_id": st.Env("OIDCFLOW_VAULT_SECRET_ID")})
	if err != nil {
		t.Fatal(err)
	}
	worker.SetToken(login.Auth.ClientToken)
	mount := st.Env("OIDCFLOW_VAULT_KV_MOUNT")
	kv := root.KVv2(mount)
	path := strings.TrimSuffix(SessionIDKeyPath, "session-id-key") + "test-" + rand.Text()[:8]
	t.Cleanup(func() { _ = kv.DeleteMetadata(context.Background(), path) })

	if _, err := LoadSessionIDKey(ctx, worker, mount, path, []byte("seed")); err != nil {
		t.Fatal(err)
	}
	sec, err := kv.Get(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := sec.Data["format"]; got != json.Number(strconv.Itoa(SessionIDKeyFormat)) {
		t.Fatalf("created key record format = %#v, want %d", got, SessionIDKeyFormat)
	}
	newer := map[string]any{"format": SessionIDKeyFormat + 1, "key": sec.Data["key"]}
	if _, err := kv.Put(ctx, path, newer, vault.WithCheckAndSet(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSessionIDKey(ctx, worker, mount, path, []byte("seed")); !errors.Is(err, tokenstore.ErrUnsupportedFormat) {
		t.Fatalf("LoadSessionIDKey over a newer record = %v, want ErrUnsupportedFormat", err)
	}
	if sec, err := kv.Get(ctx, path); err != nil || sec.VersionMetadata.Version != 2 {
		t.Fatalf("the newer key record was written over: %v", err)
	}
}
