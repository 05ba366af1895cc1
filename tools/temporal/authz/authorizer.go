package authz

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	tapi "go.temporal.io/server/common/api"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

const (
	ws  = tapi.WorkflowServicePrefix
	ops = tapi.OperatorServicePrefix
)

// workerOnly are the APIs a worker uses to take and answer tasks: whoever calls them gets
// the histories and acts for the workflows on the task queue. They need the worker role in
// the namespace; write or admin without worker is not enough.
var workerOnly = set(
	ws+"PollWorkflowTaskQueue",
	ws+"RespondWorkflowTaskCompleted",
	ws+"RespondWorkflowTaskFailed",
	ws+"PollActivityTaskQueue",
	ws+"RecordActivityTaskHeartbeat",
	ws+"RecordActivityTaskHeartbeatById",
	ws+"RespondActivityTaskCompleted",
	ws+"RespondActivityTaskCompletedById",
	ws+"RespondActivityTaskFailed",
	ws+"RespondActivityTaskFailedById",
	ws+"RespondActivityTaskCanceled",
	ws+"RespondActivityTaskCanceledById",
	ws+"PollNexusTaskQueue",
	ws+"RespondNexusTaskCompleted",
	ws+"RespondNexusTaskFailed",
	ws+"RespondQueryTaskCompleted",
	ws+"ResetStickyTaskQueue",
	ws+"ShutdownWorker",
	ws+"RecordWorkerHeartbeat",
)

// adminOnly are the APIs that end or rewrite runs without running their code, act on many
// runs at once, or change a namespace: namespace admin (Temporal's default asks only write
// for the first ones).
var adminOnly = set(
	ws+"TerminateWorkflowExecution",
	ws+"ResetWorkflowExecution",
	ws+"DeleteWorkflowExecution",
	ws+"StartBatchOperation",
	ws+"StopBatchOperation",
	ws+"UpdateNamespace",
	ws+"DeprecateNamespace",
	ops+"DeleteNamespace",
	ops+"AddSearchAttributes",
	ops+"RemoveSearchAttributes",
)

// systemAdminOnly: creating a namespace is a change of the cluster, not of a namespace the
// caller already holds.
var systemAdminOnly = set(
	ws + "RegisterNamespace",
)

// uiClusterReads are the cluster-level reads the Web UI makes on every page; they are
// allowed to whoever holds at least read (or worker) in some namespace.
var uiClusterReads = set(
	ws+"ListNamespaces",
	ws+"GetClusterInfo",
	ws+"GetSystemInfo",
	ws+"GetSearchAttributes",
)

func set(names ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[n] = struct{}{}
	}
	return m
}

// Authorizer implements authorization.Authorizer:
//
//   - health checks (gRPC health, GetSystemInfo) are allowed to everyone, as in Temporal's
//     default authorizer;
//   - a call without claims (no token) is denied;
//   - system admin ("temporal-system:admin", and every caller of the internal frontend) is
//     allowed everything;
//   - task queue APIs (poll, respond, heartbeat, shutdown worker) need the worker role in
//     the namespace (system worker counts);
//   - terminate, reset, delete, batch operations, namespace and search attribute changes
//     need admin in the namespace; registering a namespace needs system admin; a start
//     that would terminate a running workflow (conflict policy TERMINATE_EXISTING or
//     reuse policy TERMINATE_IF_RUNNING) needs admin;
//   - ListNamespaces, GetClusterInfo, GetSystemInfo and GetSearchAttributes are allowed to
//     whoever holds read, write, worker or admin in some namespace;
//   - everything else follows Temporal's default: the API's access level (read, write,
//     admin) against the caller's role in the namespace (namespace-scoped APIs) or system
//     role (cluster-scoped APIs). Worker counts as read, since a worker reads its namespace
//     and its histories anyway.
type Authorizer struct {
	logger log.Logger
}

var _ authorization.Authorizer = (*Authorizer)(nil)

// NewAuthorizer returns the authorizer; denials are logged at warn level when logger is
// not nil.
func NewAuthorizer(logger log.Logger) *Authorizer {
	return &Authorizer{logger: logger}
}

var allow = authorization.Result{Decision: authorization.DecisionAllow}

// Authorize decides one call. It never returns an error.
func (a *Authorizer) Authorize(_ context.Context, claims *authorization.Claims, target *authorization.CallTarget) (authorization.Result, error) {
	ok, reason := Decide(claims, target)
	if ok {
		return allow, nil
	}
	if a.logger != nil {
		sub := ""
		if claims != nil {
			sub = claims.Subject
		}
		a.logger.Warn("authorization denied",
			tag.NewStringTag("api", target.APIName),
			tag.NewStringTag("namespace", target.Namespace),
			tag.NewStringTag("subject", sub),
			tag.NewStringTag("reason", reason))
	}
	return authorization.Result{Decision: authorization.DecisionDeny, Reason: reason}, nil
}

