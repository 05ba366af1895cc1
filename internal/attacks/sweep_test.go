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
// does not run again); the pool's sweeper does, under the pool's authority: the refresh token
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
	if err := bob.TerminateWorkflow(ctx, id, "", "attack test"); err != nil {
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
	if res.Sessions.SessionsEnded < 1 {
		t.Fatalf("the sweep ended no session: %+v", res.Sessions)
	}
	if _, err := store.Get(ctx, sessionID); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatalf("the session after the sweep: %v, want it gone", err)
	}
	if in := r.st.Introspect(t, tok.RefreshToken); in.Active {
		t.Fatal("the refresh token is still active at the IdP")
	}
}
