package workflows

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// misnamings are the ways a decision can fail to name the request it reaches: another
// run, another request, or nothing.
var misnamings = []string{"another run", "another request", "no run id", "no digest", "nothing"}

// misname returns the run id and digest a decision of kind (one of misnamings) names, given
// the run id and digest of the request it reaches and the digest of another request.
func misname(kind, runID, digest, otherDigest string) (string, string) {
	switch kind {
	case "another run":
		return "1f0e6c1e-9d1b-4a7e-8f7e-000000000000", digest
	case "another request":
		return runID, otherDigest
	case "no run id":
		return "", digest
	case "no digest":
		return runID, ""
	}
	return "", ""
}

// engineeringRoute is the default route of bob's requests.
func engineeringRoute() Route {
	r, _ := DefaultAccessConfig().routeFor("engineering")
	return r
}

// TestAccessDecisionMustNameRunAndRequest replays a decision inside one run: carol's approval or
// denial that names another run, another request or nothing is a failed update of type
// oidcflow.ApprovalMismatch, in the audit trail as a refusal, and decides nothing; the same
// carol naming what the status shows then approves.
func TestAccessDecisionMustNameRunAndRequest(t *testing.T) {
	for _, action := range []string{UpdateApprove, UpdateDeny} {
		for _, kind := range misnamings {
			t.Run(action+"/"+kind, func(t *testing.T) {
				env, _ := newEnv(t, "bob")
				m := &dbMock{}
				mockDB(env, m)
				write := readDemo(12 * time.Hour)
				write.Role = AccessWrite
				bad := send(env, time.Minute, action, action+"-carol-1", seen(func() any {
					st := queryStatus(t, env)
					runID, digest := misname(kind, st.RunID, st.RequestDigest, accessDigest(personas["bob"], write, engineeringRoute()))
					if action == UpdateDeny {
						return DenyInput{Comment: "no", RunID: runID, RequestDigest: digest}
					}
					return ApproveInput{Comment: "ok", RunID: runID, RequestDigest: digest}
				}))
				var after AccessStatus
				env.RegisterDelayedCallback(func() { after = queryStatus(t, env) }, 2*time.Minute)
				good := send(env, 3*time.Minute, UpdateApprove, "approve-carol-2", approveSeen(t, env, "ok"))
				env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

				res := result(t, env)
				require.True(t, bad.failed(), "a misnamed %s must be a failed update (accepted, then refused): %+v", action, bad)
				var app *temporal.ApplicationError
				require.ErrorAs(t, bad.err, &app)
				require.Equal(t, TypeApprovalMismatch, app.Type())
				require.True(t, app.NonRetryable())
				require.NotContains(t, app.Error(), "starter", "the library leaves advice to its clients")
				require.Equal(t, StatePending, after.State, "nothing decided")
				require.Empty(t, after.Approvers)
				require.True(t, good.succeeded(), "the approval naming what carol sees: %v", good.err)
				require.EqualValues(t, 1, m.grants.Load())
				require.Equal(t, []string{"requested:ok:bob", action + ":refused:carol", "approve:ok:carol", "granted:ok", "revoked:ok"},
					actions(res.Audit))
				require.Equal(t, app.Error(), res.Audit[1].Detail)
			})
		}
	}
}

// TestAccessDecisionOversizedNameRejected: a run id or digest longer than any real one is
// rejected by the validator (it never reaches history).
func TestAccessDecisionOversizedNameRejected(t *testing.T) {
	env, _ := newEnv(t, "bob")
	mockDB(env, &dbMock{})
	long := strings.Repeat("a", maxNameLength+1)
	runID := send(env, time.Minute, UpdateApprove, "approve-carol-1", seen(func() any {
		in := ApproveAccess("", queryStatus(t, env), "").Args[0].(ApproveInput)
		in.RunID = long
		return in
	}))
	digest := send(env, time.Minute, UpdateDeny, "deny-carol-1", seen(func() any {
		in := DenyAccess("", queryStatus(t, env), "no").Args[0].(DenyInput)
		in.RequestDigest = long
		return in
	}))
	env.RegisterDelayedCallback(env.CancelWorkflow, 2*time.Minute)
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))
	require.True(t, runID.rejected, "oversized run id")
	require.True(t, digest.rejected, "oversized digest")
}

