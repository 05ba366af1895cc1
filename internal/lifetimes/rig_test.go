package lifetimes_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/lifetimes"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// rig is one test's client with short-lived tokens, its workers (each with its own Vault
// login, verifier and refresher: they share only Vault), and a starter's client.
type rig struct {
	st      *testharness.Stack
	cl      *testharness.Client
	queue   string
	workers []*app.Worker
	answers atomic.Int64 // IdP answers to refreshes, counted by the workers' hook
	idpLog  *lifetimes.LogTail
	hydra   *lifetimes.LogTail
}

type rigOptions struct {
	ttl     time.Duration
	workers int
	// refresher adjusts each worker's refresher after the rig's counting hook is set.
	refresher func(*tokenstore.RefresherOptions)
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	st := testharness.Load(t)
	r := &rig{st: st, queue: apptest.TaskQueue("lifetimes")}
	// The ID token lives as long as the access token: the identity a step sees (and its
	// Expiry) comes from the session's current ID token.
	r.cl = st.NewClient(t, testharness.ClientOptions{AccessTokenTTL: o.ttl, IDTokenTTL: o.ttl})
	logs := filepath.Join(filepath.Dir(st.EnvFile()), "logs")
	var err error
	if r.idpLog, err = lifetimes.NewLogTail(filepath.Join(logs, "idp.log")); err != nil {
		t.Fatalf("the login/consent app's log: %v", err)
	}
	if r.hydra, err = lifetimes.NewLogTail(filepath.Join(logs, "hydra.log")); err != nil {
		t.Fatalf("hydra's log: %v", err)
	}
	for range max(o.workers, 1) {
		r.workers = append(r.workers, apptest.StartWorker(t, app.WorkerOptions{
			Env:      apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", r.queue, "OIDCFLOW_CLIENT_ID", r.cl.ID),
			Register: lifetimes.Register,
			Refresher: func(ro *tokenstore.RefresherOptions) {
				ro.AfterIdPAnswer = func(context.Context, string) error { r.answers.Add(1); return nil }
				if o.refresher != nil {
					o.refresher(ro)
				}
			},
		}))
	}
	return r
}

// login returns a client that seals persona's tokens (from this rig's client) into every
// start, signal and update, and the tokens.
func (r *rig) login(t *testing.T, persona string) (client.Client, *oauth2.Token) {
	t.Helper()
	tok := r.cl.Login(t, persona)
	return apptest.ClientWithToken(t, r.st, oauth2.StaticTokenSource(tok)), tok
}

// idpRefreshes counts the refresh grants the IdP served for this rig's client since the
// rig started: the login/consent app logs every call of Hydra's token hook, which Hydra
// makes only for a refresh token it accepted.
func (r *rig) idpRefreshes(t *testing.T) int {
	t.Helper()
	n, err := r.idpLog.Count(`msg="idp: token hook"`, "client_id="+r.cl.ID+" ", "grant_types=[refresh_token]")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// reuseReports counts Hydra's refresh token reuse reports since the rig started, from any
// client (Hydra's line names none); tests running at the same time may add to it.
func (r *rig) reuseReports(t *testing.T) int {
	t.Helper()
	n, err := r.hydra.Count("Refresh token re-use was detected")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// metric sums a counter over the rig's workers.
func (r *rig) metric(name string) uint64 {
	var n uint64
	for _, w := range r.workers {
		n += uint64(w.Telemetry.Sum(name))
	}
	return n
}

// progress queries a Steps run.
func progress(ctx context.Context, t *testing.T, c client.Client, id string) *lifetimes.Result {
	t.Helper()
	res, err := tryProgress(ctx, c, id)
	if err != nil {
		t.Fatalf("query %s: %v", id, err)
	}
	return res
}

// tryProgress queries the run's progress once.
func tryProgress(ctx context.Context, c client.Client, id string) (*lifetimes.Result, error) {
	v, err := c.QueryWorkflow(ctx, id, "", lifetimes.ProgressQuery)
	if err != nil {
		return nil, err
	}
	var res lifetimes.Result
	if err := v.Get(&res); err != nil {
		return nil, err
	}
	return &res, nil
}

// waitSteps waits until the run id has done n steps, or fails t. A query that times out (a
// busy worker has not answered yet) is asked again.
func waitSteps(ctx context.Context, t *testing.T, c client.Client, id string, n int) *lifetimes.Result {
	t.Helper()
	for {
		res, err := tryProgress(ctx, c, id)
		if err == nil && len(res.Steps) >= n {
			return res
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run %s: waiting for %d steps: %v (last query: %v)", id, n, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// signal sends a signal, retrying while the run is not yet there to take it.
func signal(ctx context.Context, t *testing.T, c client.Client, id, name string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		err := c.SignalWorkflow(ctx, id, "", name, nil)
		if err == nil {
			return
		}
		if attempt > 20 || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("signal %s to %s: %v", name, id, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkSteps fails t for a step that did not see a valid token of sub.
func checkSteps(t *testing.T, res *lifetimes.Result, sub string) {
	t.Helper()
	for i, s := range res.Steps {
		if s.Validity <= 0 || s.Subject != sub || s.SessionID == "" {
			t.Errorf("step %d: %+v; want a valid token of %s in a session", i, s, sub)
		}
	}
}

// sessionGone fails t unless the session is gone from Vault soon after the last run closed:
// the worker ends it once the server accepted the run's end.
func sessionGone(ctx context.Context, t *testing.T, w *app.Worker, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := w.Store.Get(ctx, id)
		if errors.Is(err, tokenstore.ErrNotFound) {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("session %s still in Vault after the last run: %v", id, err)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func staticToken(tok *oauth2.Token) oauth2.TokenSource { return oauth2.StaticTokenSource(tok) }
