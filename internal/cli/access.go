package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/login"
	"github.com/oidcflow/oidcflow/workflows"
)

// temporalClient is the part of client.Client the starter uses.
type temporalClient interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	GetWorkflow(ctx context.Context, workflowID, runID string) client.WorkflowRun
	UpdateWorkflow(ctx context.Context, options client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error)
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	ListWorkflow(ctx context.Context, request *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	Close()
}

// temporalError says Temporal could not be reached.
type temporalError struct {
	addr string
	err  error
}

func (e *temporalError) Error() string {
	return fmt.Sprintf("cannot reach Temporal at %s (%v); check TEMPORAL_ADDRESS, or start the dev stack with `make up`", e.addr, e.err)
}
func (e *temporalError) Unwrap() error { return e.err }

// connect returns a Temporal client. With needToken the client seals the caller's identity
// onto starts and updates: the session is loaded (and refreshed) first, so that a missing or
// expired login is reported as such rather than as a failed call. Without it (queries,
// lists) the client carries no identity, and no login is needed unless the frontend
// authorizes its callers (bearer).
func (r *runner) connect(ctx context.Context, needToken bool) (temporalClient, error) {
	// An encrypting pool answers queries with encrypted payloads, which only its codec
	// server opens, and only for a logged-in person.
	if !needToken && !r.bearer() && r.env.String("OIDCFLOW_CODEC_ENDPOINT") == "" {
		return r.dial(ctx, r, nil)
	}
	ts, _, err := r.tokenSource(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := ts.Token(); err != nil {
		return nil, err
	}
	return r.dial(ctx, r, ts)
}

// bearer reports whether calls to Temporal carry the person's access token
// (OIDCFLOW_TEMPORAL_AUTH other than none: the frontend authorizes its callers).
func (r *runner) bearer() bool {
	mode := r.env.String("OIDCFLOW_TEMPORAL_AUTH")
	return mode != "" && mode != "none"
}

// dialTemporal connects to Temporal: through interceptors.Dial when ts is set, else with a
// plain client.
func dialTemporal(ctx context.Context, r *runner, ts oauth2.TokenSource) (temporalClient, error) {
	opts := client.Options{
		HostPort:  r.env.String("TEMPORAL_ADDRESS"),
		Namespace: r.env.String("TEMPORAL_NAMESPACE"),
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(r.stderr, &slog.HandlerOptions{Level: slog.LevelError}))),
	}
	if ts == nil {
		c, err := client.DialContext(ctx, opts)
		if err != nil {
			return nil, &temporalError{opts.HostPort, err}
		}
		return c, nil
	}
	pub, err := r.env.Required("OIDCFLOW_ENVELOPE_PUBLIC_KEY")
	if err != nil {
		return nil, err
	}
	// With an encrypting pool, payloads go through its codec server as the person.
	codecEndpoint, codecCA := r.env.String("OIDCFLOW_CODEC_ENDPOINT"), r.env.String("OIDCFLOW_CODEC_CA_FILE")
	var c client.Client
	if src, ok := ts.(*login.TokenSource); ok {
		// Starts and re-consents hand the refresh token to the pool; login.Dial records it.
		c, err = login.Dial(ctx, login.DialOptions{Client: opts, Source: src, PublicKey: pub, Bearer: r.bearer(),
			CodecEndpoint: codecEndpoint, CodecCAFile: codecCA,
			OnHandOverError: func(err error) {
				fmt.Fprintf(r.stderr, "starter: warning: could not record the refresh token's hand-over: %v\n", err)
			}})
	} else {
		c, err = interceptors.Dial(ctx, interceptors.DialOptions{Client: opts, TokenSource: ts, PublicKey: pub, Bearer: r.bearer(),
			CodecEndpoint: codecEndpoint, CodecCAFile: codecCA})
	}
	if err != nil {
		if strings.Contains(err.Error(), "OIDCFLOW_ENVELOPE_PUBLIC_KEY") || strings.Contains(err.Error(), "OIDCFLOW_CODEC_") {
			return nil, err
		}
		return nil, &temporalError{opts.HostPort, err}
	}
	return c, nil
}

