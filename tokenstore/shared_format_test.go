package tokenstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
)

// revokeLog is a SessionRefresher that records the sessions it revokes (and destroys them in
// the store, as a Refresher does).
type revokeLog struct {
	st      *Store
	mu      sync.Mutex
	revoked []string
}

func (r *revokeLog) Fresh(ctx context.Context, id string) (Session, error) { return r.st.Get(ctx, id) }

func (r *revokeLog) Revoke(ctx context.Context, id string) error {
	r.mu.Lock()
	r.revoked = append(r.revoked, id)
	r.mu.Unlock()
	return r.st.Destroy(ctx, id)
}

func (r *revokeLog) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.revoked)
}

// listingStore returns a Store over fv whose Vault also lists folders (LIST on metadata), as
// Sweep needs.
func (fv *fakeVault) listingStore(t *testing.T) *Store {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		folder, ok := strings.CutPrefix(r.URL.Path, "/v1/"+fv.mount+"/metadata/")
		if !ok || (r.Method != "LIST" && r.URL.Query().Get("list") != "true") {
			fv.serve(w, r)
			return
		}
		folder = strings.TrimSuffix(folder, "/") + "/"
		fv.mu.Lock()
		keys := []string{}
		for p := range fv.secrets {
			if rest, ok := strings.CutPrefix(p, folder); ok {
				if sub, _, deeper := strings.Cut(rest, "/"); deeper {
					rest = sub + "/"
				}
				if !slices.Contains(keys, rest) {
					keys = append(keys, rest)
				}
			}
		}
		fv.mu.Unlock()
		if len(keys) == 0 {
			vaultErrors(w, http.StatusNotFound)
			return
		}
		slices.Sort(keys)
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
	st, err := NewStore(StoreOptions{Client: c, Mount: fv.mount})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func formatShared(t *testing.T) (*fakeVault, *SharedSessions, *revokeLog) {
	t.Helper()
	fv := newFakeVault(t)
	st := fv.listingStore(t)
	rl := &revokeLog{st: st}
	s, err := NewSharedSessions(SharedSessionsOptions{Store: st, Refresher: rl, IDKey: bytes.Repeat([]byte{3}, MinSessionIDKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	return fv, s, rl
}

// seedSession puts a session (current format) with a holder list of the given data.
func seedSession(fv *fakeVault, sid string, holders map[string]any) {
	data := legacySession(sid, "refresh-"+sid[:4])
	data["format"] = SessionFormat
	fv.seed("sessions/"+sid, data)
	fv.seed("sessions/holders/"+sid, holders)
}

func TestHolderListsCarryTheirFormat(t *testing.T) {
	fv, s, _ := formatShared(t)
	id := &identity.Identity{Subject: "bob", Issuer: "https://idp.example.test/", ClientID: "starter", Expiry: time.Now().Add(time.Hour)}
	sid, err := s.Deposit(context.Background(), id, &oauth2.Token{AccessToken: "a", RefreshToken: "r"}, "run-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deposit(context.Background(), id, &oauth2.Token{AccessToken: "a", RefreshToken: "r"}, "run-b"); err != nil {
		t.Fatal(err)
	}
	if got := formatOf(t, fv.secret("sessions/holders/"+sid)); got != float64(HolderListFormat) {
		t.Fatalf("holder list format after deposits = %v, want %d", got, HolderListFormat)
	}
	if err := s.End(context.Background(), sid, "run-a"); err != nil {
		t.Fatal(err)
	}
	if got := formatOf(t, fv.secret("sessions/holders/"+sid)); got != float64(HolderListFormat) {
		t.Fatalf("holder list format after an End = %v, want %d", got, HolderListFormat)
	}
}

// TestHolderListWithoutFormatIsFormatOne: a holder list an earlier release wrote (no format)
// is read as format 1: its holders count, and the next write adds the format.
func TestHolderListWithoutFormatIsFormatOne(t *testing.T) {
	fv, s, rl := formatShared(t)
	sid := NewSessionID()
	seedSession(fv, sid, map[string]any{"holders": []any{"run-a", "run-b"}})
	if h, err := s.Holders(context.Background(), sid); err != nil || !slices.Equal(h, []string{"run-a", "run-b"}) {
		t.Fatalf("Holders = %q, %v", h, err)
	}
	if err := s.End(context.Background(), sid, "run-a"); err != nil {
		t.Fatal(err)
	}
	sec := fv.secret("sessions/holders/" + sid)
	if formatOf(t, sec) != float64(HolderListFormat) || len(rl.list()) != 0 {
		t.Fatalf("after End of one of two holders: format %v, revoked %q", formatOf(t, sec), rl.list())
	}
	if err := s.End(context.Background(), sid, "run-b"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rl.list(), []string{sid}) {
		t.Fatalf("the last End revoked %q", rl.list())
	}
}

// TestHolderListOfANewerFormatIsNotTouched is the attack: a newer worker keeps a holder list
// in a format this build does not know (its holders may be spelled otherwise, or live
// elsewhere). Reading its "holders" as this build's would let End (or Sweep) drop the one
// holder it recognises, find no other, and revoke a session that runs of the newer worker
// still hold. Every operation fails with a *FormatError, writes nothing and revokes nothing.
func TestHolderListOfANewerFormatIsNotTouched(t *testing.T) {
	for _, c := range []struct {
		name   string
		format any
	}{
		{"newer", HolderListFormat + 1},
		{"not a number", "two"},
		{"fraction", 1.5},
	} {
		t.Run(c.name, func(t *testing.T) {
			fv, s, rl := formatShared(t)
			sid := NewSessionID()
			seedSession(fv, sid, map[string]any{"format": c.format, "holders": []any{"run-a"}, "more": []any{"run-b"}})
			writes := fv.writes
			check := func(op string, err error) {
				t.Helper()
				var fe *FormatError
				if !errors.Is(err, ErrUnsupportedFormat) || !errors.As(err, &fe) || !strings.Contains(err.Error(), "holder list of session "+sid) {
					t.Errorf("%s = %v, want a *FormatError naming the holder list", op, err)
				}
			}
			_, err := s.Holders(context.Background(), sid)
			check("Holders", err)
			check("End", s.End(context.Background(), sid, "run-a"))
			_, err = s.hold(context.Background(), sid, "run-c", true)
			check("hold", err)
			if fv.writes != writes || fv.secret("sessions/holders/"+sid).version != 1 || fv.secret("sessions/"+sid) == nil {
				t.Errorf("a holder list of a newer format was written over (%d writes), or its session destroyed", fv.writes-writes)
			}
			if len(rl.list()) != 0 {
				t.Errorf("revoked %q", rl.list())
			}
		})
	}
}

// TestDepositRefusesAHolderListOfANewerFormat: a deposit that meets a holder list of a newer
// format fails closed, adds no hold and writes no session.
func TestDepositRefusesAHolderListOfANewerFormat(t *testing.T) {
	fv, s, _ := formatShared(t)
	sid := s.SessionID("rt-newer")
	fv.seed("sessions/holders/"+sid, map[string]any{"format": HolderListFormat + 1, "holders": []any{}})
	id := &identity.Identity{Subject: "bob", Issuer: "https://idp.example.test/"}
	_, err := s.Deposit(context.Background(), id, &oauth2.Token{AccessToken: "a", RefreshToken: "rt-newer"}, "run-a")
	if !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("Deposit = %v, want ErrUnsupportedFormat", err)
	}
	if fv.secret("sessions/"+sid) != nil || fv.secret("sessions/holders/"+sid).version != 1 {
		t.Fatal("the deposit wrote a session or a holder")
	}
}

// TestSweepSkipsHolderListsOfANewerFormat: Sweep leaves a session whose holder list is of a
// newer format alone (no revocation, no write), goes on with the other sessions, and then
// reports the skipped ones with an error wrapping ErrUnsupportedFormat (a *FormatError), so
// that the sweep is retried, on a newer worker if the pool has one.
func TestSweepSkipsHolderListsOfANewerFormat(t *testing.T) {
	fv, s, rl := formatShared(t)
	newer := NewSessionID()
	seedSession(fv, newer, map[string]any{"format": HolderListFormat + 1, "holders": []any{"wf-dead"}})
	var olds []string
	for range 3 {
		sid := NewSessionID()
		seedSession(fv, sid, map[string]any{"holders": []any{"wf-dead"}})
		olds = append(olds, sid)
	}
	ended, err := s.Sweep(context.Background(), fakeClosed{"wf-dead": true})
	var fe *FormatError
	if !errors.Is(err, ErrUnsupportedFormat) || !errors.As(err, &fe) || !strings.Contains(err.Error(), newer) {
		t.Fatalf("Sweep error = %v, want a *FormatError naming %s", err, newer)
	}
	if ended != len(olds) {
		t.Fatalf("Sweep ended %d sessions, want the %d others", ended, len(olds))
	}
	got := rl.list()
	slices.Sort(got)
	slices.Sort(olds)
	if !slices.Equal(got, olds) {
		t.Fatalf("revoked %q, want %q", got, olds)
	}
	if sec := fv.secret("sessions/holders/" + newer); sec == nil || sec.version != 1 || fv.secret("sessions/"+newer) == nil {
		t.Fatal("the sweep touched the session of a newer format")
	}
	// Nothing else left: the next sweep reports only the skipped one again.
	if ended, err := s.Sweep(context.Background(), fakeClosed{"wf-dead": true}); ended != 0 || !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("second Sweep = %d, %v", ended, err)
	}
}

// TestSweepSkipsASessionOfANewerFormat: when the holder list reads but ending the session
// meets a record of a newer format (the session itself), the sweep skips it the same way.
func TestSweepSkipsASessionOfANewerFormat(t *testing.T) {
	fv, s, _ := formatShared(t)
	st := s.store
	newer := NewSessionID()
	data := legacySession(newer, "refresh-x")
	data["format"] = SessionFormat + 1
	fv.seed("sessions/"+newer, data)
	fv.seed("sessions/holders/"+newer, map[string]any{"format": HolderListFormat, "holders": []any{"wf-dead"}})
	other := NewSessionID()
	seedSession(fv, other, map[string]any{"holders": []any{"wf-dead"}})
	s.refresher = getThenRevoke{&revokeLog{st: st}}
	ended, err := s.Sweep(context.Background(), fakeClosed{"wf-dead": true})
	if ended != 1 || !errors.Is(err, ErrUnsupportedFormat) || !strings.Contains(err.Error(), "session "+newer) {
		t.Fatalf("Sweep = %d, %v; want 1 ended and the newer session reported", ended, err)
	}
	if fv.secret("sessions/"+newer) == nil {
		t.Fatal("the session of a newer format was destroyed")
	}
}

// getThenRevoke revokes as a Refresher does: it reads the session first, so that a record of
// a newer format stops it.
type getThenRevoke struct{ *revokeLog }

func (g getThenRevoke) Revoke(ctx context.Context, id string) error {
	if _, err := g.st.Get(ctx, id); err != nil {
		return err
	}
	return g.revokeLog.Revoke(ctx, id)
}

type fakeClosed map[string]bool

// Closed: a chain's own entry ("<workflow id>/chain/<first run id>"), else the workflow's.
func (f fakeClosed) Closed(_ context.Context, workflowID, firstRunID string) (bool, error) {
	if closed, ok := f[workflowID+"/chain/"+firstRunID]; ok && firstRunID != "" {
		return closed, nil
	}
	return f[workflowID], nil
}

func TestCheckStoredFormat(t *testing.T) {
	for _, c := range []struct {
		v  any
		ok bool
	}{
		{nil, true}, {1, true}, {json.Number("1"), true}, {float64(1), true}, {json.Number("0"), true},
		{2, false}, {json.Number("2"), false}, {float64(2), false}, {json.Number("-1"), false},
		{json.Number("1.5"), false}, {1.5, false}, {json.Number("1e3"), false}, {json.Number("99999999999999999999"), false},
		{float64(1 << 40), false}, {"1", false}, {true, false}, {[]any{1}, false},
	} {
		err := CheckStoredFormat("x", c.v, 1)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrUnsupportedFormat)) {
			t.Errorf("CheckStoredFormat(%#v, 1) = %v", c.v, err)
		}
	}
}

