package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/internal/devstack/idp"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/login"
	"github.com/oidcflow/oidcflow/pgaccess"
	"github.com/oidcflow/oidcflow/workflows"
)

// stackUser runs the real starter (real IdP, real Temporal) as one persona, with a session
// file of its own. Its logins drive the real `login` command: the listener, state and nonce
// checks, the code exchange and the cache; only the person at the browser is replaced by
// the dev login app's persona picker (Options.Browser).
type stackUser struct {
	t       *testing.T
	st      *testharness.Stack
	persona string
	vars    map[string]string
}

func newStackUser(t *testing.T, st *testharness.Stack, persona, queue string) *stackUser {
	return &stackUser{t: t, st: st, persona: persona, vars: map[string]string{
		"OIDCFLOW_TOKEN_CACHE": filepath.Join(t.TempDir(), persona, "tokens.json"),
		"OIDCFLOW_TASK_QUEUE":  queue,
		// A free port, so logins of tests that run side by side (or beside `make demo`)
		// never compete for the registered one.
		"OIDCFLOW_REDIRECT_URL": login.DefaultRedirectURL,
	}}
}

func (u *stackUser) env() *config.Env {
	env, err := config.New(func(name string) (string, bool) {
		if v, ok := u.vars[name]; ok {
			return v, true
		}
		v := u.st.Env(name)
		return v, v != ""
	})
	if err != nil {
		u.t.Fatal(err)
	}
	return env
}

func (u *stackUser) run(args ...string) result {
	u.t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := &runner{stdout: &out, stderr: &errb, env: u.env(), pollEvery: 200 * time.Millisecond,
		browser: idp.Browser(u.st.Env("OIDCFLOW_LOGIN_URL"), u.persona)}
	code := r.main(ctx, args)
	res := result{out.String(), errb.String(), code}
	u.noTokens(res)
	return res
}

func (u *stackUser) mustRun(args ...string) result {
	u.t.Helper()
	res := u.run(args...)
	// The dev Hydra keeps its state in SQLite; under the load of parallel test packages it
	// sometimes answers server_error ("database is locked"). A login is retried then.
	for i := 0; i < 3 && args[0] == "login" && strings.Contains(res.stderr, "server_error"); i++ {
		u.t.Logf("%s: retrying a login that met a transient IdP server_error", u.persona)
		time.Sleep(time.Second)
		res = u.run(args...)
	}
	if res.code != ExitOK {
		u.t.Fatalf("%s: starter %v: exit %d\nstdout: %s\nstderr: %s", u.persona, args, res.code, res.stdout, res.stderr)
	}
	return res
}

func (u *stackUser) session() login.Session {
	u.t.Helper()
	c, _ := login.NewCache(login.CacheOptions{Path: u.vars["OIDCFLOW_TOKEN_CACHE"]})
	s, err := c.Load()
	if err != nil {
		u.t.Fatalf("%s: %v", u.persona, err)
	}
	return s
}

// noTokens fails the test when output shows any token of the cached session.
func (u *stackUser) noTokens(res result) {
	u.t.Helper()
	c, _ := login.NewCache(login.CacheOptions{Path: u.vars["OIDCFLOW_TOKEN_CACHE"]})
	s, err := c.Load()
	if err != nil {
		return
	}
	for _, tok := range []string{s.AccessToken, s.RefreshToken, s.IDToken} {
		if tok != "" && (strings.Contains(res.stdout, tok) || strings.Contains(res.stderr, tok)) {
			u.t.Fatalf("%s: output shows a token", u.persona)
		}
	}
}

