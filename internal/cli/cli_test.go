package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/login"
	"github.com/oidcflow/oidcflow/workflows"
)

// fixture runs the starter against a fake IdP and an in-memory Temporal, with the session
// file in a temporary folder.
type fixture struct {
	t     *testing.T
	idp   *fakeIdP
	tc    *fakeTemporal
	vars  map[string]string
	cache string
	// browse completes the authorization URL, as a browser would (default: GET, follow).
	browse func(authURL string)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	idp := newFakeIdP(t)
	dir := t.TempDir()
	f := &fixture{t: t, idp: idp, tc: newFakeTemporal(), cache: filepath.Join(dir, "cfg", "oidcflow", "tokens.json")}
	f.vars = map[string]string{
		"OIDCFLOW_ISSUER":              idp.issuer(),
		"OIDCFLOW_CLIENT_ID":           "starter",
		"OIDCFLOW_REDIRECT_URL":        "http://127.0.0.1:0/callback",
		"OIDCFLOW_TOKEN_CACHE":         f.cache,
		"TEMPORAL_NAMESPACE":           "oidcflow",
		"OIDCFLOW_TEMPORAL_UI_URL":     "http://ui.test:8233",
		"OIDCFLOW_ENVELOPE_PUBLIC_KEY": "unused-by-the-fake",
	}
	f.browse = func(u string) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
		}
	}
	return f
}

type result struct {
	stdout, stderr string
	code           int
}

func (f *fixture) run(args ...string) result {
	f.t.Helper()
	env, err := config.New(func(k string) (string, bool) { v, ok := f.vars[k]; return v, ok })
	if err != nil {
		f.t.Fatal(err)
	}
	var out, errb bytes.Buffer
	r := &runner{stdout: &out, stderr: &errb, env: env, dial: f.tc.dial, pollEvery: 5 * time.Millisecond,
		openBrowser: func(string) error { return errors.New("no browser in tests") },
		browser:     func(_ context.Context, u string) error { f.browse(u); return nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := r.main(ctx, args)
	res := result{out.String(), errb.String(), code}
	for _, s := range f.idp.secrets() {
		if strings.Contains(res.stdout, s) || strings.Contains(res.stderr, s) {
			f.t.Fatalf("starter %v printed a token:\nstdout: %s\nstderr: %s", args, res.stdout, res.stderr)
		}
	}
	return res
}

func (f *fixture) mustRun(args ...string) result {
	f.t.Helper()
	res := f.run(args...)
	if res.code != ExitOK {
		f.t.Fatalf("starter %v: exit %d\nstdout: %s\nstderr: %s", args, res.code, res.stdout, res.stderr)
	}
	return res
}

func (f *fixture) login() {
	f.t.Helper()
	f.mustRun("login")
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, s)
	}
	return v
}

// keys returns the top-level keys of a JSON object.
func keys(t *testing.T, s string) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, s)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func wantKeys(t *testing.T, s string, want ...string) {
	t.Helper()
	got := keys(t, s)
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("JSON lacks %q (has %v):\n%s", w, got, s)
		}
	}
}

func TestLoginBrowserCachesVerifiedSession(t *testing.T) {
	f := newFixture(t)
	res := f.mustRun("login", "--json")
	if !strings.Contains(res.stderr, "Open this URL in your browser") || !strings.Contains(res.stderr, "code_challenge_method=S256") {
		t.Errorf("login did not print the authorization URL with PKCE:\n%s", res.stderr)
	}
	out := decode[LoginJSON](t, res.stdout)
	if out.Subject != "bob" || out.Issuer != f.idp.issuer() || out.Name != "Bob Builder" || !out.Refresh ||
		out.Flow != "authorization_code" || out.Cache != f.cache {
		t.Errorf("login output = %+v", out)
	}
	wantKeys(t, res.stdout, "subject", "issuer", "name", "email", "expiry", "refresh", "cache", "flow")

	fi, err := os.Stat(f.cache)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache mode = %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(f.cache))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("cache folder mode = %v, want 0700", di.Mode().Perm())
	}
	s, err := login.NewCache(login.CacheOptions{Path: f.cache})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := s.Load()
	if err != nil || sess.Subject != "bob" || sess.RefreshToken == "" || sess.IDToken == "" {
		t.Fatalf("cached session = %v, %v", sess, err)
	}

	human := f.mustRun("login")
	if !strings.Contains(human.stdout, "Logged in as Bob Builder (bob)") {
		t.Errorf("human login output:\n%s", human.stdout)
	}
	// Logging in again revokes the replaced session's refresh token.
	if len(f.idp.revoked) != 1 || f.idp.revoked[0] != sess.RefreshToken {
		t.Errorf("revoked %d tokens after a second login, want the first session's refresh token", len(f.idp.revoked))
	}
}

