package workflows

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/oidcflow/oidcflow/activities"
	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/pgaccess"
)

func readDemo(d time.Duration) AccessRequestInput {
	return AccessRequestInput{Resource: "demo", Role: AccessRead, Duration: d, Reason: "investigate ticket 42"}
}

// dbMock records grants and revokes made through DatabaseActivities mocks.
type dbMock struct {
	grants, revokes atomic.Int32
	lastGrant       activities.GrantAccessInput
	grantAt         time.Time
	revokeAt        time.Time
}

func mockDB(env *testsuite.TestWorkflowEnvironment, m *dbMock) {
	env.OnActivity(dbAct.GrantAccess, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.GrantAccessInput) (activities.GrantAccessResult, error) {
			m.grants.Add(1)
			m.lastGrant, m.grantAt = in, env.Now()
			return activities.GrantAccessResult{Created: true, Grant: activities.Grant{
				RoleName: pgaccess.RoleName(in.RequestID, in.Requester), Database: in.Database,
				GroupRole: pgaccess.GroupRole(in.Database, in.Access), Access: in.Access, ValidUntil: env.Now().Add(in.Duration),
			}}, nil
		}).Maybe()
	env.OnActivity(dbAct.RevokeAccess, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RevokeAccessInput) (activities.RevokeAccessResult, error) {
			m.revokes.Add(1)
			m.revokeAt = env.Now()
			return activities.RevokeAccessResult{RoleName: pgaccess.RoleName(in.RequestID, in.Requester), Dropped: true}, nil
		}).Maybe()
}

// send sends update name with id (which names the caller, see testIdentity) after the given
// time; an arg of type seen is built when the update is sent.
func send(env *testsuite.TestWorkflowEnvironment, after time.Duration, name, id string, arg any) *upd {
	u := &upd{}
	env.RegisterDelayedCallback(func() {
		if f, ok := arg.(seen); ok {
			arg = f()
		}
		env.UpdateWorkflow(name, id, u.callbacks(), arg)
	}, after)
	return u
}

// seen builds an update argument from what the sender sees when it sends the update.
type seen func() any

// approveSeen approves the access request the status query shows when the update is sent,
// as ApproveAccess builds it for clients.
func approveSeen(t *testing.T, env *testsuite.TestWorkflowEnvironment, comment string) seen {
	return func() any { return ApproveAccess("", queryStatus(t, env), comment).Args[0] }
}

// denySeen denies the access request the status query shows when the update is sent.
func denySeen(t *testing.T, env *testsuite.TestWorkflowEnvironment, comment string) seen {
	return func() any { return DenyAccess("", queryStatus(t, env), comment).Args[0] }
}

func result(t *testing.T, env *testsuite.TestWorkflowEnvironment) AccessRequestResult {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res AccessRequestResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res
}

func actions(audit []AuditEntry) []string {
	var out []string
	for _, e := range audit {
		s := e.Action + ":" + e.Outcome
		if e.Actor != nil {
			s += ":" + e.Actor.Subject
		}
		out = append(out, s)
	}
	return out
}

func queryStatus(t *testing.T, env *testsuite.TestWorkflowEnvironment) AccessStatus {
	t.Helper()
	v, err := env.QueryWorkflow(QueryStatus)
	require.NoError(t, err)
	var st AccessStatus
	require.NoError(t, v.Get(&st))
	return st
}