// RequestJSON is the --json output of request-access, approve, deny, revoke and status.
// Status.Duration is in nanoseconds (Go's time.Duration).
type RequestJSON struct {
	WorkflowID string                  `json:"workflow_id"`
	RunID      string                  `json:"run_id,omitempty"`
	State      workflows.State         `json:"state"`
	Status     *workflows.AccessStatus `json:"status,omitempty"`
	Audit      []workflows.AuditEntry  `json:"audit,omitempty"` // status --audit only
	UIURL      string                  `json:"ui_url"`
}

func (r *runner) uiURL(workflowID string) string {
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s", strings.TrimRight(r.env.String("OIDCFLOW_TEMPORAL_UI_URL"), "/"),
		url.PathEscape(r.env.String("TEMPORAL_NAMESPACE")), url.PathEscape(workflowID))
}

func (r *runner) requestAccess(ctx context.Context, args []string) error {
	fs := r.flags("request-access", "--resource demo --role read --duration 2h --reason \"...\" [--wait]")
	resource := fs.String("resource", "", "database to access, e.g. demo (required)")
	role := fs.String("role", string(workflows.AccessRead), "kind of access: read or write")
	duration := fs.Duration("duration", time.Hour, "how long the access lasts once granted")
	reason := fs.String("reason", "", "why you need it; shown to approvers (required)")
	wait := fs.Bool("wait", false, "wait until the request is granted (exit 0) or ends otherwise (exit 1)")
	waitTimeout := fs.Duration("wait-timeout", 24*time.Hour, "with --wait, how long to wait")
	id := fs.String("id", "", "workflow id (default: access-<resource>-<random>)")
	if _, err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	switch {
	case *resource == "":
		return usageErrorf("request-access needs --resource")
	case *reason == "":
		return usageErrorf("request-access needs --reason")
	case *role != string(workflows.AccessRead) && *role != string(workflows.AccessWrite):
		return usageErrorf("--role must be read or write, not %q", *role)
	case *duration <= 0:
		return usageErrorf("--duration must be positive")
	}
	if *id == "" {
		*id = "access-" + *resource + "-" + randomString()[:12]
	}
	r.warnHandedOver(ctx)
	c, err := r.connect(ctx, true)
	if err != nil {
		return err
	}
	defer c.Close()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: *id, TaskQueue: r.env.String("OIDCFLOW_TASK_QUEUE"),
	}, workflows.AccessRequestWorkflow, workflows.AccessRequestInput{
		Resource: *resource, Role: workflows.Access(*role), Duration: *duration, Reason: *reason,
	})
	if err != nil {
		return fmt.Errorf("start the access request: %w", err)
	}
	out := RequestJSON{WorkflowID: run.GetID(), RunID: run.GetRunID(), UIURL: r.uiURL(run.GetID())}
	st, err := r.firstStatus(ctx, c, run)
	if err != nil {
		return err
	}
	if st != nil {
		out.Status, out.State = st, st.State
	}
	if *wait {
		wctx, cancel := context.WithTimeout(ctx, *waitTimeout)
		defer cancel()
		if !r.json { // --json prints the final state only
			if err := r.printRequest(out, "Access requested; waiting for a decision..."); err != nil {
				return err
			}
		}
		st, err := r.waitDecided(wctx, c, run)
		if err != nil {
			return err
		}
		out.Status, out.State = st, st.State
		if err := r.printRequest(out, ""); err != nil {
			return err
		}
		if st.State != workflows.StateGranted {
			return fmt.Errorf("the request ended %s; see `starter status --audit %s`", st.State, out.WorkflowID)
		}
		return nil
	}
	return r.printRequest(out, "Access requested.")
}

