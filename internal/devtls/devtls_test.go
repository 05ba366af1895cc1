package devtls

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEnsureServesTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	f, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Created {
		t.Error("first Ensure created nothing")
	}
	for path, mode := range map[string]os.FileMode{f.Key: 0o600, f.CAKey: 0o600, f.Cert: 0o644, f.CA: 0o644, dir: 0o700 | os.ModeDir} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), st.Mode(), mode)
		}
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	pool, err := f.CertPool()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := splitPort(srv.URL)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Get("https://" + host + ":" + port + "/")
		if err != nil {
			t.Errorf("%s: %v", host, err)
			continue
		}
		resp.Body.Close()
	}
	// A client that does not trust the CA refuses the server.
	if resp, err := (&http.Client{}).Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Error("a client without the CA trusted the server")
	}
}

func splitPort(u string) (string, string, error) {
	i := len(u) - 1
	for i >= 0 && u[i] != ':' {
		i--
	}
	return u[:i], u[i+1:], nil
}

func TestEnsureIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	f, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := read(t, f)
	again, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || read(t, again) != before {
		t.Error("a second Ensure replaced valid files")
	}
}

func TestEnsureRenews(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, f Files)
		newCA  bool
	}{
		{"leaf key missing", func(t *testing.T, f Files) { os.Remove(f.Key) }, false},
		{"leaf garbage", func(t *testing.T, f Files) { os.WriteFile(f.Cert, []byte("x"), 0o644) }, false},
		{"leaf of another CA", func(t *testing.T, f Files) {
			other, _ := Ensure(t.TempDir())
			copyFile(t, other.Cert, f.Cert)
			copyFile(t, other.Key, f.Key)
		}, false},
		{"CA key missing", func(t *testing.T, f Files) { os.Remove(f.CAKey) }, true},
		{"CA key of another CA", func(t *testing.T, f Files) {
			other, _ := Ensure(t.TempDir())
			copyFile(t, other.CAKey, f.CAKey)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f, _ := Ensure(dir)
			ca := string(mustRead(t, f.CA))
			tc.break_(t, f)
			g, err := Ensure(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !g.Created {
				t.Error("nothing renewed")
			}
			if (string(mustRead(t, g.CA)) != ca) != tc.newCA {
				t.Errorf("CA replaced: %v, want %v", !tc.newCA, tc.newCA)
			}
			if _, err := tls.LoadX509KeyPair(g.Cert, g.Key); err != nil {
				t.Error(err)
			}
		})
	}
	// Near expiry, the leaf is reissued.
	dir := t.TempDir()
	f, _ := Ensure(dir)
	leaf := string(mustRead(t, f.Cert))
	g, err := ensureAt(dir, time.Now().Add(CertLifetime-RenewBefore+time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !g.Created || string(mustRead(t, g.Cert)) == leaf {
		t.Error("a leaf within RenewBefore of expiry was kept")
	}
}

func read(t *testing.T, f Files) string {
	return string(mustRead(t, f.CA)) + string(mustRead(t, f.CAKey)) + string(mustRead(t, f.Cert)) + string(mustRead(t, f.Key))
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, mustRead(t, from), 0o600); err != nil {
		t.Fatal(err)
	}
}
