package devstack

import (
	"net/url"
	"testing"
)

// Hydra's database pool is sized in its DSN: without max_conns it opens twice as many
// connections as there are CPUs (4 here), and a few hundred concurrent refreshes queued for
// one for about 20 s at a time.
func TestHydraDSNSizesThePool(t *testing.T) {
	cfg := HydraConfig("postgres://u:p@127.0.0.1:5433/hydra?sslmode=disable", hydraSecrets{}, func(string) string { return "" })
	u, err := url.Parse(cfg["dsn"].(string))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("max_conns") != "20" || q.Get("max_idle_conns") != "10" || q.Get("max_conn_idle_time") != "5m" || q.Get("sslmode") != "disable" {
		t.Errorf("hydra dsn query = %v", q)
	}
	if u.Host != "127.0.0.1:5433" || u.Path != "/hydra" || u.User.Username() != "u" {
		t.Errorf("hydra dsn changed beyond its query: %s@%s%s", u.User.Username(), u.Host, u.Path)
	}
	if got := hydraDSN("postgres://h/db?max_conns=50"); got != "postgres://h/db?max_conn_idle_time=5m&max_conns=50&max_idle_conns=10" {
		t.Errorf("a DSN's own pool size is kept: %s", got)
	}
	if got := hydraDSN("memory"); got != "memory" {
		t.Errorf("memory DSN became %q", got)
	}
}

// Hydra's rotation grace period comes from the setting, strict by default (the integration
// tests assume it).
func TestHydraRotationGrace(t *testing.T) {
	grace := func(env map[string]string) any {
		cfg := HydraConfig("postgres://x", hydraSecrets{}, func(k string) string { return env[k] })
		return cfg["oauth2"].(map[string]any)["grant"].(map[string]any)["refresh_token"].(map[string]any)["rotation_grace_period"]
	}
	if g := grace(nil); g != DefaultRefreshGrace || DefaultRefreshGrace != "0s" {
		t.Errorf("default grace %v", g)
	}
	if g := grace(map[string]string{SettingRefreshGrace: "2m"}); g != "2m" {
		t.Errorf("grace with the setting 2m: %v", g)
	}
}