// TestInvoiceDecisionMustNameRunAndRequest replays a decision on invoices: a decision naming
// another run, another invoice (other vendor and amount) or nothing is refused and audited.
func TestInvoiceDecisionMustNameRunAndRequest(t *testing.T) {
	for _, action := range []string{UpdateApprove, UpdateDeny} {
		for _, kind := range misnamings {
			t.Run(action+"/"+kind, func(t *testing.T) {
				env, _ := newEnv(t, "bob")
				other := invoice(900_000)
				other.Vendor = "Evil Corp"
				bad := send(env, time.Minute, action, action+"-gina-1", seen(func() any {
					st := queryInvoice(t, env)
					runID, digest := misname(kind, st.RunID, st.RequestDigest, invoiceDigest(personas["bob"], other, 1))
					if action == UpdateDeny {
						return DenyInput{Comment: "no", RunID: runID, RequestDigest: digest}
					}
					return ApproveInput{RunID: runID, RequestDigest: digest}
				}))
				var after InvoiceStatus
				env.RegisterDelayedCallback(func() { after = queryInvoice(t, env) }, 2*time.Minute)
				good := send(env, 3*time.Minute, UpdateApprove, "approve-gina-2", approveInvoiceSeen(t, env, ""))
				env.ExecuteWorkflow(InvoiceApproval, invoice(50_000))

				res := invoiceResult(t, env)
				require.True(t, bad.failed(), "a misnamed %s must be a failed update", action)
				var app *temporal.ApplicationError
				require.ErrorAs(t, bad.err, &app)
				require.Equal(t, TypeApprovalMismatch, app.Type())
				require.Equal(t, StatePending, after.State, "nothing decided")
				require.Empty(t, after.Approvers)
				require.True(t, good.succeeded(), "the approval naming what gina sees: %v", good.err)
				require.Equal(t, StateApproved, res.State)
				require.Equal(t, []string{"gina"}, res.Approvers)
				require.Equal(t, []string{"submitted:ok:bob", action + ":refused:gina", "approve:ok:gina"}, actions(res.Audit))
			})
		}
	}
}

// TestStatusNamesRunAndRequest: the status carries the run id and the digest of what it
// shows, and the decision helpers address that run.
func TestStatusNamesRunAndRequest(t *testing.T) {
	env, _ := newEnv(t, "bob")
	mockDB(env, &dbMock{})
	var st AccessStatus
	env.RegisterDelayedCallback(func() { st = queryStatus(t, env) }, time.Minute)
	env.RegisterDelayedCallback(env.CancelWorkflow, 2*time.Minute)
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

	require.NotEmpty(t, st.RunID)
	require.Equal(t, accessDigest(personas["bob"], readDemo(time.Hour), engineeringRoute()),
		st.RequestDigest)
	o := ApproveAccess("W", st, "ok")
	require.Equal(t, client.UpdateWorkflowOptions{WorkflowID: "W", RunID: st.RunID, UpdateName: UpdateApprove,
		Args:         []any{ApproveInput{Comment: "ok", RunID: st.RunID, RequestDigest: st.RequestDigest}},
		WaitForStage: client.WorkflowUpdateStageCompleted}, o)
	o = DenyAccess("W", st, "no")
	require.Equal(t, DenyInput{Comment: "no", RunID: st.RunID, RequestDigest: st.RequestDigest}, o.Args[0])
	require.Equal(t, st.RunID, o.RunID)
}