func TestLoginIgnoresForgedStateAndChecksNonce(t *testing.T) {
	f := newFixture(t)
	f.browse = func(u string) {
		// A redirect with another state (CSRF, RFC 6749 section 10.12) is refused and ignored.
		resp, err := http.Get(strings.Replace(redirectOf(t, u), "state=", "state=forged", 1))
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("forged redirect answered %s", resp.Status)
		}
		resp, err = http.Get(u)
		if err == nil {
			resp.Body.Close()
		}
	}
	f.mustRun("login")

	f.idp.mu.Lock()
	f.idp.badNonce = true
	f.idp.mu.Unlock()
	res := f.run("login")
	if res.code != ExitError || !strings.Contains(res.stderr, "nonce") {
		t.Errorf("login with a wrong nonce: exit %d, %s", res.code, res.stderr)
	}
}

// redirectOf returns the loopback redirect the fake IdP would send for authURL, with state.
func redirectOf(t *testing.T, authURL string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("Location")
}

func TestLoginDevice(t *testing.T) {
	f := newFixture(t)
	res := f.run("login", "--device")
	if res.code != ExitError || !strings.Contains(res.stderr, "does not offer device authorization") {
		t.Errorf("device login without endpoint: exit %d, %s", res.code, res.stderr)
	}
	f.idp.mu.Lock()
	f.idp.device = true
	f.idp.mu.Unlock()
	res = f.mustRun("login", "--device", "--json")
	if !strings.Contains(res.stderr, "ABCD-EFGH") {
		t.Errorf("device login did not show the user code:\n%s", res.stderr)
	}
	if out := decode[LoginJSON](t, res.stdout); out.Flow != "device_code" || out.Subject != "bob" {
		t.Errorf("device login output = %+v", out)
	}
}

func TestLoginTimeout(t *testing.T) {
	f := newFixture(t)
	f.browse = func(string) {}
	res := f.run("login", "--timeout", "300ms")
	if res.code != ExitError || !strings.Contains(res.stderr, "did not finish within 300ms") {
		t.Errorf("exit %d, %s", res.code, res.stderr)
	}
}

func TestIdPUnreachable(t *testing.T) {
	f := newFixture(t)
	f.login()
	f.idp.srv.Close()
	for _, args := range [][]string{{"login"}, {"whoami"}, {"logout"}} {
		res := f.run(args...)
		if res.code != ExitError || !strings.Contains(res.stderr, "cannot reach the identity provider at "+f.idp.issuer()) ||
			!strings.Contains(res.stderr, "check OIDCFLOW_ISSUER and your network") {
			t.Errorf("%v: exit %d, %s", args, res.code, res.stderr)
		}
	}
	res := f.run("login", "--json")
	if e := decode[ErrorJSON](t, res.stderr); e.Code != CodeIdPUnreachable {
		t.Errorf("--json error = %+v", e)
	}
}

