package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/login"
)

// newerCache rewrites the logged-in session file as a newer starter might have: a newer
// format, and the access token expired (so that a command would refresh it).
func (f *fixture) newerCache() []byte {
	f.t.Helper()
	b, err := os.ReadFile(f.cache)
	if err != nil {
		f.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		f.t.Fatal(err)
	}
	m["format"] = login.CacheFormat + 1
	m["expiry"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if b, err = json.Marshal(m); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.cache, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return b
}

// TestNewerSessionFileFailsClosed: every command that reads the session file of a newer
// starter fails with advice (upgrade, or log in again), and none refreshes or revokes its
// tokens or changes the file: logout included, which leaves the file to the newer starter
// that can revoke what it holds. Logging in again replaces it, without revoking anything of
// it.
func TestNewerSessionFileFailsClosed(t *testing.T) {
	f := newFixture(t)
	f.login()
	before := f.newerCache()
	refreshes := f.idp.refreshes
	for _, args := range [][]string{
		{"whoami"}, {"request-access", "--resource", "demo", "--reason", "x"}, {"approve", "access-1"},
		{"list", "--requester", "me"}, {"logout"},
	} {
		res := f.run(args...)
		if res.code != ExitError || !strings.Contains(res.stderr, "written by a newer starter; upgrade it or log in again") ||
			!strings.Contains(res.stderr, f.cache) {
			t.Errorf("%v: exit %d, stderr %q", args, res.code, res.stderr)
		}
		res = f.run(append([]string{"--json"}, args...)...)
		if e := decode[ErrorJSON](t, res.stderr); e.Code != CodeNewerSessionFile {
			t.Errorf("%v --json: %+v", args, e)
		}
	}
	if f.idp.refreshes != refreshes || len(f.idp.revoked) != 0 {
		t.Errorf("a session file of a newer format was used: %d refreshes, %d revocations", f.idp.refreshes-refreshes, len(f.idp.revoked))
	}
	if after, _ := os.ReadFile(f.cache); !bytes.Equal(after, before) {
		t.Error("the session file of a newer starter was changed or deleted")
	}
	f.login()
	if len(f.idp.revoked) != 0 {
		t.Errorf("logging in again revoked %d tokens of the newer starter's file", len(f.idp.revoked))
	}
	c, _ := login.NewCache(login.CacheOptions{Path: f.cache})
	if _, err := c.Load(); err != nil {
		t.Fatalf("after logging in again: %v", err)
	}
}
