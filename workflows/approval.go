package workflows

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// An approval names what it approves: the run the approver looked at and the digest of the
// request as it was shown. The helpers below build decisions from a status, so a client
// cannot forget either; the handlers refuse a decision that names another run or another
// request (TypeApprovalMismatch), and the server delivers an update with
// UpdateWorkflowOptions.RunID set to that run only (a run that ended or was replaced under
// the same workflow id answers "workflow not found" or "already completed").

// ApproveAccess returns the update that approves the access request st shows, addressed to
// run st.RunID of workflowID only and waiting for the handler's result
// (WorkflowUpdateStageCompleted). Pass it to client.Client.UpdateWorkflow; the result is an
// AccessStatus. st must come from the status query of that run (QueryStatus).
func ApproveAccess(workflowID string, st AccessStatus, comment string) client.UpdateWorkflowOptions {
	return decision(workflowID, st.RunID, UpdateApprove,
		ApproveInput{Comment: comment, RunID: st.RunID, RequestDigest: st.RequestDigest})
}

// DenyAccess returns the update that denies the access request st shows (see ApproveAccess);
// comment is required.
func DenyAccess(workflowID string, st AccessStatus, comment string) client.UpdateWorkflowOptions {
	return decision(workflowID, st.RunID, UpdateDeny,
		DenyInput{Comment: comment, RunID: st.RunID, RequestDigest: st.RequestDigest})
}

// ApproveInvoice returns the update that approves the invoice st shows (see ApproveAccess);
// the result is an InvoiceStatus.
func ApproveInvoice(workflowID string, st InvoiceStatus, comment string) client.UpdateWorkflowOptions {
	return decision(workflowID, st.RunID, UpdateApprove,
		ApproveInput{Comment: comment, RunID: st.RunID, RequestDigest: st.RequestDigest})
}

// DenyInvoice returns the update that denies the invoice st shows (see ApproveAccess);
// comment is required.
func DenyInvoice(workflowID string, st InvoiceStatus, comment string) client.UpdateWorkflowOptions {
	return decision(workflowID, st.RunID, UpdateDeny,
		DenyInput{Comment: comment, RunID: st.RunID, RequestDigest: st.RequestDigest})
}

func decision(workflowID, runID, name string, arg any) client.UpdateWorkflowOptions {
	return client.UpdateWorkflowOptions{
		WorkflowID:   workflowID,
		RunID:        runID,
		UpdateName:   name,
		Args:         []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	}
}

// maxNameLength caps RunID and RequestDigest of a decision (a run id is a UUID, a digest 64
// hex digits); validators reject longer ones before they reach history.
const maxNameLength = 128

// digestHash is a running request digest: SHA-256 over a list of fields, each written as its
// length (8 bytes, big-endian) followed by its bytes, so no two lists of fields share an
// encoding ("ab","c" and "a","bc" differ). The list starts with a tag naming the request kind
// and the encoding's version. Numbers are written in decimal, durations in nanoseconds. It
// is deterministic, so workflow code may compute it.
type digestHash struct{ h hash.Hash }

func newDigest(tag string) *digestHash {
	d := &digestHash{h: sha256.New()}
	return d.str(tag)
}

func (d *digestHash) str(s string) *digestHash {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	_, _ = d.h.Write(n[:])
	_, _ = d.h.Write([]byte(s))
	return d
}

func (d *digestHash) int(v int64) *digestHash { return d.str(strconv.FormatInt(v, 10)) }

func (d *digestHash) dur(v time.Duration) *digestHash { return d.int(int64(v)) }

// hex returns the digest in lower-case hex.
func (d *digestHash) hex() string { return hex.EncodeToString(d.h.Sum(nil)) }

// accessDigest is the request digest of an AccessRequest: everything an approver decides on.
// The escalated flag is not part of it (escalation changes who may decide, not what is
// decided); the escalation role is.
func accessDigest(requester *identity.Identity, in AccessRequestInput, route Route) string {
	return newDigest("oidcflow.AccessRequest.v1").
		str(requester.Subject).str(requester.Issuer).str(requester.Department).
		str(in.Resource).str(string(in.Role)).dur(in.Duration).str(in.Reason).
		str(route.ApproverRole).int(int64(route.Required)).str(route.EscalationRole).
		hex()
}

// invoiceDigest is the request digest of an InvoiceApproval: everything an approver decides on.
func invoiceDigest(submitter *identity.Identity, in InvoiceApprovalInput, required int) string {
	return newDigest("oidcflow.InvoiceApproval.v1").
		str(submitter.Subject).str(submitter.Issuer).str(submitter.Department).
		str(in.InvoiceID).str(in.Vendor).int(in.AmountCents).str(in.Currency).str(in.Description).
		int(int64(required)).
		hex()
}

// namedDecisions is the workflow.GetVersion change id of checkNamed. Decisions a run handled
// before its worker checked names replay as they ran (version DefaultVersion), so runs that
// were granted by an earlier worker still replay and get revoked; every decision handled
// from now on is checked, since GetVersion outside replay always answers the new version.
const namedDecisions = "oidcflow.decisions-name-run-and-request"

// checkNamed returns a TypeApprovalMismatch error when a decision (action: approve or deny)
// does not name this run and this request, else nil. It does not check who decides.
func checkNamed(ctx workflow.Context, action, digest, gotRun, gotDigest string) error {
	if workflow.GetVersion(ctx, namedDecisions, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	runID := workflow.GetInfo(ctx).WorkflowExecution.RunID
	var msg string
	switch {
	case gotRun == "" || gotDigest == "":
		msg = fmt.Sprintf("workflows: %s names no run id or no request digest, and nothing is decided without both; "+
			"build it from the status the approver saw (workflows.ApproveAccess, ApproveInvoice)", action)
	case gotRun != runID:
		msg = fmt.Sprintf("workflows: %s names run %.64q, but this is run %s: the request changed since it was looked at",
			action, gotRun, runID)
	case gotDigest != digest:
		msg = fmt.Sprintf("workflows: %s names request digest %.64q, but this request's is %s: the request changed since it was looked at",
			action, gotDigest, digest)
	default:
		return nil
	}
	return temporal.NewNonRetryableApplicationError(msg, TypeApprovalMismatch, nil)
}