// TestIssuerMismatch: an issuer that differs from the one the provider names (here by a
// trailing slash) is a configuration mistake, not an unreachable provider.
func TestIssuerMismatch(t *testing.T) {
	f := newFixture(t)
	f.vars["OIDCFLOW_ISSUER"] = f.idp.issuer() + "/"
	res := f.run("login", "--json")
	if e := decode[ErrorJSON](t, res.stderr); res.code != ExitError || e.Code != CodeError ||
		!strings.Contains(e.Error, "set OIDCFLOW_ISSUER to the issuer exactly") {
		t.Errorf("exit %d, %+v", res.code, e)
	}
}

func TestNotLoggedIn(t *testing.T) {
	f := newFixture(t)
	for _, args := range [][]string{
		{"whoami"}, {"request-access", "--resource", "demo", "--reason", "x"}, {"approve", "access-1"},
		{"deny", "access-1", "--comment", "no"}, {"revoke", "access-1"}, {"list", "--requester", "me"},
	} {
		res := f.run(args...)
		if res.code != ExitError || res.stderr != "starter: not logged in; run `starter login`\n" {
			t.Errorf("%v: exit %d, stderr %q", args, res.code, res.stderr)
		}
		res = f.run(append([]string{"--json"}, args...)...)
		if e := decode[ErrorJSON](t, res.stderr); e.Code != CodeNotLoggedIn || e.Error != "not logged in; run `starter login`" {
			t.Errorf("%v --json: %+v", args, e)
		}
	}
}

func TestSessionExpired(t *testing.T) {
	f := newFixture(t)
	f.login()
	c, _ := login.NewCache(login.CacheOptions{Path: f.cache})
	s, _ := c.Load()
	// Expire the tokens and make the refresh token one the IdP no longer knows.
	s.Expiry, s.IDTokenExpiry, s.RefreshToken = time.Now().Add(-time.Hour), time.Now().Add(-time.Hour), "rt-revoked"
	if err := c.Save(s); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"whoami"}, {"approve", "access-1"}} {
		res := f.run(args...)
		if res.code != ExitError || !strings.Contains(res.stderr, "your session expired (the identity provider refused the refresh token: invalid_grant); run `starter login`") {
			t.Errorf("%v: exit %d, %s", args, res.code, res.stderr)
		}
	}
	res := f.run("whoami", "--json")
	if e := decode[ErrorJSON](t, res.stderr); e.Code != CodeSessionExpired {
		t.Errorf("--json: %+v", e)
	}
}

func TestWhoamiRefreshesAndShowsPolicies(t *testing.T) {
	f := newFixture(t)
	f.idp.accessTTL = 10 * time.Second // within the refresh skew: every use refreshes
	f.login()
	res := f.mustRun("whoami", "--json")
	out := decode[WhoamiJSON](t, res.stdout)
	wantKeys(t, res.stdout, "identity", "session", "policies")
	if out.Identity.Subject != "bob" || out.Identity.Department != "engineering" || !out.Session.RefreshToken {
		t.Errorf("whoami = %+v", out)
	}
	if f.idp.refreshes != 1 {
		t.Errorf("refreshes = %d, want 1", f.idp.refreshes)
	}
	allowed := map[string]bool{}
	for _, p := range out.Policies {
		allowed[p.Name] = p.Allowed
		if !p.Allowed && !strings.Contains(p.Reason, "needs") {
			t.Errorf("policy %q: reason %q", p.Name, p.Reason)
		}
	}
	if !allowed["request access (your department has an approval route)"] || allowed["approve or deny access requests from engineering"] {
		t.Errorf("policies = %+v", out.Policies)
	}
	// The rotated refresh token was written back: a second run refreshes with it.
	human := f.mustRun("whoami")
	for _, want := range []string{"Subject", "bob", "Roles", "engineer", "Policies:", "no   approve or deny access requests from engineering"} {
		if !strings.Contains(human.stdout, want) {
			t.Errorf("whoami lacks %q:\n%s", want, human.stdout)
		}
	}
	if f.idp.refreshes != 2 {
		t.Errorf("refreshes = %d, want 2", f.idp.refreshes)
	}
}