func TestIntegrationLoginWhoamiLogout(t *testing.T) {
	st := testharness.Load(t)
	bob := newStackUser(t, st, "bob", "unused")
	res := bob.mustRun("login", "--json")
	lj := decode[LoginJSON](t, res.stdout)
	if lj.Issuer != st.Env("OIDCFLOW_ISSUER") || !lj.Refresh || lj.Subject == "" {
		t.Fatalf("login = %+v", lj)
	}
	fi, err := os.Stat(bob.vars["OIDCFLOW_TOKEN_CACHE"])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache: %v %v", fi, err)
	}
	res = bob.mustRun("whoami", "--json")
	who := decode[WhoamiJSON](t, res.stdout)
	if who.Identity.Subject != lj.Subject || who.Identity.Department != "engineering" || !who.Session.RefreshToken {
		t.Errorf("whoami = %+v", who)
	}

	// Refresh through Hydra: the rotated refresh token is written back, the old one is dead.
	before := bob.session()
	c, _ := login.NewCache(login.CacheOptions{Path: bob.vars["OIDCFLOW_TOKEN_CACHE"]})
	expired := before
	expired.Expiry = time.Now().Add(-time.Minute)
	if err := c.Save(expired); err != nil {
		t.Fatal(err)
	}
	bob.mustRun("whoami")
	after := bob.session()
	if after.RefreshToken == before.RefreshToken || after.AccessToken == before.AccessToken {
		t.Fatal("whoami did not refresh the expired session")
	}
	if in := st.Introspect(t, after.RefreshToken); !in.Active {
		t.Error("the rotated refresh token is not active")
	}

	// Another person logs in as herself.
	erin := newStackUser(t, st, "erin", "unused")
	erin.mustRun("login")
	if res := erin.mustRun("whoami", "--json"); decode[WhoamiJSON](t, res.stdout).Identity.Subject == lj.Subject {
		t.Error("erin is bob")
	}

	// Logout revokes at Hydra (RFC 7009) and deletes the session.
	rt := bob.session().RefreshToken
	if out := decode[LogoutJSON](t, bob.mustRun("logout", "--json").stdout); !out.Revoked {
		t.Errorf("logout = %+v", out)
	}
	if in := st.Introspect(t, rt); in.Active {
		t.Error("refresh token still active after logout")
	}
	if res := bob.run("whoami"); res.code != ExitError || !strings.Contains(res.stderr, "not logged in; run `starter login`") {
		t.Errorf("whoami after logout: %d %s", res.code, res.stderr)
	}
}

func TestIntegrationSessionExpired(t *testing.T) {
	st := testharness.Load(t)
	bob := newStackUser(t, st, "bob", "unused")
	bob.mustRun("login")
	old := bob.session()
	old.Expiry = time.Now().Add(-time.Minute)
	c, _ := login.NewCache(login.CacheOptions{Path: bob.vars["OIDCFLOW_TOKEN_CACHE"]})
	if err := c.Save(old); err != nil {
		t.Fatal(err)
	}
	bob.mustRun("whoami") // refreshes: old.RefreshToken is now used
	// Put the used refresh token back: Hydra refuses it (single use).
	if err := c.Save(old); err != nil {
		t.Fatal(err)
	}
	res := bob.run("whoami")
	if res.code != ExitError || !strings.Contains(res.stderr, "your session expired (the identity provider refused the refresh token: invalid_grant); run `starter login`") {
		t.Errorf("exit %d, %s", res.code, res.stderr)
	}
	bad := newStackUser(t, st, "bob", "unused")
	bad.vars["OIDCFLOW_ISSUER"] = "http://127.0.0.1:1"
	res = bad.run("login", "--timeout", "10s")
	if res.code != ExitError || !strings.Contains(res.stderr, "cannot reach the identity provider at http://127.0.0.1:1") {
		t.Errorf("unreachable IdP: %d %s", res.code, res.stderr)
	}
}

