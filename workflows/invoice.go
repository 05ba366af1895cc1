package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// InvoiceApproval asks for the approval of an invoice submitted by the verified starter.
// Approvers need InvoiceConfig.Permission (can_approve_invoice) and may not be the submitter.
// Above SecondApproverAboveCents a second, distinct approver is needed and one of the two must
// be from the finance department. Any eligible approver may deny (with a comment). Without
// decisions the invoice expires after ExpireAfter. It pays nothing: the result says whether
// the invoice is approved.
func InvoiceApproval(ctx workflow.Context, in InvoiceApprovalInput) (InvoiceApprovalResult, error) {
	submitter, err := identity.FromWorkflow(ctx)
	if err != nil {
		return InvoiceApprovalResult{}, identity.ApplicationError(err)
	}
	cfg := DefaultInvoiceConfig()
	if in.Config != nil {
		cfg = in.Config.withDefaults()
		if err := cfg.tighterThan(DefaultInvoiceConfig()); err != nil {
			return InvoiceApprovalResult{}, err
		}
	}
	switch {
	case in.InvoiceID == "" || len(in.InvoiceID) > 100:
		return InvoiceApprovalResult{}, invalidInput("invoice id is required (at most 100 bytes)")
	case in.AmountCents <= 0:
		return InvoiceApprovalResult{}, invalidInput("amount must be positive")
	case len(in.Currency) != 3:
		return InvoiceApprovalResult{}, invalidInput("currency must be a three-letter code")
	case len(in.Description) > maxComment || len(in.Vendor) > maxComment:
		return InvoiceApprovalResult{}, invalidInput("vendor and description are at most %d bytes", maxComment)
	case cfg.ExpireAfter <= 0:
		return InvoiceApprovalResult{}, invalidInput("expire_after must be positive")
	}
	exec := workflow.GetInfo(ctx).WorkflowExecution
	w := &invoiceApproval{
		trail:     trail{workflowID: exec.ID},
		in:        in,
		cfg:       cfg,
		submitter: submitter,
		runID:     exec.RunID,
		state:     StatePending,
		required:  1,
	}
	if in.AmountCents > cfg.SecondApproverAboveCents {
		w.required = 2
	}
	w.digest = invoiceDigest(submitter, in, w.required)
	return w.run(ctx)
}

func (c InvoiceConfig) withDefaults() InvoiceConfig {
	d := DefaultInvoiceConfig()
	if c.Permission == "" {
		c.Permission = d.Permission
	}
	if c.SecondApproverAboveCents == 0 {
		c.SecondApproverAboveCents = d.SecondApproverAboveCents
	}
	if c.FinanceDepartment == "" {
		c.FinanceDepartment = d.FinanceDepartment
	}
	if c.ExpireAfter == 0 {
		c.ExpireAfter = d.ExpireAfter
	}
	return c
}

type invoiceApproval struct {
	trail
	in        InvoiceApprovalInput
	cfg       InvoiceConfig
	submitter *identity.Identity
	runID     string
	digest    string // invoiceDigest: what approvers decide on
	state     State
	required  int
	approvers []*identity.Identity
}

func (w *invoiceApproval) run(ctx workflow.Context) (InvoiceApprovalResult, error) {
	if err := w.register(ctx); err != nil {
		return InvoiceApprovalResult{}, err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		RequesterKey.ValueSet(w.submitter.Subject),
		RequesterDepartmentKey.ValueSet(w.submitter.Department),
		ResourceKey.ValueSet("invoice:"+w.in.InvoiceID),
		ApprovalStateKey.ValueSet(string(w.state)),
	); err != nil {
		return InvoiceApprovalResult{}, err
	}
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoRequester: actorOf(w.submitter)}); err != nil {
		return InvoiceApprovalResult{}, err
	}
	w.record(ctx, "submitted", w.submitter, OutcomeOK, fmt.Sprintf("invoice %s from %s: %s %s",
		w.in.InvoiceID, w.in.Vendor, money(w.in.AmountCents), w.in.Currency))
	w.notify(ctx, w.cfg.Permission, "invoice.submitted", fmt.Sprintf(
		"*%s* submitted invoice %s from %s for %s %s; %d approval(s) needed.",
		w.submitter.Subject, w.in.InvoiceID, w.in.Vendor, money(w.in.AmountCents), w.in.Currency, w.required))
	ok, err := workflow.AwaitWithTimeout(ctx, w.cfg.ExpireAfter, func() bool { return w.state != StatePending })
	if err != nil {
		return InvoiceApprovalResult{}, err
	}
	if !ok {
		w.setState(ctx, StateExpired)
		w.record(ctx, "expired", nil, OutcomeOK, "no decision after "+w.cfg.ExpireAfter.String())
	}
	w.notify(ctx, w.submitter.Subject, "invoice."+string(w.state), fmt.Sprintf(
		"Invoice %s is %s.", w.in.InvoiceID, w.state))
	w.drain(ctx)
	return InvoiceApprovalResult{State: w.state, Approvers: w.subjects(), Audit: w.auditCopy()}, nil
}