// firstStatus asks the new run for its status. The worker answers once it has verified the
// requester; a run that failed at once (no valid identity, no route) returns its error.
func (r *runner) firstStatus(ctx context.Context, c temporalClient, run client.WorkflowRun) (*workflows.AccessStatus, error) {
	qctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		st, qerr := queryStatus(qctx, c, run.GetID(), run.GetRunID())
		if qerr == nil {
			return st, nil
		}
		if closedErr := r.closedError(ctx, c, run); closedErr != nil {
			return nil, closedErr
		}
		if qctx.Err() != nil {
			fmt.Fprintf(r.stderr, "starter: warning: no worker answered within 15s (%v); is a worker polling task queue %s?\n",
				qerr, r.env.String("OIDCFLOW_TASK_QUEUE"))
			return nil, nil
		}
		select {
		case <-qctx.Done():
		case <-time.After(r.pollEvery):
		}
	}
}

// closedError returns the run's failure when it has already ended unsuccessfully.
func (r *runner) closedError(ctx context.Context, c temporalClient, run client.WorkflowRun) error {
	d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil || d.GetWorkflowExecutionInfo() == nil {
		return nil
	}
	switch d.GetWorkflowExecutionInfo().GetStatus() {
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING, enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return nil
	}
	if err := run.Get(ctx, nil); err != nil {
		return fmt.Errorf("the request failed: %w", err)
	}
	return nil
}

// waitDecided polls the status until the request is granted or final.
func (r *runner) waitDecided(ctx context.Context, c temporalClient, run client.WorkflowRun) (*workflows.AccessStatus, error) {
	for {
		st, err := queryStatus(ctx, c, run.GetID(), run.GetRunID())
		if err == nil && (st.State == workflows.StateGranted || st.State.Final()) {
			return st, nil
		}
		if cerr := r.closedError(ctx, c, run); cerr != nil {
			return nil, cerr
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("gave up waiting (--wait-timeout): %w", ctx.Err())
		case <-time.After(r.pollEvery):
		}
	}
}

