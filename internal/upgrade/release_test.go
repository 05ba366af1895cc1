package upgrade_test

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oidcflow/oidcflow/internal/testharness"
)

// earlierRelease is the release the upgrade test starts runs on: the last commit before
// envelope format 2, pool references, named approvals and the session-id key (the parent
// of every branch of that wave, on the first-parent line). Its stored formats and workflow
// code are those of the release before it; only an identity helper was renamed.
const earlierRelease = "9ab01579793aa1db16f3acb2d27510dca1544690"

// release is an earlier commit of this repository, checked out from git history into a
// temporary folder, with its worker binary and a client built from it.
type release struct {
	commit string
	dir    string // the checkout
	worker string // its worker binary
	client string // testdata/oldclient built against its packages
}

// buildRelease checks commit out of the repository's history (git archive, so neither the
// repository nor its worktrees change) and builds its worker and oldclient.
//
// Without git, or in a clone that lacks the commit (a shallow clone), the test is skipped,
// or fails under OIDCFLOW_REQUIRE_STACK=1: there the stack is required, and an upgrade test
// that skips because of how the repository was cloned would hide that the upgrade path went
// untested. Fetch the history (`git fetch --unshallow`) to run it.
func buildRelease(t *testing.T, commit string) release {
	t.Helper()
	root := moduleRoot(t)
	if _, err := exec.LookPath("git"); err != nil {
		noHistory(t, "git is not installed")
	}
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").CombinedOutput(); err != nil {
		noHistory(t, fmt.Sprintf("commit %.12s is not in this clone's history (%s); a shallow clone? run `git fetch --unshallow`",
			commit, strings.TrimSpace(string(out))))
	}
	r := release{commit: commit, dir: filepath.Join(t.TempDir(), "src")}
	if err := extract(root, commit, r.dir); err != nil {
		t.Fatalf("check out %.12s: %v", commit, err)
	}
	client, err := os.ReadFile(filepath.Join("testdata", "oldclient", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.dir, "internal", "upgradeclient"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "internal", "upgradeclient", "main.go"), client, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(r.dir), "bin")
	r.worker, r.client = filepath.Join(bin, "worker"), filepath.Join(bin, "oldclient")
	goBuild(t, r.dir, r.worker, "./worker")
	goBuild(t, r.dir, r.client, "./internal/upgradeclient")
	return r
}

func noHistory(t *testing.T, why string) {
	t.Helper()
	if os.Getenv(testharness.RequireStackEnv) == "1" {
		t.Fatalf("upgrade: cannot build the earlier release: %s (%s=1 requires it)", why, testharness.RequireStackEnv)
	}
	t.Skipf("upgrade: cannot build the earlier release: %s", why)
}

// extract writes the tree of commit into dir.
func extract(root, commit, dir string) error {
	cmd := exec.Command("git", "-C", root, "archive", "--format=tar", commit)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	terr := untar(out, dir)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git archive: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return terr
}

func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if name == "." || filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			continue
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		}
	}
}

// moduleRoot returns the folder of the module under test.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		t.Fatalf("go env GOMOD: %q, %v", out, err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// goBuild builds pkg in the module at dir into out.
func goBuild(t *testing.T, dir, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s in %s: %v\n%s", pkg, dir, err, b)
	}
}

// currentWorkerBinary builds the worker binary of the code under test (the working tree).
func currentWorkerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	goBuild(t, moduleRoot(t), bin, "github.com/oidcflow/oidcflow/worker")
	return bin
}