func money(cents int64) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

func (w *invoiceApproval) subjects() []string {
	var s []string
	for _, a := range w.approvers {
		s = append(s, a.Subject)
	}
	return s
}

func (w *invoiceApproval) status() InvoiceStatus {
	return InvoiceStatus{
		State: w.state, Submitter: *actorOf(w.submitter), InvoiceID: w.in.InvoiceID, Vendor: w.in.Vendor,
		Amount: w.in.AmountCents, Currency: w.in.Currency, Description: w.in.Description,
		Required: w.required, Approvers: w.subjects(), RunID: w.runID, RequestDigest: w.digest,
	}
}

func (w *invoiceApproval) setState(ctx workflow.Context, s State) { setState(ctx, &w.state, s) }

func (w *invoiceApproval) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (InvoiceStatus, error) { return w.status(), nil }); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, QueryAudit, func() ([]AuditEntry, error) { return w.auditCopy(), nil }); err != nil {
		return err
	}
	pending := func() error {
		if w.state != StatePending {
			return fmt.Errorf("%w (state %s)", errClosed, w.state)
		}
		return nil
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateApprove, w.approve,
		workflow.UpdateHandlerOptions{Validator: validateApprove(pending)}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateDeny, w.deny,
		workflow.UpdateHandlerOptions{Validator: validateDeny(pending)})
}

// decide runs the checks every decision shares (the caller, an open invoice, a decision that
// names this run and request, the approver's permission) and records a refusal.
func (w *invoiceApproval) decide(ctx workflow.Context, action, runID, digest string) (*identity.Identity, error) {
	actor, err := identity.FromWorkflow(ctx)
	if err != nil {
		w.record(ctx, action, nil, OutcomeRefused, err.Error())
		return nil, identity.ApplicationError(err)
	}
	if w.state != StatePending {
		err = fmt.Errorf("%w (state %s)", errClosed, w.state)
	} else if err = checkNamed(ctx, action, w.digest, runID, digest); err == nil {
		err = checkInvoiceApprover(actor, w.submitter, w.cfg.Permission)
	}
	if err != nil {
		w.record(ctx, action, actor, OutcomeRefused, err.Error())
		return nil, identity.ApplicationError(err)
	}
	return actor, nil
}

func (w *invoiceApproval) approve(ctx workflow.Context, in ApproveInput) (InvoiceStatus, error) {
	actor, err := w.decide(ctx, UpdateApprove, in.RunID, in.RequestDigest)
	if err != nil {
		return InvoiceStatus{}, err
	}
	refuse := func(err error) (InvoiceStatus, error) {
		w.record(ctx, UpdateApprove, actor, OutcomeRefused, err.Error())
		return InvoiceStatus{}, identity.ApplicationError(err)
	}
	if slices.ContainsFunc(w.approvers, func(a *identity.Identity) bool { return samePerson(a, actor) }) {
		return refuse(denied(actor, "already approved; a second approver must be someone else"))
	}
	// The approval that completes the set must leave a finance approver in it.
	if len(w.approvers)+1 >= w.required && w.required > 1 {
		finance := actor.Department == w.cfg.FinanceDepartment
		for _, a := range w.approvers {
			finance = finance || a.Department == w.cfg.FinanceDepartment
		}
		if !finance {
			return refuse(denied(actor, "invoices above %s need an approver from department %q; has department %q",
				money(w.cfg.SecondApproverAboveCents), w.cfg.FinanceDepartment, actor.Department))
		}
	}
	w.approvers = append(w.approvers, actor)
	w.record(ctx, UpdateApprove, actor, OutcomeOK, in.Comment)
	if err := workflow.UpsertTypedSearchAttributes(ctx, ApproversKey.ValueSet(w.subjects())); err != nil {
		workflow.GetLogger(ctx).Warn("search attribute update failed", "error", err)
	}
	if len(w.approvers) >= w.required {
		w.setState(ctx, StateApproved)
	}
	return w.status(), nil
}

func (w *invoiceApproval) deny(ctx workflow.Context, in DenyInput) (InvoiceStatus, error) {
	actor, err := w.decide(ctx, UpdateDeny, in.RunID, in.RequestDigest)
	if err != nil {
		return InvoiceStatus{}, err
	}
	w.record(ctx, UpdateDeny, actor, OutcomeOK, in.Comment)
	w.setState(ctx, StateDenied)
	return w.status(), nil
}
