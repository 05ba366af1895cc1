package workflows

import (
	"fmt"

	"github.com/oidcflow/oidcflow/identity"
)

// Who may decide what: the approver checks of the access, invoice and admin workflows. They
// are pure functions of verified identities and workflow state (identity policies are pure
// too), so they are deterministic and replay-safe. Each refusal is an
// *identity.DeniedError that says what was needed and what the identity has.

func denied(id *identity.Identity, format string, args ...any) error {
	sub := "<anonymous>"
	if id != nil {
		sub = id.Subject
	}
	return &identity.DeniedError{Subject: sub, Reason: fmt.Sprintf(format, args...)}
}

// checkNotSelf refuses a decision by the person who asked.
func checkNotSelf(actor, requester *identity.Identity, what string) error {
	if samePerson(actor, requester) {
		return denied(actor, "%s may not be decided by the person who submitted it", what)
	}
	return nil
}

// approverPolicy is who may decide a request routed by route: the approver role, in the
// requester's department unless AnyDepartment; once escalated, also the escalation role.
func approverPolicy(route Route, requester *identity.Identity, escalated bool) identity.Policy {
	p := identity.HasRole(route.ApproverRole)
	if !route.AnyDepartment {
		p = identity.All(p, identity.SameDepartment(requester.Department))
	}
	if escalated && route.EscalationRole != "" {
		p = identity.Any(p, identity.HasRole(route.EscalationRole))
	}
	return p
}

// checkApprover decides whether actor may approve or deny a request of requester.
func checkApprover(actor, requester *identity.Identity, route Route, escalated bool) error {
	if err := checkNotSelf(actor, requester, "a request"); err != nil {
		return err
	}
	return approverPolicy(route, requester, escalated).Check(actor)
}

// checkRequesterOrAdmin allows the requester and holders of adminRole.
func checkRequesterOrAdmin(actor, requester *identity.Identity, adminRole string) error {
	if samePerson(actor, requester) {
		return nil
	}
	if err := identity.HasRole(adminRole).Check(actor); err != nil {
		return denied(actor, "only the requester or role %s may revoke; has roles %v", adminRole, actor.Roles)
	}
	return nil
}

// checkRole requires role.
func checkRole(actor *identity.Identity, role string) error {
	return identity.HasRole(role).Check(actor)
}

// checkInvoiceApprover requires the permission and forbids the submitter.
func checkInvoiceApprover(actor, submitter *identity.Identity, permission string) error {
	if err := checkNotSelf(actor, submitter, "an invoice"); err != nil {
		return err
	}
	return identity.HasPermission(permission).Check(actor)
}
