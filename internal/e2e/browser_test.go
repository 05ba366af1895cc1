package e2e_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/devstack"
	"github.com/oidcflow/oidcflow/internal/devtls"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/workflows"
)

// TestWebUIShowsRequesterAndApprovers runs an access request (bob asks, carol approves), then
// logs carol in to the dev stack's Temporal Web UI through its own OIDC login, in headless
// Chromium, and opens the workflow list filtered by Requester="bob", the run's page from
// there, its search attributes and memo, where requester and approvers must appear, and
// its input and result, which the UI shows decoded (through the codec server when the pool
// encrypts payloads): bob's reason and his verified claims. Screenshots are kept under
// artifacts/e2e/.
func TestWebUIShowsRequesterAndApprovers(t *testing.T) {
	st := loadStack(t)
	b := startBrowser(t, codecTrustFlags(t, st)...) // skips without Chromium
	queue := apptest.TaskQueue("e2e-browser")
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue)})
	bob, _ := apptest.Client(t, st, "bob")
	carol, _ := apptest.Client(t, st, "carol")

	const reason = "e2e: seen in the Web UI"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := queue // e2e-browser-<random>
	run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, accessInput(reason, 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := approve(ctx, carol, id); err != nil {
		t.Fatalf("carol approves: %v", err)
	}
	var res workflows.AccessRequestResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.State != workflows.StateEnded {
		t.Fatalf("run ended in state %s, want %s", res.State, workflows.StateEnded)
	}
	encrypted := inputEncoding(ctx, t, st, id, run.GetRunID(), reason)

	// Carol logs in through the UI, starting at the list filtered by requester (and this
	// run's id, as other tests start bob's runs too).
	ui := strings.TrimRight(st.Env("OIDCFLOW_TEMPORAL_UI_URL"), "/")
	ns := st.Env("TEMPORAL_NAMESPACE")
	query := `Requester="bob" AND WorkflowId="` + id + `"`
	listURL := ui + "/namespaces/" + url.PathEscape(ns) + "/workflows?" + url.Values{"query": {query}}.Encode()
	session := loginToUI(t, b, st, listURL, "carol")
	t.Logf("the UI's session: sub %q, permissions %v", session.Subject, session.Permissions)

	link := `a[href*="/workflows/` + id + `/` + run.GetRunID() + `"]`
	found := false
	for attempt := 0; attempt < 6 && !found; attempt++ { // visibility may lag behind the run
		b.navigate(listURL)
		_, found = b.waitFor(20*time.Second, func(string) bool {
			var n int
			return b.eval(`document.querySelectorAll(`+strconv.Quote(link)+`).length`, &n) == nil && n > 0
		})
	}
	txt := b.text()
	save(t, "webui-list.png", b.screenshot(false))
	if !found {
		t.Fatalf("the filtered list at %s shows no link to run %s%s; page text:\n%s", listURL, id, refusedHint(b), tail(txt, 3000))
	}
	if !containsAll(txt, "Requester", `"bob"`, id, "Completed") {
		t.Errorf("the filtered list does not show the Requester filter and the completed run; page text:\n%s", tail(txt, 3000))
	}
	if seen := runData(b, txt, id, run.GetRunID()); seen == "" {
		t.Errorf("runData, which tells that erin sees no run, does not see the run carol sees; page text:\n%s", tail(txt, 3000))
	}

	// Open the run from the list.
	if err := b.eval(`document.querySelector(`+strconv.Quote(link)+`).click()`, nil); err != nil {
		t.Fatal(err)
	}
	if txt, ok := b.waitFor(60*time.Second, func(s string) bool {
		return containsAll(s, id, run.GetRunID(), "AccessRequest", "Search Attributes", "Memo")
	}); !ok {
		t.Fatalf("the run's page did not render within 60s%s; page text:\n%s", refusedHint(b), tail(txt, 3000))
	}

	// Requester and approvers, in the run's search attributes.
	clickTab := func(name string) {
		t.Helper()
		var n int
		if err := b.eval(`(() => { const tabs = Array.from(document.querySelectorAll('[role=tab]')).filter(e => e.innerText.trim().startsWith(`+
			strconv.Quote(name)+`)); tabs.forEach(e => e.click()); return tabs.length })()`, &n); err != nil || n == 0 {
			t.Fatalf("no %q tab on the run's page (%v)", name, err)
		}
	}
	requester := regexp.MustCompile(`"Requester":\s*"bob"`)
	approvers := regexp.MustCompile(`"Approvers":\s*\[\s*"carol"\s*\]`)
	clickTab("Search Attributes")
	txt, ok := b.waitFor(30*time.Second, func(s string) bool { return requester.MatchString(s) && approvers.MatchString(s) })
	shot := save(t, "webui-run-search-attributes.png", b.screenshot(false))
	if !ok {
		t.Fatalf("the run's search attributes do not show Requester bob and Approvers [carol] (screenshot %s); page text:\n%s", shot, tail(txt, 3000))
	}
	if !regexp.MustCompile(`"ApprovalState":\s*"ended"`).MatchString(txt) {
		t.Errorf("the run's search attributes do not show ApprovalState ended; page text:\n%s", tail(txt, 3000))
	}

	// The memo holds the requester's verified claims (no token).
	clickTab("Memo")
	if txt, ok := b.waitFor(30*time.Second, func(s string) bool {
		return containsAll(s, `"requester"`, `"sub": "bob"`, `"department": "engineering"`)
	}); !ok {
		save(t, "webui-run-memo.png", b.screenshot(false))
		t.Errorf("the run's memo does not show the requester's claims; page text:\n%s", tail(txt, 3000))
	}

	// Input and result, decoded by the UI (through the codec server, with carol's access
	// token, when the pool encrypts payloads): bob's reason, and his verified claims as the
	// run recorded them in its audit trail.
	clickTab("History")
	panel := func(name string) string {
		var s string
		_ = b.eval(`(() => { const p = Array.from(document.querySelectorAll('[data-testid="input-and-result"] > div')).find(d => {
			const h = d.querySelector('h2'); return h && h.innerText.trim() === `+strconv.Quote(name)+` }); return p ? p.innerText : '' })()`, &s)
		return s
	}
	var input, result string
	_, ok = b.waitFor(60*time.Second, func(string) bool {
		input, result = panel("Input"), panel("Result")
		return strings.Contains(input, `"reason": "`+reason+`"`) && containsAll(result, `"sub": "bob"`, `"email": "bob@example.com"`, `"department": "engineering"`)
	})
	// Scroll the result to bob's claims, for the screenshot.
	_ = b.eval(`(() => { const l = Array.from(document.querySelectorAll('[data-testid="input-and-result"] .cm-line')).find(e => e.textContent.includes('bob@example.com'));
		for (let a = l && l.parentElement; a; a = a.parentElement) { if (a.scrollHeight > a.clientHeight + 1 && getComputedStyle(a).overflowY !== 'visible') {
			a.scrollTop += l.getBoundingClientRect().top - a.getBoundingClientRect().top - a.clientHeight / 3; break } } })()`, nil)
	time.Sleep(500 * time.Millisecond) // let it paint
	shot = save(t, "webui-carol-decoded.png", b.screenshot(false))
	if !ok {
		how := "plain JSON in history"
		if encrypted {
			how = "encrypted in history: the UI decodes through the codec server, which must be up, trusted by the browser and accept carol's token"
		}
		t.Fatalf("the run's page does not show the decoded input (reason %q) and bob's claims in the result (input %s; screenshot %s)\ninput panel:\n%s\nresult panel:\n%s",
			reason, how, shot, tail(input, 2000), tail(result, 2000))
	}
}

