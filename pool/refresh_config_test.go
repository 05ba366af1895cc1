package pool

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The refresh settings come from the environment, with config.Vars' defaults, and are
// checked: a negative grace period or cap is refused with the variable's name.
func TestRefreshSettingsFromEnv(t *testing.T) {
	c, err := FromLookup(lookup("OIDCFLOW_REFRESH_TIMEOUT", "2m", "OIDCFLOW_REFRESH_ROTATION_GRACE", "30s",
		"OIDCFLOW_MAX_CONCURRENT_REFRESHES", "4"))
	if err != nil {
		t.Fatal(err)
	}
	if c.RefreshTimeout != 2*time.Minute || c.RefreshRotationGrace != 30*time.Second || c.MaxConcurrentRefreshes != 4 {
		t.Errorf("refresh settings %s, %s, %d", c.RefreshTimeout, c.RefreshRotationGrace, c.MaxConcurrentRefreshes)
	}
	d := Config{}.withDefaults()
	if d.RefreshTimeout != time.Minute || d.RefreshRotationGrace != 0 || d.MaxConcurrentRefreshes != 16 {
		t.Errorf("defaults %s, %s, %d", d.RefreshTimeout, d.RefreshRotationGrace, d.MaxConcurrentRefreshes)
	}
	for _, bad := range [][2]string{{"OIDCFLOW_REFRESH_ROTATION_GRACE", "-1s"}, {"OIDCFLOW_MAX_CONCURRENT_REFRESHES", "-1"}} {
		c, err := FromLookup(lookup("OIDCFLOW_ISSUER", "https://idp.example", "OIDCFLOW_VAULT_ROLE_ID", "r", bad[0], bad[1]))
		if err == nil {
			err = c.Validate()
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%s: %v", bad[0], bad[1], err)
		}
	}
}
