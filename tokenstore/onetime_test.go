package tokenstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
)

// listingVault serves fv's KV v2 engine plus the metadata LIST that Sweep needs (the shared
// fake does not list).
func listingVault(t *testing.T, fv *fakeVault) *vault.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		folder, ok := strings.CutPrefix(r.URL.Path, "/v1/"+fv.mount+"/metadata/")
		if !ok || r.Method != http.MethodGet || r.URL.Query().Get("list") != "true" {
			fv.serve(w, r)
			return
		}
		fv.mu.Lock()
		defer fv.mu.Unlock()
		if fv.failWith != 0 {
			vaultErrors(w, fv.failWith, "fake vault is down")
			return
		}
		folder = strings.TrimSuffix(folder, "/") + "/"
		seen := map[string]bool{}
		var keys []any
		for p := range fv.secrets {
			rest, ok := strings.CutPrefix(p, folder)
			if !ok {
				continue
			}
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				rest = rest[:i+1]
			}
			if !seen[rest] {
				seen[rest] = true
				keys = append(keys, rest)
			}
		}
		if len(keys) == 0 {
			vaultErrors(w, http.StatusNotFound)
			return
		}
		slices.SortFunc(keys, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"keys": keys}})
	}))
	t.Cleanup(srv.Close)
	cfg := vault.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("test-vault-token")
	return c
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func newTestOneTime(t *testing.T) (*OneTime, *fakeVault, *testClock) {
	t.Helper()
	fv := newFakeVault(t)
	clock := &testClock{t: time.Date(2026, 3, 4, 5, 30, 0, 0, time.UTC)}
	o, err := NewOneTime(OneTimeOptions{Client: listingVault(t, fv), Mount: fv.mount, Clock: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return o, fv, clock
}

func (fv *fakeVault) paths() []string {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	var out []string
	for p := range fv.secrets {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

const testEnvelopeID = "q83vEjRWeJq83vEjRWeJqw"

// TestOneTimeSpendOnce is the replay attack on the store: the same id spent twice, one after
// the other and by 50 concurrent spenders; exactly one Spend succeeds, the others fail with
// ErrReplayed, a non-retryable identity error.
func TestOneTimeSpendOnce(t *testing.T) {
	o, fv, clock := newTestOneTime(t)
	ctx := context.Background()
	until := clock.now().Add(10 * time.Minute)
	if err := o.Spend(ctx, testEnvelopeID, anyOwner(), until); err != nil {
		t.Fatalf("first Spend: %v", err)
	}
	err := o.Spend(ctx, testEnvelopeID, anyOwner(), until)
	if !errors.Is(err, ErrReplayed) || !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("second Spend: %v, want ErrReplayed", err)
	}
	var appErr *temporal.ApplicationError
	if !errors.As(identity.ApplicationError(err), &appErr) || !appErr.NonRetryable() || appErr.Type() != identity.TypeUnauthenticated {
		t.Fatalf("ErrReplayed maps to %v", identity.ApplicationError(err))
	}
	if !strings.HasPrefix(err.Error(), "tokenstore: already used") {
		t.Fatalf("message %q", err)
	}
	if got := fv.paths(); len(got) != 1 || got[0] != "onetime/2026030405/"+testEnvelopeID {
		t.Fatalf("records at %v", got)
	}

	// Concurrent spenders of a fresh id.
	var ok, replayed atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			switch err := o.Spend(ctx, "concurrent-id", anyOwner(), until); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrReplayed):
				replayed.Add(1)
			default:
				t.Errorf("Spend: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != 49 {
		t.Fatalf("%d spends succeeded and %d were refused as replays, want 1 and 49", ok.Load(), replayed.Load())
	}
}

// TestOneTimeBucket: the bucket is the UTC hour of until, whatever its location.
func TestOneTimeBucket(t *testing.T) {
	o, fv, clock := newTestOneTime(t)
	tz := time.FixedZone("UTC+9", 9*3600)
	until := clock.now().Add(45 * time.Minute).In(tz) // 06:15 UTC, 15:15 local
	if err := o.Spend(context.Background(), "id-1", anyOwner(), until); err != nil {
		t.Fatal(err)
	}
	if got := fv.paths(); len(got) != 1 || got[0] != "onetime/2026030406/id-1" {
		t.Fatalf("records at %v", got)
	}
	// The same id with the same until, spelled in another location: still one bucket.
	if err := o.Spend(context.Background(), "id-1", anyOwner(), until.UTC()); !errors.Is(err, ErrReplayed) {
		t.Fatalf("same until in UTC: %v", err)
	}
}

// TestOneTimeRefusesUnrecordable: ids that could leave their path, and untils that would let
// Sweep remove the record at once, are refused before any write, as identity errors that are
// not ErrReplayed.
func TestOneTimeRefusesUnrecordable(t *testing.T) {
	o, fv, clock := newTestOneTime(t)
	now := clock.now()
	cases := []struct {
		name  string
		id    string
		until time.Time
	}{
		{"empty id", "", now.Add(time.Hour)},
		{"parent", "..", now.Add(time.Hour)},
		{"slash", "a/b", now.Add(time.Hour)},
		{"traversal", "../../sessions/x", now.Add(time.Hour)},
		{"dot", "a.b", now.Add(time.Hour)},
		{"percent", "%2e%2e", now.Add(time.Hour)},
		{"space", "a b", now.Add(time.Hour)},
		{"unicode", "ä", now.Add(time.Hour)},
		{"65 chars", strings.Repeat("a", 65), now.Add(time.Hour)},
		{"until now", "id", now},
		{"until past", "id", now.Add(-time.Second)},
		{"until zero", "id", time.Time{}},
		{"until year 10000", "id", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := o.Spend(context.Background(), tc.id, anyOwner(), tc.until)
			if err == nil || errors.Is(err, ErrReplayed) || !errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("Spend: %v, want a non-replay identity error", err)
			}
		})
	}
	if fv.writes != 0 {
		t.Fatalf("%d writes reached Vault", fv.writes)
	}
	if !ValidOneTimeID(strings.Repeat("a", 64)) || !ValidOneTimeID("A-z_0") || !ValidOneTimeID(testEnvelopeID) {
		t.Fatal("valid ids refused")
	}
}

