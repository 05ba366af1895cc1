package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oidcflow/oidcflow/workflows"
)

// fakeTemporal is an in-memory stand-in for the few client calls the starter makes. Starts
// and updates ask the token source for a token, as the real interceptor does.
type fakeTemporal struct {
	mu        sync.Mutex
	ts        oauth2.TokenSource
	runs      map[string]*fakeWF // by workflow id: the latest run
	byRun     map[string]*fakeWF // by run id: every run
	started   []workflows.AccessRequestInput
	updates   []string // name:id
	sent      []client.UpdateWorkflowOptions
	listQuery string
	// onUpdate decides an update; default: approve -> approved, deny -> denied, revoke -> revoked,
	// after the checks the server (run id) and the workflow (named run and digest) make.
	onUpdate func(id, name string, arg any) (workflows.AccessStatus, error)
	// beforeUpdate runs first in UpdateWorkflow, without the lock (to swap runs in between).
	beforeUpdate func()
}

type fakeWF struct {
	status workflows.AccessStatus
	audit  []workflows.AuditEntry
}

// fakeDigest stands in for the workflow's request digest: it changes with the request.
func fakeDigest(in workflows.AccessRequestInput) string {
	return fmt.Sprintf("digest(%s,%s,%d,%s)", in.Resource, in.Role, in.Duration, in.Reason)
}

func newFakeTemporal() *fakeTemporal {
	return &fakeTemporal{runs: map[string]*fakeWF{}, byRun: map[string]*fakeWF{}}
}

func (f *fakeTemporal) dial(_ context.Context, _ *runner, ts oauth2.TokenSource) (temporalClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ts = ts
	return f, nil
}

func (f *fakeTemporal) seal() error {
	if f.ts == nil {
		panic("a sealing call on a client without identity")
	}
	_, err := f.ts.Token()
	return err
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	if err := f.seal(); err != nil {
		return nil, err
	}
	in := args[0].(workflows.AccessRequestInput)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, in)
	// A start under an id in use replaces the run, as a start after the old run ended does.
	runID := "run-" + o.ID
	if f.runs[o.ID] != nil {
		runID = fmt.Sprintf("run-%s-%d", o.ID, len(f.started))
	}
	wf := &fakeWF{
		status: workflows.AccessStatus{State: workflows.StatePending, Requester: workflows.Actor{Subject: "bob", Name: "Bob Builder", Department: "engineering"},
			Resource: in.Resource, Role: in.Role, Duration: in.Duration, Reason: in.Reason, ApproverRole: "db-approver", Required: 1,
			DecideBy: time.Now().Add(24 * time.Hour), RunID: runID, RequestDigest: fakeDigest(in)},
		audit: []workflows.AuditEntry{{Time: time.Now(), Action: "requested", Actor: &workflows.Actor{Subject: "bob"}, Outcome: workflows.OutcomeOK, Detail: in.Reason}},
	}
	f.runs[o.ID], f.byRun[runID] = wf, wf
	return fakeRun{id: o.ID, runID: runID, f: f}, nil
}

func (f *fakeTemporal) GetWorkflow(_ context.Context, id, runID string) client.WorkflowRun {
	return fakeRun{id: id, runID: runID, f: f}
}

