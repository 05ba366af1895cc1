package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
)

func invoice(cents int64) InvoiceApprovalInput {
	return InvoiceApprovalInput{InvoiceID: "INV-7", Vendor: "ACME", AmountCents: cents, Currency: "EUR"}
}

func queryInvoice(t *testing.T, env *testsuite.TestWorkflowEnvironment) InvoiceStatus {
	t.Helper()
	v, err := env.QueryWorkflow(QueryStatus)
	require.NoError(t, err)
	var st InvoiceStatus
	require.NoError(t, v.Get(&st))
	return st
}

// approveInvoiceSeen approves the invoice the status query shows when the update is sent.
func approveInvoiceSeen(t *testing.T, env *testsuite.TestWorkflowEnvironment, comment string) seen {
	return func() any { return ApproveInvoice("", queryInvoice(t, env), comment).Args[0] }
}

// denyInvoiceSeen denies the invoice the status query shows when the update is sent.
func denyInvoiceSeen(t *testing.T, env *testsuite.TestWorkflowEnvironment, comment string) seen {
	return func() any { return DenyInvoice("", queryInvoice(t, env), comment).Args[0] }
}

func invoiceResult(t *testing.T, env *testsuite.TestWorkflowEnvironment) InvoiceApprovalResult {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res InvoiceApprovalResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res
}

func TestInvoiceApproval(t *testing.T) {
	type step struct {
		id      string // "<approve|deny>-<persona>[-n]"
		succeed bool
		errHas  string
	}
	for _, tc := range []struct {
		name      string
		submitter string
		cents     int64
		steps     []step
		state     State
		approvers []string
	}{
		{"small invoice, one approver", "bob", 50_000, []step{{"approve-gina", true, ""}}, StateApproved, []string{"gina"}},
		{"approver without permission refused", "bob", 50_000, []step{
			{"approve-erin", false, "needs permission can_approve_invoice"},
			{"approve-dave", true, ""},
		}, StateApproved, []string{"dave"}},
		{"submitter may not approve", "dave", 50_000, []step{
			{"approve-dave", false, "person who submitted it"},
			{"approve-gina", true, ""},
		}, StateApproved, []string{"gina"}},
		{"large invoice needs finance as second approver", "bob", 2_000_000, []step{
			{"approve-gina-1", true, ""},
			{"approve-gina-2", false, "already approved"},
			{"approve-hank", false, `department "finance"`},
			{"approve-dave", true, ""},
		}, StateApproved, []string{"gina", "dave"}},
		{"large invoice, finance first", "bob", 2_000_000, []step{
			{"approve-dave", true, ""},
			{"approve-hank", true, ""},
		}, StateApproved, []string{"dave", "hank"}},
		{"denied", "bob", 2_000_000, []step{
			{"approve-dave", true, ""},
			{"deny-gina", true, ""},
		}, StateDenied, []string{"dave"}},
		{"submitter may not deny", "dave", 50_000, []step{{"deny-dave", false, "person who submitted it"}}, StateExpired, nil},
		{"expires", "bob", 50_000, nil, StateExpired, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newEnv(t, tc.submitter)
			var us []*upd
			for i, s := range tc.steps {
				name, arg := UpdateApprove, approveInvoiceSeen(t, env, "")
				if s.id[:4] == "deny" {
					name, arg = UpdateDeny, denyInvoiceSeen(t, env, "duplicate invoice")
				}
				us = append(us, send(env, time.Duration(i+1)*time.Minute, name, s.id, arg))
			}
			env.ExecuteWorkflow(InvoiceApproval, invoice(tc.cents))
			res := invoiceResult(t, env)
			for i, s := range tc.steps {
				u := us[i]
				if s.succeed {
					require.True(t, u.succeeded(), "%s: %v", s.id, u.err)
					continue
				}
				require.True(t, u.failed(), "%s must be a failed update", s.id)
				require.Contains(t, u.err.Error(), s.errHas)
				var app *temporal.ApplicationError
				require.ErrorAs(t, u.err, &app)
				require.Equal(t, identity.TypeForbidden, app.Type())
			}
			require.Equal(t, tc.state, res.State)
			require.Equal(t, tc.approvers, res.Approvers)
			require.Equal(t, "submitted", res.Audit[0].Action)
			require.Equal(t, tc.submitter, res.Audit[0].Actor.Subject)
			require.Len(t, res.Audit, 1+len(tc.steps)+map[bool]int{true: 1}[tc.state == StateExpired])
		})
	}
}

func TestInvoiceApprovalRejectsBadStarts(t *testing.T) {
	for name, tc := range map[string]struct {
		starter string
		in      InvoiceApprovalInput
		typ     string
	}{
		"no identity":   {"", invoice(100), identity.TypeUnauthenticated},
		"zero amount":   {"bob", invoice(0), activities.TypeInvalidInput},
		"no invoice id": {"bob", InvoiceApprovalInput{AmountCents: 1, Currency: "EUR"}, activities.TypeInvalidInput},
		"bad currency":  {"bob", InvoiceApprovalInput{InvoiceID: "x", AmountCents: 1, Currency: "EURO"}, activities.TypeInvalidInput},
		"negative expiry": {"bob", InvoiceApprovalInput{InvoiceID: "x", AmountCents: 1, Currency: "EUR",
			Config: &InvoiceConfig{ExpireAfter: -time.Hour}}, activities.TypeInvalidInput},
	} {
		t.Run(name, func(t *testing.T) {
			env, _ := newEnv(t, tc.starter)
			env.ExecuteWorkflow(InvoiceApproval, tc.in)
			var app *temporal.ApplicationError
			require.ErrorAs(t, env.GetWorkflowError(), &app)
			require.Equal(t, tc.typ, app.Type())
		})
	}
}
