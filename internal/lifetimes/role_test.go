package lifetimes_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/devstack/idp"
	"github.com/oidcflow/oidcflow/internal/lifetimes"
)

// TestRoleRemovedMidRun: a person whose role is removed at the IdP
// while a run acts for them is refused at the next sensitive step, and the refusal says
// which role is missing. The run's tokens live 2 seconds, so the next step refreshes and the
// refreshed ID token carries the IdP's current roles (Hydra's token hook).
func TestRoleRemovedMidRun(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{ttl: 2 * time.Second})
	p := r.st.NewPersona(t, "lifetimes", idp.Persona{Department: "engineering", Roles: []string{"engineer"}})
	c, _ := r.login(t, p.Name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	id := "lifetimes-role-" + r.queue
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue},
		lifetimes.StepsWorkflow, lifetimes.Input{Role: "engineer"})
	if err != nil {
		t.Fatal(err)
	}
	// Two steps with the role, the second on refreshed tokens.
	signal(ctx, t, c, id, lifetimes.StepSignal)
	waitSteps(ctx, t, c, id, 1)
	time.Sleep(2 * time.Second)
	signal(ctx, t, c, id, lifetimes.StepSignal)
	res := waitSteps(ctx, t, c, id, 2)
	checkSteps(t, res, p.Subject)
	if n := r.idpRefreshes(t); n < 1 {
		t.Fatalf("no refresh before the role change (%d)", n)
	}

	r.st.UpdatePersona(t, p.Name, func(p *idp.Persona) { p.Roles = nil })
	time.Sleep(2 * time.Second) // the current access token is due
	signal(ctx, t, c, id, lifetimes.StepSignal)

	err = run.Get(ctx, &res)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != identity.TypeForbidden {
		t.Fatalf("run after the role was removed: %v; want %s", err, identity.TypeForbidden)
	}
	if msg := appErr.Error(); !strings.Contains(msg, "role engineer") || !strings.Contains(msg, p.Subject) {
		t.Errorf("refusal %q does not say who lacks which role", msg)
	}
	if len(res.Steps) != 2 {
		t.Errorf("%d steps done; want the 2 before the change", len(res.Steps))
	}
	t.Logf("refused at step 3: %s", appErr.Error())
}
