// Package workflows holds the workflows of oidcflow: just-in-time database access with
// claim-routed approvals (AccessRequest), invoice approval (InvoiceApproval) and admin-only
// jobs (AdminTask). This file is the API shared with clients: names, task queue, Input and
// Result types, search attribute keys.
//
// Every person a workflow acts for or with comes from the verified identity the worker's
// interceptors put into the workflow context (identity.FromWorkflow), never from an input.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/pgaccess"
)

// TaskQueue is the task queue the worker pool polls.
const TaskQueue = "oidcflow"

// Workflow type names.
const (
	AccessRequestWorkflow   = "AccessRequest"
	InvoiceApprovalWorkflow = "InvoiceApproval"
	AdminTaskWorkflow       = "AdminTask"
	// SweeperWorkflow is the name of Sweeper, which a Temporal Schedule of the worker pool
	// runs every OIDCFLOW_SWEEP_INTERVAL (SweeperScheduleID) without a person's identity.
	SweeperWorkflow = "Sweeper"
)

// SweeperSchedulePrefix starts the id of every pool's sweeper schedule (SweeperScheduleID),
// and the workflow ids of the runs it starts.
const SweeperSchedulePrefix = "oidcflow-sweeper-"

// SweeperScheduleID is the id of the Temporal Schedule that runs Sweeper for the worker pool
// on taskQueue: one schedule per pool, whichever of its workers creates it.
func SweeperScheduleID(taskQueue string) string { return SweeperSchedulePrefix + taskQueue }

// Update names. Each update carries the caller's own identity (sealed envelope, verified by the
// worker); the handler checks policy with it. A refusal is a failed update, so it stays in
// history and in the audit trail.
const (
	// UpdateApprove approves a pending request (ApproveInput).
	UpdateApprove = "approve"
	// UpdateDeny denies a pending request (DenyInput; a comment is required).
	UpdateDeny = "deny"
	// UpdateRevoke ends an access request early: withdraws it while pending, revokes the grant
	// once granted (RevokeInput). Allowed to the requester and to admins.
	UpdateRevoke = "revoke"
)

// Query names.
const (
	// QueryStatus returns the current AccessStatus / InvoiceStatus.
	QueryStatus = "status"
	// QueryAudit returns the audit trail ([]AuditEntry): who did what, when, with which claims.
	QueryAudit = "audit"
)

// Search attribute keys (registered by the dev stack). They are set from verified identity
// only, never from workflow input, so a list filtered by Requester="<subject>" is trustworthy.
var (
	RequesterKey           = temporal.NewSearchAttributeKeyKeyword("Requester")
	RequesterDepartmentKey = temporal.NewSearchAttributeKeyKeyword("RequesterDepartment")
	ResourceKey            = temporal.NewSearchAttributeKeyKeyword("Resource")
	ApprovalStateKey       = temporal.NewSearchAttributeKeyKeyword("ApprovalState")
	ApproversKey           = temporal.NewSearchAttributeKeyKeywordList("Approvers")
)

// Memo keys.
const (
	// MemoRequester holds the requester's Actor (verified claims, no secrets).
	MemoRequester = "requester"
)

// State is the state of a request, also written to the ApprovalState search attribute.
type State string

// Request states. Pending and Escalated wait for decisions; Approved is the short step
// before the grant; Denied, Expired, Revoked, Ended, Failed are final.
const (
	StatePending   State = "pending"
	StateEscalated State = "escalated" // still pending, escalation group notified
	StateApproved  State = "approved"
	StateGranted   State = "granted"
	StateDenied    State = "denied"
	StateExpired   State = "expired" // no decision before the request deadline
	StateRevoked   State = "revoked" // withdrawn while pending, or revoked early once granted
	StateEnded     State = "ended"   // held for the full duration, then revoked automatically
	StateFailed    State = "failed"  // the grant could not be made
)

// Final reports whether s is a final state.
func (s State) Final() bool {
	switch s {
	case StateDenied, StateExpired, StateRevoked, StateEnded, StateFailed:
		return true
	}
	return false
}

// Access is the kind of database access requested.
type Access = pgaccess.Access

// Access kinds.
const (
	AccessRead  = pgaccess.AccessRead
	AccessWrite = pgaccess.AccessWrite
)

// AccessRequestInput starts an AccessRequest. The requester is not part of it: it is the
// verified identity of whoever starts the workflow.
type AccessRequestInput struct {
	// Resource is the database to access, e.g. "demo" (lower-case letters, digits, _).
	Resource string `json:"resource"`
	// Role is the kind of access: "read" or "write".
	Role Access `json:"role"`
	// Duration is how long the access lasts once granted (at most Config.MaxDuration).
	Duration time.Duration `json:"duration"`
	// Reason says why; shown to approvers. Required.
	Reason string `json:"reason"`
	// Config routes and times the request. Nil: DefaultAccessConfig(), the policy; a Config
	// may only tighten it (more approvers, shorter timers), else the start fails with
	// TypeLooserRules.
	Config *AccessConfig `json:"config,omitempty"`
}