// TestOneTimeSweep: Sweep removes the buckets whose hour has ended and only those; a swept id
// can be spent again (which is why until must outlive the envelope's maximum age).
func TestOneTimeSweep(t *testing.T) {
	o, fv, clock := newTestOneTime(t)
	ctx := context.Background()
	now := clock.now() // 05:30
	spendAt := func(id string, at, until time.Time) {
		t.Helper()
		clock.set(at)
		if err := o.Spend(ctx, id, anyOwner(), until); err != nil {
			t.Fatalf("Spend(%s): %v", id, err)
		}
	}
	spendAt("old-1", now.Add(-3*time.Hour), now.Add(-2*time.Hour))             // bucket 03
	spendAt("old-2", now.Add(-3*time.Hour), now.Add(-2*time.Hour+time.Minute)) // bucket 03
	spendAt("last-hour", now.Add(-time.Hour), now.Add(-time.Minute*31))        // bucket 04: 04:59
	spendAt("this-hour-past", now.Add(-time.Hour), now.Add(-time.Minute))      // bucket 05, until passed
	spendAt("this-hour", now.Add(-time.Minute), now.Add(time.Minute))          // bucket 05
	spendAt("next-hour", now, now.Add(time.Hour))                              // bucket 06
	clock.set(now)
	// Not ours: a record outside a bucket and a folder that is not an hour stay.
	fv.mu.Lock()
	fv.secrets["onetime/stray"] = &fakeSecret{version: 1, data: map[string]any{}}
	fv.secrets["onetime/notabucket/x"] = &fakeSecret{version: 1, data: map[string]any{}}
	fv.secrets["sessions/s1"] = &fakeSecret{version: 1, data: map[string]any{}}
	fv.mu.Unlock()

	n, err := o.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("Sweep removed %d, want 3", n)
	}
	want := []string{"onetime/2026030405/this-hour", "onetime/2026030405/this-hour-past",
		"onetime/2026030406/next-hour", "onetime/notabucket/x", "onetime/stray", "sessions/s1"}
	if got := fv.paths(); !slices.Equal(got, want) {
		t.Fatalf("after Sweep:\n got %v\nwant %v", got, want)
	}
	if n, err := o.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second Sweep: %d, %v", n, err)
	}

	// A swept id is gone for good: it can be spent again. Unswept ones cannot.
	if err := o.Spend(ctx, "old-1", anyOwner(), now.Add(time.Hour)); err != nil {
		t.Fatalf("Spend of a swept id: %v", err)
	}
	if err := o.Spend(ctx, "this-hour", anyOwner(), now.Add(time.Minute)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("Spend of an unswept id: %v", err)
	}

	// At 06:00 bucket 05 has ended.
	clock.set(time.Date(2026, 3, 4, 6, 0, 0, 0, time.UTC))
	if n, err := o.Sweep(ctx); err != nil || n != 2 {
		t.Fatalf("Sweep at 06:00: %d, %v", n, err)
	}
}

