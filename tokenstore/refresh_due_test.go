package tokenstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/identity"
)

// jwtShaped returns an unsigned compact JWS whose payload holds claims: what a stored ID
// token looks like to RefreshDue, which reads exp without verifying.
func jwtShaped(t testing.TB, claims map[string]any) string {
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + enc(b) + ".SECRET-signature"
}

// A session whose access token is good for an hour but whose ID token expires in 10s
// (an IdP whose ID tokens live shorter than its access tokens): Fresh refreshes, because
// the activities verify the ID token and would fail once it expired. Before the fix,
// Fresh handed out the session unchanged and RefreshDue named the access token's due time
// only.
func TestFreshRefreshesWhenIDTokenDue(t *testing.T) {
	e := newEnv(t)
	e.idp.now = e.clock.Now
	e.idp.idTTL = 60
	r := e.refresher(t, nil)
	now := e.clock.Now()
	idExp := now.Add(10 * time.Second)
	s, err := e.store.Create(context.Background(), Session{
		Subject: "bob", Issuer: e.idp.srv.URL, Audience: []string{"starter"}, ClientID: "starter",
		AccessToken: "AT-SECRET-initial", RefreshToken: e.idp.family(),
		IDToken: jwtShaped(t, map[string]any{"sub": "bob", "exp": idExp.Unix(), "iat": now.Add(-50 * time.Second).Unix()}),
		Expiry:  now.Add(time.Hour), IssuedAt: now.Add(-50 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	if due := r.RefreshDue(s); !due.Equal(idExp.Add(-30 * time.Second)) {
		t.Errorf("RefreshDue = %v, want the ID token's exp minus the skew, %v", due, idExp.Add(-30*time.Second))
	}
	got, err := e.fresh(r, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := e.idp.stats(); n != 1 || got.IDToken == s.IDToken {
		t.Fatalf("%d refreshes; the ID token due in 10s was not renewed", n)
	}
	// The new ID token lives 60s: due 30s before its exp, still before the access token's.
	if want := now.Add(30 * time.Second); !r.RefreshDue(got).Equal(want) {
		t.Errorf("RefreshDue after the refresh = %v, want %v", r.RefreshDue(got), want)
	}
	if _, err := e.fresh(r, s.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.idp.stats(); n != 1 {
		t.Fatalf("%d refreshes: refreshed a fresh session", n)
	}
}

func TestRefreshDueEarlierOfBothTokens(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil) // skew 30s
	now := e.clock.Now()
	at := func(d time.Duration) time.Time { return now.Add(d) }
	for _, c := range []struct {
		name string
		s    Session
		want time.Time
	}{
		{"access token earlier", Session{Expiry: at(time.Minute), IDTokenExpiry: at(time.Hour)}, at(30 * time.Second)},
		{"ID token earlier", Session{Expiry: at(time.Hour), IDTokenExpiry: at(time.Minute)}, at(30 * time.Second)},
		{"ID token unknown", Session{Expiry: at(time.Hour), IDToken: "opaque"}, at(time.Hour - 30*time.Second)},
		{"ID token exp from the payload of an old session", Session{Expiry: at(time.Hour),
			IDToken: jwtShaped(t, map[string]any{"exp": at(time.Minute).Unix()})}, at(30 * time.Second)},
		{"stored ID token exp wins over the payload", Session{Expiry: at(time.Hour), IDTokenExpiry: at(10 * time.Minute),
			IDToken: jwtShaped(t, map[string]any{"exp": at(time.Minute).Unix()})}, at(10*time.Minute - 30*time.Second)},
		{"kept ID token does not count", Session{Expiry: at(time.Hour), IDTokenExpiry: at(-time.Hour), IDTokenKept: true},
			at(time.Hour - 30*time.Second)},
		{"skew capped at half a short ID token's life", Session{Expiry: at(time.Hour), IssuedAt: now, IDTokenExpiry: at(20 * time.Second)},
			at(10 * time.Second)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := r.RefreshDue(c.s); !got.Equal(c.want) {
				t.Errorf("RefreshDue = %v, want %v", got, c.want)
			}
		})
	}
}

// keptSession stores a session whose ID token expires in 10s while its access token is good
// for an hour, at an IdP that answers refreshes without an ID token.
func (e *env) keptSession(t *testing.T) Session {
	e.idp.now = e.clock.Now
	e.idp.omitIDToken = true
	now := e.clock.Now()
	s, err := e.store.Create(context.Background(), Session{
		Subject: "bob", Issuer: e.idp.srv.URL, Audience: []string{"starter"}, ClientID: "starter",
		AccessToken: "AT-SECRET-initial", RefreshToken: e.idp.family(),
		IDToken: fakeIDToken("bob", "0", now.Add(-50*time.Second), 60), IDTokenExpiry: now.Add(10 * time.Second),
		Expiry: now.Add(time.Hour), IssuedAt: now.Add(-50 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A refresh without an ID token (OIDC Core 12.2): the verified ID token is kept, the person
// is re-checked through userinfo with the fresh access token before anything uses it, and
// the kept token's exp makes no further refresh due: one refresh, not one per call.
func TestFreshWithoutIDTokenKeepsItAndRechecksThroughUserinfo(t *testing.T) {
	e := newEnv(t)
	r := e.refresher(t, nil)
	s := e.keptSession(t)
	e.checker.onRecheck = func(idToken, accessToken string) {
		rec, _ := e.fv.stored(s.ID)
		if !rec.PendingCheck || !rec.IDTokenKept || rec.AccessToken != accessToken {
			t.Error("recheck before the refreshed tokens were stored")
		}
	}
	got, err := e.fresh(r, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := e.idp.stats(); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	if got.IDToken != s.IDToken || !got.IDTokenKept || !got.IDTokenExpiry.Equal(s.IDTokenExpiry) {
		t.Fatalf("ID token not kept: kept=%v exp=%v", got.IDTokenKept, got.IDTokenExpiry)
	}
	rc := e.checker.recheckLog()
	if len(rc) != 1 || rc[0].accessToken != got.AccessToken || rc[0].idToken != s.IDToken || !rc[0].until.Equal(got.Expiry) {
		t.Fatalf("rechecks %d (want 1, with the new access token, until its expiry)", len(rc))
	}
	if e.checker.calls != 0 {
		t.Errorf("VerifyIDToken called %d times on the kept token", e.checker.calls)
	}
	if due := r.RefreshDue(got); !due.Equal(got.Expiry.Add(-30 * time.Second)) {
		t.Errorf("RefreshDue = %v, want the access token's due time %v", due, got.Expiry.Add(-30*time.Second))
	}
	// Past the kept token's exp: no refresh (none could renew it), the session stays usable.
	e.clock.Advance(2 * time.Minute)
	for range 3 {
		if _, err := e.fresh(r, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := e.idp.stats(); n != 1 {
		t.Fatalf("%d refreshes: the kept ID token's exp made refreshes due", n)
	}
	// When the access token is due, the next refresh returns an ID token again: it is
	// verified and its exp counts again.
	e.idp.omitIDToken = false
	e.idp.idTTL = 60
	e.clock.Advance(got.Expiry.Sub(e.clock.Now()) - 10*time.Second)
	got2, err := e.fresh(r, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := e.idp.stats(); n != 2 || got2.IDTokenKept || got2.IDToken == s.IDToken || e.checker.calls != 1 {
		t.Fatalf("%d refreshes, kept=%v, %d verifications", n, got2.IDTokenKept, e.checker.calls)
	}
	if want := e.clock.Now().Add(60 * time.Second); !got2.IDTokenExpiry.Equal(want) {
		t.Errorf("IDTokenExpiry = %v, want the verified exp %v", got2.IDTokenExpiry, want)
	}
}

// userinfo names another person for the fresh access token, or refuses it: the refreshed
// tokens are wiped and the person must sign in again.
func TestFreshWithoutIDTokenRecheckRefused(t *testing.T) {
	for name, mod := range map[string]func(c *fakeChecker){
		"other subject":       func(c *fakeChecker) { c.userinfoSub = "mallory" },
		"userinfo refuses it": func(c *fakeChecker) { c.recheckFail = fmt.Errorf("%w: 401", identity.ErrInvalidToken) },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			mod(e.checker)
			r := e.refresher(t, nil)
			s := e.keptSession(t)
			if _, err := e.fresh(r, s.ID); !errors.Is(err, identity.ErrReauthRequired) {
				t.Fatalf("err %v, want ErrReauthRequired", err)
			}
			rec, _ := e.fv.stored(s.ID)
			if rec.AccessToken != "" || rec.RefreshToken != "" || rec.IDToken != "" {
				t.Fatal("refused tokens kept")
			}
		})
	}
}

// A userinfo endpoint that fails transiently leaves the refreshed tokens pending (stored,
// not used); the next call re-checks them without another refresh.
func TestFreshWithoutIDTokenRecheckTransient(t *testing.T) {
	e := newEnv(t)
	e.checker.recheckFail = fmt.Errorf("userinfo: %w", identity.ErrProviderUnavailable)
	r := e.refresher(t, nil)
	s := e.keptSession(t)
	if _, err := e.fresh(r, s.ID); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	rec, _ := e.fv.stored(s.ID)
	if !rec.PendingCheck || !rec.IDTokenKept || rec.RefreshToken != e.idp.currentRT(s.RefreshToken) {
		t.Fatal("refreshed tokens not kept pending")
	}
	e.checker.mu.Lock()
	e.checker.recheckFail = nil
	e.checker.mu.Unlock()
	got, err := e.fresh(r, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != rec.AccessToken {
		t.Fatal("not the pending tokens")
	}
	if n, _ := e.idp.stats(); n != 1 {
		t.Fatalf("%d refreshes", n)
	}
}

// No userinfo endpoint to re-check with: a configuration error, not a retry loop that wipes
// or hands out anything.
func TestFreshWithoutIDTokenNoUserinfo(t *testing.T) {
	e := newEnv(t)
	e.checker.recheckFail = fmt.Errorf("identity: no userinfo_endpoint: %w", identity.ErrInvalidConfig)
	r := e.refresher(t, nil)
	s := e.keptSession(t)
	_, err := e.fresh(r, s.ID)
	if !errors.Is(err, identity.ErrInvalidConfig) || errors.Is(err, ErrUnavailable) || errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("err %v, want ErrInvalidConfig only", err)
	}
	if rec, _ := e.fv.stored(s.ID); !rec.PendingCheck || rec.RefreshToken == "" {
		t.Fatal("tokens not kept pending")
	}
}

// Sessions stored before IDTokenExpiry and IDTokenKept existed still load and refresh; their
// ID token's exp is read from its payload.
func TestOldSessionRecordStillLoads(t *testing.T) {
	e := newEnv(t)
	e.idp.now = e.clock.Now
	r := e.refresher(t, nil)
	now := e.clock.Now()
	id := NewSessionID()
	rt := e.idp.family()
	idt := jwtShaped(t, map[string]any{"sub": "bob", "exp": now.Add(10 * time.Second).Unix()})
	// The data an older version wrote: no id_token_expiry, no id_token_kept.
	old := map[string]any{
		"id": id, "sub": "bob", "iss": e.idp.srv.URL, "aud": []string{"starter"}, "client_id": "starter",
		"access_token": "AT-SECRET-old", "id_token": idt, "refresh_token": rt, "token_type": "Bearer",
		"expiry": now.Add(time.Hour).Format(time.RFC3339Nano), "issued_at": now.Add(-time.Minute).Format(time.RFC3339Nano),
		"created": now.Add(-time.Minute).Format(time.RFC3339Nano),
	}
	e.fv.mu.Lock()
	e.fv.secrets["sessions/"+id] = &fakeSecret{version: 1, data: old}
	e.fv.mu.Unlock()
	s, err := e.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s.IDTokenKept || !s.IDTokenExpiry.IsZero() || s.IDToken != idt {
		t.Fatalf("old record loaded as kept=%v exp=%v", s.IDTokenKept, s.IDTokenExpiry)
	}
	if want := now.Add(-20 * time.Second); !r.RefreshDue(s).Equal(want) {
		t.Errorf("RefreshDue = %v, want the payload exp minus the skew %v", r.RefreshDue(s), want)
	}
	got, err := e.fresh(r, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Refreshes != 1 {
		t.Fatal("old session with a due ID token not refreshed")
	}
}

func TestPayloadExpiry(t *testing.T) {
	exp := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, raw string
		want      time.Time
	}{
		{"exp", jwtShaped(t, map[string]any{"exp": exp.Unix()}), exp},
		{"fractional exp", jwtShaped(t, map[string]any{"exp": float64(exp.Unix()) + 0.5}), exp},
		{"no exp", jwtShaped(t, map[string]any{"sub": "bob"}), time.Time{}},
		{"string exp", jwtShaped(t, map[string]any{"exp": "soon"}), time.Time{}},
		{"negative exp", jwtShaped(t, map[string]any{"exp": -1}), time.Time{}},
		{"huge exp", jwtShaped(t, map[string]any{"exp": 1e300}), time.Time{}},
		{"not a JWS", "IDT-SECRET-bob-1", time.Time{}},
		{"JWE", "a.b.c.d.e", time.Time{}},
		{"payload not base64url", "e30.***.sig", time.Time{}},
		{"payload not JSON", "e30." + base64.RawURLEncoding.EncodeToString([]byte("exp")) + ".sig", time.Time{}},
		{"empty", "", time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := payloadExpiry(c.raw); !got.Equal(c.want) {
				t.Errorf("payloadExpiry = %v, want %v", got, c.want)
			}
		})
	}
}

func FuzzPayloadExpiry(f *testing.F) {
	f.Add(jwtShaped(f, map[string]any{"exp": 1772359200}))
	f.Add("e30.eyJleHAiOjF9.x")
	f.Add("..")
	f.Fuzz(func(t *testing.T, raw string) {
		exp := payloadExpiry(raw)
		if !exp.IsZero() && (exp.Unix() <= 0 || exp.Unix() > maxUnixTime) {
			t.Fatalf("payloadExpiry(%q) = %v", raw, exp)
		}
	})
}