func queryStatus(ctx context.Context, c temporalClient, id, runID string) (*workflows.AccessStatus, error) {
	v, err := c.QueryWorkflow(ctx, id, runID, workflows.QueryStatus)
	if err != nil {
		return nil, err
	}
	var st workflows.AccessStatus
	if err := v.Get(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (r *runner) printRequest(out RequestJSON, headline string) error {
	return r.emit(out, func(w io.Writer) {
		if headline != "" {
			fmt.Fprintln(w, headline)
		}
		fmt.Fprintf(w, "Workflow\t%s\n", out.WorkflowID)
		if out.RunID != "" {
			fmt.Fprintf(w, "Run\t%s\n", out.RunID)
		}
		state := string(out.State)
		if state == "" {
			state = "unknown (no worker answered yet)"
		}
		fmt.Fprintf(w, "State\t%s\n", state)
		if st := out.Status; st != nil {
			req := st.Requester.Subject
			if st.Requester.Name != "" {
				req = fmt.Sprintf("%s (%s)", st.Requester.Subject, st.Requester.Name)
			}
			if st.Requester.Department != "" {
				req += ", " + st.Requester.Department
			}
			fmt.Fprintf(w, "Requester\t%s\n", req)
			fmt.Fprintf(w, "Access\t%s on %s for %s\n", st.Role, st.Resource, st.Duration)
			fmt.Fprintf(w, "Reason\t%s\n", st.Reason)
			fmt.Fprintf(w, "Approvals\t%s\n", approvals(st))
			if st.Escalated {
				fmt.Fprintf(w, "Escalated\tto role %s\n", st.EscalationRole)
			}
			if !st.DecideBy.IsZero() && (st.State == workflows.StatePending || st.State == workflows.StateEscalated) {
				fmt.Fprintf(w, "Decide by\t%s\n", st.DecideBy.Local().Format(time.RFC3339))
			}
			if st.Grant != nil {
				fmt.Fprintf(w, "Grant\tdatabase role %s until %s\n", st.Grant.RoleName, st.Grant.ValidUntil.Local().Format(time.RFC3339))
			}
			if st.RequestDigest != "" {
				fmt.Fprintf(w, "Digest\t%s\n", st.RequestDigest)
			}
		}
		fmt.Fprintf(w, "Web UI\t%s\n", out.UIURL)
	})
}

// approvals says how many approvals a request has and needs, and whose.
func approvals(st *workflows.AccessStatus) string {
	appr := fmt.Sprintf("%d of %d (role %s)", len(st.Approvers), st.Required, st.ApproverRole)
	if len(st.Approvers) > 0 {
		appr += ": " + strings.Join(st.Approvers, ", ")
	}
	return appr
}

// update sends the revoke update and prints the resulting status.
func (r *runner) update(ctx context.Context, workflowID, name string, arg any, headline string) error {
	c, err := r.connect(ctx, true)
	if err != nil {
		return err
	}
	defer c.Close()
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflowID, UpdateName: name, Args: []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st workflows.AccessStatus
	if err == nil {
		err = h.Get(ctx, &st)
	}
	if err != nil {
		return r.workflowError(workflowID, name, err)
	}
	if st.State.Final() {
		waitClosed(ctx, c, workflowID, h.RunID())
	}
	return r.printRequest(RequestJSON{WorkflowID: workflowID, State: st.State, Status: &st, UIURL: r.uiURL(workflowID)}, headline)
}

// waitClosed waits a little for a run whose request reached a final state to close (its
// workflow function returns in a later workflow task), so that a new request under the same
// id starts a run of its own.
func waitClosed(ctx context.Context, c temporalClient, workflowID, runID string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = c.GetWorkflow(ctx, workflowID, runID).Get(ctx, nil) // its outcome is in the status shown
}

// workflowError turns an update or query failure into a message that says what happened.
func (r *runner) workflowError(workflowID, op string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return &notFoundError{fmt.Sprintf("no workflow %s in namespace %s (or it has ended); check the id with `starter list`",
			workflowID, r.env.String("TEMPORAL_NAMESPACE"))}
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() == "" {
		// Validator refusals (wrong state, missing comment) arrive without a type.
		return fmt.Errorf("%s refused: %s", op, app.Message())
	}
	return err
}

type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

func (r *runner) approve(ctx context.Context, args []string) error {
	fs := r.flags("approve", "<workflow-id> [--comment \"...\"] [--run <run-id>] [--digest <request-digest>]")
	comment := fs.String("comment", "", "comment for the audit trail")
	seen := pinFlags(fs, "approve")
	pos, err := parse(fs, args, 1, "a workflow id")
	if err != nil {
		return err
	}
	return r.decide(ctx, pos[0], workflows.UpdateApprove, *comment, *seen)
}

func (r *runner) deny(ctx context.Context, args []string) error {
	fs := r.flags("deny", "<workflow-id> --comment \"...\" [--run <run-id>] [--digest <request-digest>]")
	comment := fs.String("comment", "", "why (required)")
	seen := pinFlags(fs, "deny")
	pos, err := parse(fs, args, 1, "a workflow id")
	if err != nil {
		return err
	}
	if *comment == "" {
		return usageErrorf("deny needs --comment (the requester sees it)")
	}
	return r.decide(ctx, pos[0], workflows.UpdateDeny, *comment, *seen)
}

// pin is what an approver saw earlier (`starter status`): a decision with a pin is sent only
// if the request is still that one. Empty fields pin nothing.
type pin struct{ runID, digest string }

func pinFlags(fs *flag.FlagSet, verb string) *pin {
	p := &pin{}
	fs.StringVar(&p.runID, "run", "", "only "+verb+" this run of the workflow (the Run `starter status` shows); default: the latest run, shown first")
	fs.StringVar(&p.digest, "digest", "", "only "+verb+" a request with this digest (the Digest `starter status` shows)")
	return p
}

// decide sends an approve or deny update for exactly the request it shows: it queries the
// status (of the pinned run, else the latest), shows the request, and sends the decision
// addressed to that run (UpdateWorkflowOptions.RunID) and naming the request's digest
// (workflows.ApproveAccess, DenyAccess). When the run ended or was replaced in between, the
// server does not deliver it; when the request differs, the workflow refuses it. Both end
// in a changedError: nothing was decided.
func (r *runner) decide(ctx context.Context, workflowID, name, comment string, seen pin) error {
	c, err := r.connect(ctx, true)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := queryStatus(ctx, c, workflowID, seen.runID)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) && seen.runID != "" {
		return r.changed(workflowID, name, fmt.Sprintf("it has no run %s (%s)", seen.runID, nf.Message))
	}
	if err != nil {
		return r.workflowError(workflowID, "status query", err)
	}
	switch {
	case st.RunID == "" || st.RequestDigest == "":
		return fmt.Errorf("workflow %s did not name its run and request in its status (a worker older than this starter); "+
			"nothing was decided: upgrade the worker pool", workflowID)
	case seen.runID != "" && st.RunID != seen.runID:
		return r.changed(workflowID, name, fmt.Sprintf("its run is %s, not %s", st.RunID, seen.runID))
	case seen.digest != "" && st.RequestDigest != seen.digest:
		return r.changed(workflowID, name, fmt.Sprintf("its request digest is %s, not %s", st.RequestDigest, seen.digest))
	}
	verb, done := "Approving", "Approved."
	opts := workflows.ApproveAccess(workflowID, *st, comment)
	if name == workflows.UpdateDeny {
		verb, done = "Denying", "Denied."
		opts = workflows.DenyAccess(workflowID, *st, comment)
	}
	if !r.json {
		if err := r.printRequest(RequestJSON{WorkflowID: workflowID, RunID: st.RunID, State: st.State, Status: st,
			UIURL: r.uiURL(workflowID)}, verb+" this request:"); err != nil {
			return err
		}
	}
	h, err := c.UpdateWorkflow(ctx, opts)
	var res workflows.AccessStatus
	if err == nil {
		err = h.Get(ctx, &res)
	}
	var app *temporal.ApplicationError
	switch {
	case errors.As(err, &nf):
		return r.changed(workflowID, name, fmt.Sprintf("its run %s ended or was replaced (%s)", st.RunID, nf.Message))
	case errors.As(err, &app) && app.Type() == workflows.TypeApprovalMismatch:
		return &changedError{fmt.Sprintf("%s; nothing was decided. Run `starter status %s` and %s again",
			strings.TrimPrefix(app.Message(), "workflows: "), workflowID, name)}
	case err != nil:
		return r.workflowError(workflowID, name, err)
	}
	if res.State.Final() {
		waitClosed(ctx, c, workflowID, h.RunID())
	}
	out := RequestJSON{WorkflowID: workflowID, RunID: res.RunID, State: res.State, Status: &res, UIURL: r.uiURL(workflowID)}
	return r.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "\n%s\n", done)
		fmt.Fprintf(w, "State\t%s\n", res.State)
		fmt.Fprintf(w, "Approvals\t%s\n", approvals(&res))
	})
}