func TestAccessRequestApprovedGrantedAndRevokedAtTheEnd(t *testing.T) {
	env, n := newEnv(t, "bob")
	m := &dbMock{}
	mockDB(env, m)
	start := env.Now()
	approve := send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, "ok"))
	var during AccessStatus
	env.RegisterDelayedCallback(func() { during = queryStatus(t, env) }, 2*time.Minute)
	env.ExecuteWorkflow(AccessRequest, readDemo(2*time.Minute))

	res := result(t, env)
	require.True(t, approve.succeeded(), "approve: %v", approve.err)
	require.Equal(t, StateEnded, res.State)
	require.Equal(t, StateGranted, during.State)
	require.Equal(t, []string{"carol"}, during.Approvers)
	require.EqualValues(t, 1, m.grants.Load())
	require.EqualValues(t, 1, m.revokes.Load())
	require.Equal(t, "bob", m.lastGrant.Requester)
	require.Equal(t, "engineering", m.lastGrant.Department)
	require.Equal(t, AccessRead, m.lastGrant.Access)
	require.Equal(t, 2*time.Minute, m.lastGrant.Duration, "the duration counts from the grant")
	require.Equal(t, start.Add(time.Minute), m.grantAt, "granted at the approval")
	require.Equal(t, 2*time.Minute, m.revokeAt.Sub(m.grantAt), "revoked when the duration ends")
	require.Equal(t, []string{"requested:ok:bob", "approve:ok:carol", "granted:ok", "revoked:ok"}, actions(res.Audit))
	// The audit trail carries the approver's claims.
	require.Equal(t, []string{"db-approver"}, res.Audit[1].Actor.Roles)
	require.Equal(t, "engineering", res.Audit[1].Actor.Department)
	require.Equal(t, []string{"access.requested@db-approver", "access.granted@bob", "access.revoked@bob"}, n.events())
}

