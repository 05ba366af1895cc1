// Command demo is `make demo`: the access-request story on the running dev stack, told with
// the starter CLI and one in-process worker.
//
// bob (engineering) asks for read access to the demo database; frank, who holds no approver
// role, tries to approve and is refused; carol (engineering, db-approver) approves; the
// just-in-time PostgreSQL role appears, and disappears when the duration ends. Each person
// logs in through the real authorization code flow with PKCE against Hydra (the dev login
// app stands in for the browser), and each command carries its caller's sealed identity.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/proto"

	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/cli"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/internal/devstack/idp"
	"github.com/oidcflow/oidcflow/internal/leakcheck"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/login"
)

func main() {
	duration := flag.Duration("duration", 30*time.Second, "how long the granted access lasts")
	flag.Parse()
	if err := run(*duration); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type story struct {
	ctx   context.Context
	env   *config.Env
	cache string // folder of the personas' token caches
}

func run(duration time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), duration+5*time.Minute)
	defer cancel()
	envFile, err := testharness.EnvFile()
	if err != nil {
		return fmt.Errorf("%w (is the dev stack up? `make up`)", err)
	}
	os.Setenv("OIDCFLOW_ENV_FILE", envFile)
	env, err := config.FromEnvironment()
	if err != nil {
		return err
	}
	cache, err := os.MkdirTemp("", "oidcflow-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	s := &story{ctx: ctx, env: env, cache: cache}

	step("A worker joins the pool (task queue %s): it verifies every identity that arrives", env.String("OIDCFLOW_TASK_QUEUE"))
	var logs leakcheck.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := app.NewWorker(ctx, app.WorkerOptions{Env: env, Logger: logger})
	if err != nil {
		return err
	}
	defer w.Close()
	wctx, stopWorker := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stopWorker(); <-done }()

	for _, p := range []string{"bob", "carol", "frank"} {
		step("%s logs in (authorization code + PKCE against Hydra)", p)
		if err := s.starter(p, nil, "login"); err != nil {
			return err
		}
	}
	step("bob checks what the worker will see: `starter whoami`")
	if err := s.starter("bob", nil, "whoami"); err != nil {
		return err
	}

	step("bob asks for %s of read access to the demo database", duration)
	var req cli.RequestJSON
	if err := s.starter("bob", &req, "request-access", "--resource", "demo", "--role", "read",
		"--duration", duration.String(), "--reason", "investigate incident 42"); err != nil {
		return err
	}
	id := req.WorkflowID
	fmt.Printf("  workflow %s, state %s\n", id, req.State)

	step("frank, who holds no approver role, tries to approve")
	if err := s.starter("frank", nil, "approve", id); err == nil {
		return fmt.Errorf("frank's approval was accepted; it must be refused")
	}
	step("carol (engineering, db-approver) approves")
	if err := s.starter("carol", nil, "approve", id, "--comment", "ok for the incident"); err != nil {
		return err
	}
	var st cli.RequestJSON
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		if err := s.starter("bob", &st, "status", id); err != nil {
			return err
		}
		if st.Status != nil && st.Status.Grant != nil || time.Now().After(deadline) {
			break
		}
	}
	if st.Status == nil || st.Status.Grant == nil {
		return fmt.Errorf("no grant after carol's approval (state %s)", st.State)
	}
	role := st.Status.Grant.RoleName
	step("PostgreSQL now has bob's just-in-time login role")
	if err := s.showRole(role); err != nil {
		return err
	}

	step("waiting %s for the access to end; the workflow revokes it on a durable timer", duration)
	for deadline := time.Now().Add(duration + 2*time.Minute); ; time.Sleep(2 * time.Second) {
		if err := s.starter("bob", &st, "status", id); err != nil {
			return err
		}
		if st.State.Final() || time.Now().After(deadline) {
			break
		}
	}
	if err := s.showRole(role); err != nil {
		return err
	}
	step("the audit trail: who did what, with which claims")
	if err := s.starter("bob", nil, "status", id, "--audit"); err != nil {
		return err
	}
	step("no token in the run's history or the worker's logs")
	if err := s.checkNoLeak(w, id, logs.String()); err != nil {
		return err
	}
	step("no person's name or email in any history of the run (payloads are encrypted)")
	if err := s.checkNoPersonalData(w, id); err != nil {
		return err
	}
	step("done: state %s", st.State)
	fmt.Printf("\nSee it in the Temporal Web UI (who started, who approved, what state):\n  %s\n", req.UIURL)
	fmt.Printf("All of bob's requests: %s/namespaces/%s/workflows?query=%s\n",
		env.String("OIDCFLOW_TEMPORAL_UI_URL"), env.String("TEMPORAL_NAMESPACE"), "Requester%3D%22bob%22")
	fmt.Println("The UI sends you to the dev login page: pick carol (she may read every run) or erin (no")
	fmt.Println("Temporal permission: the UI refuses her).")
	if ca := env.String("OIDCFLOW_CODEC_CA_FILE"); ca != "" {
		fmt.Printf("Payloads are encrypted; the UI decodes them through the codec server at %s once your\n", env.String("OIDCFLOW_CODEC_ENDPOINT"))
		fmt.Printf("browser trusts its CA, %s (import it as an authority, or open the codec URL once and accept it).\n", ca)
	}
	if st.State != "ended" {
		return fmt.Errorf("the request ended in state %s, want ended", st.State)
	}
	return nil
}

