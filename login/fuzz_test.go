package login

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: whatever the cache file holds, Load neither panics nor quotes the file in its
// error (a damaged file may still hold tokens).
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"access_token":"at-x","refresh_token":"rt-x","id_token":"id-x","expiry":"2030-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"access_token": "secret-tok`))
	f.Add([]byte(`{"expiry":"not a time","access_token":"secret-tok"}`))
	f.Add([]byte{0xff, 0xfe, '{'})
	f.Add([]byte(`{"format":2,"access_token":"secret-tok","refresh_token":"secret-tok"}`))
	f.Add([]byte(`{"format":"1","access_token":"secret-tok"}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, FileName)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, _ := NewCache(CacheOptions{Path: p})
		_, err := c.Load()
		if err != nil && strings.Contains(err.Error(), "secret-tok") {
			t.Errorf("error quotes the file: %v", err)
		}
	})
}