func TestAccessRequestDenied(t *testing.T) {
	env, n := newEnv(t, "bob")
	m := &dbMock{}
	mockDB(env, m)
	noComment := send(env, time.Minute, UpdateDeny, "deny-carol-1", DenyInput{})
	deny := send(env, 2*time.Minute, UpdateDeny, "deny-carol-2", denySeen(t, env, "use the replica"))
	late := send(env, 3*time.Minute, UpdateApprove, "approve-chuck", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

	res := result(t, env)
	require.True(t, noComment.rejected, "a denial without a comment is rejected by the validator")
	require.True(t, deny.succeeded(), "deny: %v", deny.err)
	require.False(t, late.completed && late.err == nil, "no approval after a denial")
	require.Equal(t, StateDenied, res.State)
	require.Zero(t, m.grants.Load())
	require.Zero(t, m.revokes.Load())
	require.Equal(t, []string{"requested:ok:bob", "deny:ok:carol"}, actions(res.Audit))
	require.Equal(t, "use the replica", res.Audit[1].Detail)
	require.Contains(t, n.events(), "access.denied@bob")
}

func TestAccessRequestSelfApprovalRefused(t *testing.T) {
	env, _ := newEnv(t, "carol") // carol holds db-approver herself
	m := &dbMock{}
	mockDB(env, m)
	self := send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	other := send(env, 2*time.Minute, UpdateApprove, "approve-chuck", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

	res := result(t, env)
	require.True(t, self.failed(), "self-approval must be a failed update")
	var app *temporal.ApplicationError
	require.ErrorAs(t, self.err, &app)
	require.Equal(t, identity.TypeForbidden, app.Type())
	require.Contains(t, self.err.Error(), "person who submitted it")
	require.True(t, other.succeeded())
	require.Equal(t, StateEnded, res.State)
	require.Equal(t, []string{"requested:ok:carol", "approve:refused:carol", "approve:ok:chuck", "granted:ok", "revoked:ok"},
		actions(res.Audit))
}

func TestAccessRequestMOfN(t *testing.T) {
	env, _ := newEnv(t, "bob")
	m := &dbMock{}
	mockDB(env, m)
	cfg := DefaultAccessConfig()
	cfg.Routes = map[string]Route{"engineering": {ApproverRole: "db-approver", Required: 2}}
	in := readDemo(time.Hour)
	in.Config = &cfg

	first := send(env, time.Minute, UpdateApprove, "approve-carol-1", approveSeen(t, env, ""))
	again := send(env, 2*time.Minute, UpdateApprove, "approve-carol-2", approveSeen(t, env, ""))
	var afterOne AccessStatus
	env.RegisterDelayedCallback(func() { afterOne = queryStatus(t, env) }, 3*time.Minute)
	second := send(env, 4*time.Minute, UpdateApprove, "approve-chuck", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequest, in)

	res := result(t, env)
	require.True(t, first.succeeded())
	require.True(t, again.failed(), "the same approver does not count twice")
	require.Contains(t, again.err.Error(), "already approved")
	require.Equal(t, StatePending, afterOne.State)
	require.Equal(t, []string{"carol"}, afterOne.Approvers)
	require.Equal(t, 2, afterOne.Required)
	require.True(t, second.succeeded())
	require.Equal(t, StateEnded, res.State)
	require.Equal(t, []string{"carol", "chuck"}, res.Status.Approvers)
	require.Equal(t, m.grantAt.Sub(env.Now().Add(-time.Hour)), time.Duration(0), "granted right after the second approval")
}

func TestAccessRequestEscalation(t *testing.T) {
	env, n := newEnv(t, "bob")
	m := &dbMock{}
	mockDB(env, m)
	early := send(env, 30*time.Minute, UpdateApprove, "approve-alice-1", approveSeen(t, env, ""))
	late := send(env, 90*time.Minute, UpdateApprove, "approve-alice-2", approveSeen(t, env, "on call"))
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

	res := result(t, env)
	require.True(t, early.failed(), "the escalation role may not approve before the escalation")
	require.True(t, late.succeeded(), "after escalation the escalation role may approve: %v", late.err)
	require.Equal(t, StateEnded, res.State)
	require.True(t, res.Status.Escalated)
	require.Equal(t, "admin", res.Status.EscalationRole)
	require.Equal(t, []string{"requested:ok:bob", "approve:refused:alice", "escalated:ok",
		"approve:ok:alice", "granted:ok", "revoked:ok"}, actions(res.Audit))
	require.Equal(t, time.Hour, res.Audit[2].Time.Sub(res.Audit[0].Time), "escalated after EscalateAfter")
	require.Contains(t, n.events(), "access.escalated@admin")
}

func TestAccessRequestExpires(t *testing.T) {
	env, n := newEnv(t, "bob")
	m := &dbMock{}
	mockDB(env, m)
	start := env.Now()
	late := send(env, 25*time.Hour, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

	res := result(t, env)
	require.Equal(t, StateExpired, res.State)
	require.Zero(t, m.grants.Load())
	require.False(t, late.succeeded())
	require.Equal(t, []string{"requested:ok:bob", "escalated:ok", "expired:ok"}, actions(res.Audit))
	require.Equal(t, 24*time.Hour, res.Audit[2].Time.Sub(start))
	require.Equal(t, []string{"access.requested@db-approver", "access.escalated@admin", "access.expired@bob"}, n.events())
}

func TestAccessRequestEarlyRevoke(t *testing.T) {
	for _, tc := range []struct {
		name, by string
	}{
		{"by requester", "bob"},
		{"by admin", "alice"},
		{"by admin through group", "frank"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newEnv(t, "bob")
			m := &dbMock{}
			mockDB(env, m)
			send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
			stranger := send(env, 10*time.Minute, UpdateRevoke, "revoke-erin", RevokeInput{Reason: "mine now"})
			revoke := send(env, 30*time.Minute, UpdateRevoke, "revoke-"+tc.by, RevokeInput{Reason: "done early"})
			env.ExecuteWorkflow(AccessRequest, readDemo(4*time.Hour))

			res := result(t, env)
			require.True(t, stranger.failed(), "a person who is neither requester nor admin cannot revoke")
			require.True(t, revoke.succeeded(), "revoke: %v", revoke.err)
			require.Equal(t, StateRevoked, res.State)
			var st AccessStatus
			require.NoError(t, converterGet(revoke.val, &st))
			require.Equal(t, StateRevoked, st.State, "the update returns once the role is revoked")
			require.EqualValues(t, 1, m.revokes.Load())
			require.Equal(t, 29*time.Minute, m.revokeAt.Sub(m.grantAt))
			require.Equal(t, []string{"requested:ok:bob", "approve:ok:carol", "granted:ok", "revoke:refused:erin",
				"revoke:ok:" + tc.by, "revoked:ok:" + tc.by}, actions(res.Audit))
		})
	}
}

func TestAccessRequestWithdrawnWhilePending(t *testing.T) {
	env, _ := newEnv(t, "bob")
	m := &dbMock{}
	mockDB(env, m)
	send(env, time.Minute, UpdateRevoke, "revoke-bob", RevokeInput{Reason: "not needed"})
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))
	res := result(t, env)
	require.Equal(t, StateRevoked, res.State)
	require.Zero(t, m.grants.Load())
	require.Zero(t, m.revokes.Load())
}