func TestPoliciesForApprover(t *testing.T) {
	id := &identity.Identity{Subject: "carol", Roles: []string{"db-approver"}, Department: "engineering"}
	for _, p := range Policies(id) {
		if p.Name == "approve or deny access requests from engineering" && !p.Allowed {
			t.Errorf("carol cannot approve: %+v", p)
		}
		if p.Name == "run admin tasks" && p.Allowed {
			t.Errorf("carol may run admin tasks: %+v", p)
		}
	}
}

func TestLogoutRevokesAndDeletes(t *testing.T) {
	f := newFixture(t)
	f.login()
	c, _ := login.NewCache(login.CacheOptions{Path: f.cache})
	s, _ := c.Load()
	res := f.mustRun("logout", "--json")
	if out := decode[LogoutJSON](t, res.stdout); !out.LoggedOut || !out.Revoked || out.Subject != "bob" {
		t.Errorf("logout = %+v", out)
	}
	if len(f.idp.revoked) != 1 || f.idp.revoked[0] != s.RefreshToken {
		t.Errorf("revoked %d tokens, want the refresh token", len(f.idp.revoked))
	}
	if _, err := os.Stat(f.cache); !os.IsNotExist(err) {
		t.Errorf("cache still exists: %v", err)
	}
	res = f.mustRun("logout")
	if !strings.Contains(res.stdout, "Not logged in") {
		t.Errorf("second logout: %s", res.stdout)
	}
	if res := f.run("whoami"); res.code != ExitError || !strings.Contains(res.stderr, "not logged in") {
		t.Errorf("whoami after logout: %d %s", res.code, res.stderr)
	}
}

func TestRequestAccess(t *testing.T) {
	f := newFixture(t)
	f.login()
	res := f.mustRun("request-access", "--resource", "demo", "--role", "read", "--duration", "2m", "--reason", "debug ticket 42", "--json")
	out := decode[RequestJSON](t, res.stdout)
	wantKeys(t, res.stdout, "workflow_id", "run_id", "state", "status", "ui_url")
	if !strings.HasPrefix(out.WorkflowID, "access-demo-") || out.State != workflows.StatePending ||
		out.UIURL != "http://ui.test:8233/namespaces/oidcflow/workflows/"+out.WorkflowID {
		t.Errorf("request-access = %+v", out)
	}
	if in := f.tc.started[0]; in.Resource != "demo" || in.Role != workflows.AccessRead || in.Duration != 2*time.Minute || in.Reason != "debug ticket 42" {
		t.Errorf("input = %+v", in)
	}
	human := f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-fixed")
	for _, want := range []string{"Access requested.", "Workflow   access-fixed", "State      pending", "Web UI     http://ui.test:8233/namespaces/oidcflow/workflows/access-fixed"} {
		if !strings.Contains(human.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, human.stdout)
		}
	}
}