func TestIntegrationAccessRequestCommands(t *testing.T) {
	st := testharness.Load(t)
	queue := apptest.TaskQueue("cli")
	bctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pgaccess.Bootstrap(bctx, st.Env("OIDCFLOW_POSTGRES_URL"), pgaccess.BootstrapOptions{}); err != nil {
		t.Fatalf("bootstrap the demo database: %v", err)
	}
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue)})
	bob := newStackUser(t, st, "bob", queue)
	carol := newStackUser(t, st, "carol", queue)
	frank := newStackUser(t, st, "frank", queue)
	erin := newStackUser(t, st, "erin", queue)
	for _, u := range []*stackUser{bob, carol, frank, erin} {
		u.mustRun("login")
	}
	bobSub := bob.session().Subject

	// bob asks; frank may not approve, erin may not even call Temporal; carol approves; the
	// grant follows.
	res := bob.mustRun("request-access", "--resource", "demo", "--role", "read", "--duration", "2m", "--reason", "cli integration", "--json")
	req := decode[RequestJSON](t, res.stdout)
	if bob.session().HandedOver.IsZero() {
		t.Error("request-access did not record that the refresh token went to the worker pool")
	}
	if req.State != workflows.StatePending || req.Status.Requester.Subject != bobSub ||
		req.UIURL != strings.TrimRight(st.Env("OIDCFLOW_TEMPORAL_UI_URL"), "/")+"/namespaces/"+st.Env("TEMPORAL_NAMESPACE")+"/workflows/"+req.WorkflowID {
		t.Fatalf("request-access = %+v", req)
	}
	res = frank.run("approve", req.WorkflowID)
	if res.code != ExitError || !strings.Contains(res.stderr, "refused by policy:") || !strings.Contains(res.stderr, "db-approver") {
		t.Errorf("frank approve: exit %d, %s", res.code, res.stderr)
	}
	if st.Authorizes() {
		res = erin.run("approve", req.WorkflowID, "--json")
		if e := decode[ErrorJSON](t, res.stderr); e.Code != CodeForbidden || !strings.Contains(e.Error, "refused by Temporal") {
			t.Errorf("erin, without Temporal permission, approve: %+v", e)
		}
	}
	res = bob.run("approve", req.WorkflowID, "--json")
	if e := decode[ErrorJSON](t, res.stderr); e.Code != CodeForbidden {
		t.Errorf("self-approval: %+v", e)
	}
	res = carol.mustRun("approve", req.WorkflowID, "--comment", "looks fine", "--json")
	if out := decode[RequestJSON](t, res.stdout); len(out.Status.Approvers) != 1 {
		t.Errorf("approve = %+v", out)
	}
	var st1 RequestJSON
	deadline := time.Now().Add(time.Minute)
	for {
		st1 = decode[RequestJSON](t, bob.mustRun("status", req.WorkflowID, "--audit", "--json").stdout)
		if st1.State == workflows.StateGranted || st1.State.Final() || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st1.State != workflows.StateGranted || st1.Status.Grant == nil {
		t.Fatalf("status after approval = %+v", st1)
	}
	var refused, approved bool
	for _, a := range st1.Audit {
		refused = refused || (a.Action == workflows.UpdateApprove && a.Outcome == workflows.OutcomeRefused)
		approved = approved || (a.Action == workflows.UpdateApprove && a.Outcome == workflows.OutcomeOK)
	}
	if !refused || !approved {
		t.Errorf("audit trail lacks the refusal or the approval: %+v", st1.Audit)
	}

	// A second request is denied, a third withdrawn by bob.
	denied := decode[RequestJSON](t, bob.mustRun("request-access", "--resource", "demo", "--reason", "to deny", "--json").stdout)
	if out := decode[RequestJSON](t, carol.mustRun("deny", denied.WorkflowID, "--comment", "not today", "--json").stdout); out.State != workflows.StateDenied {
		t.Errorf("deny = %+v", out)
	}
	withdrawn := decode[RequestJSON](t, bob.mustRun("request-access", "--resource", "demo", "--reason", "to withdraw", "--json").stdout)
	if out := decode[RequestJSON](t, bob.mustRun("revoke", withdrawn.WorkflowID, "--json").stdout); out.State != workflows.StateRevoked {
		t.Errorf("revoke = %+v", out)
	}
	// bob ends the granted one early.
	if out := decode[RequestJSON](t, bob.mustRun("revoke", req.WorkflowID, "--reason", "done", "--json").stdout); out.State != workflows.StateRevoked {
		t.Errorf("early revoke = %+v", out)
	}

	// list finds them through the search attributes (visibility is eventually consistent).
	want := map[string]string{req.WorkflowID: "revoked", denied.WorkflowID: "denied", withdrawn.WorkflowID: "revoked"}
	deadline = time.Now().Add(30 * time.Second)
	for {
		out := decode[ListJSON](t, bob.mustRun("list", "--requester", "me", "--limit", "100", "--json").stdout)
		got := map[string]string{}
		for _, it := range out.Requests {
			got[it.WorkflowID] = it.State
			if it.Requester != bobSub {
				t.Fatalf("list --requester me shows %s's request", it.Requester)
			}
		}
		ok := true
		for id, state := range want {
			ok = ok && got[id] == state
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list = %v, want %v", got, want)
		}
		time.Sleep(time.Second)
	}
	out := decode[ListJSON](t, bob.mustRun("list", "--requester", bobSub, "--state", "denied", "--limit", "100", "--json").stdout)
	for _, it := range out.Requests {
		if it.State != "denied" {
			t.Errorf("--state denied lists %+v", it)
		}
	}
	// Other tests' runs of bob share the list: narrow it to the denied ones.
	human := bob.mustRun("list", "--requester", "me", "--state", "denied", "--limit", "1000")
	if !strings.Contains(human.stdout, denied.WorkflowID) {
		t.Errorf("human list lacks %s:\n%s", denied.WorkflowID, human.stdout)
	}
	_ = json.Valid
}