func TestAccessRequestApproverWithoutRoleRefused(t *testing.T) {
	env, _ := newEnv(t, "bob")
	m := &dbMock{}
	mockDB(env, m)
	noRole := send(env, time.Minute, UpdateApprove, "approve-erin", approveSeen(t, env, ""))
	otherDept := send(env, 2*time.Minute, UpdateApprove, "approve-mallory", approveSeen(t, env, ""))
	denyNoRole := send(env, 3*time.Minute, UpdateDeny, "deny-erin", denySeen(t, env, "no"))
	anonymous := send(env, 4*time.Minute, UpdateApprove, "approve-nobody", approveSeen(t, env, ""))
	ok := send(env, 5*time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

	res := result(t, env)
	for name, u := range map[string]*upd{"erin approve": noRole, "mallory": otherDept, "erin deny": denyNoRole, "anonymous": anonymous} {
		require.True(t, u.failed(), "%s must be a failed update", name)
	}
	var app *temporal.ApplicationError
	require.ErrorAs(t, noRole.err, &app)
	require.Equal(t, identity.TypeForbidden, app.Type())
	require.Contains(t, noRole.err.Error(), "needs role db-approver")
	require.Contains(t, otherDept.err.Error(), "department engineering; has roles [db-approver], department marketing")
	require.ErrorAs(t, anonymous.err, &app)
	require.Equal(t, identity.TypeUnauthenticated, app.Type())
	require.True(t, ok.succeeded())
	require.Equal(t, StateEnded, res.State)
	require.Equal(t, []string{"requested:ok:bob", "approve:refused:erin", "approve:refused:mallory", "deny:refused:erin",
		"approve:refused", "approve:ok:carol", "granted:ok", "revoked:ok"}, actions(res.Audit))
}

func TestAccessRequestGrantRetriedAfterFailure(t *testing.T) {
	env, _ := newEnv(t, "bob")
	m := &dbMock{}
	var calls atomic.Int32
	env.OnActivity(dbAct.GrantAccess, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.GrantAccessInput) (activities.GrantAccessResult, error) {
			if calls.Add(1) == 1 {
				return activities.GrantAccessResult{}, errors.New("connection reset by peer")
			}
			m.grants.Add(1)
			return activities.GrantAccessResult{Grant: activities.Grant{RoleName: pgaccess.RoleName(in.RequestID, in.Requester),
				ValidUntil: env.Now().Add(in.Duration)}}, nil
		})
	env.OnActivity(dbAct.RevokeAccess, mock.Anything, mock.Anything).Return(activities.RevokeAccessResult{Dropped: true}, nil).Once()
	send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

	res := result(t, env)
	require.EqualValues(t, 2, calls.Load())
	require.EqualValues(t, 1, m.grants.Load())
	require.Equal(t, StateEnded, res.State)
}

func TestAccessRequestGrantRefusedCleansUp(t *testing.T) {
	env, n := newEnv(t, "bob")
	var calls atomic.Int32
	env.OnActivity(dbAct.GrantAccess, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.GrantAccessInput) (activities.GrantAccessResult, error) {
			calls.Add(1)
			return activities.GrantAccessResult{}, identity.ApplicationError(&identity.DeniedError{Subject: "bob", Reason: "department changed"})
		})
	env.OnActivity(dbAct.RevokeAccess, mock.Anything, mock.Anything).Return(activities.RevokeAccessResult{}, nil).Once()
	send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

	require.True(t, env.IsWorkflowCompleted())
	var app *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &app)
	require.Equal(t, TypeGrantFailed, app.Type())
	require.EqualValues(t, 1, calls.Load(), "identity refusals are not retried")
	require.Contains(t, n.events(), "access.failed@bob")
}