// TestWebUIRefusesAPersonWithoutPermission logs erin, who has no Temporal permission at all,
// in to the Web UI through the same login, and opens the namespace's workflow list and the
// URL of a run of bob's: the UI must show no run, only its refusal. Temporal answers the UI's
// calls with PermissionDenied (HTTP 403), and ui-server 2.42.1 then sends the browser back to
// its login page with the error message in the `error` parameter, which the page shows under
// "Continue to SSO" ("Request unauthorized.", Temporal's generic message). The codec server
// refuses erin's access token too (403), once it runs.
func TestWebUIRefusesAPersonWithoutPermission(t *testing.T) {
	st := loadStack(t)
	b := startBrowser(t, codecTrustFlags(t, st)...) // skips without Chromium
	queue := apptest.TaskQueue("e2e-browser-refuse")
	bob, _ := apptest.Client(t, st, "bob")

	// A run of bob's that erin must not see. No worker polls its queue: it only has to
	// exist; the operator terminates it when the test ends.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := queue
	run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, accessInput("e2e: hidden from erin", time.Second))
	if err != nil {
		t.Fatal(err)
	}
	op := st.OperatorClient(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := op.TerminateWorkflow(ctx, id, run.GetRunID(), "test over"); err != nil {
			t.Logf("terminate bob's run %s: %v", id, err)
		}
	})
	if _, err := op.DescribeWorkflow(ctx, id, run.GetRunID()); err != nil {
		t.Fatalf("the operator cannot see bob's run either: %v", err)
	}

	ui := strings.TrimRight(st.Env("OIDCFLOW_TEMPORAL_UI_URL"), "/")
	ns := url.PathEscape(st.Env("TEMPORAL_NAMESPACE"))
	listURL := ui + "/namespaces/" + ns + "/workflows"
	runURL := ui + "/namespaces/" + ns + "/workflows/" + url.PathEscape(id) + "/" + run.GetRunID() + "/history"
	session := loginToUI(t, b, st, listURL, "erin")
	if len(session.Permissions) != 0 {
		t.Fatalf("erin's access token in the UI carries permissions %v; the test needs a persona without any", session.Permissions)
	}

	for _, page := range []struct{ name, url string }{{"workflow list", listURL}, {"bob's run", runURL}} {
		b.navigate(page.url)
		target, err := url.Parse(page.url)
		if err != nil {
			t.Fatal(err)
		}
		var leak, shown string
		txt, ok := b.waitFor(90*time.Second, func(s string) bool {
			if leak == "" {
				leak = runData(b, s, id, run.GetRunID())
			}
			msg, refused := refusal(b.location(), s)
			if msg != "" && refused == target.Path {
				shown = msg
			}
			return leak != "" || shown != ""
		})
		if leak == "" {
			leak = runData(b, b.text(), id, run.GetRunID())
		}
		shot := ""
		if page.url == runURL {
			shot = save(t, "webui-erin-refused.png", b.screenshot(false))
		}
		if leak != "" {
			t.Errorf("erin sees %s on the %s (%s); page text:\n%s", leak, page.name, page.url, tail(txt, 3000))
			continue
		}
		if !ok {
			t.Errorf("the UI showed no refusal for erin on the %s within 90s: no PermissionDenied message and no redirect to its login page with an error (now at %s, screenshot %q); page text:\n%s",
				page.name, b.location(), shot, tail(txt, 3000))
			continue
		}
		t.Logf("%s: the UI shows %q at %s", page.name, shown, b.location())
	}

	// The refusal comes from Temporal's authorizer, for this session: the access token the UI
	// holds for erin is valid but grants nothing in the namespace.
	status, body, err := uiAPI(b, "/api/v1/namespaces/"+ns+"/workflows")
	switch {
	case err != nil:
		t.Errorf("call the UI's API with its session: %v", err)
	case status != http.StatusForbidden:
		t.Errorf("the UI's API answers erin's session with %d, want 403 (PermissionDenied): %s", status, tail(body, 1000))
	default:
		t.Logf("the UI's API answers erin's session: %d %s", status, compact(body))
	}

	// The codec server refuses to decode for her as well.
	checkCodecRefuses(t, st, b)
}

