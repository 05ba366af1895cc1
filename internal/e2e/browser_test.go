package e2e_test

import (
	"context"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/workflows"
)

// TestWebUIShowsRequesterAndApprovers runs an access request (bob asks, carol approves), then
// opens the dev stack's Temporal Web UI in headless Chromium: the workflow list filtered by
// Requester="bob", the run's page from there, and its search attributes, where requester
// and approvers must appear. Screenshots are kept under artifacts/e2e/.
func TestWebUIShowsRequesterAndApprovers(t *testing.T) {
	st := loadStack(t)
	b := startBrowser(t) // skips without Chromium
	queue := apptest.TaskQueue("e2e-browser")
	apptest.StartWorker(t, app.WorkerOptions{Env: apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue)})
	bob, _ := apptest.Client(t, st, "bob")
	carol, _ := apptest.Client(t, st, "carol")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	id := queue // e2e-browser-<random>
	run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.AccessRequestWorkflow, accessInput("e2e: seen in the Web UI", 2*time.Second))
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

	// The list, filtered by requester (and this run's id, as other tests start bob's runs too).
	ui := strings.TrimRight(st.Env("OIDCFLOW_TEMPORAL_UI_URL"), "/")
	ns := st.Env("TEMPORAL_NAMESPACE")
	query := `Requester="bob" AND WorkflowId="` + id + `"`
	listURL := ui + "/namespaces/" + url.PathEscape(ns) + "/workflows?" + url.Values{"query": {query}}.Encode()
	link := `a[href*="/workflows/` + id + `/` + run.GetRunID() + `"]`
	found := false
	for attempt := 0; attempt < 6 && !found; attempt++ { // visibility may lag behind the run
		b.navigate(listURL)
		_, found = b.waitFor(10*time.Second, func(string) bool {
			var n int
			return b.eval(`document.querySelectorAll(`+strconv.Quote(link)+`).length`, &n) == nil && n > 0
		})
	}
	txt := b.text()
	save(t, "webui-list.png", b.screenshot(false))
	if !found {
		t.Fatalf("the filtered list at %s shows no link to run %s; page text:\n%s", listURL, id, tail(txt, 3000))
	}
	if !containsAll(txt, "Requester", `"bob"`, id, "Completed") {
		t.Errorf("the filtered list does not show the Requester filter and the completed run; page text:\n%s", tail(txt, 3000))
	}

	// Open the run from the list.
	if err := b.eval(`document.querySelector(`+strconv.Quote(link)+`).click()`, nil); err != nil {
		t.Fatal(err)
	}
	if txt, ok := b.waitFor(30*time.Second, func(s string) bool {
		return containsAll(s, id, run.GetRunID(), "AccessRequest", "Search Attributes", "Memo")
	}); !ok {
		t.Fatalf("the run's page did not render within 30s; page text:\n%s", tail(txt, 3000))
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
	txt, ok := b.waitFor(20*time.Second, func(s string) bool { return requester.MatchString(s) && approvers.MatchString(s) })
	shot := save(t, "webui-run-search-attributes.png", b.screenshot(false))
	if !ok {
		t.Fatalf("the run's search attributes do not show Requester bob and Approvers [carol] (screenshot %s); page text:\n%s", shot, tail(txt, 3000))
	}
	if !regexp.MustCompile(`"ApprovalState":\s*"ended"`).MatchString(txt) {
		t.Errorf("the run's search attributes do not show ApprovalState ended; page text:\n%s", tail(txt, 3000))
	}

	// The memo holds the requester's verified claims (no token).
	clickTab("Memo")
	if txt, ok := b.waitFor(20*time.Second, func(s string) bool {
		return containsAll(s, `"requester"`, `"sub": "bob"`, `"department": "engineering"`)
	}); !ok {
		save(t, "webui-run-memo.png", b.screenshot(false))
		t.Errorf("the run's memo does not show the requester's claims; page text:\n%s", tail(txt, 3000))
	}
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