func TestRequestAccessWait(t *testing.T) {
	f := newFixture(t)
	f.login()
	go func() {
		// An approver decides while the requester waits.
		for {
			f.tc.mu.Lock()
			wf := f.tc.runs["access-w"]
			if wf != nil {
				wf.status.State = workflows.StateApproved
				f.tc.mu.Unlock()
				return
			}
			f.tc.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	res := f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-w", "--wait", "--json")
	if last := decode[RequestJSON](t, res.stdout); last.State != workflows.StateGranted {
		t.Errorf("waited for %s, want granted", last.State)
	}

	f.tc.onUpdate = nil
	go func() {
		for {
			f.tc.mu.Lock()
			if wf := f.tc.runs["access-d"]; wf != nil {
				wf.status.State = workflows.StateDenied
				f.tc.mu.Unlock()
				return
			}
			f.tc.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	res = f.run("request-access", "--resource", "demo", "--reason", "x", "--id", "access-d", "--wait")
	if res.code != ExitError || !strings.Contains(res.stderr, "the request ended denied") {
		t.Errorf("denied while waiting: exit %d, %s", res.code, res.stderr)
	}
}

func TestDecisions(t *testing.T) {
	f := newFixture(t)
	f.login()
	f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-1")
	f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-2")
	f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-3")

	res := f.mustRun("approve", "access-1", "--comment", "ok", "--json")
	if out := decode[RequestJSON](t, res.stdout); out.State != workflows.StateApproved || out.Status.Approvers[0] != "carol" {
		t.Errorf("approve = %+v", out)
	}
	res = f.mustRun("deny", "--comment", "not now", "access-2")
	if !strings.Contains(res.stdout, "Denied.") || !strings.Contains(res.stdout, "State      denied") {
		t.Errorf("deny:\n%s", res.stdout)
	}
	res = f.mustRun("revoke", "access-3", "--reason", "done", "--json")
	if out := decode[RequestJSON](t, res.stdout); out.State != workflows.StateRevoked {
		t.Errorf("revoke = %+v", out)
	}
	want := []string{"approve:access-1", "deny:access-2", "revoke:access-3"}
	if strings.Join(f.tc.updates, " ") != strings.Join(want, " ") {
		t.Errorf("updates = %v", f.tc.updates)
	}

	res = f.run("approve", "access-404")
	if res.code != ExitError || !strings.Contains(res.stderr, "no workflow access-404 in namespace oidcflow") {
		t.Errorf("unknown workflow: %d %s", res.code, res.stderr)
	}
}

func TestRefusedByPolicy(t *testing.T) {
	f := newFixture(t)
	f.login()
	f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-1")
	denial := &identity.DeniedError{Subject: "erin", Reason: `needs role db-approver in department "engineering"; has roles [] in department ""`}
	f.tc.onUpdate = func(string, string, any) (workflows.AccessStatus, error) {
		return workflows.AccessStatus{}, identity.ApplicationError(denial)
	}
	res := f.run("approve", "access-1")
	want := `starter: refused by policy: erin denied: needs role db-approver in department "engineering"; has roles [] in department ""` + "\n"
	if res.code != ExitError || res.stderr != want {
		t.Errorf("exit %d, stderr %q\nwant %q", res.code, res.stderr, want)
	}
	res = f.run("deny", "access-1", "--comment", "no", "--json")
	if e := decode[ErrorJSON](t, res.stderr); e.Code != CodeForbidden || !strings.Contains(e.Error, "erin denied") {
		t.Errorf("--json: %+v", e)
	}
	// A validator refusal (untyped) says which operation was refused.
	f.tc.onUpdate = func(string, string, any) (workflows.AccessStatus, error) {
		return workflows.AccessStatus{}, temporal.NewApplicationError("workflows: request is closed (state denied)", "")
	}
	res = f.run("approve", "access-1")
	if res.code != ExitError || !strings.Contains(res.stderr, "approve refused: workflows: request is closed") {
		t.Errorf("validator refusal: %d %s", res.code, res.stderr)
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t)
	f.login()
	f.mustRun("request-access", "--resource", "demo", "--reason", "ticket 7", "--id", "access-1")
	res := f.mustRun("status", "access-1", "--json")
	out := decode[RequestJSON](t, res.stdout)
	if out.State != workflows.StatePending || out.Status.Reason != "ticket 7" || out.Audit != nil {
		t.Errorf("status = %+v", out)
	}
	res = f.mustRun("status", "--audit", "access-1", "--json")
	if out := decode[RequestJSON](t, res.stdout); len(out.Audit) != 1 || out.Audit[0].Action != "requested" {
		t.Errorf("status --audit = %+v", out)
	}
	wantKeys(t, res.stdout, "workflow_id", "state", "status", "audit", "ui_url")
	res = f.mustRun("status", "access-1", "--audit")
	for _, want := range []string{"State      pending", "Requester  bob (Bob Builder), engineering", "Audit trail:", "requested  bob"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, res.stdout)
		}
	}
	if res := f.run("status", "access-404"); res.code != ExitError || !strings.Contains(res.stderr, "no workflow access-404") {
		t.Errorf("unknown: %d %s", res.code, res.stderr)
	}
}

func TestList(t *testing.T) {
	f := newFixture(t)
	f.login()
	res := f.mustRun("list", "--requester", "me", "--state", "pending", "--json")
	if want := `WorkflowType = "AccessRequest" AND Requester = "bob" AND ApprovalState = "pending"`; f.tc.listQuery != want {
		t.Errorf("query = %s\nwant    %s", f.tc.listQuery, want)
	}
	out := decode[ListJSON](t, res.stdout)
	if len(out.Requests) != 1 {
		t.Fatalf("list = %+v", out)
	}
	it := out.Requests[0]
	if it.WorkflowID != "access-demo-1" || it.Requester != "bob" || it.Department != "engineering" || it.Resource != "demo" ||
		it.State != "pending" || it.Approvers[0] != "carol" || it.Execution != "running" || it.CloseTime != nil {
		t.Errorf("item = %+v", it)
	}
	res = f.mustRun("list")
	for _, want := range []string{"WORKFLOW", "access-demo-1  bob", "pending", "carol"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, res.stdout)
		}
	}
	for _, bad := range [][]string{{"list", "--requester", `x" OR "1"="1`}, {"list", "--state", "bogus"}, {"list", "--limit", "0"}} {
		if res := f.run(bad...); res.code != ExitUsage {
			t.Errorf("%v: exit %d, %s", bad, res.code, res.stderr)
		}
	}
}

