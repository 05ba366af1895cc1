package pool

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/interceptors/envelope"
	"github.com/oidcflow/oidcflow/internal/devstack"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// fakeKV is an httptest Vault with one KV v2 mount ("oidcflow"): data read and
// check-and-set write. createOnly lists paths that, once written, refuse writes with 403,
// as the worker policy's create-only rule does.
type fakeKV struct {
	srv        *httptest.Server
	mu         sync.Mutex
	data       map[string]map[string]any
	versions   map[string]int
	createOnly map[string]bool
	onWrite    func(path string) // called before a write is handled, without the lock
}

func newFakeKV(t *testing.T) *fakeKV {
	f := &fakeKV{data: map[string]map[string]any{}, versions: map[string]int{}, createOnly: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeKV) client(t *testing.T) *vault.Client {
	cfg := vault.DefaultConfig()
	cfg.Address = f.srv.URL
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("test-token")
	return c
}

func kvErrors(w http.ResponseWriter, status int, msgs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": append([]string{}, msgs...)})
}

func (f *fakeKV) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && f.onWrite != nil {
		f.onWrite(strings.TrimPrefix(r.URL.Path, "/v1/oidcflow/data/"))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/oidcflow/data/")
	if !ok {
		kvErrors(w, http.StatusNotFound, "no handler for route")
		return
	}
	switch r.Method {
	case http.MethodGet:
		d, ok := f.data[path]
		if !ok {
			kvErrors(w, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"data": d,
			"metadata": map[string]any{"version": f.versions[path], "created_time": "2026-03-01T10:00:00Z", "deletion_time": "", "destroyed": false}}})
	case http.MethodPut, http.MethodPost:
		var body struct {
			Data    map[string]any `json:"data"`
			Options map[string]any `json:"options"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			kvErrors(w, http.StatusBadRequest, err.Error())
			return
		}
		if f.createOnly[path] && f.versions[path] > 0 {
			kvErrors(w, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
			return
		}
		cas, ok := body.Options["cas"].(float64)
		if !ok {
			kvErrors(w, http.StatusBadRequest, "check-and-set parameter required for this call")
			return
		}
		if int(cas) != f.versions[path] {
			kvErrors(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
			return
		}
		f.versions[path]++
		f.data[path] = body.Data
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"version": f.versions[path]}})
	default:
		kvErrors(w, http.StatusMethodNotAllowed)
	}
}

// set writes path as an operator would (no CAS check).
func (f *fakeKV) set(path string, data map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions[path]++
	f.data[path] = data
}

func keyText(t *testing.T, id string) string {
	kp, err := envelope.GenerateKeyPair(id, envelope.KEMHybrid)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kp.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// poolSessionIDs builds what NewParts builds for session ids: the keyring's secrets, the
// session-id key, and the shared sessions that map a refresh token to a session id.
func poolSessionIDs(t *testing.T, c *vault.Client) *tokenstore.SharedSessions {
	t.Helper()
	ctx := context.Background()
	_, secrets, err := LoadEnvelopeKeys(ctx, c, "oidcflow", "envelope/keys")
	if err != nil {
		t.Fatal(err)
	}
	idKey, err := LoadSessionIDKey(ctx, c, "oidcflow", SessionIDKeyPath, secrets[0])
	if err != nil {
		t.Fatal(err)
	}
	return sharedWithKey(t, c, idKey)
}

// sharedWithKey returns shared sessions over c with session-id key idKey.
func sharedWithKey(t *testing.T, c *vault.Client, idKey []byte) *tokenstore.SharedSessions {
	t.Helper()
	st, err := tokenstore.NewStore(tokenstore.StoreOptions{Client: c, Mount: "oidcflow"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := tokenstore.NewSharedSessions(tokenstore.SharedSessionsOptions{Store: st, Refresher: &tokenstore.Refresher{}, IDKey: idKey})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The same refresh token maps to the same session before and after an envelope key
// rotation. Before the session-id key had a place of its own, it was derived from the
// current envelope key: after a rotation the pool put the same refresh token into a second
// session, two sessions held one rotating chain, and the IdP's reuse detection killed it.
func TestSessionIDSurvivesEnvelopeKeyRotation(t *testing.T) {
	f := newFakeKV(t)
	c := f.client(t)
	k1, k2 := keyText(t, "k1"), keyText(t, "k2")
	f.set("envelope/keys", map[string]any{"current": k1, "previous": []any{}})
	before := poolSessionIDs(t, c).SessionID("RT-SECRET-bob")

	f.set("envelope/keys", map[string]any{"current": k2, "previous": []any{k1}})
	after := poolSessionIDs(t, c).SessionID("RT-SECRET-bob")
	if before != after {
		t.Fatalf("after an envelope key rotation the refresh token maps to session %s, before to %s", after, before)
	}
	if other := poolSessionIDs(t, c).SessionID("RT-SECRET-alice"); other == before {
		t.Fatal("two refresh tokens map to one session")
	}
}

// A pool that upgrades keeps its session ids: the first worker creates the key its
// predecessors derived from the current envelope key.
func TestSessionIDKeyCreatedFromTheKeyInUse(t *testing.T) {
	f := newFakeKV(t)
	c := f.client(t)
	k1 := keyText(t, "k1")
	f.set("envelope/keys", map[string]any{"current": k1, "previous": []any{}})
	legacy, err := hkdf.Key(sha256.New, []byte(k1), nil, "oidcflow session id v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	want := sharedWithKey(t, c, legacy).SessionID("RT-SECRET-bob")
	if got := poolSessionIDs(t, c).SessionID("RT-SECRET-bob"); got != want {
		t.Fatalf("session id %s after the upgrade, %s before", got, want)
	}
	if f.versions[SessionIDKeyPath] != 1 {
		t.Fatalf("key written %d times, want once", f.versions[SessionIDKeyPath])
	}
	poolSessionIDs(t, c)
	if f.versions[SessionIDKeyPath] != 1 {
		t.Fatal("an existing key was written again")
	}
}

// Workers that start around a rotation seed the key from different envelope keys; the
// first create wins and every worker uses its key, also one whose create-only write is
// refused (check-and-set, or 403 under the create-only policy).
func TestSessionIDKeyFirstWriterWins(t *testing.T) {
	ctx := context.Background()
	for _, createOnly := range []bool{false, true} {
		f := newFakeKV(t)
		f.createOnly[SessionIDKeyPath] = createOnly
		c := f.client(t)
		first, err := LoadSessionIDKey(ctx, c, "oidcflow", SessionIDKeyPath, []byte("seed-of-worker-1"))
		if err != nil {
			t.Fatal(err)
		}
		// Worker 2 read no key, then lost the race to create it.
		f.mu.Lock()
		stored := f.data[SessionIDKeyPath]
		delete(f.data, SessionIDKeyPath)
		f.versions[SessionIDKeyPath] = 0
		f.mu.Unlock()
		f.onWrite = func(string) {
			f.onWrite = nil
			f.set(SessionIDKeyPath, stored)
		}
		second, err := LoadSessionIDKey(ctx, c, "oidcflow", SessionIDKeyPath, []byte("seed-of-worker-2"))
		if err != nil {
			t.Fatalf("createOnly=%v: %v", createOnly, err)
		}
		if string(first) != string(second) {
			t.Fatalf("createOnly=%v: workers disagree on the session-id key", createOnly)
		}
	}
}

func TestSessionIDKeyRefusesABadKey(t *testing.T) {
	f := newFakeKV(t)
	f.set(SessionIDKeyPath, map[string]any{"key": "c2hvcnQ="})
	if _, err := LoadSessionIDKey(context.Background(), f.client(t), "oidcflow", SessionIDKeyPath, []byte("seed")); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

// The dev stack seeds the key, and its worker policy guards it, where the workers look.
func TestSessionIDKeyPathMatchesTheDevStack(t *testing.T) {
	if SessionIDKeyPath != devstack.VaultSessionIDKeyPath {
		t.Fatalf("the pool reads the session-id key at %s, the dev stack seeds %s", SessionIDKeyPath, devstack.VaultSessionIDKeyPath)
	}
}

// Workers that start at once, each seeding from another envelope key (a rotation between
// their starts), agree on one session-id key on the real Vault, logged in as the worker:
// the losers of the create-only write read the winner's.
func TestIntegrationSessionIDKeyOneForThePool(t *testing.T) {
	st := testharness.Load(t)
	ctx := context.Background()
	cfg := vault.DefaultConfig()
	cfg.Address = st.Env("VAULT_ADDR")
	root, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(st.Env("VAULT_TOKEN"))
	mount := st.Env("OIDCFLOW_VAULT_KV_MOUNT")
	path := strings.TrimSuffix(SessionIDKeyPath, "session-id-key") + "test-" + rand.Text()[:8]
	t.Cleanup(func() { _ = root.KVv2(mount).DeleteMetadata(context.Background(), path) })

	keys := make([][]byte, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			c, err := vault.NewClient(cfg)
			if err != nil {
				errs[i] = err
				return
			}
			login, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
				"role_id": st.Env("OIDCFLOW_VAULT_ROLE_ID"), "secret_id": st.Env("OIDCFLOW_VAULT_SECRET_ID")})
			if err != nil {
				errs[i] = err
				return
			}
			c.SetToken(login.Auth.ClientToken)
			keys[i], errs[i] = LoadSessionIDKey(ctx, c, mount, path, []byte("envelope key of worker "+strconv.Itoa(i)))
		})
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		if string(keys[i]) != string(keys[0]) {
			t.Fatalf("workers 0 and %d disagree on the session-id key", i)
		}
	}
}

// SeedEnvelopeKeys writes a pair the pool loads, returns its public half, and never replaces
// keys that are there.
func TestSeedEnvelopeKeys(t *testing.T) {
	f := newFakeKV(t)
	c := f.client(t)
	ctx := context.Background()
	pub, err := SeedEnvelopeKeys(ctx, c, "oidcflow", "envelope/keys", "k1")
	if err != nil {
		t.Fatal(err)
	}
	ring, secrets, err := LoadEnvelopeKeys(ctx, c, "oidcflow", "envelope/keys")
	if err != nil || len(secrets) != 1 {
		t.Fatalf("load the seeded keys: %v", err)
	}
	parsed, err := envelope.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := envelope.Seal(parsed, envelope.Binding{Namespace: "ns", WorkflowID: "wf", Operation: "start"},
		envelope.Contents{IDToken: "id", InputDigest: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Open(envelope.Binding{Namespace: "ns", WorkflowID: "wf", Operation: "start"}, sealed); err != nil {
		t.Fatalf("the pool cannot open an envelope sealed to the returned public key: %v", err)
	}
	if strings.Contains(pub, secretPart(t, f)) {
		t.Fatal("the public key text holds the private key")
	}
	if _, err := SeedEnvelopeKeys(ctx, c, "oidcflow", "envelope/keys", "k2"); err == nil {
		t.Fatal("existing keys were replaced")
	}
}

// secretPart returns the private key text stored in the fake Vault.
func secretPart(t *testing.T, f *fakeKV) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, _ := f.data["envelope/keys"]["current"].(string)
	if cur == "" {
		t.Fatal("no current key stored")
	}
	return cur[len(cur)-40:]
}
