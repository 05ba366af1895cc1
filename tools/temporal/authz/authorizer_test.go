package authz

import (
	"context"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	tapi "go.temporal.io/server/common/api"
	"go.temporal.io/server/common/authorization"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Rule codes of the table below.
const (
	read       = "R" // read, write, worker or admin in the namespace (or system read)
	write      = "W" // write or admin in the namespace
	worker     = "K" // the worker role in the namespace
	admin      = "A" // admin in the namespace
	sysAdmin   = "S" // system admin only
	uiCluster  = "U" // any role in some namespace
	healthOnly = "H" // everyone, even without a token
)

// apis lists every WorkflowService and OperatorService method of server 1.29.1 with its rule.
var apis = map[string]string{
	ws + "RegisterNamespace":                     sysAdmin,
	ws + "DescribeNamespace":                     read,
	ws + "ListNamespaces":                        uiCluster,
	ws + "UpdateNamespace":                       admin,
	ws + "DeprecateNamespace":                    admin,
	ws + "StartWorkflowExecution":                write,
	ws + "ExecuteMultiOperation":                 write,
	ws + "GetWorkflowExecutionHistory":           read,
	ws + "GetWorkflowExecutionHistoryReverse":    read,
	ws + "PollWorkflowTaskQueue":                 worker,
	ws + "RespondWorkflowTaskCompleted":          worker,
	ws + "RespondWorkflowTaskFailed":             worker,
	ws + "PollActivityTaskQueue":                 worker,
	ws + "RecordActivityTaskHeartbeat":           worker,
	ws + "RecordActivityTaskHeartbeatById":       worker,
	ws + "RespondActivityTaskCompleted":          worker,
	ws + "RespondActivityTaskCompletedById":      worker,
	ws + "RespondActivityTaskFailed":             worker,
	ws + "RespondActivityTaskFailedById":         worker,
	ws + "RespondActivityTaskCanceled":           worker,
	ws + "RespondActivityTaskCanceledById":       worker,
	ws + "RequestCancelWorkflowExecution":        write,
	ws + "SignalWorkflowExecution":               write,
	ws + "SignalWithStartWorkflowExecution":      write,
	ws + "ResetWorkflowExecution":                admin,
	ws + "TerminateWorkflowExecution":            admin,
	ws + "DeleteWorkflowExecution":               admin,
	ws + "ListOpenWorkflowExecutions":            read,
	ws + "ListClosedWorkflowExecutions":          read,
	ws + "ListWorkflowExecutions":                read,
	ws + "ListArchivedWorkflowExecutions":        read,
	ws + "ScanWorkflowExecutions":                read,
	ws + "CountWorkflowExecutions":               read,
	ws + "GetSearchAttributes":                   uiCluster,
	ws + "RespondQueryTaskCompleted":             worker,
	ws + "ResetStickyTaskQueue":                  worker,
	ws + "ShutdownWorker":                        worker,
	ws + "QueryWorkflow":                         read,
	ws + "DescribeWorkflowExecution":             read,
	ws + "DescribeTaskQueue":                     read,
	ws + "GetClusterInfo":                        uiCluster,
	ws + "GetSystemInfo":                         healthOnly,
	ws + "ListTaskQueuePartitions":               read,
	ws + "CreateSchedule":                        write,
	ws + "DescribeSchedule":                      read,
	ws + "UpdateSchedule":                        write,
	ws + "PatchSchedule":                         write,
	ws + "ListScheduleMatchingTimes":             read,
	ws + "DeleteSchedule":                        write,
	ws + "ListSchedules":                         read,
	ws + "UpdateWorkerBuildIdCompatibility":      write,
	ws + "GetWorkerBuildIdCompatibility":         read,
	ws + "UpdateWorkerVersioningRules":           write,
	ws + "GetWorkerVersioningRules":              read,
	ws + "GetWorkerTaskReachability":             read,
	ws + "DescribeDeployment":                    read,
	ws + "DescribeWorkerDeploymentVersion":       read,
	ws + "ListDeployments":                       read,
	ws + "GetDeploymentReachability":             read,
	ws + "GetCurrentDeployment":                  read,
	ws + "SetCurrentDeployment":                  write,
	ws + "SetWorkerDeploymentCurrentVersion":     write,
	ws + "DescribeWorkerDeployment":              read,
	ws + "DeleteWorkerDeployment":                write,
	ws + "DeleteWorkerDeploymentVersion":         write,
	ws + "SetWorkerDeploymentRampingVersion":     write,
	ws + "ListWorkerDeployments":                 read,
	ws + "UpdateWorkerDeploymentVersionMetadata": write,
	ws + "SetWorkerDeploymentManager":            write,
	ws + "UpdateWorkflowExecution":               write,
	ws + "PollWorkflowExecutionUpdate":           read,
	ws + "StartBatchOperation":                   admin,
	ws + "StopBatchOperation":                    admin,
	ws + "DescribeBatchOperation":                read,
	ws + "ListBatchOperations":                   read,
	ws + "PollNexusTaskQueue":                    worker,
	ws + "RespondNexusTaskCompleted":             worker,
	ws + "RespondNexusTaskFailed":                worker,
	ws + "UpdateActivityOptions":                 write,
	ws + "UpdateWorkflowExecutionOptions":        write,
	ws + "PauseActivity":                         write,
	ws + "UnpauseActivity":                       write,
	ws + "ResetActivity":                         write,
	ws + "CreateWorkflowRule":                    write,
	ws + "DescribeWorkflowRule":                  read,
	ws + "DeleteWorkflowRule":                    write,
	ws + "ListWorkflowRules":                     read,
	ws + "TriggerWorkflowRule":                   write,
	ws + "RecordWorkerHeartbeat":                 worker,
	ws + "ListWorkers":                           read,
	ws + "UpdateTaskQueueConfig":                 write,
	ws + "FetchWorkerConfig":                     read,
	ws + "UpdateWorkerConfig":                    write,
	ws + "DescribeWorker":                        read,

	ops + "AddSearchAttributes":      admin,
	ops + "RemoveSearchAttributes":   admin,
	ops + "ListSearchAttributes":     read,
	ops + "DeleteNamespace":          admin,
	ops + "AddOrUpdateRemoteCluster": sysAdmin,
	ops + "RemoveRemoteCluster":      sysAdmin,
	ops + "ListClusters":             sysAdmin,
	ops + "GetNexusEndpoint":         sysAdmin,
	ops + "CreateNexusEndpoint":      sysAdmin,
	ops + "UpdateNexusEndpoint":      sysAdmin,
	ops + "DeleteNexusEndpoint":      sysAdmin,
	ops + "ListNexusEndpoints":       sysAdmin,

	healthpb.Health_Check_FullMethodName:                                           healthOnly,
	tapi.AdminServicePrefix + "DescribeCluster":                                    sysAdmin,
	"/temporal.server.api.historyservice.v1.HistoryService/StartWorkflowExecution": sysAdmin,
}

// persona is a caller as Temporal's JWT claim mapper would map its permissions; nil
// permissions mean no claims at all (no token).
type persona struct {
	name  string
	perms []string
}

var personas = []persona{
	{"no token", nil},
	{"no permissions", []string{}},
	{"app permissions only", []string{"can_request_access", "read:db"}},
	{"read", []string{"ns:read"}},
	{"write", []string{"ns:write", "can_request_access"}},
	{"worker", []string{"ns:worker"}},
	{"write+worker", []string{"ns:write", "ns:worker"}},
	{"admin", []string{"ns:admin"}},
	{"admin elsewhere", []string{"other:admin", "other:worker"}},
	{"system read", []string{"temporal-system:read"}},
	{"system write", []string{"temporal-system:write"}},
	{"system worker", []string{"temporal-system:worker"}},
	{"system admin", []string{"temporal-system:admin"}},
}

// allowedPersonas is the expected outcome of each rule for the call in namespace "ns".
var allowedPersonas = map[string][]string{
	read:       {"read", "write", "worker", "write+worker", "admin", "system read", "system write", "system worker", "system admin"},
	write:      {"write", "write+worker", "admin", "system write", "system admin"},
	worker:     {"worker", "write+worker", "system worker", "system admin"},
	admin:      {"admin", "system admin"},
	sysAdmin:   {"system admin"},
	uiCluster:  {"read", "write", "worker", "write+worker", "admin", "admin elsewhere", "system read", "system write", "system worker", "system admin"},
	healthOnly: nil, // everyone
}

// claimsOf maps permissions the way Temporal's default JWT claim mapper does.
func claimsOf(perms []string) *authorization.Claims {
	if perms == nil {
		return nil
	}
	c := &authorization.Claims{Subject: "someone"}
	for _, p := range perms {
		ns, role, ok := strings.Cut(p, ":")
		if !ok {
			continue
		}
		var r authorization.Role
		switch role {
		case "read":
			r = authorization.RoleReader
		case "write":
			r = authorization.RoleWriter
		case "worker":
			r = authorization.RoleWorker
		case "admin":
			r = authorization.RoleAdmin
		}
		if ns == "temporal-system" {
			c.System |= r
			continue
		}
		if c.Namespaces == nil {
			c.Namespaces = map[string]authorization.Role{}
		}
		c.Namespaces[ns] |= r
	}
	return c
}

func TestAuthorizerAPIByAPI(t *testing.T) {
	a := NewAuthorizer(nil)
	for api, rule := range apis {
		allowed := map[string]bool{}
		for _, p := range allowedPersonas[rule] {
			allowed[p] = true
		}
		for _, p := range personas {
			want := rule == healthOnly || allowed[p.name]
			target := &authorization.CallTarget{APIName: api}
			if tapi.GetMethodMetadata(api).Scope == tapi.ScopeNamespace {
				target.Namespace = "ns"
			}
			res, err := a.Authorize(context.Background(), claimsOf(p.perms), target)
			if err != nil {
				t.Fatalf("%s as %s: error %v", api, p.name, err)
			}
			got := res.Decision == authorization.DecisionAllow
			if got != want {
				t.Errorf("%s as %s: allowed=%v, want %v (rule %s, reason %q)", tapi.MethodName(api), p.name, got, want, rule, res.Reason)
			}
			if !got && res.Reason == "" {
				t.Errorf("%s as %s: denied without a reason", tapi.MethodName(api), p.name)
			}
		}
	}
}

// Every method of the services the frontend serves has a row, so an API added by a server
// upgrade is noticed here.
func TestEveryAPIHasARule(t *testing.T) {
	for _, m := range workflowservice.WorkflowService_ServiceDesc.Methods {
		if _, ok := apis[ws+m.MethodName]; !ok {
			t.Errorf("WorkflowService/%s has no rule in the table", m.MethodName)
		}
	}
	for _, m := range operatorservice.OperatorService_ServiceDesc.Methods {
		if _, ok := apis[ops+m.MethodName]; !ok {
			t.Errorf("OperatorService/%s has no rule in the table", m.MethodName)
		}
	}
}

func TestDescribeNamespaceOnlyWhereARoleIsHeld(t *testing.T) {
	c := claimsOf([]string{"ns:read"})
	for ns, want := range map[string]bool{"ns": true, "other": false, "": false, "temporal-system": false} {
		got, _ := Decide(c, &authorization.CallTarget{APIName: ws + "DescribeNamespace", Namespace: ns})
		if got != want {
			t.Errorf("DescribeNamespace %q: allowed=%v, want %v", ns, got, want)
		}
	}
}

func TestStartThatTerminatesNeedsAdmin(t *testing.T) {
	writer, adm := claimsOf([]string{"ns:write"}), claimsOf([]string{"ns:admin"})
	cases := []struct {
		name string
		api  string
		req  any
		// whether a writer may make the call; an admin always may
		writer bool
	}{
		{"plain start", "StartWorkflowExecution", &workflowservice.StartWorkflowExecutionRequest{Namespace: "ns"}, true},
		{"start use existing", "StartWorkflowExecution", &workflowservice.StartWorkflowExecutionRequest{
			WorkflowIdConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING}, true},
		{"start terminate existing", "StartWorkflowExecution", &workflowservice.StartWorkflowExecutionRequest{
			WorkflowIdConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING}, false},
		{"start terminate if running", "StartWorkflowExecution", &workflowservice.StartWorkflowExecutionRequest{
			WorkflowIdReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING}, false},
		{"signal with start terminate", "SignalWithStartWorkflowExecution", &workflowservice.SignalWithStartWorkflowExecutionRequest{
			WorkflowIdConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING}, false},
		{"multi operation terminate", "ExecuteMultiOperation", &workflowservice.ExecuteMultiOperationRequest{
			Operations: []*workflowservice.ExecuteMultiOperationRequest_Operation{{
				Operation: &workflowservice.ExecuteMultiOperationRequest_Operation_StartWorkflow{
					StartWorkflow: &workflowservice.StartWorkflowExecutionRequest{
						WorkflowIdConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING}}}}}, false},
		{"multi operation plain", "ExecuteMultiOperation", &workflowservice.ExecuteMultiOperationRequest{
			Operations: []*workflowservice.ExecuteMultiOperationRequest_Operation{{
				Operation: &workflowservice.ExecuteMultiOperationRequest_Operation_StartWorkflow{
					StartWorkflow: &workflowservice.StartWorkflowExecutionRequest{}}}}}, true},
	}
	for _, tc := range cases {
		target := &authorization.CallTarget{APIName: ws + tc.api, Namespace: "ns", Request: tc.req}
		if got, reason := Decide(writer, target); got != tc.writer {
			t.Errorf("%s as writer: allowed=%v, want %v (%s)", tc.name, got, tc.writer, reason)
		}
		if got, reason := Decide(adm, target); !got {
			t.Errorf("%s as admin: denied (%s)", tc.name, reason)
		}
	}
}

func TestNilTargetIsDenied(t *testing.T) {
	if ok, _ := Decide(claimsOf([]string{"temporal-system:admin"}), nil); ok {
		t.Fatal("a nil target was allowed")
	}
}