// changed returns the error of a decision whose request changed since the approver looked.
func (r *runner) changed(workflowID, name, what string) error {
	return &changedError{fmt.Sprintf("request %s changed since you looked at it: %s; nothing was decided. "+
		"Run `starter status %s` and %s again", workflowID, what, workflowID, name)}
}

// changedError: the run or the request a decision named is not the one there now.
type changedError struct{ msg string }

func (e *changedError) Error() string { return e.msg }

func (r *runner) revoke(ctx context.Context, args []string) error {
	fs := r.flags("revoke", "<workflow-id> [--reason \"...\"]")
	reason := fs.String("reason", "", "reason for the audit trail")
	pos, err := parse(fs, args, 1, "a workflow id")
	if err != nil {
		return err
	}
	return r.update(ctx, pos[0], workflows.UpdateRevoke, workflows.RevokeInput{Reason: *reason}, "Revoked.")
}

// warnHandedOver says when this login's refresh token already went to earlier requests:
// once they have all ended, the token is revoked, and a new request can live only as long
// as the current access token.
func (r *runner) warnHandedOver(ctx context.Context) {
	ts, _, err := r.tokenSource(ctx)
	if err != nil {
		return
	}
	s, err := ts.Session()
	if err != nil || s.HandedOver.IsZero() {
		return
	}
	fmt.Fprintf(r.stderr, "starter: note: this login's refresh token went to earlier requests at %s; if they have all "+
		"ended, this request cannot be kept alive past %s. Run `starter login` first for a long request.\n",
		s.HandedOver.Local().Format(time.RFC3339), s.Expiry.Local().Format(time.RFC3339))
}

