package lifetimes_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/lifetimes"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// idTokenRun runs Steps every 2 s for bob, for at least ten steps and 25 s, through a client whose ID tokens
// live 8 s and access tokens an hour, on a worker that allows 1 s of leeway and refreshes
// 2 s before a token expires; refresher adjusts the worker's refresher. It returns the
// result and how many refresh answers the worker got from the IdP.
func idTokenRun(t *testing.T, refresher func(*tokenstore.RefresherOptions)) (*lifetimes.Result, int) {
	t.Helper()
	st := testharness.Load(t)
	queue := apptest.TaskQueue("idtoken")
	cl := st.NewClient(t, testharness.ClientOptions{AccessTokenTTL: time.Hour, IDTokenTTL: 8 * time.Second})
	var answers atomic.Int64
	w := apptest.StartWorker(t, app.WorkerOptions{
		Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue, "OIDCFLOW_CLIENT_ID", cl.ID,
			"OIDCFLOW_LEEWAY", "1s", "OIDCFLOW_REFRESH_SKEW", "2s"),
		Register: lifetimes.Register,
		Refresher: func(ro *tokenstore.RefresherOptions) {
			ro.AfterIdPAnswer = func(context.Context, string) error { answers.Add(1); return nil }
			if refresher != nil {
				refresher(ro)
			}
		},
	})
	c := apptest.ClientWithToken(t, st, staticToken(cl.Login(t, "bob")))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := "lifetimes-idtoken-" + queue
	begin := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		lifetimes.StepsWorkflow, lifetimes.Input{Every: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// At least ten steps over at least three ID token lifetimes, however slow the machine.
	waitSteps(ctx, t, c, id, 10)
	for time.Since(begin) < 25*time.Second {
		time.Sleep(time.Second)
	}
	waitSteps(ctx, t, c, id, len(waitSteps(ctx, t, c, id, 10).Steps)+1) // a step after the 25 s
	// A run that failed meanwhile reports why through Get.
	_ = c.SignalWorkflow(ctx, id, "", lifetimes.FinishSignal, nil)
	var res lifetimes.Result
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("run (%d refresh answers): %v", answers.Load(), err)
	}
	checkSteps(t, &res, "bob")
	sessionGone(ctx, t, w, res.SessionID)
	return &res, int(answers.Load())
}

// An IdP whose ID tokens live shorter than its access tokens: the sessions are refreshed
// when the ID token is due, so every step of a run three ID token lifetimes long verifies
// a fresh one. Before, the refresh waited for the access token (an hour), and the first
// step after the ID token's exp failed with TokenExpired.
func TestIDTokenShorterThanAccessToken(t *testing.T) {
	t.Parallel()
	res, answers := idTokenRun(t, nil)
	if answers < 3 {
		t.Errorf("%d refreshes over more than 25 s of steps with 8 s ID tokens, want at least 3", answers)
	}
	for i, s := range res.Steps {
		if s.Validity > 9*time.Second {
			t.Errorf("step %d saw a token valid for %v: not the 8 s ID token", i, s.Validity)
		}
	}
}

// An IdP that renews sessions without ID tokens (OIDC Core 12.2; here a proxy drops them
// from Hydra's answers): after one refresh, when the ID token was due, the session keeps the
// verified ID token, re-checked through Hydra's userinfo endpoint, and every later step
// verifies it past its exp, vouched for until the access token's expiry. No further
// refresh: the kept token's exp does not make one due.
func TestIDTokenNotRenewedOnRefresh(t *testing.T) {
	t.Parallel()
	st := testharness.Load(t)
	proxy := testharness.WithoutIDTokens(t, st.OAuth2Config().Endpoint.TokenURL)
	res, answers := idTokenRun(t, func(ro *tokenstore.RefresherOptions) { ro.OAuth2.Endpoint.TokenURL = proxy })
	if answers != 1 {
		t.Errorf("%d refreshes, want 1: the kept ID token's exp must not make refreshes due", answers)
	}
	last := res.Steps[len(res.Steps)-1]
	if last.Validity < 50*time.Minute {
		t.Errorf("last step saw validity %v; want the access token's hour", last.Validity)
	}
}