func (f *fakeTemporal) UpdateWorkflow(_ context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	if err := f.seal(); err != nil {
		return nil, err
	}
	if f.beforeUpdate != nil {
		f.beforeUpdate()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, o.UpdateName+":"+o.WorkflowID)
	f.sent = append(f.sent, o)
	wf, ok := f.runs[o.WorkflowID]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	if o.RunID != "" && o.RunID != wf.status.RunID {
		// The server delivers an update with a run id to that run only, and it has ended.
		return nil, serviceerror.NewNotFound("workflow execution already completed")
	}
	var st workflows.AccessStatus
	var err error
	if f.onUpdate != nil {
		st, err = f.onUpdate(o.WorkflowID, o.UpdateName, o.Args[0])
	} else {
		st = wf.status
		var runID, digest string
		switch in := o.Args[0].(type) {
		case workflows.ApproveInput:
			runID, digest = in.RunID, in.RequestDigest
		case workflows.DenyInput:
			runID, digest = in.RunID, in.RequestDigest
		}
		switch {
		case (o.UpdateName == workflows.UpdateApprove || o.UpdateName == workflows.UpdateDeny) &&
			(runID != st.RunID || digest != st.RequestDigest):
			err = temporal.NewNonRetryableApplicationError("workflows: "+o.UpdateName+" names another run or request: the request "+
				"changed since it was looked at", workflows.TypeApprovalMismatch, nil)
		case o.UpdateName == workflows.UpdateApprove:
			st.State, st.Approvers = workflows.StateApproved, []string{"carol"}
		case o.UpdateName == workflows.UpdateDeny:
			st.State = workflows.StateDenied
		case o.UpdateName == workflows.UpdateRevoke:
			st.State = workflows.StateRevoked
		}
	}
	if err == nil {
		wf.status = st
	}
	return fakeHandle{id: o.WorkflowID, st: st, err: err}, nil
}

func (f *fakeTemporal) QueryWorkflow(_ context.Context, id, runID, q string, _ ...any) (converter.EncodedValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	wf, ok := f.runs[id]
	if runID != "" {
		wf, ok = f.byRun[runID]
	}
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	if q == workflows.QueryAudit {
		return jsonValue{wf.audit}, nil
	}
	st := wf.status
	// A granted request moves on after the first query, for --wait.
	if st.State == workflows.StateApproved {
		wf.status.State = workflows.StateGranted
	}
	return jsonValue{st}, nil
}

func (f *fakeTemporal) DescribeWorkflowExecution(context.Context, string, string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Status: enums.WORKFLOW_EXECUTION_STATUS_RUNNING}}, nil
}

func (f *fakeTemporal) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listQuery = req.Query
	dc := converter.GetDefaultDataConverter()
	pl := func(v any) *commonpb.Payload {
		p, err := dc.ToPayload(v)
		if err != nil {
			panic(err)
		}
		return p
	}
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	return &workflowservice.ListWorkflowExecutionsResponse{Executions: []*workflowpb.WorkflowExecutionInfo{{
		Execution: &commonpb.WorkflowExecution{WorkflowId: "access-demo-1", RunId: "run-1"},
		Status:    enums.WORKFLOW_EXECUTION_STATUS_RUNNING,
		StartTime: timestamppb.New(start),
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
			"Requester": pl("bob"), "RequesterDepartment": pl("engineering"), "Resource": pl("demo"),
			"ApprovalState": pl("pending"), "Approvers": pl([]string{"carol"}),
		}},
	}}}, nil
}

func (f *fakeTemporal) Close() {}

type fakeRun struct {
	id, runID string
	f         *fakeTemporal
}

func (r fakeRun) GetID() string                  { return r.id }
func (r fakeRun) GetRunID() string               { return r.runID }
func (r fakeRun) GetFirstExecutionRunID() string { return r.runID }
func (r fakeRun) Get(context.Context, any) error { return nil }
func (r fakeRun) GetWithOptions(context.Context, any, client.WorkflowRunGetOptions) error {
	return nil
}

type fakeHandle struct {
	id  string
	st  workflows.AccessStatus
	err error
}

func (h fakeHandle) WorkflowID() string { return h.id }
func (h fakeHandle) RunID() string      { return "run-" + h.id }
func (h fakeHandle) UpdateID() string   { return "u-1" }
func (h fakeHandle) Get(_ context.Context, v any) error {
	if h.err != nil {
		return h.err
	}
	return jsonValue{h.st}.Get(v)
}

type jsonValue struct{ v any }

func (j jsonValue) HasValue() bool { return true }
func (j jsonValue) Get(ptr any) error {
	b, err := json.Marshal(j.v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}
