package lifetimes_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/lifetimes"
	"github.com/oidcflow/oidcflow/telemetry"
)

// TestRefreshFiveSecondTokens: with 5-second access tokens and
// rotating refresh tokens, a run of at least 90 s makes at least 15 refreshes, every
// sensitive step sees a valid token, and the IdP never reports reuse: the token family is
// still alive at the end (Hydra revokes the whole family when it detects reuse) and the IdP
// served exactly the refreshes the worker asked for.
func TestRefreshFiveSecondTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("90 s test")
	}
	t.Parallel()
	r := newRig(t, rigOptions{ttl: 5 * time.Second})
	w := r.workers[0]
	c, _ := r.login(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	id := "lifetimes-refresh-" + r.queue
	begin := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue},
		lifetimes.StepsWorkflow, lifetimes.Input{Every: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := waitSteps(ctx, t, c, id, 1)
	for time.Since(begin) < 92*time.Second {
		time.Sleep(2 * time.Second)
		res = progress(ctx, t, c, id)
	}
	// While the run still holds it: the session's count and its family at the IdP.
	sess, err := w.Store.Get(ctx, res.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if in := r.st.Introspect(t, sess.RefreshToken); !in.Active {
		t.Errorf("the session's refresh token is not active at the IdP after %d refreshes (reuse detected?)", sess.Refreshes)
	}
	if in := r.st.Introspect(t, sess.AccessToken); !in.Active {
		t.Error("the session's access token is not active at the IdP")
	}
	signal(ctx, t, c, id, lifetimes.FinishSignal)
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("run: %v", err)
	}
	elapsed := time.Since(begin)

	checkSteps(t, res, "bob")
	var least time.Duration = time.Hour
	for _, s := range res.Steps {
		least = min(least, s.Validity)
	}
	idp, answers := r.idpRefreshes(t), int(r.answers.Load())
	t.Logf("%.0f s, %d steps (least validity seen %v), session refreshes %d while running, IdP refresh grants %d, IdP answers seen by the worker %d, %s %d, %s %d, Hydra reuse reports in the window (any client) %d",
		elapsed.Seconds(), len(res.Steps), least.Round(time.Millisecond), sess.Refreshes, idp, answers,
		telemetry.MetricRefreshes, r.metric(telemetry.MetricRefreshes), telemetry.MetricRefreshFailures, r.metric(telemetry.MetricRefreshFailures),
		r.reuseReports(t))
	if elapsed < 90*time.Second || len(res.Steps) < 15 {
		t.Errorf("run of %v with %d steps; want at least 90 s and 15 steps", elapsed, len(res.Steps))
	}
	if sess.Refreshes < 15 || idp < 15 {
		t.Errorf("%d refreshes in the session, %d at the IdP; want at least 15", sess.Refreshes, idp)
	}
	if idp != answers {
		t.Errorf("the IdP served %d refresh grants, the worker got %d answers; want one per rotation", idp, answers)
	}
	if n := r.metric(telemetry.MetricRefreshFailures); n != 0 {
		t.Errorf("%d refresh failures", n)
	}
	if got := r.metric(telemetry.MetricRefreshes); int(got) != idp {
		t.Errorf("%s = %d; want the IdP's %d", telemetry.MetricRefreshes, got, idp)
	}
	sessionGone(ctx, t, w, res.SessionID)
}