func step(format string, args ...any) {
	fmt.Printf("\n== "+format+"\n", args...)
}

// starter runs one starter command as persona; with out set it parses the --json output.
func (s *story) starter(persona string, out any, args ...string) error {
	env, err := config.New(func(name string) (string, bool) {
		switch name {
		case "OIDCFLOW_TOKEN_CACHE":
			return filepath.Join(s.cache, persona+".json"), true
		case "OIDCFLOW_REDIRECT_URL":
			// A free port: the demo's logins must not wait for, or collide with, any other
			// `starter login` on this machine. Hydra accepts any loopback port.
			return login.DefaultRedirectURL, true
		}
		return os.LookupEnv(name)
	})
	if err != nil {
		return err
	}
	var stdout bytes.Buffer
	w := io.Writer(os.Stdout)
	if out != nil {
		args = append(args, "--json")
		w = &stdout
	} else {
		fmt.Printf("  $ starter %s    (as %s)\n", strings.Join(args, " "), persona)
	}
	out1, out2 := &indent{w: w}, &indent{w: os.Stdout}
	code := cli.Main(s.ctx, args, cli.Options{Stdout: out1, Stderr: out2, Env: env,
		Browser: idp.Browser(env.String("OIDCFLOW_LOGIN_URL"), persona)})
	out1.Flush()
	out2.Flush()
	if code != cli.ExitOK {
		return fmt.Errorf("starter %s as %s failed (exit %d)", args[0], persona, code)
	}
	if out != nil {
		return json.Unmarshal(stdout.Bytes(), out)
	}
	return nil
}

// checkNoLeak scans the run's history and the worker's logs for the personas' tokens (from
// their token caches): no JWT, no 20-character fragment of any.
func (s *story) checkNoLeak(w *app.Worker, workflowID, logs string) error {
	var tokens []string
	for _, p := range []string{"bob", "carol", "frank"} {
		c, err := login.NewCache(login.CacheOptions{Path: filepath.Join(s.cache, p+".json")})
		if err != nil {
			return err
		}
		sess, err := c.Load()
		if err != nil {
			return err
		}
		tokens = append(tokens, sess.AccessToken, sess.RefreshToken, sess.IDToken)
	}
	h, err := leakcheck.History(s.ctx, w.Client, workflowID, "")
	if err != nil {
		return err
	}
	texts, err := leakcheck.HistoryTexts(workflowID, h)
	if err != nil {
		return err
	}
	texts["worker logs"] = logs
	if found := leakcheck.Scan(tokens, texts); len(found) > 0 {
		return fmt.Errorf("credentials leaked: %v", found)
	}
	fmt.Printf("  scanned %d history events and %d bytes of worker logs for 9 tokens: clean\n", len(h.Events), len(logs))
	return nil
}