// TestRequestDigest: the digest is a function of everything an approver decides on: equal
// requests have equal digests, and changing any one field changes it. The golden values pin
// the encoding, which clients may compare across worker versions.
func TestRequestDigest(t *testing.T) {
	bob := personas["bob"]
	route := Route{ApproverRole: "db-approver", Required: 1, EscalationRole: "admin"}
	in := readDemo(time.Hour)
	base := accessDigest(bob, in, route)
	require.Len(t, base, 64)
	require.Equal(t, base, accessDigest(bob, readDemo(time.Hour), route), "deterministic")
	require.Equal(t, "26812e68af533dcaff76ea8b3c7c59193bbbf4a40c509e147e86a7b0cd9d60e4", base, "golden (update on purpose only)")

	other := *bob
	other.Issuer = "https://other.example.test/"
	dept := *bob
	dept.Department = "sales"
	sub := *bob
	sub.Subject = "bobby"
	variants := map[string]string{
		"subject":         accessDigest(&sub, in, route),
		"issuer":          accessDigest(&other, in, route),
		"department":      accessDigest(&dept, in, route),
		"resource":        accessDigest(bob, with(in, func(i *AccessRequestInput) { i.Resource = "demo2" }), route),
		"role":            accessDigest(bob, with(in, func(i *AccessRequestInput) { i.Role = AccessWrite }), route),
		"duration":        accessDigest(bob, with(in, func(i *AccessRequestInput) { i.Duration = 12 * time.Hour }), route),
		"reason":          accessDigest(bob, with(in, func(i *AccessRequestInput) { i.Reason += "!" }), route),
		"approver role":   accessDigest(bob, in, Route{ApproverRole: "db-admin", Required: 1, EscalationRole: "admin"}),
		"required":        accessDigest(bob, in, Route{ApproverRole: "db-approver", Required: 2, EscalationRole: "admin"}),
		"escalation role": accessDigest(bob, in, Route{ApproverRole: "db-approver", Required: 1, EscalationRole: "sre"}),
		// Length prefixes: moving bytes between neighbouring fields changes the digest.
		"shifted": accessDigest(bob, with(in, func(i *AccessRequestInput) { i.Resource, i.Role = "demor", "ead" }), route),
	}
	seenDigests := map[string]string{base: "base"}
	for name, d := range variants {
		if prev, dup := seenDigests[d]; dup {
			t.Errorf("%s has the digest of %s", name, prev)
		}
		seenDigests[d] = name
	}

	inv := invoice(50_000)
	ibase := invoiceDigest(bob, inv, 1)
	require.Equal(t, "6b99ccbd66ddaf5bcd58130e369a77b56ec82d41a55f11201f5ec0e4cc0217d4", ibase, "golden (update on purpose only)")
	ivariants := map[string]string{
		"submitter":   invoiceDigest(&sub, inv, 1),
		"invoice id":  invoiceDigest(bob, withInvoice(inv, func(i *InvoiceApprovalInput) { i.InvoiceID = "INV-8" }), 1),
		"vendor":      invoiceDigest(bob, withInvoice(inv, func(i *InvoiceApprovalInput) { i.Vendor = "Evil Corp" }), 1),
		"amount":      invoiceDigest(bob, withInvoice(inv, func(i *InvoiceApprovalInput) { i.AmountCents++ }), 1),
		"currency":    invoiceDigest(bob, withInvoice(inv, func(i *InvoiceApprovalInput) { i.Currency = "USD" }), 1),
		"description": invoiceDigest(bob, withInvoice(inv, func(i *InvoiceApprovalInput) { i.Description = "x" }), 1),
		"required":    invoiceDigest(bob, inv, 2),
	}
	seenDigests = map[string]string{ibase: "base"}
	for name, d := range ivariants {
		if prev, dup := seenDigests[d]; dup {
			t.Errorf("invoice %s has the digest of %s", name, prev)
		}
		seenDigests[d] = name
	}
	require.NotEqual(t, base, ibase)
}

func with(in AccessRequestInput, f func(*AccessRequestInput)) AccessRequestInput {
	f(&in)
	return in
}

func withInvoice(in InvoiceApprovalInput, f func(*InvoiceApprovalInput)) InvoiceApprovalInput {
	f(&in)
	return in
}