// reconsent hands a fresh login to a run of yours whose session the IdP stopped refreshing
// (it waits in ReauthRequired): log in first, then run it; the run resumes on the new session.
func (r *runner) reconsent(ctx context.Context, args []string) error {
	fs := r.flags("reconsent", "<workflow-id>")
	pos, err := parse(fs, args, 1, "a workflow id")
	if err != nil {
		return err
	}
	c, err := r.connect(ctx, true)
	if err != nil {
		return err
	}
	defer c.Close()
	id := pos[0]
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: identity.ReconsentUpdate, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err != nil {
		return r.workflowError(id, "reconsent", err)
	}
	return r.emit(map[string]any{"workflow_id": id, "reconsented": true}, func(w io.Writer) {
		fmt.Fprintf(w, "Consent renewed: %s continues on your new session.\n", id)
	})
}

func (r *runner) status(ctx context.Context, args []string) error {
	fs := r.flags("status", "<workflow-id> [--audit]")
	audit := fs.Bool("audit", false, "also show the audit trail")
	pos, err := parse(fs, args, 1, "a workflow id")
	if err != nil {
		return err
	}
	c, err := r.connect(ctx, false)
	if err != nil {
		return err
	}
	defer c.Close()
	id := pos[0]
	st, err := queryStatus(ctx, c, id, "")
	if err != nil {
		return r.workflowError(id, "status query", err)
	}
	out := RequestJSON{WorkflowID: id, RunID: st.RunID, State: st.State, Status: st, UIURL: r.uiURL(id)}
	if *audit {
		v, err := c.QueryWorkflow(ctx, id, st.RunID, workflows.QueryAudit) // the run shown
		if err != nil {
			return r.workflowError(id, "audit query", err)
		}
		if err := v.Get(&out.Audit); err != nil {
			return err
		}
		if out.Audit == nil {
			out.Audit = []workflows.AuditEntry{}
		}
	}
	return r.printRequestWithAudit(out, *audit)
}