func TestAccessRequestFailingWebhookNeverBlocks(t *testing.T) {
	env := newTestEnv()
	env.SetWorkerOptions(testWorkerOptions("bob"))
	env.RegisterActivity(&activities.DatabaseActivities{})
	env.RegisterActivity(&activities.NotifyActivities{})
	env.OnActivity(notifyAct.Notify, mock.Anything, mock.Anything).Return(activities.NotifyResult{}, errors.New("webhook down"))
	m := &dbMock{}
	mockDB(env, m)
	send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))
	res := result(t, env)
	require.Equal(t, StateEnded, res.State)
	require.Equal(t, time.Hour, m.revokeAt.Sub(m.grantAt))
}

func TestAccessRequestCanceledWhileGrantedRevokes(t *testing.T) {
	env, _ := newEnv(t, "bob")
	m := &dbMock{}
	mockDB(env, m)
	send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))
	require.True(t, env.IsWorkflowCompleted())
	require.True(t, temporal.IsCanceledError(env.GetWorkflowError()), "%v", env.GetWorkflowError())
	require.EqualValues(t, 1, m.revokes.Load())
	require.Equal(t, 9*time.Minute, m.revokeAt.Sub(m.grantAt))
}

func TestAccessRequestRejectsBadStarts(t *testing.T) {
	for _, tc := range []struct {
		name, starter string
		in            AccessRequestInput
		typ           string
	}{
		{"no identity", "", readDemo(time.Hour), identity.TypeUnauthenticated},
		{"no route for department", "dave", readDemo(time.Hour), TypeNoRoute},
		{"bad resource", "bob", AccessRequestInput{Resource: `demo"; DROP ROLE x; --`, Role: AccessRead, Duration: time.Hour, Reason: "x"}, activities.TypeInvalidInput},
		{"bad role", "bob", AccessRequestInput{Resource: "demo", Role: "owner", Duration: time.Hour, Reason: "x"}, activities.TypeInvalidInput},
		{"too long", "bob", readDemo(13 * time.Hour), activities.TypeInvalidInput},
		{"no duration", "bob", readDemo(0), activities.TypeInvalidInput},
		{"no reason", "bob", AccessRequestInput{Resource: "demo", Role: AccessRead, Duration: time.Hour}, activities.TypeInvalidInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newEnv(t, tc.starter)
			env.ExecuteWorkflow(AccessRequest, tc.in)
			require.True(t, env.IsWorkflowCompleted())
			var app *temporal.ApplicationError
			require.ErrorAs(t, env.GetWorkflowError(), &app)
			require.Equal(t, tc.typ, app.Type())
			require.True(t, app.NonRetryable())
		})
	}
}

func TestAccessRequestAuditQuery(t *testing.T) {
	env, _ := newEnv(t, "bob")
	mockDB(env, &dbMock{})
	send(env, time.Minute, UpdateApprove, "approve-erin", approveSeen(t, env, ""))
	var audit []AuditEntry
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryAudit)
		require.NoError(t, err)
		require.NoError(t, v.Get(&audit))
	}, 2*time.Minute)
	send(env, 3*time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))
	result(t, env)
	require.Equal(t, []string{"requested:ok:bob", "approve:refused:erin"}, actions(audit))
	require.True(t, slices.Equal(audit[0].Actor.Roles, []string{"engineer"}))
	require.Equal(t, "engineering", audit[0].Actor.Department)
}

// TestAccessRequestRevokesAsPool defends against a grant that outlives its run: the revoke must not run on
// the requester's session (whose refresh chain the requester can kill at the IdP), but under
// the worker pool's own authority, after the full hold and after a failed grant alike.
func TestAccessRequestRevokesAsPool(t *testing.T) {
	for _, tc := range []struct {
		name       string
		grantFails bool
	}{
		{"after the hold", false},
		{"cleanup after a failed grant", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newEnv(t, "bob")
			var grantedAs string
			env.OnActivity(dbAct.GrantAccess, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, in activities.GrantAccessInput) (activities.GrantAccessResult, error) {
					if id, err := identity.FromActivity(ctx); err == nil {
						grantedAs = id.Subject
					}
					if tc.grantFails {
						return activities.GrantAccessResult{}, temporal.NewNonRetryableApplicationError("no", activities.TypeInvalidInput, nil)
					}
					return activities.GrantAccessResult{Grant: activities.Grant{RoleName: "jit_bob_1", ValidUntil: env.Now().Add(in.Duration)}}, nil
				})
			var revokes int
			var asPool bool
			var asPerson error
			env.OnActivity(dbAct.RevokeAccess, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, in activities.RevokeAccessInput) (activities.RevokeAccessResult, error) {
					revokes++
					asPool = identity.RequirePool(ctx) == nil
					_, asPerson = identity.FromActivity(ctx)
					return activities.RevokeAccessResult{Dropped: true}, nil
				})
			send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
			env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

			require.True(t, env.IsWorkflowCompleted())
			require.Equal(t, "bob", grantedAs, "the grant checks the requester's own fresh claims")
			require.Equal(t, 1, revokes)
			require.True(t, asPool, "the revoke must run under the pool's authority")
			require.ErrorIs(t, asPerson, identity.ErrUnauthenticated, "the revoke must carry no person's session")
		})
	}
}

