package workflows

import (
	"fmt"

	"github.com/oidcflow/oidcflow/identity"
)

// The checks below are pure functions of verified identities and workflow state, so they are
// deterministic and replay-safe. Each refusal is an *identity.DeniedError that says what was
// needed and what the identity has.

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

// checkApprover decides whether actor may approve or deny a request of requester routed by
// route: the approver role (in the requester's department unless AnyDepartment), or, once
// escalated, the escalation role.
func checkApprover(actor, requester *identity.Identity, route Route, escalated bool) error {
	if err := checkNotSelf(actor, requester, "a request"); err != nil {
		return err
	}
	if actor.HasRole(route.ApproverRole) && (route.AnyDepartment || actor.Department == requester.Department) {
		return nil
	}
	if escalated && route.EscalationRole != "" && actor.HasRole(route.EscalationRole) {
		return nil
	}
	need := fmt.Sprintf("role %s", route.ApproverRole)
	if !route.AnyDepartment {
		need += fmt.Sprintf(" in department %q", requester.Department)
	}
	if escalated && route.EscalationRole != "" {
		need += fmt.Sprintf(", or role %s", route.EscalationRole)
	}
	return denied(actor, "needs %s; has roles %v in department %q", need, actor.Roles, actor.Department)
}

// checkRequesterOrAdmin allows the requester and holders of adminRole.
func checkRequesterOrAdmin(actor, requester *identity.Identity, adminRole string) error {
	if samePerson(actor, requester) || actor.HasRole(adminRole) {
		return nil
	}
	return denied(actor, "only the requester or role %s may revoke; has roles %v", adminRole, actor.Roles)
}

// checkRole requires role.
func checkRole(actor *identity.Identity, role string) error {
	if actor.HasRole(role) {
		return nil
	}
	return denied(actor, "needs role %s; has roles %v", role, actor.Roles)
}

// checkInvoiceApprover requires the permission and forbids the submitter.
func checkInvoiceApprover(actor, submitter *identity.Identity, permission string) error {
	if err := checkNotSelf(actor, submitter, "an invoice"); err != nil {
		return err
	}
	if !actor.HasPermission(permission) {
		return denied(actor, "needs permission %s; has permissions %v", permission, actor.Permissions)
	}
	return nil
}