func TestOneTimeSweepEmpty(t *testing.T) {
	o, _, _ := newTestOneTime(t)
	if n, err := o.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("Sweep of nothing: %d, %v", n, err)
	}
}

// TestOneTimeVaultErrors: Vault failures other than a check-and-set conflict are retryable,
// never ErrReplayed, never an identity error, and name no token.
func TestOneTimeVaultErrors(t *testing.T) {
	for _, tc := range []struct {
		status      int
		unavailable bool
	}{
		{http.StatusServiceUnavailable, true},
		{http.StatusInternalServerError, true},
		{http.StatusTooManyRequests, true},
		{http.StatusForbidden, false},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			o, fv, clock := newTestOneTime(t)
			fv.setFail(tc.status)
			errs := []error{o.Spend(context.Background(), testEnvelopeID, anyOwner(), clock.now().Add(time.Hour))}
			_, err := o.Sweep(context.Background())
			errs = append(errs, err)
			for _, err := range errs {
				if err == nil || errors.Is(err, ErrReplayed) || errors.Is(err, identity.ErrUnauthenticated) {
					t.Fatalf("error %v", err)
				}
				if errors.Is(err, ErrUnavailable) != tc.unavailable {
					t.Fatalf("error %v: ErrUnavailable %v, want %v", err, !tc.unavailable, tc.unavailable)
				}
				if identity.ApplicationError(err) != err {
					t.Fatalf("error %v became non-retryable", err)
				}
				if strings.Contains(err.Error(), "test-vault-token") || !strings.HasPrefix(err.Error(), "tokenstore: ") {
					t.Fatalf("error %q", err)
				}
			}
			// After the outage the id is still unspent.
			fv.setFail(0)
			if err := o.Spend(context.Background(), testEnvelopeID, anyOwner(), clock.now().Add(time.Hour)); err != nil {
				t.Fatalf("Spend after the outage: %v", err)
			}
		})
	}
}

func TestNewOneTimeOptions(t *testing.T) {
	c := newFakeVault(t).client(t)
	for name, opts := range map[string]OneTimeOptions{
		"no client":   {Mount: "kv"},
		"no mount":    {Client: c},
		"slash mount": {Client: c, Mount: "/"},
		"dot prefix":  {Client: c, Mount: "kv", Prefix: "a/../b"},
		"double":      {Client: c, Mount: "kv", Prefix: "a//b"},
	} {
		if _, err := NewOneTime(opts); err == nil {
			t.Errorf("%s: NewOneTime accepted %+v", name, opts)
		}
	}
	o, err := NewOneTime(OneTimeOptions{Client: c, Mount: "/kv/", Prefix: "/pool-a/onetime/"})
	if err != nil {
		t.Fatal(err)
	}
	if o.mount != "kv" || o.prefix != "pool-a/onetime" {
		t.Fatalf("mount %q prefix %q", o.mount, o.prefix)
	}
}

// anyOwner returns a new owner on every call: each Spend is another operation.
func anyOwner() string { return rand.Text() }

func TestOneTimeSpendIsIdempotentForItsOwner(t *testing.T) {
	o, _, clock := newTestOneTime(t)
	until := clock.now().Add(time.Hour)
	if err := o.Spend(context.Background(), "owned-1", "run-1/start", until); err != nil {
		t.Fatal(err)
	}
	if err := o.Spend(context.Background(), "owned-1", "run-1/start", until); err != nil {
		t.Fatalf("a retry by the owner was refused: %v", err)
	}
	if err := o.Spend(context.Background(), "owned-1", "run-2/start", until); !errors.Is(err, ErrReplayed) {
		t.Fatalf("another owner: %v, want ErrReplayed", err)
	}
}
