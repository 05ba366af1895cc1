package pgaccess

import (
	"regexp"
	"testing"
)

var identifier = regexp.MustCompile(`^jit_[a-z0-9_]{0,20}_[0-9a-f]{16}$`)

func TestRoleName(t *testing.T) {
	if a, b := RoleName("wf-1", "bob"), RoleName("wf-1", "bob"); a != b {
		t.Errorf("RoleName is not deterministic: %s, %s", a, b)
	}
	if RoleName("wf-1", "bob") == RoleName("wf-2", "bob") {
		t.Error("two requests share a role")
	}
	for _, sub := range []string{"Bob.O'Brien@Example.COM; DROP ROLE", "7f3c2a1e-0000-4000-8000-000000000000-very-long-subject"} {
		if name := RoleName("wf-1", sub); !identifier.MatchString(name) {
			t.Errorf("RoleName(wf-1, %q) = %q: not a safe identifier", sub, name)
		}
	}
}

func FuzzRoleName(f *testing.F) {
	f.Add("wf-1", "bob")
	f.Add("", "")
	f.Add("a\x00b", "ü\"'; --")
	f.Fuzz(func(t *testing.T, requestID, subject string) {
		name := RoleName(requestID, subject)
		if !identifier.MatchString(name) || len(name) > 63 {
			t.Fatalf("RoleName(%q, %q) = %q: not a safe identifier", requestID, subject, name)
		}
	})
}

func TestValidDatabase(t *testing.T) {
	for name, ok := range map[string]bool{
		"demo": true, "a": true, "db_2": true, "Demo": false, "2db": false, "": false,
		`demo"; DROP ROLE x; --`: false, "a2345678901234567890123456789012345678901": false, "a234567890123456789012345678901234567890": true,
	} {
		if ValidDatabase(name) != ok {
			t.Errorf("ValidDatabase(%q) = %v, want %v", name, !ok, ok)
		}
	}
}
