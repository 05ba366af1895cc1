package tokenstore

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func TestNewSharedSessionsOptions(t *testing.T) {
	fv := newFakeVault(t)
	st := fv.store(t, nil)
	r := &Refresher{}
	key := bytes.Repeat([]byte{7}, MinSessionIDKeySize)
	for name, opts := range map[string]SharedSessionsOptions{
		"no store":     {Refresher: r, IDKey: key},
		"no refresher": {Store: st, IDKey: key},
		"short key":    {Store: st, Refresher: r, IDKey: key[:MinSessionIDKeySize-1]},
		"dirty prefix": {Store: st, Refresher: r, IDKey: key, HoldersPrefix: "sessions/../keys"},
	} {
		if _, err := NewSharedSessions(opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	s, err := NewSharedSessions(SharedSessionsOptions{Store: st, Refresher: r, IDKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if s.prefix != "sessions/holders" {
		t.Errorf("default holders prefix %q", s.prefix)
	}
}

// The session id of a refresh token is stable under one key (every worker of a pool agrees),
// differs under another, and is one the store accepts; without a refresh token each deposit
// gets a session of its own.
func TestSharedSessionID(t *testing.T) {
	fv := newFakeVault(t)
	st := fv.store(t, nil)
	mk := func(b byte) *SharedSessions {
		s, err := NewSharedSessions(SharedSessionsOptions{Store: st, Refresher: &Refresher{}, IDKey: bytes.Repeat([]byte{b}, 32)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, a2, b := mk(1), mk(1), mk(2)
	id := a.SessionID("rt-1")
	if id != a2.SessionID("rt-1") {
		t.Error("two workers with one key disagree on a session id")
	}
	if id == b.SessionID("rt-1") || id == a.SessionID("rt-2") {
		t.Error("the session id does not depend on the key and the token")
	}
	if err := ValidateSessionID(id); err != nil {
		t.Errorf("session id %q: %v", id, err)
	}
	// The id is the one workers have always derived (HMAC-SHA256, base64url): live sessions
	// keep their ids across the move into this package.
	m := hmac.New(sha256.New, bytes.Repeat([]byte{1}, 32))
	m.Write([]byte("rt-1"))
	if want := base64.RawURLEncoding.EncodeToString(m.Sum(nil)); id != want {
		t.Errorf("session id %s, want %s", id, want)
	}
	if first, second := a.SessionID(""), a.SessionID(""); first == second {
		t.Error("deposits without a refresh token share a session")
	}
}