// AccessConfig routes requests to approvers and sets the durable timers. It travels in the
// input so every run records the rules it was decided by. Zero fields take the defaults below.
type AccessConfig struct {
	// Routes maps a requester's department claim to who may approve. Default:
	// DefaultAccessConfig().Routes (engineering → db-approver). A department without a route
	// falls back to Fallback; with no Fallback the request fails at once.
	Routes map[string]Route `json:"routes,omitempty"`
	// Fallback is the route for departments not in Routes. Default: none.
	Fallback *Route `json:"fallback,omitempty"`
	// AdminRole may revoke any request and is where requests escalate by default.
	// Default "admin".
	AdminRole string `json:"admin_role,omitempty"`
	// EscalateAfter is how long a request waits for decisions before the escalation group is
	// notified (and may approve). Default 1h. Ignored when not shorter than ExpireAfter.
	EscalateAfter time.Duration `json:"escalate_after,omitempty"`
	// ExpireAfter is how long a request waits for decisions in all. Default 24h.
	ExpireAfter time.Duration `json:"expire_after,omitempty"`
	// MaxDuration caps AccessRequestInput.Duration. Default 12h.
	MaxDuration time.Duration `json:"max_duration,omitempty"`
	// KeepAliveEvery made the hold of an earlier release wake up at this interval to refresh
	// the requester's session for the revoke.
	//
	// Deprecated: the revoke runs under the pool's authority, so no run of this release
	// ticks: the hold is one durable timer and the value is ignored. It is still read so that
	// a hold that began on an earlier release replays the ticks that release recorded, up to
	// the first tick that fires on this release (see legacyHold).
	KeepAliveEvery time.Duration `json:"keep_alive_every,omitempty"`
}

// Route says who approves requests from one department.
type Route struct {
	// ApproverRole is the role an approver must hold (effective roles, nested roles expanded),
	// e.g. "db-approver". Required.
	ApproverRole string `json:"approver_role"`
	// AnyDepartment lets approvers of any department approve. Default false: the approver's
	// department claim must equal the requester's.
	AnyDepartment bool `json:"any_department,omitempty"`
	// Required is the number of distinct approvers needed (m of n). Default 1.
	Required int `json:"required,omitempty"`
	// EscalationRole is notified after EscalateAfter and may then approve or deny too.
	// Default: AccessConfig.AdminRole.
	EscalationRole string `json:"escalation_role,omitempty"`
}

// DefaultAccessConfig returns the configuration used when AccessRequestInput.Config is nil.
func DefaultAccessConfig() AccessConfig {
	return AccessConfig{
		Routes: map[string]Route{
			"engineering": {ApproverRole: "db-approver", Required: 1},
		},
		AdminRole:     "admin",
		EscalateAfter: time.Hour,
		ExpireAfter:   24 * time.Hour,
		MaxDuration:   12 * time.Hour,
	}
}

// ApproveInput is the argument of the approve update. RunID and RequestDigest name what is
// approved: copy both from the status the approver was shown (ApproveAccess and
// ApproveInvoice do). The handler refuses, with TypeApprovalMismatch, an approval that names
// another run or another request, or none: no wildcard is accepted. Send the update with
// client.UpdateWorkflowOptions.RunID set to the same RunID, so the server delivers it to
// that run only.
type ApproveInput struct {
	Comment string `json:"comment,omitempty"`
	// RunID is the run the approver looked at (AccessStatus.RunID, InvoiceStatus.RunID).
	RunID string `json:"run_id"`
	// RequestDigest is the digest of the request the approver was shown
	// (AccessStatus.RequestDigest, InvoiceStatus.RequestDigest).
	RequestDigest string `json:"request_digest"`
}

// DenyInput is the argument of the deny update. RunID and RequestDigest name what is denied,
// as in ApproveInput (DenyAccess and DenyInvoice fill them in).
type DenyInput struct {
	// Comment says why; required.
	Comment string `json:"comment"`
	// RunID is the run the approver looked at.
	RunID string `json:"run_id"`
	// RequestDigest is the digest of the request the approver was shown.
	RequestDigest string `json:"request_digest"`
}

// RevokeInput is the argument of the revoke update.
type RevokeInput struct {
	Reason string `json:"reason,omitempty"`
}

