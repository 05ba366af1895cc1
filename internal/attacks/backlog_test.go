package attacks_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/attacks"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
)

// pool is a worker pool of one that a test stops and starts.
type pool struct {
	t    *testing.T
	opts app.WorkerOptions
	stop func()
}

func (p *pool) start() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := app.NewWorker(ctx, p.opts)
	if err != nil {
		p.t.Fatalf("start worker: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(runCtx); err != nil {
			p.t.Errorf("worker: %v", err)
		}
	}()
	p.stop = func() { stop(); <-done; w.Close() }
}

// TestBacklog: starts and approvals that wait in a backlog (the whole pool down) longer than
// their tokens live still proceed when the pool comes back: a start is judged at the time
// the server recorded it and then refreshed, an approval bound to its run at its sealing
// time. The same envelopes replayed onto a new run afterwards are refused.
func TestBacklog(t *testing.T) {
	st := testharness.Load(t)
	const ttl = 10 * time.Second
	cl := st.NewClient(t, testharness.ClientOptions{AccessTokenTTL: ttl, IDTokenTTL: ttl})
	queue := apptest.TaskQueue("backlog")
	p := &pool{t: t, opts: app.WorkerOptions{
		Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue, "OIDCFLOW_CLIENT_ID", cl.ID, "OIDCFLOW_LEEWAY", "2s",
			"OIDCFLOW_SWEEP_INTERVAL", "0"), // no sweeper schedule left behind
		Register: attacks.Register,
	}}
	p.start()
	t.Cleanup(func() {
		if p.stop != nil {
			p.stop()
		}
	})
	ctx := testContext(t, 3*time.Minute)
	bobTok, carolTok := cl.Login(t, "bob"), cl.Login(t, "carol")
	bob := apptest.ClientWithToken(t, st, oauth2.StaticTokenSource(bobTok))
	carol := apptest.ClientWithToken(t, st, oauth2.StaticTokenSource(carolTok))
	r := &rig{st: st, queue: queue}

	pending := r.startApprovable(ctx, t, bob, "backlog-a-"+queue, "read")
	p.stop()
	p.stop = nil

	// The pool is down: a new start and an approval wait in the backlog.
	queued, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "backlog-b-" + queue, TaskQueue: queue},
		attacks.ApprovableName, attacks.ApprovableInput{What: "write"})
	if err != nil {
		t.Fatal(err)
	}
	approved := make(chan error, 1)
	go func() {
		who, err := approve(ctx, carol, pending.GetID(), pending.GetRunID())
		if err == nil && who != "carol" {
			err = fmt.Errorf("approved by %q", who)
		}
		approved <- err
	}()
	time.Sleep(ttl + 5*time.Second) // every token above has expired, leeway included
	if time.Now().Before(bobTok.Expiry.Add(2*time.Second)) || time.Now().Before(carolTok.Expiry.Add(2*time.Second)) {
		t.Fatal("the tokens are still valid; the test proves nothing")
	}
	p.start()

	if err := <-approved; err != nil {
		t.Fatalf("the approval that waited: %v", err)
	}
	waitQuery(ctx, t, bob, queued.GetID(), queued.GetRunID()) // its identity verified
	if got := stop(ctx, t, bob, queued); len(got) != 0 {
		t.Fatalf("queued run approved by %v", got)
	}
	if got := stop(ctx, t, bob, pending); len(got) != 1 || got[0] != "carol" {
		t.Fatalf("approvers %v, want carol", got)
	}

	// The same envelope, replayed onto a new run, is refused: judged at the new run's start
	// time, its tokens have expired (within their life, the one-time record refuses it).
	copied := copyHeader(ctx, t, bob, queued.GetID(), queued.GetRunID(), started, interceptors.EnvelopeHeader)
	replay, err := st.PlainClient(t, copied).ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: queued.GetID(),
		TaskQueue: queue, WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE},
		attacks.ApprovableName, attacks.ApprovableInput{What: "write"})
	if err != nil {
		t.Fatal(err)
	}
	var appErr *temporal.ApplicationError
	if err := replay.Get(ctx, nil); !errors.As(err, &appErr) || appErr.Type() != identity.TypeTokenExpired || !appErr.NonRetryable() {
		t.Fatalf("the queued start, replayed: %v; want a non-retryable %s", err, identity.TypeTokenExpired)
	}
}
