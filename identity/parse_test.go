package identity

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]string{
		"role(admin)": "role(admin)",
		" all( anyRole(db-approver , admin), not(role(contractor)) ) ": "all(anyRole(db-approver, admin), not(role(contractor)))",
		"any(permission(can_approve_invoice), department(finance))":    "any(permission(can_approve_invoice), department(finance))",
		"sameDepartment(engineering)":                                  "sameDepartment(engineering)",
		"all()":                                                        "all()",
		"anyRole()":                                                    "anyRole()",
	} {
		p, err := ParsePolicy(in)
		if err != nil {
			t.Errorf("ParsePolicy(%q): %v", in, err)
			continue
		}
		if got := fmt.Sprint(p); got != want {
			t.Errorf("ParsePolicy(%q) = %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{"", "role", "role(", "role()", "role(a, b)", "not()", "not(role(a), role(b))",
		"admin(x)", "role(a))", "all(role(a)", "all(role(a) role(b))", string(make([]byte, 5000))} {
		if p, err := ParsePolicy(in); err == nil {
			t.Errorf("ParsePolicy(%q) = %v, want an error", in, p)
		}
	}
	deep := ""
	for range 40 {
		deep += "not("
	}
	if _, err := ParsePolicy(deep + "role(a)"); err == nil {
		t.Error("deep nesting accepted")
	}
}

// FuzzParsePolicy: no panic, and printing a parsed policy gives text that parses to the same
// policy.
func FuzzParsePolicy(f *testing.F) {
	f.Add("all(anyRole(db-approver, admin), not(role(contractor)))")
	f.Add("any(permission(p), sameDepartment(d), department(e))")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		again, err := ParsePolicy(fmt.Sprint(p))
		if err != nil {
			t.Fatalf("%q parses, its String %q does not: %v", s, fmt.Sprint(p), err)
		}
		if fmt.Sprint(again) != fmt.Sprint(p) {
			t.Fatalf("round trip %q -> %q", fmt.Sprint(p), fmt.Sprint(again))
		}
	})
}

func TestConfigErrors(t *testing.T) {
	if _, err := ParsePolicy("nope(x)"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ParsePolicy: %v", err)
	}
	if _, err := NewVerifier(context.Background(), VerifierOptions{Issuer: "https://idp", ClientID: "c", Algorithms: []string{"HS256"}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewVerifier: %v", err)
	}
}