// TestIntegrationApproveRefusedWhenTheRequestChanged replays a decision with the real starter:
// carol runs `starter status W` (read, 1 h); bob withdraws W and asks again under the same id
// for write access for 12 h; carol's `starter approve W --run R --digest D` with what status
// showed her is refused (exit 1, code request_changed) and the new request stays pending.
// `starter deny W` without pins shows her the new request before it decides.
func TestIntegrationApproveRefusedWhenTheRequestChanged(t *testing.T) {
	st := testharness.Load(t)
	queue := apptest.TaskQueue("cli-swap")
	bctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pgaccess.Bootstrap(bctx, st.Env("OIDCFLOW_POSTGRES_URL"), pgaccess.BootstrapOptions{}); err != nil {
		t.Fatalf("bootstrap the demo database: %v", err)
	}
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue)})
	bob := newStackUser(t, st, "bob", queue)
	carol := newStackUser(t, st, "carol", queue)
	bob.mustRun("login")
	carol.mustRun("login")

	id := "cli-swap-" + queue
	bob.mustRun("request-access", "--id", id, "--resource", "demo", "--role", "read", "--duration", "1h", "--reason", "slow query log")
	seen := decode[RequestJSON](t, carol.mustRun("status", id, "--json").stdout)
	if seen.Status.Role != workflows.AccessRead || seen.RunID == "" || seen.RunID != seen.Status.RunID || seen.Status.RequestDigest == "" {
		t.Fatalf("carol sees %+v", seen)
	}
	human := carol.mustRun("status", id)
	if !strings.Contains(human.stdout, seen.RunID) || !strings.Contains(human.stdout, seen.Status.RequestDigest) {
		t.Errorf("status does not show the run and digest to pin:\n%s", human.stdout)
	}

	bob.mustRun("revoke", id, "--reason", "swap")
	bob.mustRun("request-access", "--id", id, "--resource", "demo", "--role", "write", "--duration", "12h", "--reason", "slow query log")

	res := carol.run("approve", id, "--run", seen.RunID, "--digest", seen.Status.RequestDigest, "--json")
	e := decode[ErrorJSON](t, res.stderr)
	if res.code != ExitError || e.Code != CodeRequestChanged || !strings.Contains(e.Error, "nothing was decided") {
		t.Errorf("carol's pinned approval: exit %d, %+v; want exit 1, code %s", res.code, e, CodeRequestChanged)
	}
	t.Logf("refused: %s", e.Error)
	now := decode[RequestJSON](t, bob.mustRun("status", id, "--audit", "--json").stdout)
	if now.State != workflows.StatePending || now.Status.Role != workflows.AccessWrite || len(now.Status.Approvers) != 0 || now.RunID == seen.RunID {
		t.Errorf("the new request after carol's approval: %+v", now)
	}

	// Unpinned, carol is shown the new request first, and decides on what she was shown.
	res = carol.mustRun("deny", id, "--comment", "write is too much")
	shown, _, _ := strings.Cut(res.stdout, "Denied.")
	if !strings.Contains(shown, "Denying this request:") || !strings.Contains(shown, "write on demo for 12h0m0s") || !strings.Contains(shown, now.RunID) {
		t.Errorf("deny did not show the request it denied:\n%s", res.stdout)
	}
}
