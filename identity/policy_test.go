package identity

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestPolicy(t *testing.T) {
	viewer := &Identity{Subject: "erin", Roles: []string{"viewer"}, Department: "engineering"}
	dave := &Identity{Subject: "dave", Roles: []string{"finance-approver"}, Permissions: []string{"can_approve_invoice"}, Department: "finance"}
	for _, c := range []struct {
		name   string
		p      Policy
		id     *Identity
		reason string // "" allowed
		str    string
	}{
		{"role ok", HasRole("finance-approver"), dave, "", "role(finance-approver)"},
		{"role denied", HasRole("admin"), viewer, "needs role admin; has roles [viewer], department engineering", "role(admin)"},
		{"any role ok", AnyRole("admin", "viewer"), viewer, "", "anyRole(admin, viewer)"},
		{"any role denied", AnyRole("admin", "db-approver"), viewer, "needs one of roles [admin db-approver]; has roles [viewer], department engineering", "anyRole(admin, db-approver)"},
		{"any role, none given", AnyRole(), viewer, "needs one of roles []; has roles [viewer], department engineering", "anyRole()"},
		{"permission ok", HasPermission("can_approve_invoice"), dave, "", "permission(can_approve_invoice)"},
		{"permission denied", HasPermission("can_approve_invoice"), &Identity{Subject: "x", Roles: []string{"viewer"}},
			"needs permission can_approve_invoice; has roles [viewer]", "permission(can_approve_invoice)"},
		{"department ok", InDepartment("finance"), dave, "", "department(finance)"},
		{"department denied", InDepartment("finance"), viewer, "needs department finance; has roles [viewer], department engineering", "department(finance)"},
		{"same department ok", SameDepartment("engineering"), viewer, "", "sameDepartment(engineering)"},
		{"same department denied", SameDepartment("finance"), viewer, "needs the request's department finance; has roles [viewer], department engineering", "sameDepartment(finance)"},
		{"same department, request has none", SameDepartment(""), &Identity{Subject: "x"}, "needs the request's department, which is empty; has roles []", "sameDepartment()"},
		{"all ok", All(HasRole("finance-approver"), InDepartment("finance")), dave, "", "all(role(finance-approver), department(finance))"},
		{"all denied at second", All(HasRole("finance-approver"), InDepartment("engineering")), dave,
			"needs department engineering; has roles [finance-approver], permissions [can_approve_invoice], department finance", ""},
		{"all of nothing", All(), viewer, "", "all()"},
		{"any ok", Any(HasRole("admin"), HasPermission("can_approve_invoice")), dave, "", "any(role(admin), permission(can_approve_invoice))"},
		{"any denied", Any(HasRole("admin"), HasPermission("can_approve_invoice")), viewer,
			"needs any of [role admin | permission can_approve_invoice]; has roles [viewer], department engineering", ""},
		{"any of nothing", Any(), viewer, "needs any of []; has roles [viewer], department engineering", "any()"},
		{"not ok", Not(HasRole("contractor")), viewer, "", "not(role(contractor))"},
		{"not denied", Not(InDepartment("finance")), dave, "needs not department finance; has roles [finance-approver], permissions [can_approve_invoice], department finance", "not(department(finance))"},
		{"nested", All(Any(HasRole("db-approver"), HasRole("admin")), Not(SameDepartment("finance"))), viewer,
			"needs any of [role db-approver | role admin]; has roles [viewer], department engineering",
			"all(any(role(db-approver), role(admin)), not(sameDepartment(finance)))"},
		{"nil inside all", All(nil), viewer, "needs a policy that is nil (a configuration error); has roles [viewer], department engineering", ""},
		{"not nil", Not(nil), viewer, "needs not <nil>; has roles [viewer], department engineering", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.p.Check(c.id)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
			} else {
				var d *DeniedError
				if !errors.As(err, &d) || !errors.Is(err, ErrForbidden) {
					t.Fatalf("want *DeniedError, got %v", err)
				}
				if d.Reason != c.reason || d.Subject != c.id.Subject {
					t.Fatalf("reason %q\nwant   %q", d.Reason, c.reason)
				}
			}
			if c.str != "" && fmt.Sprint(c.p) != c.str {
				t.Fatalf("String() = %q, want %q", fmt.Sprint(c.p), c.str)
			}
			if err := c.p.Check(nil); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("nil identity: got %v", err)
			}
		})
	}
}

func TestRequire(t *testing.T) {
	ctx := context.Background()
	if _, err := Require(ctx, All()); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("no identity: %v", err)
	}
	dave := &Identity{Subject: "dave", Permissions: []string{"can_approve_invoice"}}
	ctx = WithActivity(ctx, dave)
	if id, err := Require(ctx, HasPermission("can_approve_invoice")); err != nil || id != dave {
		t.Fatalf("got %v, %v", id, err)
	}
	_, err := Require(ctx, HasRole("admin"))
	var d *DeniedError
	if !errors.As(err, &d) {
		t.Fatalf("want denial, got %v", err)
	}
	if ae := ApplicationError(err); ae == err {
		t.Fatal("a denial must become an ApplicationError")
	}
	if _, err := Require(ctx, nil); !errors.Is(err, ErrForbidden) {
		t.Fatalf("nil policy: %v", err)
	}
}