// checkNoPersonalData scans the raw bytes of every history of workflowID (each run, as
// stored) for the demo personas' names and emails, then checks that listing by requester
// still finds the run: search attributes stay plaintext and carry subjects only.
func (s *story) checkNoPersonalData(w *app.Worker, workflowID string) error {
	personas, err := idp.ParseFile(idp.DefaultPersonas)
	if err != nil {
		return err
	}
	var needles []string
	for _, name := range []string{"bob", "carol", "frank"} {
		p, _ := personas.Find(name)
		needles = append(needles, p.Email, p.DisplayName)
	}
	query := fmt.Sprintf("WorkflowId=%q", workflowID)
	runs, err := w.Client.ListWorkflow(s.ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return err
	}
	if len(runs.GetExecutions()) == 0 {
		return fmt.Errorf("no run of %s listed", workflowID)
	}
	events, size := 0, 0
	for _, run := range runs.GetExecutions() {
		h, err := leakcheck.History(s.ctx, w.Client, workflowID, run.GetExecution().GetRunId())
		if err != nil {
			return err
		}
		raw, err := proto.Marshal(h)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(raw, []byte(n)) {
				return fmt.Errorf("history of %s (run %s) holds %q in plaintext", workflowID, run.GetExecution().GetRunId(), n)
			}
		}
		events, size = events+len(h.Events), size+len(raw)
	}
	fmt.Printf("  scanned %d runs (%d events, %d bytes) for %d names and emails: none\n", len(runs.GetExecutions()), events, size, len(needles))
	// Visibility may lag behind the run by a moment.
	byRequester := fmt.Sprintf("Requester=%q AND %s", "bob", query)
	for i := 0; ; i++ {
		found, err := w.Client.ListWorkflow(s.ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: byRequester})
		if err != nil {
			return err
		}
		if len(found.GetExecutions()) > 0 {
			fmt.Printf("  listing %s finds the run\n", byRequester)
			return nil
		}
		if i == 50 {
			return fmt.Errorf("listing %s finds no run", byRequester)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// showRole prints the login role as PostgreSQL sees it.
func (s *story) showRole(role string) error {
	conn, err := pgx.Connect(s.ctx, s.env.String("OIDCFLOW_POSTGRES_URL"))
	if err != nil {
		return err
	}
	defer conn.Close(s.ctx)
	var until *time.Time
	err = conn.QueryRow(s.ctx, "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", role).Scan(&until)
	switch {
	case err == pgx.ErrNoRows:
		fmt.Printf("  pg_roles: %s is gone\n", role)
		return nil
	case err != nil:
		return err
	case until != nil:
		fmt.Printf("  pg_roles: %s exists, valid until %s\n", role, until.UTC().Format(time.RFC3339))
	default:
		fmt.Printf("  pg_roles: %s exists\n", role)
	}
	return nil
}

// indent prefixes every line the CLI prints, so the story reads as steps. JSON output is
// passed through as it is.
type indent struct {
	w   io.Writer
	buf []byte
}

func (i *indent) Write(p []byte) (int, error) {
	i.buf = append(i.buf, p...)
	for {
		n := bytes.IndexByte(i.buf, '\n')
		if n < 0 {
			return len(p), nil
		}
		prefix := "  "
		if _, ok := i.w.(*bytes.Buffer); ok {
			prefix = ""
		}
		if _, err := fmt.Fprintf(i.w, "%s%s\n", prefix, i.buf[:n]); err != nil {
			return 0, err
		}
		i.buf = i.buf[n+1:]
	}
}

// Flush writes a last line without a newline.
func (i *indent) Flush() {
	if len(i.buf) > 0 {
		i.Write([]byte("\n"))
	}
}