func TestUsage(t *testing.T) {
	f := newFixture(t)
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"--bogus", "whoami"}, {"approve"}, {"approve", "a", "b"}, {"deny", "access-1"},
		{"request-access", "--reason", "x"}, {"request-access", "--resource", "demo"},
		{"request-access", "--resource", "demo", "--reason", "x", "--role", "admin"}, {"status", "--nope", "x"},
		{"login", "--persona", "bob"}, {"version", "extra"},
	} {
		if res := f.run(args...); res.code != ExitUsage {
			t.Errorf("%v: exit %d, want 2; %s", args, res.code, res.stderr)
		}
	}
	if res := f.run("help"); res.code != ExitOK || !strings.Contains(res.stdout, "request-access") {
		t.Errorf("help: %d", res.code)
	}
	if res := f.run("approve", "-h"); res.code != ExitOK || !strings.Contains(res.stderr, "Usage: starter approve") {
		t.Errorf("approve -h: %d %s", res.code, res.stderr)
	}
}

func TestVersion(t *testing.T) {
	f := newFixture(t)
	res := f.mustRun("version", "--json")
	if out := decode[VersionJSON](t, res.stdout); out.Version == "" || out.GoVersion == "" {
		t.Errorf("version = %+v", out)
	}
	if res := f.mustRun("version"); !strings.HasPrefix(res.stdout, "starter ") {
		t.Errorf("version: %s", res.stdout)
	}
}

func TestWorkerRefusedIdentity(t *testing.T) {
	f := newFixture(t)
	f.login()
	f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-1")
	f.tc.onUpdate = func(string, string, any) (workflows.AccessStatus, error) {
		return workflows.AccessStatus{}, identity.ApplicationError(&identity.TokenExpiredError{Expiry: time.Date(2030, 1, 1, 10, 2, 0, 0, time.UTC)})
	}
	res := f.run("approve", "access-1")
	want := "starter: your session expired (token expired at 2030-01-01T10:02:00Z); run `starter login`\n"
	if res.code != ExitError || res.stderr != want {
		t.Errorf("stderr %q, want %q", res.stderr, want)
	}
}