// Actor is the part of a verified identity that the audit trail, memo and status show:
// claims only, never a token.
type Actor struct {
	Subject     string   `json:"sub"`
	Issuer      string   `json:"iss,omitempty"`
	Name        string   `json:"name,omitempty"`
	Email       string   `json:"email,omitempty"`
	Roles       []string `json:"roles,omitempty"`
	Permissions []string `json:"permissions,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	Department  string   `json:"department,omitempty"`
}

// AuditEntry is one step of the audit trail.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Action string    `json:"action"` // requested, approve, deny, revoke, escalated, granted, ...
	// Actor is who acted; nil for steps the workflow takes by itself (timers).
	Actor *Actor `json:"actor,omitempty"`
	// Outcome is "ok", or "refused" for an attempt that policy refused, or "failed".
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
}

// Audit outcomes.
const (
	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// AccessStatus is the answer of the status query and the update results.
type AccessStatus struct {
	State          State         `json:"state"`
	Requester      Actor         `json:"requester"`
	Resource       string        `json:"resource"`
	Role           Access        `json:"role"`
	Duration       time.Duration `json:"duration"`
	Reason         string        `json:"reason"`
	ApproverRole   string        `json:"approver_role"`
	EscalationRole string        `json:"escalation_role,omitempty"`
	Required       int           `json:"required"`
	Approvers      []string      `json:"approvers,omitempty"` // subjects
	Escalated      bool          `json:"escalated,omitempty"`
	DecideBy       time.Time     `json:"decide_by"` // request expiry
	// Grant is set once the database role exists.
	Grant *activities.Grant `json:"grant,omitempty"`
	// RunID is the run that answered. An approval or denial names it (ApproveAccess).
	RunID string `json:"run_id"`
	// RequestDigest is the SHA-256 (hex) of what approvers decide on: requester (subject,
	// issuer, department), resource, role, duration, reason, approver role, required count
	// and escalation role. It is fixed for the run; an approval or denial names it.
	RequestDigest string `json:"request_digest"`
}

// AccessRequestResult is the result of an AccessRequest run.
type AccessRequestResult struct {
	State  State             `json:"state"`
	Grant  *activities.Grant `json:"grant,omitempty"`
	Audit  []AuditEntry      `json:"audit"`
	Status AccessStatus      `json:"status"`
}

// InvoiceApprovalInput starts an InvoiceApproval. The submitter is the verified starter.
type InvoiceApprovalInput struct {
	InvoiceID   string `json:"invoice_id"`
	Vendor      string `json:"vendor"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Description string `json:"description,omitempty"`
	// Config sets the rules. Nil: DefaultInvoiceConfig(), the policy; a Config may only tighten
	// it, else the start fails with TypeLooserRules.
	Config *InvoiceConfig `json:"config,omitempty"`
}

// InvoiceConfig sets the invoice rules. Zero fields take the defaults below.
type InvoiceConfig struct {
	// Permission an approver must hold. Default "can_approve_invoice".
	Permission string `json:"permission,omitempty"`
	// SecondApproverAboveCents: invoices above this amount need a second, distinct approver,
	// and one of the two must be from FinanceDepartment. Default 1_000_000 (10,000.00).
	SecondApproverAboveCents int64 `json:"second_approver_above_cents,omitempty"`
	// FinanceDepartment is the department claim of finance. Default "finance".
	FinanceDepartment string `json:"finance_department,omitempty"`
	// ExpireAfter is how long the invoice waits for decisions. Default 7 days.
	ExpireAfter time.Duration `json:"expire_after,omitempty"`
}

// DefaultInvoiceConfig returns the configuration used when InvoiceApprovalInput.Config is nil.
func DefaultInvoiceConfig() InvoiceConfig {
	return InvoiceConfig{
		Permission:               "can_approve_invoice",
		SecondApproverAboveCents: 1_000_000,
		FinanceDepartment:        "finance",
		ExpireAfter:              7 * 24 * time.Hour,
	}
}

// InvoiceStatus is the answer of the invoice status query and update results.
type InvoiceStatus struct {
	State       State    `json:"state"`
	Submitter   Actor    `json:"submitter"`
	InvoiceID   string   `json:"invoice_id"`
	Vendor      string   `json:"vendor"`
	Amount      int64    `json:"amount_cents"`
	Currency    string   `json:"currency"`
	Description string   `json:"description,omitempty"`
	Required    int      `json:"required"`
	Approvers   []string `json:"approvers,omitempty"`
	// RunID is the run that answered. An approval or denial names it (ApproveInvoice).
	RunID string `json:"run_id"`
	// RequestDigest is the SHA-256 (hex) of what approvers decide on: submitter (subject,
	// issuer, department), invoice id, vendor, amount, currency, description and required
	// count. An approval or denial names it.
	RequestDigest string `json:"request_digest"`
}

// InvoiceApprovalResult is the result of an InvoiceApproval run.
type InvoiceApprovalResult struct {
	State     State        `json:"state"`
	Approvers []string     `json:"approvers,omitempty"`
	Audit     []AuditEntry `json:"audit"`
}

// AdminTaskInput starts an AdminTask. The role required is the worker's configuration
// (OIDCFLOW_ADMIN_ROLE, AdminTaskOptions.AdminRole), never part of the input: an input that
// still carries admin_role is accepted and the value ignored.
type AdminTaskInput struct {
	// Task is one of AdminTaskListGrants, AdminTaskSweepExpired.
	Task string `json:"task"`
}

// Admin tasks.
const (
	// AdminTaskListGrants lists the database roles oidcflow manages.
	AdminTaskListGrants = "list-grants"
	// AdminTaskSweepExpired runs the sweeper's database step now: drops managed roles whose
	// VALID UNTIL has passed or whose run is no longer running, and ends their sessions.
	AdminTaskSweepExpired = "sweep-expired"
)

// AdminTaskResult is the result of an AdminTask run.
type AdminTaskResult struct {
	Task   string             `json:"task"`
	Actor  Actor              `json:"actor"`
	Grants []activities.Grant `json:"grants,omitempty"`
}
