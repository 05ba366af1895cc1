package tokenstore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// legacySession is a session record as a release before numbered formats wrote it: no
// "format", no id_token_expiry, no id_token_kept.
func legacySession(id, refreshToken string) map[string]any {
	return map[string]any{
		"id": id, "sub": "bob", "iss": "https://idp.example.test/", "aud": []any{"starter"},
		"client_id": "starter", "access_token": "access-1", "id_token": "id-1",
		"refresh_token": refreshToken, "token_type": "Bearer",
		"expiry": "2026-03-01T10:05:00Z", "issued_at": "2026-03-01T10:00:00Z", "created": "2026-03-01T10:00:00Z",
	}
}

// seed puts data at path as its version 1, as another writer would have.
func (fv *fakeVault) seed(path string, data map[string]any) {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	fv.secrets[path] = &fakeSecret{version: 1, data: data}
}

func (fv *fakeVault) secret(path string) *fakeSecret {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	return fv.secrets[path]
}

// beforeWrites returns a Store whose Vault runs hook before it handles each write, as a
// concurrent writer that gets in between a read and a write.
func (fv *fakeVault) beforeWrites(t *testing.T, hook func(n int, path string)) *Store {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			_, path, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1/"+fv.mount+"/"), "/")
			hook(i, path)
		}
		fv.serve(w, r)
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
	st, err := NewStore(StoreOptions{Client: c, Mount: fv.mount})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func formatOf(t *testing.T, s *fakeSecret) any {
	t.Helper()
	if s == nil {
		t.Fatal("no secret")
	}
	return s.data["format"]
}

func TestSessionRecordsCarryTheirFormat(t *testing.T) {
	fv := newFakeVault(t)
	st := fv.store(t, nil)
	s, err := st.Create(context.Background(), Session{Subject: "bob", AccessToken: "a", RefreshToken: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if got := formatOf(t, fv.secret("sessions/"+s.ID)); got != float64(SessionFormat) {
		t.Fatalf("stored format = %v, want %d", got, SessionFormat)
	}
	s.AccessToken = "b"
	if _, err := st.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if got := formatOf(t, fv.secret("sessions/"+s.ID)); got != float64(SessionFormat) {
		t.Fatalf("format after an update = %v, want %d", got, SessionFormat)
	}
}

// TestGetUpgradesAnUnnumberedSession: a session an earlier release stored (no format) reads
// with all its fields and is rewritten in SessionFormat, with check-and-set; the version
// returned is the rewritten one, so the caller's next check-and-set write succeeds.
func TestGetUpgradesAnUnnumberedSession(t *testing.T) {
	fv := newFakeVault(t)
	st := fv.store(t, nil)
	id := NewSessionID()
	fv.seed("sessions/"+id, legacySession(id, "refresh-1"))

	s, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 2 || s.RefreshToken != "refresh-1" || s.AccessToken != "access-1" || s.Subject != "bob" ||
		!s.Expiry.Equal(time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC)) || !s.IDTokenExpiry.IsZero() {
		t.Fatalf("upgraded session = %v (expiry %s, id token expiry %s)", s, s.Expiry, s.IDTokenExpiry)
	}
	sec := fv.secret("sessions/" + id)
	if sec.version != 2 || formatOf(t, sec) != float64(SessionFormat) || sec.data["refresh_token"] != "refresh-1" {
		t.Fatalf("stored after the upgrade: version %d, data %v", sec.version, sec.data["format"])
	}
	s.AccessToken = "access-2"
	if _, err := st.Update(context.Background(), s); err != nil {
		t.Fatalf("update after the upgrade: %v", err)
	}
	// Read again: nothing more to upgrade, no write.
	writes := fv.writes
	if _, err := st.Get(context.Background(), id); err != nil || fv.writes != writes {
		t.Fatalf("a second Get: %v, %d writes", err, fv.writes-writes)
	}
}

// TestGetUpgradeLosesToAConcurrentRotation is the lost-rotation attack on the upgrade: an
// earlier release's worker rotates the refresh token (and writes the old format again)
// between Get's read and its rewrite. A rewrite that did not check-and-set on the version
// read would write the spent refresh token back over the rotated one, and the next refresh
// would trip the IdP's reuse detection. The rotation wins; Get upgrades what it wrote.
func TestGetUpgradeLosesToAConcurrentRotation(t *testing.T) {
	fv := newFakeVault(t)
	id := NewSessionID()
	path := "sessions/" + id
	fv.seed(path, legacySession(id, "refresh-1"))
	st := fv.beforeWrites(t, func(n int, p string) {
		if n == 1 && p == path {
			fv.mu.Lock()
			fv.secrets[path] = &fakeSecret{version: 2, data: legacySession(id, "refresh-2")}
			fv.mu.Unlock()
		}
	})

	s, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	sec := fv.secret(path)
	if s.RefreshToken != "refresh-2" || sec.data["refresh_token"] != "refresh-2" {
		t.Fatalf("after the race: Get returned the refresh token %q, Vault holds %q; want the rotated one", s.RefreshToken, sec.data["refresh_token"])
	}
	if sec.version != 3 || s.Version != 3 || formatOf(t, sec) != float64(SessionFormat) {
		t.Fatalf("after the race: version %d (Get %d), format %v; want version 3 in format %d", sec.version, s.Version, formatOf(t, sec), SessionFormat)
	}
}

// TestGetUpgradeNeverResurrectsADestroyedSession: a session destroyed (the run ended, the
// token revoked) between Get's read and its rewrite stays destroyed.
func TestGetUpgradeNeverResurrectsADestroyedSession(t *testing.T) {
	fv := newFakeVault(t)
	id := NewSessionID()
	path := "sessions/" + id
	fv.seed(path, legacySession(id, "refresh-1"))
	st := fv.beforeWrites(t, func(n int, p string) {
		if n == 1 {
			fv.mu.Lock()
			delete(fv.secrets, path)
			fv.mu.Unlock()
		}
	})
	if _, err := st.Get(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a session destroyed during the upgrade: %v, want ErrNotFound", err)
	}
	if fv.secret(path) != nil {
		t.Fatal("the upgrade wrote a destroyed session back")
	}
}

// TestGetUpgradeGivesUpToABusySession: when other writers keep winning, Get returns the
// session as read (its older format reads fine) instead of failing.
func TestGetUpgradeGivesUpToABusySession(t *testing.T) {
	fv := newFakeVault(t)
	id := NewSessionID()
	path := "sessions/" + id
	fv.seed(path, legacySession(id, "refresh-1"))
	st := fv.beforeWrites(t, func(_ int, p string) {
		fv.mu.Lock()
		s := fv.secrets[p]
		fv.secrets[p] = &fakeSecret{version: s.version + 1, data: s.data}
		fv.mu.Unlock()
	})
	s, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s.RefreshToken != "refresh-1" || s.Version != fv.secret(path).version {
		t.Fatalf("Get = %v, want the latest version read (%d)", s, fv.secret(path).version)
	}
}

// TestGetRefusesANewerFormat: a record of a format this build does not know (a newer worker
// wrote it) fails closed with a *FormatError that says to upgrade, whatever else it holds,
// and is left as it is.
func TestGetRefusesANewerFormat(t *testing.T) {
	fv := newFakeVault(t)
	st := fv.store(t, nil)
	for _, c := range []struct {
		name   string
		format any
		id     any
	}{
		{"newer", SessionFormat + 1, nil},
		{"newer with fields this build cannot decode", 7, 12345},
		{"negative", -1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := NewSessionID()
			data := legacySession(id, "refresh-1")
			data["format"] = c.format
			if c.id != nil {
				data["id"] = c.id
			}
			fv.seed("sessions/"+id, data)
			writes := fv.writes
			_, err := st.Get(context.Background(), id)
			var fe *FormatError
			if !errors.Is(err, ErrUnsupportedFormat) || !errors.As(err, &fe) || fe.Newest != SessionFormat {
				t.Fatalf("Get = %v, want a *FormatError", err)
			}
			if !strings.Contains(err.Error(), "upgrade this worker") || !strings.Contains(err.Error(), "session "+id) {
				t.Errorf("message %q does not name the session or say to upgrade", err)
			}
			if strings.Contains(err.Error(), "refresh-1") || strings.Contains(err.Error(), "access-1") {
				t.Errorf("message %q carries a token", err)
			}
			if fv.writes != writes || fv.secret("sessions/"+id).version != 1 {
				t.Error("a record of a newer format was written over")
			}
		})
	}
}

