package tokenstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func testSession(now time.Time) Session {
	return Session{
		Subject: "bob", Issuer: "https://idp.example", Audience: []string{"starter"}, ClientID: "starter",
		AccessToken: "AT-SECRET-x", IDToken: "IDT-SECRET-bob-0", RefreshToken: "RT-SECRET-x", TokenType: "bearer",
		Expiry: now.Add(5 * time.Minute), IssuedAt: now,
	}
}

func TestStoreCreateGetUpdateDestroy(t *testing.T) {
	ctx := context.Background()
	fv := newFakeVault(t)
	clock := newFakeClock()
	st := fv.store(t, clock.Now)

	s, err := st.Create(ctx, testSession(clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateSessionID(s.ID); err != nil || len(s.ID) != 43 {
		t.Fatalf("id %q: %v", s.ID, err)
	}
	if s.Version != 1 || !s.Created.Equal(clock.Now()) {
		t.Fatalf("created %v", s)
	}
	got, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RefreshToken != "RT-SECRET-x" || got.AccessToken != "AT-SECRET-x" || got.Version != 1 ||
		!got.Expiry.Equal(s.Expiry) || got.Audience[0] != "starter" {
		t.Fatalf("got %+v", toRecord(got))
	}
	got.AccessToken = "AT-SECRET-y"
	upd, err := st.Update(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	if upd.Version != 2 {
		t.Fatalf("version %d", upd.Version)
	}
	if err := st.Destroy(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after destroy: %v", err)
	}
	if err := st.Destroy(ctx, s.ID); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
}

func TestStoreCheckAndSetConflict(t *testing.T) {
	ctx := context.Background()
	fv := newFakeVault(t)
	st := fv.store(t, nil)
	s, err := st.Create(ctx, testSession(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, s); !errors.Is(err, ErrConflict) {
		t.Fatalf("create existing: %v", err)
	}
	a, _ := st.Get(ctx, s.ID)
	b, _ := st.Get(ctx, s.ID)
	if _, err := st.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(ctx, b); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if err := st.Destroy(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(ctx, b); !errors.Is(err, ErrConflict) {
		t.Fatalf("update of destroyed: %v", err)
	}
	if _, err := st.Update(ctx, Session{ID: s.ID}); !errors.Is(err, ErrConflict) {
		t.Fatalf("update without version: %v", err)
	}
}

func TestStoreVaultUnavailable(t *testing.T) {
	ctx := context.Background()
	fv := newFakeVault(t)
	st := fv.store(t, nil)
	s, err := st.Create(ctx, testSession(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		fv.setFail(status)
		_, err := st.Get(ctx, s.ID)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
			t.Errorf("status %d: %v", status, err)
		}
	}
	fv.setFail(0)
	fv.srv.Close()
	if _, err := st.Update(ctx, s); !errors.Is(err, ErrUnavailable) {
		t.Errorf("closed server: %v", err)
	}
}

func TestStoreRejectsBadIDs(t *testing.T) {
	fv := newFakeVault(t)
	st := fv.store(t, nil)
	for _, id := range []string{"", "short", "../../sys/policy/x-aaaaaaaaaaaa", "a/b/cccccccccccccccc", strings.Repeat("a", 129), "aaaaaaaaaaaaaaaa?x=1"} {
		if _, err := st.Get(context.Background(), id); !errors.Is(err, ErrInvalidSessionID) {
			t.Errorf("Get(%q): %v", id, err)
		}
	}
}

func FuzzValidateSessionID(f *testing.F) {
	f.Add(NewSessionID())
	f.Add("../../etc/passwd")
	f.Add("aaaaaaaaaaaaaaaa%2f")
	f.Fuzz(func(t *testing.T, id string) {
		if ValidateSessionID(id) != nil {
			return
		}
		if strings.ContainsAny(id, "/.%?#\\ \x00") {
			t.Fatalf("accepted %q", id)
		}
	})
}

func TestSessionRedaction(t *testing.T) {
	s := testSession(time.Now())
	s.ID = NewSessionID()
	var lb logBuffer
	lb.logger().Info("x", "session", s)
	slog.New(slog.NewTextHandler(&lb, nil)).Info("x", "session", s)
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), fmt.Sprintf("%v", &s), lb.String(), string(js)}
	for _, out := range outs {
		if strings.Contains(out, "SECRET") {
			t.Errorf("token leaked: %s", out)
		}
		if !strings.Contains(out, s.ID) {
			t.Errorf("id missing: %s", out)
		}
	}
}