func TestDecisionShowsAndNamesTheRequest(t *testing.T) {
	f := newFixture(t)
	f.login()
	f.mustRun("request-access", "--resource", "demo", "--duration", "1h", "--reason", "ticket 7", "--id", "access-1")
	res := f.mustRun("approve", "access-1", "--comment", "ok")
	t.Logf("approve:\n%s", res.stdout)
	for _, want := range []string{"Approving this request:", "Run        run-access-1", "Requester  bob (Bob Builder), engineering",
		"Access     read on demo for 1h0m0s", "Reason     ticket 7", "Approved.", "State      approved"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("approve output lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.Index(res.stdout, "Approving this request:") > strings.Index(res.stdout, "Approved.") {
		t.Errorf("the request is shown after the decision:\n%s", res.stdout)
	}
	o := f.tc.sent[len(f.tc.sent)-1]
	want := workflows.ApproveInput{Comment: "ok", RunID: "run-access-1", RequestDigest: fakeDigest(f.tc.started[0])}
	if o.RunID != "run-access-1" || o.Args[0] != want {
		t.Errorf("approve sent run %q with %+v; want run run-access-1 with %+v", o.RunID, o.Args[0], want)
	}

	f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-2")
	res = f.mustRun("deny", "access-2", "--comment", "no", "--json")
	out := decode[RequestJSON](t, res.stdout)
	wantKeys(t, res.stdout, "workflow_id", "run_id", "state", "status", "ui_url")
	if out.RunID != "run-access-2" || out.Status.RunID != "run-access-2" || out.Status.RequestDigest != fakeDigest(f.tc.started[1]) {
		t.Errorf("deny --json = %+v", out)
	}
	if o := f.tc.sent[len(f.tc.sent)-1]; o.RunID != "run-access-2" || o.Args[0].(workflows.DenyInput).RequestDigest != out.Status.RequestDigest {
		t.Errorf("deny sent %+v", o)
	}

	// status shows what a decision can pin.
	f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-3")
	res = f.mustRun("status", "access-3")
	for _, want := range []string{"Run        run-access-3", "Digest     " + fakeDigest(f.tc.started[2])} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, res.stdout)
		}
	}
}