func TestCheckFormat(t *testing.T) {
	for _, c := range []struct {
		format int
		ok     bool
	}{{0, true}, {1, true}, {2, true}, {3, false}, {-1, false}} {
		err := CheckFormat("holder list of session x", c.format, 2)
		if (err == nil) != c.ok {
			t.Errorf("CheckFormat(%d, 2) = %v", c.format, err)
		}
	}
}

func TestOneTimeRecordsCarryTheirFormat(t *testing.T) {
	fv := newFakeVault(t)
	o, err := NewOneTime(OneTimeOptions{Client: fv.client(t), Mount: fv.mount})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	if err := o.Spend(context.Background(), "q83vEjRWeJq83vEjRWeJqw", "worker-a", until); err != nil {
		t.Fatal(err)
	}
	if got := formatOf(t, fv.secret("onetime/"+bucketOf(until)+"/q83vEjRWeJq83vEjRWeJqw")); got != float64(OneTimeFormat) {
		t.Fatalf("stored format = %v, want %d", got, OneTimeFormat)
	}
}

// TestOneTimeRefusesANewerFormat: a record of a format this build does not know is not
// judged, even when it seems to name the same owner (its owner may mean something else
// there): the spend fails with a *FormatError, and the id is not honoured. A record without
// a format (written before formats were numbered) is read as format 1.
func TestOneTimeRefusesANewerFormat(t *testing.T) {
	fv := newFakeVault(t)
	o, err := NewOneTime(OneTimeOptions{Client: fv.client(t), Mount: fv.mount})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	record := func(format any) map[string]any {
		d := map[string]any{"until": until.UTC().Format(time.RFC3339Nano), "spent_at": time.Now().UTC().Format(time.RFC3339Nano), "owner": "worker-a"}
		if format != nil {
			d["format"] = format
		}
		return d
	}
	for _, c := range []struct {
		name   string
		format any
		want   error // nil: the same owner's retry succeeds
	}{
		{"unnumbered", nil, nil},
		{"current", OneTimeFormat, nil},
		{"newer", OneTimeFormat + 1, ErrUnsupportedFormat},
		{"not a number", "two", ErrUnsupportedFormat},
		{"fraction", 1.5, ErrUnsupportedFormat},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := strings.ReplaceAll(c.name, " ", "-") + "-aaaaaaaaaaaa"
			fv.seed("onetime/"+bucketOf(until)+"/"+id, record(c.format))
			err := o.Spend(context.Background(), id, "worker-a", until)
			if c.want == nil {
				if err != nil {
					t.Fatalf("the owner's retry over a %s record: %v", c.name, err)
				}
				return
			}
			var fe *FormatError
			if !errors.Is(err, c.want) || !errors.As(err, &fe) || errors.Is(err, ErrReplayed) {
				t.Fatalf("Spend over a %s record = %v, want a *FormatError", c.name, err)
			}
		})
	}
}