// TestAccessRequestRevokeRetriesUntilDone: a revoke that keeps failing (the database is
// unreachable for a long time) is retried, backing off to one try a minute, until it works;
// the run does not give up and leave the grant behind.
func TestAccessRequestRevokeRetriesUntilDone(t *testing.T) {
	env, _ := newEnv(t, "bob")
	m := &dbMock{}
	env.OnActivity(dbAct.GrantAccess, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.GrantAccessInput) (activities.GrantAccessResult, error) {
			m.grantAt = env.Now()
			return activities.GrantAccessResult{Grant: activities.Grant{RoleName: "jit_bob_1", ValidUntil: env.Now().Add(in.Duration)}}, nil
		})
	var attempts int
	env.OnActivity(dbAct.RevokeAccess, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.RevokeAccessInput) (activities.RevokeAccessResult, error) {
			attempts++
			if attempts < 9 { // the test environment stops unlimited retries after 10 attempts
				return activities.RevokeAccessResult{}, errors.New("activities: revoke jit_bob_1: database unreachable")
			}
			m.revokeAt = env.Now()
			return activities.RevokeAccessResult{Dropped: true}, nil
		})
	send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	env.ExecuteWorkflow(AccessRequest, readDemo(time.Hour))

	res := result(t, env)
	require.Equal(t, StateEnded, res.State)
	require.Equal(t, 9, attempts)
	require.Equal(t, time.Hour+(1+2+4+8+16+32+60+60)*time.Second, m.revokeAt.Sub(m.grantAt), "the retries back off to a minute")
	for _, typ := range identityErrorTypes {
		require.NotContains(t, revokeOptions.RetryPolicy.NonRetryableErrorTypes, typ,
			"the revoke does not depend on a person, so no identity error may stop its retries")
	}
	require.Equal(t, time.Minute, revokeOptions.RetryPolicy.MaximumInterval)
	require.Zero(t, revokeOptions.RetryPolicy.MaximumAttempts)
}

// TestAccessRequestKeepAliveEveryHasNoEffect defends against a grant that outlives its run: an input that
// still carries keep_alive_every (deprecated in AccessConfig) must not make the hold wake up:
// with 1 ns it used to fill the run's history until Temporal ended the run, before its
// revoke. The hold is one durable timer whatever the input says; only a hold that began on
// an earlier release replays its ticks (TestAccessRequestLegacyHold).
func TestAccessRequestKeepAliveEveryHasNoEffect(t *testing.T) { keepAliveEveryHasNoEffect(t) }

func keepAliveEveryHasNoEffect(t *testing.T) {
	env, _ := newEnv(t, "bob")
	m := &dbMock{}
	mockDB(env, m)
	var timers int
	env.SetOnTimerScheduledListener(func(string, time.Duration) { timers++ })
	send(env, time.Minute, UpdateApprove, "approve-carol", approveSeen(t, env, ""))
	in := readDemo(10 * time.Minute)
	in.Config = &AccessConfig{KeepAliveEvery: time.Nanosecond}
	env.ExecuteWorkflow(AccessRequestWorkflow, in)

	res := result(t, env)
	require.Equal(t, StateEnded, res.State)
	require.Equal(t, 10*time.Minute, m.revokeAt.Sub(m.grantAt))
	require.LessOrEqual(t, timers, 5, "the hold must not tick (escalation, expiry and hold timers only)")
}