// TestDecisionRefusedWhenTheRequestChanged replays a decision against the starter: bob replaces the
// run carol looked at with another request under the same workflow id. Each way it can happen
// ends with exit 1, code request_changed, and nothing decided on the new run.
func TestDecisionRefusedWhenTheRequestChanged(t *testing.T) {
	swap := func(f *fixture, id string) {
		f.tc.mu.Lock()
		defer f.tc.mu.Unlock()
		old := f.tc.runs[id]
		old.status.State = workflows.StateRevoked
		f.tc.started = append(f.tc.started, workflows.AccessRequestInput{})
		in := workflows.AccessRequestInput{Resource: "demo", Role: workflows.AccessWrite, Duration: 12 * time.Hour, Reason: "x"}
		runID := fmt.Sprintf("run-%s-%d", id, len(f.tc.started))
		st := old.status
		st.State, st.Role, st.Duration, st.RunID, st.RequestDigest = workflows.StatePending, in.Role, in.Duration, runID, fakeDigest(in)
		wf := &fakeWF{status: st}
		f.tc.runs[id], f.tc.byRun[runID] = wf, wf
	}
	for _, tc := range []struct {
		name string
		// decide runs carol's decision after she looked at the request (seen).
		decide func(f *fixture, seen RequestJSON) result
		errHas string
	}{
		{"pinned run ended", func(f *fixture, seen RequestJSON) result {
			swap(f, "access-1")
			return f.run("approve", "access-1", "--run", seen.RunID, "--digest", seen.Status.RequestDigest, "--json")
		}, "ended or was replaced"},
		{"pinned run, deny", func(f *fixture, seen RequestJSON) result {
			swap(f, "access-1")
			return f.run("deny", "access-1", "--comment", "no", "--run", seen.RunID, "--json")
		}, "ended or was replaced"},
		{"pinned digest differs", func(f *fixture, seen RequestJSON) result {
			swap(f, "access-1")
			return f.run("approve", "access-1", "--digest", seen.Status.RequestDigest, "--json")
		}, "its request digest is"},
		{"pinned run unknown", func(f *fixture, seen RequestJSON) result {
			return f.run("approve", "access-1", "--run", "run-nope", "--json")
		}, "it has no run run-nope"},
		{"swapped between the status query and the update", func(f *fixture, seen RequestJSON) result {
			f.tc.beforeUpdate = func() { swap(f, "access-1") }
			return f.run("approve", "access-1", "--json")
		}, "ended or was replaced"},
		{"the workflow refuses", func(f *fixture, seen RequestJSON) result {
			f.tc.onUpdate = func(string, string, any) (workflows.AccessStatus, error) {
				return workflows.AccessStatus{}, temporal.NewNonRetryableApplicationError(
					"workflows: approve names request digest \"abc\", but this request's is def: the request changed since it was looked at",
					workflows.TypeApprovalMismatch, nil)
			}
			return f.run("approve", "access-1", "--json")
		}, "approve names request digest \"abc\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.login()
			f.mustRun("request-access", "--resource", "demo", "--duration", "1h", "--reason", "x", "--id", "access-1")
			seen := decode[RequestJSON](t, f.mustRun("status", "access-1", "--json").stdout)
			res := tc.decide(f, seen)
			e := decode[ErrorJSON](t, res.stderr)
			if res.code != ExitError || e.Code != CodeRequestChanged || !strings.Contains(e.Error, tc.errHas) ||
				!strings.Contains(e.Error, "nothing was decided") || !strings.Contains(e.Error, "starter status access-1") {
				t.Errorf("exit %d, %+v; want exit 1, code %s, an error with %q", res.code, e, CodeRequestChanged, tc.errHas)
			}
			if res.stdout != "" {
				t.Errorf("--json printed to stdout on failure: %s", res.stdout)
			}
			f.tc.mu.Lock()
			defer f.tc.mu.Unlock()
			if st := f.tc.runs["access-1"].status; st.State != workflows.StatePending || len(st.Approvers) != 0 {
				t.Errorf("the request now: %+v; want the latest run still pending, nothing decided", st)
			}
		})
	}

	// Without --json the refusal says what to do.
	f := newFixture(t)
	f.login()
	f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-1")
	f.tc.beforeUpdate = func() { swap(f, "access-1") }
	res := f.run("approve", "access-1")
	if res.code != ExitError || !strings.HasPrefix(res.stderr, "starter: request access-1 changed since you looked at it: its run run-access-1 ended or was replaced") ||
		!strings.Contains(res.stderr, "Run `starter status access-1` and approve again") {
		t.Errorf("exit %d, stderr %s", res.code, res.stderr)
	}
}

// TestDecisionRefusedByAnOlderWorker: a status without run id and digest cannot be named, so
// nothing is sent.
func TestDecisionRefusedByAnOlderWorker(t *testing.T) {
	f := newFixture(t)
	f.login()
	f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-1")
	f.tc.mu.Lock()
	f.tc.runs["access-1"].status.RunID, f.tc.runs["access-1"].status.RequestDigest = "", ""
	f.tc.mu.Unlock()
	res := f.run("approve", "access-1")
	if res.code != ExitError || !strings.Contains(res.stderr, "upgrade the worker pool") || len(f.tc.sent) != 0 {
		t.Errorf("exit %d, %s; sent %d updates", res.code, res.stderr, len(f.tc.sent))
	}
}

// TestDecisionWhileTheRunsTaskFails: the server turns an update away while the run's workflow
// task is failing (WorkflowNotReady); the approver learns that nothing was decided and what
// to do.
func TestDecisionWhileTheRunsTaskFails(t *testing.T) {
	f := newFixture(t)
	f.login()
	f.mustRun("request-access", "--resource", "demo", "--reason", "x", "--id", "access-1")
	f.tc.onUpdate = func(string, string, any) (workflows.AccessStatus, error) {
		return workflows.AccessStatus{}, serviceerror.NewWorkflowNotReady("Unable to perform workflow execution update due to Workflow Task in failed state.")
	}
	res := f.run("approve", "access-1")
	if res.code != ExitError || !strings.Contains(res.stderr, "nothing was decided. Try again in a moment") {
		t.Errorf("exit %d, stderr %s", res.code, res.stderr)
	}
}