// Run ids of the chains in the tests below.
const (
	run1 = "0193a1c2-7d1e-7a55-9f7e-2f0b7f2b6c11"
	run2 = "0193a1c2-7d1e-7a55-9f7e-2f0b7f2b6c12"
	run3 = "0193a1c2-7d1e-7a55-9f7e-2f0b7f2b6c13"
)

// TestRunChainHolders: each run chain of a workflow holds apart; ending one leaves the next
// chain's hold (and the session) alone, and a chain's end leaves the workflow id's own hold
// alone when the chain's hold was there. A chain's end releases the workflow id's hold that a
// run an earlier release started holds instead, so such a run still ends its session.
func TestRunChainHolders(t *testing.T) {
	_, s, rl := formatShared(t)
	ctx := context.Background()
	id := &identity.Identity{Subject: "bob", Issuer: "https://idp.example.test/", ClientID: "starter", Expiry: time.Now().Add(time.Hour)}
	tok := &oauth2.Token{AccessToken: "a", RefreshToken: "r"}
	sid, err := s.Deposit(ctx, id, tok, "wf/chain/"+run1)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"wf/chain/" + run2, "wf"} {
		if _, err := s.Deposit(ctx, id, tok, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.End(ctx, sid, "wf/chain/"+run1); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Holders(ctx, sid); !slices.Equal(h, []string{"wf/chain/" + run2, "wf"}) || len(rl.list()) != 0 {
		t.Fatalf("after the first chain's end: holders %q, revoked %q; want the others' holds, none", h, rl.list())
	}
	for _, h := range []string{"wf/chain/" + run2, "wf"} {
		if err := s.End(ctx, sid, h); err != nil {
			t.Fatal(err)
		}
	}
	if len(rl.list()) != 1 {
		t.Fatalf("after the last hold's end: revoked %q; want the session revoked", rl.list())
	}

	legacy, err := s.Deposit(ctx, id, &oauth2.Token{AccessToken: "a", RefreshToken: "r-legacy"}, "wf")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, legacy, "wf/chain/"+run3); err != nil || len(rl.list()) != 2 {
		t.Fatalf("a chain's end over a workflow id's hold: %v, revoked %q; want the session revoked", err, rl.list())
	}
}

