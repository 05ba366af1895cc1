package replay_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/oidcflow/oidcflow/internal/replay"
	"github.com/oidcflow/oidcflow/workflows"
)

// copySkip are folders of the module the gate does not need: version control, the dev
// stack's state, binaries and the tools' own modules.
var copySkip = []string{".git", ".stack", "bin", "tools", "node_modules", "artifacts"}

// copyModule copies the module at root into dst: its files but for copySkip and the folders
// of other modules (their own go.mod).
func copyModule(t *testing.T, root, dst string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if rel != "." {
				if slices.Contains(copySkip, d.Name()) {
					return filepath.SkipDir
				}
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, src); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy the module: %v", err)
	}
}

// accessRun is where the patch goes: the start of AccessRequest's main flow.
var accessRun = regexp.MustCompile(`(?m)^func \(w \*accessRequest\) run\(ctx workflow\.Context\) \(AccessRequestResult, error\) \{\n`)

// patchAccessRequest makes AccessRequest schedule a timer before anything else it does, in
// the workflows package under dir: the deliberately non-deterministic change.
func patchAccessRequest(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "workflows", "*.go"))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if loc := accessRun.FindIndex(src); loc != nil {
			patched := slices.Concat(src[:loc[1]], []byte("\tworkflow.NewTimer(ctx, time.Minute) // deliberately non-deterministic\n"), src[loc[1]:])
			if err := os.WriteFile(f, patched, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no file of workflows/ holds %q; update the test's patch", accessRun)
}

// failLine is how replay-check reports a run it cannot replay.
var failLine = regexp.MustCompile(`(?m)^FAIL replay: (\S+) workflow (\S+) \(run (\S*), ([^)]*)\) is not deterministic at event (\d+) \((\w+)(?:, in the workflow task completed at event (\d+))?\)`)

// TestReplayCheckFailsOnNonDeterministicChange builds replay-check (as `make replay-check`
// runs it) in a copy of the module whose AccessRequest schedules an extra timer before its
// first command: it fails, naming every saved AccessRequest history with its workflow id
// and the event where the patched code departs from it, and only those; the unpatched code
// replays the same histories.
func TestReplayCheckFailsOnNonDeterministicChange(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gate in a copy of the module")
	}
	dir := t.TempDir()
	copyModule(t, moduleRoot, dir)
	patchAccessRequest(t, dir)
	cmd := exec.Command("go", "run", "./internal/replay/cmd/replay-check", "-address=")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("replay-check on the patched copy: %v (want exit status 1)\n%s", err, out.String())
	}
	t.Logf("replay-check on the patched copy:\n%s", out.String())

	// Every saved AccessRequest history fails, in the workflow task where the workflow code
	// starts (whose commands the timer went before); nothing else fails.
	byID := map[string]replay.History{}
	var want []string
	for _, h := range saved(t) {
		if h.WorkflowType() == workflows.AccessRequestWorkflow {
			byID[h.WorkflowID] = h
			want = append(want, h.WorkflowID)
		}
	}
	var got []string
	for _, m := range failLine.FindAllStringSubmatch(out.String(), -1) {
		h, ok := byID[m[2]]
		if m[1] != workflows.AccessRequestWorkflow || !ok {
			t.Errorf("unexpected failure: %s", m[0])
			continue
		}
		got = append(got, m[2])
		event, _ := strconv.ParseInt(m[5], 10, 64)
		task := event
		if m[7] != "" {
			task, _ = strconv.ParseInt(m[7], 10, 64)
		}
		checkTask(t, &replay.Failure{EventID: event, EventType: m[6], TaskEventID: task}, h, firstTask(h))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) || len(got) == 0 {
		t.Errorf("failed runs:\n%s\nwant every saved AccessRequest:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := len(regexp.MustCompile(`(?m)^FAIL `).FindAllString(out.String(), -1)); n != len(got) {
		t.Errorf("%d FAIL lines, %d of the expected form", n, len(got))
	}

	// The same histories replay with the unpatched code.
	g := newGate(t, gateWorkflows())
	for _, h := range saved(t) {
		if err := g.Replay(h); err != nil {
			t.Errorf("unpatched: %v", err)
		}
	}
}