func (r *runner) printRequestWithAudit(out RequestJSON, audit bool) error {
	if !audit || r.json {
		return r.printRequest(out, "")
	}
	trail := out.Audit
	out.Audit = nil
	if err := r.printRequest(out, ""); err != nil {
		return err
	}
	return r.emit(nil, func(w io.Writer) {
		fmt.Fprintln(w, "\nAudit trail:")
		for _, a := range trail {
			who := "(workflow)"
			if a.Actor != nil {
				who = a.Actor.Subject
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", a.Time.Local().Format(time.DateTime), a.Action, who, a.Outcome, a.Detail)
		}
	})
}

// ListJSON is the --json output of `starter list`.
type ListJSON struct {
	Query    string         `json:"query"` // the visibility query that was run
	Requests []ListItemJSON `json:"requests"`
}

// ListItemJSON is one request in ListJSON. State is the ApprovalState search attribute;
// Execution is Temporal's run status (running, completed, failed, ...).
type ListItemJSON struct {
	WorkflowID string     `json:"workflow_id"`
	RunID      string     `json:"run_id"`
	Requester  string     `json:"requester"`
	Department string     `json:"department,omitempty"`
	Resource   string     `json:"resource"`
	State      string     `json:"state"`
	Approvers  []string   `json:"approvers,omitempty"`
	Execution  string     `json:"execution"`
	StartTime  time.Time  `json:"start_time"`
	CloseTime  *time.Time `json:"close_time,omitempty"`
	UIURL      string     `json:"ui_url"`
}

func (r *runner) list(ctx context.Context, args []string) error {
	fs := r.flags("list", "[--requester me|<subject>] [--state pending|granted|...] [--limit 20]")
	requester := fs.String("requester", "", "only requests by this subject; `me` is the logged-in subject")
	state := fs.String("state", "", "only requests in this state: pending, escalated, approved, granted, denied, expired, revoked, ended, failed")
	limit := fs.Int("limit", 20, "at most this many, newest first")
	if _, err := parse(fs, args, 0, ""); err != nil {
		return err
	}
	q, err := r.listQuery(*requester, *state)
	if err != nil {
		return err
	}
	if *limit <= 0 || *limit > 1000 {
		return usageErrorf("--limit must be between 1 and 1000")
	}
	c, err := r.connect(ctx, false)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: r.env.String("TEMPORAL_NAMESPACE"), PageSize: int32(*limit), Query: q,
	})
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	out := ListJSON{Query: q, Requests: []ListItemJSON{}}
	dc := converter.GetDefaultDataConverter()
	for _, e := range resp.GetExecutions() {
		if len(out.Requests) >= *limit {
			break
		}
		item := ListItemJSON{
			WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
			Execution: strings.ToLower(strings.TrimPrefix(e.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_")),
			StartTime: e.GetStartTime().AsTime().UTC(),
		}
		if e.GetCloseTime() != nil && !e.GetCloseTime().AsTime().IsZero() && e.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t := e.GetCloseTime().AsTime().UTC()
			item.CloseTime = &t
		}
		item.UIURL = r.uiURL(item.WorkflowID)
		fields := e.GetSearchAttributes().GetIndexedFields()
		for name, dst := range map[string]any{
			"Requester": &item.Requester, "RequesterDepartment": &item.Department, "Resource": &item.Resource,
			"ApprovalState": &item.State, "Approvers": &item.Approvers,
		} {
			if p, ok := fields[name]; ok {
				_ = dc.FromPayload(p, dst)
			}
		}
		out.Requests = append(out.Requests, item)
	}
	return r.emit(out, func(w io.Writer) {
		if len(out.Requests) == 0 {
			fmt.Fprintf(w, "No access requests match (%s).\n", q)
			return
		}
		fmt.Fprintln(w, "WORKFLOW\tREQUESTER\tRESOURCE\tSTATE\tAPPROVERS\tSTARTED")
		for _, it := range out.Requests {
			appr := strings.Join(it.Approvers, ",")
			if appr == "" {
				appr = "-"
			}
			st := it.State
			if st == "" {
				st = "-"
			}
			if it.Execution != "running" && it.Execution != "completed" {
				st += " (" + it.Execution + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", it.WorkflowID, it.Requester, it.Resource, st, appr,
				it.StartTime.Local().Format(time.DateTime))
		}
	})
}

// listQuery builds the visibility query. Values are checked rather than escaped: a subject
// or state with quotes or backslashes is refused.
func (r *runner) listQuery(requester, state string) (string, error) {
	parts := []string{fmt.Sprintf("WorkflowType = %q", workflows.AccessRequestWorkflow)}
	if requester == "me" {
		c, err := r.cache()
		if err != nil {
			return "", err
		}
		s, err := c.Load()
		if err != nil {
			return "", err
		}
		requester = s.Subject
	}
	if requester != "" {
		if strings.ContainsAny(requester, "\"'\\\n\r`") {
			return "", usageErrorf("--requester %q: quotes and backslashes are not allowed", requester)
		}
		parts = append(parts, fmt.Sprintf("Requester = %q", requester))
	}
	if state != "" {
		if !validState(workflows.State(state)) {
			return "", usageErrorf("--state %q: want one of pending, escalated, approved, granted, denied, expired, revoked, ended, failed", state)
		}
		parts = append(parts, fmt.Sprintf("ApprovalState = %q", state))
	}
	// No ORDER BY: SQLite visibility (the dev server) refuses it; lists come newest first anyway.
	return strings.Join(parts, " AND "), nil
}

func validState(s workflows.State) bool {
	switch s {
	case workflows.StatePending, workflows.StateEscalated, workflows.StateApproved, workflows.StateGranted:
		return true
	}
	return s.Final()
}

// isForbidden reports a policy refusal from the workflow (a failed update of type
// oidcflow.Forbidden) and returns its message.
func isForbidden(err error) (string, bool) {
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() == identity.TypeForbidden {
		return strings.TrimPrefix(app.Message(), "identity: "), true
	}
	return "", false
}