// TestSweepRunChains: the sweep ends a chain's hold once that chain is over, even while a
// later chain of the same workflow id runs, and keeps the running chain's.
func TestSweepRunChains(t *testing.T) {
	fv, s, rl := formatShared(t)
	sid := NewSessionID()
	seedSession(fv, sid, map[string]any{"format": HolderListFormat, "holders": []any{"wf/chain/" + run1, "wf/chain/" + run2}})
	runs := fakeClosed{"wf": false, "wf/chain/" + run1: true, "wf/chain/" + run2: false}
	if n, err := s.Sweep(context.Background(), runs); err != nil || n != 0 {
		t.Fatalf("sweep: %d, %v; want 0 ended", n, err)
	}
	if h, _ := s.Holders(context.Background(), sid); !slices.Equal(h, []string{"wf/chain/" + run2}) || len(rl.list()) != 0 {
		t.Fatalf("holders after the sweep %q, revoked %q; want the running chain's only", h, rl.list())
	}
}

func TestHolderChain(t *testing.T) {
	for holder, want := range map[string][2]string{
		"wf":                                   {"wf", ""},
		"wf/chain/" + run1:                     {"wf", run1},
		"a/chain/b/chain/" + run1:              {"a/chain/b", run1},
		"wf/update/u1":                         {"wf", ""},
		"wf/update/u/chain/" + run1:            {"wf", ""},
		"wf/chain/not-a-run-id":                {"wf/chain/not-a-run-id", ""},
		"orders/2026/chain/" + run2:            {"orders/2026", run2},
		"wf/chain/" + run1 + "/chain/whatever": {"wf/chain/" + run1 + "/chain/whatever", ""},
	} {
		if wf, chain := holderChain(holder); wf != want[0] || chain != want[1] {
			t.Errorf("holderChain(%q) = %q, %q; want %q, %q", holder, wf, chain, want[0], want[1])
		}
	}
}

func TestIsRunID(t *testing.T) {
	for s, want := range map[string]bool{
		"0193a1c2-7d1e-7a55-9f7e-2f0b7f2b6c11": true,
		"0193A1C2-7D1E-7A55-9F7E-2F0B7F2B6C11": true,
		"default-test-run-id":                  false,
		"0193a1c2-7d1e-7a55-9f7e-2f0b7f2b6c1":  false,
		"0193a1c2x7d1e-7a55-9f7e-2f0b7f2b6c11": false,
		"0193a1c2-7d1e-7a55-9f7e-2f0b7f2b6c1g": false,
		"":                                     false,
	} {
		if got := IsRunID(s); got != want {
			t.Errorf("IsRunID(%q) = %v, want %v", s, got, want)
		}
	}
}
