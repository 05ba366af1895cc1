package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/tokenstore"
	"github.com/oidcflow/oidcflow/workflows"
)

// maxEventsPerRun is the stated bound on one KeepAlive run's history: with the default 24
// refreshes per run, 24 activities (6 events each with their workflow task) and 24 timers
// (5 each) plus the start, the verification marker and the close come to under 300.
const maxEventsPerRun = 300

// TestKeepAliveThirtyDays runs a 30-day KeepAlive with hourly refreshes in the
// time-skipping test environment, with the real interceptors, Vault and Hydra behind it:
// tokens live 2 seconds, so real refreshes happen while virtual hours pass. Each
// continue-as-new starts the next run the way the server would (its header, the continued
// run id). At the end the session must be revoked at the IdP and gone from Vault.
func TestKeepAliveThirtyDays(t *testing.T) {
	st := testharness.Load(t)
	ctx := context.Background()
	cl := st.NewClient(t, testharness.ClientOptions{AccessTokenTTL: 2 * time.Second})
	tok := cl.Login(t, "bob")
	parts, err := app.NewParts(ctx, app.WorkerOptions{Env: apptest.Env(t, st, "OIDCFLOW_CLIENT_ID", cl.ID)})
	if err != nil {
		t.Fatal(err)
	}

	pub, err := envelope.ParsePublicKey(st.Env("OIDCFLOW_ENVELOPE_PUBLIC_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	in := workflows.KeepAliveInput{Until: start.Add(30 * 24 * time.Hour), Every: time.Hour}
	digest, err := interceptors.InputDigest(workflows.KeepAliveWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	sealed, err := envelope.Seal(pub, envelope.Binding{
		Namespace: "default-test-namespace", WorkflowID: "default-test-workflow-id", Operation: envelope.OpStart,
	}, envelope.Contents{IDToken: idToken, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry,
		InputDigest: digest})
	if err != nil {
		t.Fatal(err)
	}
	p, err := converter.GetDefaultDataConverter().ToPayload(sealed)
	if err != nil {
		t.Fatal(err)
	}
	header := &commonpb.Header{Fields: map[string]*commonpb.Payload{interceptors.EnvelopeHeader: p}}

	var sessionID string
	var latest tokenstore.Session // the session as it was right before the last End
	var res workflows.KeepAliveResult
	for run := 1; ; run++ {
		var suite testsuite.WorkflowTestSuite
		env := suite.NewTestWorkflowEnvironment()
		env.SetTestTimeout(5 * time.Minute)
		env.SetWorkerOptions(worker.Options{Interceptors: parts.Interceptors})
		env.RegisterWorkflowWithOptions(workflows.KeepAlive, workflow.RegisterOptions{Name: workflows.KeepAliveWorkflow})
		env.RegisterActivity(parts.SessionActivities)
		env.SetStartTime(start)
		env.SetHeader(header)
		if run > 1 {
			env.SetContinuedExecutionRunID("default-test-run-id")
		}
		var activities, timers, markers int
		env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { activities++ })
		env.SetOnTimerScheduledListener(func(string, time.Duration) { timers++ })
		env.SetOnLocalActivityStartedListener(func(*activity.Info, context.Context, []any) {
			markers++
			if sessionID != "" {
				if s, err := parts.Store.Get(ctx, sessionID); err == nil {
					latest = s
				}
			}
		})
		env.SetOnLocalActivityCompletedListener(func(_ *activity.Info, result converter.EncodedValue, err error) {
			var id *identity.Identity
			if err == nil && result != nil && result.Get(&id) == nil && id != nil && id.SessionID != "" {
				sessionID = id.SessionID
			}
		})
		env.ExecuteWorkflow(workflows.KeepAliveWorkflow, in)

		if events := 6 + 6*activities + 5*timers + markers; events > maxEventsPerRun {
			t.Errorf("run %d: about %d history events (%d activities, %d timers, %d markers), over the bound of %d",
				run, events, activities, timers, markers, maxEventsPerRun)
		}
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
				t.Fatal(err)
			}
			header, start = can.Header, env.Now()
			if run > 40 {
				t.Fatal("more runs than 30 days of hourly refreshes need")
			}
			continue
		}
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := env.GetWorkflowResult(&res); err != nil {
			t.Fatal(err)
		}
		break
	}
	t.Logf("30 days: %d runs, %d hourly ticks, %d real refreshes at the IdP, %d re-consents",
		res.Runs, res.Ticks, res.Refreshes, res.Reconsents)
	if res.Ticks < 30*24 || res.Runs < 30 || res.Refreshes == 0 {
		t.Errorf("want 720 ticks over at least 30 runs with real refreshes; got %+v", res)
	}
	if sessionID == "" || latest.RefreshToken == "" {
		t.Fatal("the session was never seen")
	}
	if _, err := parts.Store.Get(ctx, sessionID); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("session still in Vault after the run: %v", err)
	}
	if in := st.Introspect(t, latest.RefreshToken); in.Active {
		t.Error("the session's last refresh token is still active at the IdP after the run")
	}
}
