package identity

import (
	"context"
	"fmt"
	"strings"
)

// Policy decides whether an identity may do something. Check returns nil, a *DeniedError
// that says what was needed and what the identity has, or ErrUnauthenticated for a nil
// identity. Every policy this package builds also has a String method (fmt prints it) that
// describes the rule, for whoami output and logs.
type Policy interface {
	Check(*Identity) error
}

// Require returns the activity's verified identity if it satisfies p. Sensitive activities
// begin with it:
//
//	id, err := identity.Require(ctx, identity.HasPermission("can_approve_invoice"))
//	if err != nil {
//		return identity.ApplicationError(err)
//	}
func Require(ctx context.Context, p Policy) (*Identity, error) {
	id, err := FromActivity(ctx)
	if err != nil {
		return nil, fmt.Errorf("identity: the activity carries no verified identity (is the oidcflow worker interceptor registered?): %w", err)
	}
	if p == nil {
		return nil, fmt.Errorf("identity: nil policy; pass identity.All() to require only a verified identity: %w", ErrForbidden)
	}
	if err := p.Check(id); err != nil {
		return nil, err
	}
	return id, nil
}

// rule is a policy this package builds: besides Check and String it can say what it
// needs ("role engineer") for a denial message.
type rule interface {
	Policy
	fmt.Stringer
	need() string
}

func deny(id *Identity, need string) error {
	return &DeniedError{Subject: id.Subject, Reason: "needs " + need + "; " + has(id)}
}

// has describes what the identity holds: its roles, plus permissions and department when set.
func has(id *Identity) string {
	s := fmt.Sprintf("has roles %v", id.Roles)
	if len(id.Permissions) > 0 {
		s += fmt.Sprintf(", permissions %v", id.Permissions)
	}
	if id.Department != "" {
		s += ", department " + id.Department
	}
	return s
}

func nilIdentity(p fmt.Stringer) error {
	return fmt.Errorf("identity: no identity to check against policy %s: %w", p, ErrUnauthenticated)
}

type roleRule struct{ role string }

// HasRole requires the effective role role (after nested-role expansion).
func HasRole(role string) Policy { return roleRule{role} }

func (r roleRule) Check(id *Identity) error {
	if id == nil {
		return nilIdentity(r)
	}
	if !id.HasRole(r.role) { // check:policy-role
		return deny(id, r.need())
	}
	return nil
}
func (r roleRule) need() string   { return "role " + r.role }
func (r roleRule) String() string { return "role(" + r.role + ")" }

type anyRoleRule struct{ roles []string }

// AnyRole requires at least one of roles. With no roles it denies everyone.
func AnyRole(roles ...string) Policy { return anyRoleRule{append([]string(nil), roles...)} }

func (r anyRoleRule) Check(id *Identity) error {
	if id == nil {
		return nilIdentity(r)
	}
	for _, role := range r.roles {
		if id.HasRole(role) {
			return nil
		}
	}
	return deny(id, r.need())
}
func (r anyRoleRule) need() string   { return fmt.Sprintf("one of roles %v", r.roles) }
func (r anyRoleRule) String() string { return "anyRole(" + strings.Join(r.roles, ", ") + ")" }

type permRule struct{ perm string }

// HasPermission requires permission perm.
func HasPermission(perm string) Policy { return permRule{perm} }

func (r permRule) Check(id *Identity) error {
	if id == nil {
		return nilIdentity(r)
	}
	if !id.HasPermission(r.perm) { // check:policy-perm
		return deny(id, r.need())
	}
	return nil
}
func (r permRule) need() string   { return "permission " + r.perm }
func (r permRule) String() string { return "permission(" + r.perm + ")" }

type deptRule struct {
	dept string
	same bool // the department comes from the request, not from configuration
}

// InDepartment requires the identity's department to be dept (exact match).
func InDepartment(dept string) Policy { return deptRule{dept: dept} }

// SameDepartment requires the identity's department to be dept, the department of the
// request being decided (the requester's, say). An empty dept denies everyone: a request
// without a department matches no one.
func SameDepartment(dept string) Policy { return deptRule{dept: dept, same: true} }

func (r deptRule) Check(id *Identity) error {
	if id == nil {
		return nilIdentity(r)
	}
	if r.dept == "" || id.Department != r.dept { // check:policy-dept
		return deny(id, r.need())
	}
	return nil
}

func (r deptRule) need() string {
	switch {
	case r.same && r.dept == "":
		return "the request's department, which is empty"
	case r.same:
		return "the request's department " + r.dept
	default:
		return "department " + r.dept
	}
}

func (r deptRule) String() string {
	if r.same {
		return "sameDepartment(" + r.dept + ")"
	}
	return "department(" + r.dept + ")"
}

type allRule struct{ ps []Policy }

// All requires every policy. All() allows every identity (but still needs one).
func All(ps ...Policy) Policy { return allRule{append([]Policy(nil), ps...)} }

func (r allRule) Check(id *Identity) error {
	if id == nil {
		return nilIdentity(r)
	}
	for _, p := range r.ps {
		if p == nil {
			return deny(id, "a policy that is nil (a configuration error)")
		}
		if err := p.Check(id); err != nil {
			return err
		}
	}
	return nil
}
func (r allRule) need() string   { return r.String() }
func (r allRule) String() string { return "all(" + joinPolicies(r.ps) + ")" }

type anyRule struct{ ps []Policy }

// Any requires at least one policy. Any() denies everyone.
func Any(ps ...Policy) Policy { return anyRule{append([]Policy(nil), ps...)} }

func (r anyRule) Check(id *Identity) error {
	if id == nil {
		return nilIdentity(r)
	}
	needs := make([]string, 0, len(r.ps))
	for _, p := range r.ps {
		if p == nil {
			continue
		}
		err := p.Check(id)
		if err == nil {
			return nil
		}
		needs = append(needs, needOf(p))
	}
	return deny(id, "any of ["+strings.Join(needs, " | ")+"]")
}
func (r anyRule) need() string   { return r.String() }
func (r anyRule) String() string { return "any(" + joinPolicies(r.ps) + ")" }

type notRule struct{ p Policy }

// Not requires that p is not satisfied. A nil p denies everyone.
func Not(p Policy) Policy { return notRule{p} }

func (r notRule) Check(id *Identity) error {
	if id == nil {
		return nilIdentity(r)
	}
	if r.p == nil {
		return deny(id, r.need())
	}
	if r.p.Check(id) == nil { // check:policy-not
		return deny(id, r.need())
	}
	return nil
}
func (r notRule) need() string   { return "not " + needOf(r.p) }
func (r notRule) String() string { return "not(" + fmt.Sprint(r.p) + ")" }

func needOf(p Policy) string {
	if r, ok := p.(rule); ok {
		return r.need()
	}
	return fmt.Sprint(p)
}

func joinPolicies(ps []Policy) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}