// Decide is the rule set behind Authorize: whether the call is allowed and, when not, why.
func Decide(claims *authorization.Claims, target *authorization.CallTarget) (bool, string) {
	if target == nil {
		return false, "no call target"
	}
	name := target.APIName
	if authorization.IsHealthCheckAPI(name) {
		return true, ""
	}
	if claims == nil {
		return false, "no token"
	}
	if claims.System&authorization.RoleAdmin != 0 {
		return true, ""
	}
	md := tapi.GetMethodMetadata(name)
	if _, ok := systemAdminOnly[name]; ok {
		return false, "needs system admin"
	}
	switch md.Scope {
	case tapi.ScopeCluster:
		if _, ok := uiClusterReads[name]; ok && md.Access == tapi.AccessReadOnly {
			if level(claims.System) >= authorization.RoleReader || anyNamespaceRead(claims) {
				return true, ""
			}
			return false, "needs read in some namespace"
		}
		need := requiredLevel(md.Access)
		if level(claims.System) >= need {
			return true, ""
		}
		return false, fmt.Sprintf("needs system %s", roleName(need))
	case tapi.ScopeNamespace:
		ns := target.Namespace
		role := claims.System | claims.Namespaces[ns]
		if _, ok := workerOnly[name]; ok {
			if role&authorization.RoleWorker != 0 {
				return true, ""
			}
			return false, fmt.Sprintf("needs the worker role in namespace %q", ns)
		}
		need := requiredLevel(md.Access)
		if _, ok := adminOnly[name]; ok {
			need = authorization.RoleAdmin
		} else if startTerminatesRunning(target.Request) {
			need = authorization.RoleAdmin
		}
		if level(role) >= need {
			return true, ""
		}
		if startTerminatesRunning(target.Request) {
			return false, fmt.Sprintf("a start that terminates a running workflow needs admin in namespace %q", ns)
		}
		return false, fmt.Sprintf("needs %s in namespace %q", roleName(need), ns)
	default:
		return false, "unknown API"
	}
}

// level is the highest of read, write and admin a role bit set grants; worker counts as read.
func level(r authorization.Role) authorization.Role {
	switch {
	case r&authorization.RoleAdmin != 0:
		return authorization.RoleAdmin
	case r&authorization.RoleWriter != 0:
		return authorization.RoleWriter
	case r&(authorization.RoleReader|authorization.RoleWorker) != 0:
		return authorization.RoleReader
	}
	return authorization.RoleUndefined
}

func anyNamespaceRead(c *authorization.Claims) bool {
	for _, r := range c.Namespaces {
		if level(r) >= authorization.RoleReader {
			return true
		}
	}
	return false
}

// requiredLevel is Temporal's default mapping from an API's access to a role.
func requiredLevel(access tapi.Access) authorization.Role {
	switch access {
	case tapi.AccessReadOnly:
		return authorization.RoleReader
	case tapi.AccessWrite:
		return authorization.RoleWriter
	default:
		return authorization.RoleAdmin
	}
}

func roleName(r authorization.Role) string {
	switch r {
	case authorization.RoleReader:
		return "read"
	case authorization.RoleWriter:
		return "write"
	case authorization.RoleWorker:
		return "worker"
	case authorization.RoleAdmin:
		return "admin"
	}
	return "a role"
}

// startTerminatesRunning reports whether a start request may terminate a running workflow
// with the same id, which would bypass the admin rule for TerminateWorkflowExecution.
func startTerminatesRunning(req any) bool {
	terminates := func(conflict enumspb.WorkflowIdConflictPolicy, reuse enumspb.WorkflowIdReusePolicy) bool {
		return conflict == enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING ||
			reuse == enumspb.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING
	}
	switch r := req.(type) {
	case *workflowservice.StartWorkflowExecutionRequest:
		return terminates(r.GetWorkflowIdConflictPolicy(), r.GetWorkflowIdReusePolicy())
	case *workflowservice.SignalWithStartWorkflowExecutionRequest:
		return terminates(r.GetWorkflowIdConflictPolicy(), r.GetWorkflowIdReusePolicy())
	case *workflowservice.ExecuteMultiOperationRequest:
		for _, op := range r.GetOperations() {
			if s := op.GetStartWorkflow(); s != nil && terminates(s.GetWorkflowIdConflictPolicy(), s.GetWorkflowIdReusePolicy()) {
				return true
			}
		}
	}
	return false
}
