package workflows

import (
	"maps"
	"slices"
)

// Tighten-only: the starter of a run writes its input, so an input Config may only tighten
// the policy in DefaultAccessConfig and DefaultInvoiceConfig, never loosen it: a requester
// must not pick who approves, how many, or for how long access may last. Timers that only
// shorten the wait, a higher approver count, or a shorter maximum duration are fine.

// tighterThan reports why c (defaults filled in) is looser than policy p, or nil.
func (c AccessConfig) tighterThan(p AccessConfig) error {
	switch {
	case c.AdminRole != p.AdminRole:
		return looser("admin_role must stay %q", p.AdminRole)
	case c.MaxDuration > p.MaxDuration:
		return looser("max_duration may not exceed %s", p.MaxDuration)
	case c.ExpireAfter > p.ExpireAfter:
		return looser("expire_after may not exceed %s", p.ExpireAfter)
	case c.EscalateAfter < p.EscalateAfter && c.EscalateAfter < c.ExpireAfter:
		return looser("escalate_after may not be shorter than %s (escalation widens who may approve)", p.EscalateAfter)
	case c.Fallback != nil && (p.Fallback == nil || !c.Fallback.tighterThan(*p.Fallback, p.AdminRole)):
		return looser("fallback route may not be added or loosened")
	}
	// In department order, so the error names the same route on every replay.
	depts := slices.Sorted(maps.Keys(c.Routes)) //workflowcheck:ignore the keys are sorted before use
	for _, dept := range depts {
		r := c.Routes[dept]
		pr, ok := p.Routes[dept]
		if !ok || !r.tighterThan(pr, p.AdminRole) {
			return looser("route for department %q may only raise the number of approvers", dept)
		}
	}
	return nil
}

// tighterThan: same approver and escalation roles, at least as many approvers, and no
// cross-department approval the policy does not allow.
func (r Route) tighterThan(p Route, adminRole string) bool {
	esc, pesc := r.EscalationRole, p.EscalationRole
	if esc == "" {
		esc = adminRole
	}
	if pesc == "" {
		pesc = adminRole
	}
	return r.ApproverRole == p.ApproverRole && esc == pesc && max(r.Required, 1) >= max(p.Required, 1) &&
		(!r.AnyDepartment || p.AnyDepartment)
}

// tighterThan reports why c (defaults filled in) is looser than policy p, or nil.
func (c InvoiceConfig) tighterThan(p InvoiceConfig) error {
	switch {
	case c.Permission != p.Permission:
		return looser("permission must stay %q", p.Permission)
	case c.FinanceDepartment != p.FinanceDepartment:
		return looser("finance_department must stay %q", p.FinanceDepartment)
	case c.SecondApproverAboveCents > p.SecondApproverAboveCents:
		return looser("second_approver_above_cents may not exceed %d", p.SecondApproverAboveCents)
	case c.ExpireAfter > p.ExpireAfter:
		return looser("expire_after may not exceed %s", p.ExpireAfter)
	}
	return nil
}
