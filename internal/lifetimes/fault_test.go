package lifetimes_test

import (
	"cmp"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/lifetimes"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// FaultsEnv, when "1", runs the fault tests: they pause, stop and restart servers of the
// shared dev stack, so they run alone (`make test` runs them after everything else).
const FaultsEnv = "OIDCFLOW_FAULTS"

// outage is how long a server stays unreachable.
const outage = 30 * time.Second

func faults(t *testing.T) *testharness.Stack {
	t.Helper()
	if os.Getenv(FaultsEnv) != "1" {
		t.Skipf("fault test: it disrupts the shared dev stack; run alone with %s=1 go test -run Fault ./internal/lifetimes", FaultsEnv)
	}
	return testharness.Load(t)
}

// stackDir is the stack's state folder (.stack), holding run/<server>.pid and logs/.
func stackDir(st *testharness.Stack) string { return filepath.Dir(st.EnvFile()) }

// devstack runs the launcher of the module the stack belongs to, with extra environment.
func devstack(t *testing.T, st *testharness.Stack, env []string, args ...string) {
	t.Helper()
	root := filepath.Dir(stackDir(st))
	cmd := exec.Command(filepath.Join(root, "bin", "devstack"), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("devstack %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("devstack %s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
}

func serverPID(t *testing.T, st *testharness.Stack, server string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stackDir(st), "run", server+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// pause stops server with SIGSTOP for d (its sockets stay open: requests hang), then
// continues it. The server is continued when the test ends whatever happens.
func pause(t *testing.T, st *testharness.Stack, server string, d time.Duration) {
	t.Helper()
	pid := serverPID(t, st, server)
	var once sync.Once
	cont := func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(cont)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	cont()
}

// restart stops server (connections refused), waits so that the outage lasts d, and brings
// it back on its on-disk state with env's launcher settings.
func restart(t *testing.T, st *testharness.Stack, server string, d time.Duration, env ...string) {
	t.Helper()
	start := time.Now()
	devstack(t, st, nil, "down", server)
	time.Sleep(d - time.Since(start))
	devstack(t, st, env, "up")
}

// faultRun runs a Steps run of every-2-s steps across disrupt and checks it finished on one
// session with every step on a valid token.
func faultRun(t *testing.T, disrupt func()) {
	r := newRig(t, rigOptions{ttl: 5 * time.Second})
	c, _ := r.login(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	id := "lifetimes-fault-" + r.queue
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue},
		lifetimes.StepsWorkflow, lifetimes.Input{Every: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitSteps(ctx, t, c, id, 3)
	before := r.idpRefreshes(t)
	disrupt()
	after := len(waitSteps(ctx, t, c, id, len(progress(ctx, t, c, id).Steps)+4).Steps)
	signal(ctx, t, c, id, lifetimes.FinishSignal)
	var res lifetimes.Result
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("run after the fault: %v", err)
	}
	checkSteps(t, &res, "bob")
	for i, s := range res.Steps {
		if s.SessionID != res.Steps[0].SessionID {
			t.Errorf("step %d ran on another session: the session was lost", i)
		}
	}
	idp := r.idpRefreshes(t)
	t.Logf("%d steps (%d when the run was seen going again), IdP refresh grants %d (%d before the fault), worker answers %d, parks %d",
		len(res.Steps), after, idp, before, r.answers.Load(), res.Parks)
	if idp <= before || idp != int(r.answers.Load()) {
		t.Errorf("IdP refresh grants %d (before the fault %d), worker answers %d: want refreshes after the fault, one per rotation", idp, before, r.answers.Load())
	}
	sessionGone(ctx, t, r.workers[0], res.SessionID)
}

// TestFaultVaultPaused: Vault hangs for 30 s while a run refreshes every few seconds.
func TestFaultVaultPaused(t *testing.T) {
	st := faults(t)
	faultRun(t, func() { pause(t, st, "vault", outage) })
}

// TestFaultVaultRestarted: Vault is stopped (connections refused) and restarted on its
// on-disk storage after 30 s.
func TestFaultVaultRestarted(t *testing.T) {
	st := faults(t)
	faultRun(t, func() { restart(t, st, "vault", outage) })
}

// TestFaultIdPPaused: Hydra hangs for 30 s.
func TestFaultIdPPaused(t *testing.T) {
	st := faults(t)
	faultRun(t, func() { pause(t, st, "hydra", outage) })
}

// TestFaultIdPRestarted: Hydra is stopped and restarted (its state is in PostgreSQL).
func TestFaultIdPRestarted(t *testing.T) {
	st := faults(t)
	faultRun(t, func() { restart(t, st, "hydra", outage) })
}

// errCrash stands for a worker killed between the IdP's answer and the Vault write: the
// refresher abandons the rotated tokens exactly as a SIGKILL there would lose them, and its
// claim stays in Vault until it expires.
var errCrash = errors.New("simulated crash after the IdP's answer")

// crashRig makes a rig whose worker "dies" after the IdP's second answer.
func crashRig(t *testing.T) (*rig, func() bool) {
	var mu sync.Mutex
	answers, crashed := 0, false
	r := newRig(t, rigOptions{ttl: 3 * time.Second, refresher: func(ro *tokenstore.RefresherOptions) {
		count := ro.AfterIdPAnswer
		ro.ClaimTTL, ro.RefreshTimeout = 3*time.Second, 2*time.Second
		ro.AfterIdPAnswer = func(ctx context.Context, id string) error {
			mu.Lock()
			defer mu.Unlock()
			if answers++; answers == 2 {
				crashed = true
				return errCrash
			}
			return count(ctx, id)
		}
	}})
	return r, func() bool { mu.Lock(); defer mu.Unlock(); return crashed }
}

// TestFaultCrashBeforeWrite: a worker dies after the IdP rotated the refresh token and
// before Vault has the new one. With Hydra's rotation grace period the retry with the old
// refresh token succeeds; without it, Hydra refuses it (and revokes the family), the run
// parks in ReauthRequired, neither failing nor looping, and the starter's re-consent
// resumes it.
func TestFaultCrashBeforeWrite(t *testing.T) {
	st := faults(t)
	t.Run("Grace", func(t *testing.T) {
		restart(t, st, "hydra", 0, "OIDCFLOW_REFRESH_ROTATION_GRACE=30s")
		t.Cleanup(func() { // back to what the stack was started with (the launcher's default 0s)
			restart(t, st, "hydra", 0, "OIDCFLOW_REFRESH_ROTATION_GRACE="+cmp.Or(os.Getenv("OIDCFLOW_REFRESH_ROTATION_GRACE"), "0s"))
		})
		r, crashed := crashRig(t)
		c, _ := r.login(t, "bob")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		id := "lifetimes-crash-grace-" + r.queue
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue},
			lifetimes.StepsWorkflow, lifetimes.Input{Steps: 8, Every: 2 * time.Second, ParkOnReauth: true})
		if err != nil {
			t.Fatal(err)
		}
		var res lifetimes.Result
		if err := run.Get(ctx, &res); err != nil {
			t.Fatalf("run: %v", err)
		}
		checkSteps(t, &res, "bob")
		t.Logf("%d steps, parks %d, IdP refresh grants %d", len(res.Steps), res.Parks, r.idpRefreshes(t))
		if !crashed() {
			t.Fatal("the worker never crashed after an IdP answer")
		}
		if res.Parks != 0 || len(res.Steps) != 8 {
			t.Errorf("with a grace period: %d steps, %d parks; want 8 steps and no park", len(res.Steps), res.Parks)
		}
	})
	t.Run("NoGrace", func(t *testing.T) {
		r, crashed := crashRig(t)
		c, _ := r.login(t, "bob")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		id := "lifetimes-crash-nograce-" + r.queue
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: r.queue},
			lifetimes.StepsWorkflow, lifetimes.Input{Steps: 8, Every: 2 * time.Second, ParkOnReauth: true})
		if err != nil {
			t.Fatal(err)
		}
		var res *lifetimes.Result
		for res = progress(ctx, t, c, id); !res.Parked; res = progress(ctx, t, c, id) {
			if ctx.Err() != nil {
				t.Fatal("the run never parked")
			}
			time.Sleep(300 * time.Millisecond)
		}
		if !crashed() {
			t.Fatal("parked without the crash")
		}
		// Parked: still running, and not retrying at the IdP.
		grants := r.idpRefreshes(t)
		time.Sleep(5 * time.Second)
		desc, err := c.DescribeWorkflow(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		if s := desc.Status; s != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("parked run is %v; want running", s)
		}
		if now := progress(ctx, t, c, id); !now.Parked || now.Parks != 1 || r.idpRefreshes(t) != grants {
			t.Fatalf("parked run moved: %+v, IdP grants %d then %d", now, grants, r.idpRefreshes(t))
		}
		// The starter signs in again and renews consent.
		fresh := apptest.ClientWithToken(t, r.st, staticToken(r.cl.Login(t, "bob")))
		for attempt := 0; ; attempt++ {
			h, err := fresh.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
				WorkflowID: id, UpdateName: identity.ReconsentUpdate, WaitForStage: client.WorkflowUpdateStageCompleted,
			})
			if err == nil {
				err = h.Get(ctx, nil)
			}
			if err != nil && strings.Contains(err.Error(), "unknown update") && attempt < 50 {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("re-consent: %v", err)
			}
			break
		}
		var final lifetimes.Result
		if err := run.Get(ctx, &final); err != nil {
			t.Fatalf("run after re-consent: %v", err)
		}
		checkSteps(t, &final, "bob")
		t.Logf("%d steps, parks %d (parked after step %d), IdP refresh grants %d", len(final.Steps), final.Parks, len(res.Steps), r.idpRefreshes(t))
		if final.Parks != 1 || len(final.Steps) != 8 || final.Steps[0].SessionID == final.Steps[len(final.Steps)-1].SessionID {
			t.Errorf("after re-consent: %d steps, %d parks; want 8 steps, one park, a new session at the end", len(final.Steps), final.Parks)
		}
		sessionGone(ctx, t, r.workers[0], final.SessionID)
		sessionGone(ctx, t, r.workers[0], final.Steps[0].SessionID) // the re-consent ended the old one
	})
}