// jwtClaims are the claims of an access token the tests read (without verifying: the
// token's issuer has done that).
type jwtClaims struct {
	Subject     string   `json:"sub"`
	Permissions []string `json:"permissions"`
}

// loginToUI logs persona in to the Web UI through the UI's own OIDC login, as a person does:
// it opens start (a page of the UI), which sends a visitor without a session to the UI's
// /login page; "Continue to SSO" leads through Hydra to the dev login page, where the
// persona's button is clicked; Hydra consents and redirects to the UI's callback
// (/auth/sso/callback), which hands the tokens to the single-page app and returns to start.
// It returns the claims of the access token the UI keeps (local storage, AuthUser), which it
// sends to Temporal and to the codec server. What the UI shows next is for the caller to
// check: a person Temporal refuses is sent back to /login with an error.
func loginToUI(t *testing.T, b *browser, st *testharness.Stack, start, persona string) jwtClaims {
	t.Helper()
	uiURL, err := url.Parse(st.Env("OIDCFLOW_TEMPORAL_UI_URL"))
	if err != nil {
		t.Fatal(err)
	}
	loginURL, err := url.Parse(st.Env("OIDCFLOW_LOGIN_URL"))
	if err != nil {
		t.Fatal(err)
	}
	want := st.Persona(t, persona).Subject
	b.navigate(start)
	const (
		timeout = 3 * time.Minute
		reclick = 45 * time.Second // a page that did not move on after a click gets another
	)
	var (
		deadline         = time.Now().Add(timeout)
		picked, sawLogin bool
		lastURL          string
		clicked          time.Time
	)
	for {
		here := b.location()
		if here != lastURL {
			lastURL, clicked = here, time.Time{}
		}
		u, _ := url.Parse(here)
		if u == nil {
			u = &url.URL{}
		}
		if picked && u.Host == uiURL.Host {
			if tok := uiAccessToken(b); tok != "" {
				c, err := parseClaims(tok)
				if err != nil {
					t.Fatalf("the UI's access token for %s: %v", persona, err)
				}
				if c.Subject != want {
					t.Fatalf("logged in as %s, the UI holds a token of %q", persona, c.Subject)
				}
				return c
			}
		}
		canClick := clicked.IsZero() || time.Since(clicked) > reclick
		switch {
		case u.Host == loginURL.Host && canClick:
			var n int
			if b.eval(`(() => { const e = document.querySelector('button[name=persona][value=`+strconv.Quote(persona)+`]'); if (e) e.click(); return e ? 1 : 0 })()`, &n) == nil && n > 0 {
				picked, clicked = true, time.Now()
			}
		case u.Host == uiURL.Host && u.Path == "/login" && canClick:
			sawLogin = true
			var n int
			if b.eval(`(() => { const e = Array.from(document.querySelectorAll('button, a')).filter(e => e.innerText.trim() === 'Continue to SSO'); e.forEach(e => e.click()); return e.length })()`, &n) == nil && n > 0 {
				clicked = time.Now()
			}
		}
		if time.Now().After(deadline) {
			shot := save(t, "webui-login-"+persona+".png", b.screenshot(false))
			t.Fatalf("%s's login through the Web UI did not finish within %s (saw the UI's login page: %t, clicked the persona: %t); now at %s (screenshot %s); page text:\n%s",
				persona, timeout, sawLogin, picked, here, shot, tail(b.text(), 2000))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// uiAccessToken returns the access token the UI keeps for its session, or "".
func uiAccessToken(b *browser) string {
	var tok string
	if b.eval(`(() => { try { return JSON.parse(localStorage.getItem('AuthUser') || '{}').accessToken || '' } catch (e) { return '' } })()`, &tok) != nil {
		return ""
	}
	return tok
}

// parseClaims reads a JWT's claims without verifying it.
func parseClaims(jwt string) (jwtClaims, error) {
	var c jwtClaims
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return c, errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(raw, &c)
}

// refusalText matches what the UI shows for a PermissionDenied answer: Temporal's generic
// message, or wordings of other versions.
var refusalText = regexp.MustCompile(`(?i)request unauthorized|permission denied|not authorized|unauthorized|forbidden`)

// refusal returns the refusal the UI shows at here with text, and the path of the page it
// refused: the error its login page was given (ui-server sends the browser there, with the
// page in returnUrl, on a 401 or 403 answer), or a refusal message on another page.
func refusal(here, text string) (msg, page string) {
	u, err := url.Parse(here)
	if err != nil {
		return "", ""
	}
	if u.Path == "/login" {
		e := u.Query().Get("error")
		back, err := url.Parse(u.Query().Get("returnUrl"))
		if e == "" || err != nil || !strings.Contains(text, e) {
			return "", ""
		}
		return e, back.Path
	}
	return refusalText.FindString(text), u.Path
}

// refusedHint explains a failure by the refusal the UI shows, if it shows one.
func refusedHint(b *browser) string {
	here := b.location()
	if msg, _ := refusal(here, b.text()); msg != "" {
		return " (the UI refused: " + msg + ", at " + here + ")"
	}
	return ""
}

// runData describes what the page shows of run (workflow id, run id, input) or of any other
// run (links to runs' pages, as the list's rows are), or "".
func runData(b *browser, text, id, runID string) string {
	var n int
	_ = b.eval(`Array.from(document.querySelectorAll('a[href]')).filter(a => /\/workflows\/[^\/?#]+\/[^\/?#]+/.test(new URL(a.href, location.href).pathname)).length`, &n)
	switch {
	case n > 0:
		return strconv.Itoa(n) + " link(s) to runs"
	case strings.Contains(text, id):
		return "the workflow id " + id
	case strings.Contains(text, runID):
		return "the run id " + runID
	case strings.Contains(text, "hidden from erin"):
		return "the run's input"
	}
	return ""
}

// uiAPI calls the UI server's API at path from the page, with the session's access token as
// the UI's own requests send it.
func uiAPI(b *browser, path string) (int, string, error) {
	var res struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	err := b.eval(`(async () => { const u = JSON.parse(localStorage.getItem('AuthUser') || '{}');
		const r = await fetch(`+strconv.Quote(path)+`, {headers: u.accessToken ? {Authorization: 'Bearer ' + u.accessToken} : {}});
		return {status: r.status, body: await r.text()} })()`, &res)
	return res.Status, res.Body, err
}

func compact(s string) string { return strings.Join(strings.Fields(s), " ") }

// codecTLS returns the dev stack's TLS files (package devtls): in the folder of
// OIDCFLOW_CODEC_CA_FILE, or in the stack's state folder (where the launcher makes them)
// before the env file names the codec server.
func codecTLS(st *testharness.Stack) devtls.Files {
	if ca := st.Env("OIDCFLOW_CODEC_CA_FILE"); ca != "" {
		return devtls.FilesIn(filepath.Dir(ca))
	}
	return devtls.FilesIn(filepath.Join(filepath.Dir(st.EnvFile()), devstack.TLSDir))
}

// codecTrustFlags returns the Chromium flag that trusts the codec server's certificate by
// the SHA-256 of its public key (only that key: any other certificate error still fails),
// or nothing when the stack has no codec certificate.
func codecTrustFlags(t *testing.T, st *testharness.Stack) []string {
	t.Helper()
	path := codecTLS(st).Cert
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Logf("no codec certificate at %s: the browser trusts no extra key", path)
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data) // the leaf comes first
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s does not start with a PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return []string{"--ignore-certificate-errors-spki-list=" + base64.StdEncoding.EncodeToString(sum[:])}
}

// checkCodecRefuses posts an empty decode request to the codec server with erin's access
// token (the one the UI holds, else one from the starter client) and wants 403. Before the
// stack runs a codec server (no OIDCFLOW_CODEC_ENDPOINT, nothing listening) it logs and
// returns; once the env file names the endpoint, failing to reach it fails the test.
func checkCodecRefuses(t *testing.T, st *testharness.Stack, b *browser) {
	t.Helper()
	endpoint, required := st.Env("OIDCFLOW_CODEC_ENDPOINT"), true
	if endpoint == "" {
		endpoint, required = "https://127.0.0.1:8234", false
	}
	caFile := codecTLS(st).CA
	roots, err := codecTLS(st).CertPool()
	switch {
	case err != nil && required:
		t.Fatalf("the codec server's CA %s: %v", caFile, err)
	case err != nil:
		t.Logf("no codec server in this stack yet (no OIDCFLOW_CODEC_ENDPOINT, no CA at %s): codec check skipped", caFile)
		return
	}
	token := uiAccessToken(b)
	if token == "" {
		token = st.Login(t, "erin").AccessToken
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	req, err := http.NewRequest(http.MethodPost, strings.TrimRight(endpoint, "/")+"/decode", strings.NewReader(`{"payloads":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", st.Env("TEMPORAL_NAMESPACE"))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		if !required && errors.Is(err, syscall.ECONNREFUSED) {
			t.Logf("no codec server at %s yet (OIDCFLOW_CODEC_ENDPOINT is not in the env file): codec check skipped: %v", endpoint, err)
			return
		}
		t.Fatalf("codec server %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST %s/decode with erin's access token: %s, want 403 Forbidden: %s", endpoint, resp.Status, compact(string(body)))
		return
	}
	t.Logf("the codec server refuses erin: %s %s", resp.Status, compact(string(body)))
}

// inputEncoding reports whether the run's input is encrypted in history (read by the
// operator, as an attacker with history access would), and checks that an encrypted input
// does not hold plain in clear.
func inputEncoding(ctx context.Context, t *testing.T, st *testharness.Stack, id, runID, plain string) bool {
	t.Helper()
	for _, e := range testharness.History(ctx, t, st.OperatorClient(t), id, runID) {
		attrs := e.GetWorkflowExecutionStartedEventAttributes()
		if attrs == nil {
			continue
		}
		for _, p := range attrs.GetInput().GetPayloads() {
			enc := string(p.GetMetadata()["encoding"])
			if enc == "json/plain" {
				t.Logf("the run's input is plain JSON in history: the UI shows it as is")
				return false
			}
			if strings.Contains(string(p.GetData()), plain) {
				t.Fatalf("the run's input (encoding %q) holds %q in clear", enc, plain)
			}
			t.Logf("the run's input is encoded in history (%q): the UI shows it decoded through the codec server", enc)
			return true
		}
	}
	t.Fatalf("no WorkflowExecutionStarted input in the history of %s", id)
	return false
}

// save writes an artifact and logs where it is.
func save(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := artifactPath(t, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("artifact: %s", p)
	return p
}
