package login

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeRaw writes a cache file as another program (an earlier or a newer version) would.
func writeRaw(t *testing.T, c *Cache, v map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(c.Path()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Path(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// rawSession is a cache file's members without a format, as releases before numbered
// formats wrote them.
func rawSession(exp time.Time) map[string]any {
	return map[string]any{"issuer": "https://idp.test", "client_id": "starter", "subject": "bob",
		"audience": []string{"starter"}, "access_token": "at-0", "refresh_token": "rt-0", "id_token": "id-0",
		"expiry": exp.UTC().Format(time.RFC3339), "id_token_expiry": exp.UTC().Format(time.RFC3339)}
}

func TestCacheFileCarriesItsFormat(t *testing.T) {
	c := newCache(t)
	if err := c.Save(session(time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["format"] != float64(CacheFormat) || got["refresh_token"] != "rt-0" {
		t.Fatalf("cache file format = %v (refresh token kept: %t), want %d", got["format"], got["refresh_token"] == "rt-0", CacheFormat)
	}
}

// TestCacheFileWithoutFormatIsFormatOne: a file an earlier release wrote (no format) reads
// as format 1, and the next save writes the format.
func TestCacheFileWithoutFormatIsFormatOne(t *testing.T) {
	c := newCache(t)
	srv := newTokenServer(t)
	writeRaw(t, c, rawSession(time.Now().Add(-time.Minute)))
	s, err := c.Load()
	if err != nil || s.RefreshToken != "rt-0" || s.Subject != "bob" {
		t.Fatalf("Load of an unnumbered file = %v, %v", s, err)
	}
	if tok, err := newSource(t, c, srv, time.Now).Token(); err != nil || tok.RefreshToken != "rt-1" {
		t.Fatalf("refresh from an unnumbered file: %v, %v", tok, err)
	}
	b, _ := os.ReadFile(c.Path())
	if !bytes.Contains(b, []byte(`"format": 1`)) {
		t.Fatalf("the refreshed file has no format: %s", redactedKeys(b))
	}
}

// TestCacheFileOfANewerFormatFailsClosed is the attack: a newer starter wrote the cache in
// a format this build does not know; say it keeps the hand-over under another name, so that
// read as this build's, the refresh token looks like the cache's own. Refreshing it would be
// a second holder of a rotating refresh token (the IdP's reuse detection then ends the
// whole family, the running workflows' session included), and revoking it would end their
// session at once. Load fails with a *CacheFormatError; nothing is refreshed, revoked or
// written.
func TestCacheFileOfANewerFormatFailsClosed(t *testing.T) {
	for _, c := range []struct {
		name   string
		format any
	}{
		{"newer", CacheFormat + 1},
		{"not a number", "2"},
		{"fraction", 1.5},
		{"negative", -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache := newCache(t)
			srv := newTokenServer(t)
			raw := rawSession(time.Now().Add(-time.Minute))
			raw["format"] = c.format
			raw["handover"] = map[string]any{"at": time.Now().UTC().Format(time.RFC3339)}
			before := writeRaw(t, cache, raw)

			_, err := cache.Load()
			var fe *CacheFormatError
			if !errors.Is(err, ErrUnsupportedFormat) || !errors.As(err, &fe) || fe.Newest != CacheFormat || fe.Path != cache.Path() {
				t.Errorf("Load = %v, want a *CacheFormatError", err)
			}
			for _, secret := range []string{"rt-0", "at-0", "id-0"} {
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a token: %v", err)
				}
			}
			ts := newSource(t, cache, srv, time.Now)
			if _, err := ts.Token(); !errors.Is(err, ErrUnsupportedFormat) {
				t.Errorf("Token = %v, want ErrUnsupportedFormat", err)
			}
			if err := ts.HandOver(); !errors.Is(err, ErrUnsupportedFormat) {
				t.Errorf("HandOver = %v, want ErrUnsupportedFormat", err)
			}
			if n := srv.calls.Load(); n != 0 {
				t.Errorf("%d requests to the token endpoint from a cache of a newer format", n)
			}
			if after, _ := os.ReadFile(cache.Path()); !bytes.Equal(after, before) {
				t.Error("the cache of a newer format was written over")
			}
		})
	}
}

// redactedKeys lists the members of a cache file without their values.
func redactedKeys(b []byte) string {
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	keys := []string{}
	for k := range m {
		keys = append(keys, k)
	}
	return strings.Join(keys, ",")
}
