package conformance_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/conformance"
	"github.com/oidcflow/oidcflow/internal/leakcheck"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
)

// Register adds the conformance workflows and activities to a worker.
func Register(r worker.Registry) {
	registerWorkflows(r)
	r.RegisterActivity(&conformance.Activities{})
}

func registerWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(conformance.Workflow, workflow.RegisterOptions{Name: conformance.WorkflowName})
	r.RegisterWorkflowWithOptions(conformance.Child, workflow.RegisterOptions{Name: conformance.ChildName})
	r.RegisterWorkflowWithOptions(conformance.Pinger, workflow.RegisterOptions{Name: conformance.PingerName})
}

// TestConformance drives identity through every surface on the real dev stack, asserts who
// was seen at each point, and then checks that no token leaked into history, logs or errors.
func TestConformance(t *testing.T) {
	st := testharness.Load(t)
	queue := apptest.TaskQueue("conformance")
	logs := &leakcheck.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	apptest.StartWorker(t, app.WorkerOptions{
		Env:      apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue),
		Logger:   logger,
		Register: Register,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var tokens []*oauth2.Token
	login := func(persona string) client.Client {
		c, tok := apptest.Client(t, st, persona)
		tokens = append(tokens, tok)
		return c
	}
	bob, carol, alice, dave, frank := login("bob"), login("carol"), login("alice"), login("dave"), login("frank")
	var errs []error
	var ids []string

	// bob starts; carol approves through an update; alice's workflow and dave's client signal.
	id := "conformance-" + queue
	ids = append(ids, id, id+"-child")
	run, err := bob.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		conformance.WorkflowName, conformance.Input{Pings: 3, Approve: true, ContinueOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	firstRunID := run.GetRunID() // once Get follows continue-as-new, the handle names the last run
	// Handlers are registered once the run's identity is verified; an update sent in the same
	// instant as the start is rejected as unknown (and leaves no trace), so it is retried.
	var approver string
	for attempt := 0; ; attempt++ {
		h, err := carol.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: id, UpdateName: conformance.UpdateName, WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(ctx, &approver)
		}
		if err != nil && strings.Contains(err.Error(), "unknown update") && attempt < 50 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil || approver != "carol" {
			t.Fatalf("update returned %q, %v; want carol", approver, err)
		}
		break
	}
	pinger, err := alice.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id + "-pinger", TaskQueue: queue},
		conformance.PingerName, id)
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, id+"-pinger")
	if err := pinger.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := dave.SignalWorkflow(ctx, id, "", conformance.SignalName, "client"); err != nil {
		t.Fatal(err)
	}
	// dave's envelope, copied from history onto a second signal, does not speak for him again.
	replaySignalEnvelope(ctx, t, st, bob, id)
	var res conformance.Result
	if err := run.Get(ctx, &res); err != nil { // follows continue-as-new
		t.Fatal(err)
	}
	// The update runs concurrently with the main flow, so the first run's steps are compared
	// as a set; the continued run comes last.
	want := []string{
		"start:bob", "activity:bob", "local-activity:bob",
		"child:bob", "child-activity:bob", "child-local-activity:bob",
		"update:carol", "update-activity:carol", "update-local-activity:carol",
		"signal-client:dave", "signal-workflow:alice", "signal-replayed:<none>",
		"continued:bob", "continued-activity:bob", "continued-local-activity:bob",
	}
	got := slices.Clone(res.Seen)
	if len(got) != len(want) || !slices.Equal(got[len(got)-3:], want[len(want)-3:]) {
		t.Errorf("seen %v\nwant %v (continued steps last)", res.Seen, want)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("seen %v\nwant %v", res.Seen, want)
	}

	// frank signals-with-start: he is both the starter and the sender.
	sws := "conformance-sws-" + queue
	ids = append(ids, sws, sws+"-child")
	swsRun, err := frank.SignalWithStartWorkflow(ctx, sws, conformance.SignalName, "client",
		client.StartWorkflowOptions{TaskQueue: queue}, conformance.WorkflowName, conformance.Input{Pings: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := swsRun.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Seen, "start:frank") || !slices.Contains(res.Seen, "signal-client:frank") {
		t.Errorf("signal-with-start saw %v, want start:frank and signal-client:frank", res.Seen)
	}

	// A client without the interceptor cannot start it: the run fails at once, non-retryable.
	plain := st.PlainClient(t, nil)
	anon := "conformance-anon-" + queue
	ids = append(ids, anon)
	anonRun, err := plain.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: anon, TaskQueue: queue}, conformance.WorkflowName, conformance.Input{})
	if err != nil {
		t.Fatal(err)
	}
	err = anonRun.Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != identity.TypeUnauthenticated || !appErr.NonRetryable() {
		t.Fatalf("start without envelope: %v, want non-retryable %s", err, identity.TypeUnauthenticated)
	}
	errs = append(errs, err)

	histories := map[string]*historypb.History{}
	for _, wid := range ids {
		histories[wid] = history(ctx, t, bob, wid, "")
	}
	first := history(ctx, t, bob, id, firstRunID) // the run before continue-as-new
	histories[id+" (first run)"] = first
	checkNoLeak(t, tokens, histories, logs.String(), errs)
	if os.Getenv("OIDCFLOW_UPDATE_TESTDATA") == "1" {
		saved := map[string]string{} // file -> workflow id, which the replayer needs
		if err := os.MkdirAll(filepath.Join("testdata", currentFormat), 0o755); err != nil {
			t.Fatal(err)
		}
		for file, wid := range map[string]string{
			"first-run": id, "continued-run": id, "child": id + "-child",
			"signal-with-start": sws, "pinger": id + "-pinger", "no-envelope": anon,
		} {
			h := histories[wid]
			if file == "first-run" {
				h = first
			}
			b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			name := "history-" + file + ".json"
			if err := os.WriteFile(filepath.Join("testdata", currentFormat, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			saved[name] = wid
		}
		b, _ := json.MarshalIndent(saved, "", "  ")
		if err := os.WriteFile(filepath.Join("testdata", currentFormat, "workflow-ids.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// replaySignalEnvelope copies the envelope of the last signal in the run's history onto a new
// signal, sent by a client that adds that header as it is.
func replaySignalEnvelope(ctx context.Context, t *testing.T, st *testharness.Stack, c client.Client, workflowID string) {
	t.Helper()
	var copied *commonpb.Payload
	dc := st.DataConverter(t) // the signal's value is encrypted where the pool encrypts payloads
	for deadline := time.Now().Add(30 * time.Second); copied == nil; time.Sleep(200 * time.Millisecond) {
		for _, e := range history(ctx, t, c, workflowID, "").Events {
			if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetInput() != nil {
				var value string
				if p := a.GetHeader().GetFields()[interceptors.EnvelopeHeader]; p != nil && dc.FromPayloads(a.GetInput(), &value) == nil && value == "client" {
					copied = p
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("dave's signal never showed in history")
		}
	}
	replayer := st.PlainClient(t, map[string]*commonpb.Payload{interceptors.EnvelopeHeader: copied})
	if err := replayer.SignalWorkflow(ctx, workflowID, "", conformance.SignalName, "replayed"); err != nil {
		t.Fatal(err)
	}
}

// history returns every event of one run (the latest when runID is empty).
func history(ctx context.Context, t *testing.T, c client.Client, workflowID, runID string) *historypb.History {
	t.Helper()
	h, err := leakcheck.History(ctx, c, workflowID, runID)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkNoLeak fails when history (raw protobuf, and JSON with payloads decoded), logs or
// errors hold a JWT or any 20-character window of a token that was used.
func checkNoLeak(t *testing.T, tokens []*oauth2.Token, histories map[string]*historypb.History, logs string, errs []error) {
	t.Helper()
	var secrets []string
	for _, tok := range tokens {
		secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
		if s, ok := tok.Extra("id_token").(string); ok {
			secrets = append(secrets, s)
		}
	}
	texts := map[string]string{"worker logs": logs}
	for i, err := range errs {
		texts[fmt.Sprintf("error %d", i)] = err.Error()
	}
	for id, h := range histories {
		ht, err := leakcheck.HistoryTexts(id, h)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(texts, ht)
	}
	for _, f := range leakcheck.Scan(secrets, texts) {
		t.Error(f)
	}
}
