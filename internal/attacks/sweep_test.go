package attacks_test

import (
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/tokenstore"
	"github.com/oidcflow/oidcflow/workflows"
)

// TestTerminatedRunSessionIsSwept: a terminated run never releases its session (its code
// does not run again; only an operator may terminate, where the frontend authorizes); the
// pool's sweeper does, under the pool's authority: the refresh token
// is revoked at the IdP and the Vault secret destroyed. Anyone may start the sweeper; its
// input has no fields, so starting it removes only what is dead.
func TestTerminatedRunSessionIsSwept(t *testing.T) {
	r := newRig(t)
	ctx := testContext(t, 2*time.Minute)
	bob, tok := apptest.Client(t, r.st, "bob")
	id, sessionID, _ := r.keepAlive(ctx, t, bob)
	store := vaultStore(t, r)
	if _, err := store.Get(ctx, sessionID); err != nil {
		t.Fatalf("the session before: %v", err)
	}
	if err := r.st.OperatorClient(t).TerminateWorkflow(ctx, id, "", "attack test"); err != nil {
		t.Fatal(err)
	}
	run, err := r.st.PlainClient(t, nil).ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: r.queue},
		workflows.SweeperWorkflow, workflows.SweeperInput{})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.SweeperResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	// Every pool on the dev stack shares the session folder in Vault, and other tests run
	// sweepers of their own (on a schedule, too): one of them may end bob's session first, or
	// be ending it while this sweep lists it. So this sweep's count says little; what counts
	// is that the session is gone once it finished (or soon after, when another sweep was
	// midway), its refresh token revoked first.
	t.Logf("this sweep ended %d session(s)", res.Sessions.SessionsEnded)
	for {
		_, err := store.Get(ctx, sessionID)
		if errors.Is(err, tokenstore.ErrNotFound) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the session after the sweep: %v, want it gone", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	if in := r.st.Introspect(t, tok.RefreshToken); in.Active {
		t.Fatal("the refresh token is still active at the IdP")
	}
}
