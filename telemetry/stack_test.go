package telemetry_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/internal/testharness/apptest"
	"github.com/oidcflow/oidcflow/telemetry"
)

const (
	tracedWorkflow = "TelemetryTraced"
	whoAmIActivity = "TelemetryWhoAmI"
)

// traced waits until the session's access token is due for a refresh, then asks an
// activity who it runs for.
func traced(ctx workflow.Context, wait time.Duration) (string, error) {
	if err := workflow.Sleep(ctx, wait); err != nil {
		return "", err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var subject string
	err := workflow.ExecuteActivity(ctx, whoAmIActivity).Get(ctx, &subject)
	return subject, err
}

func whoAmI(ctx context.Context) (string, error) {
	id, err := identity.FromActivity(ctx)
	if err != nil {
		return "", err
	}
	return id.Subject, nil
}

// TestTraceStartToActivity runs a workflow on a worker with the SDK's tracing interceptor
// first and oidcflow's interceptors after it, started by a person through a client with the
// same interceptor, and finds one trace: the client's start, the run, the verification of
// the start envelope, the activity, the verification of the session behind it and the
// refresh that verification needed; and no token in any span.
func TestTraceStartToActivity(t *testing.T) {
	st := testharness.Load(t)
	const ttl = 6 * time.Second // the access token's lifetime; refreshed 3s before its expiry
	cl := st.NewClient(t, testharness.ClientOptions{AccessTokenTTL: ttl})
	queue := apptest.TaskQueue("telemetry")
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	tel, err := telemetry.New(telemetry.Options{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	apptest.StartWorker(t, app.WorkerOptions{
		Env:       apptest.Env(t, st, "OIDCFLOW_TASK_QUEUE", queue, "OIDCFLOW_CLIENT_ID", cl.ID, "OIDCFLOW_REFRESH_SKEW", "3s"),
		Telemetry: tel,
		Register: func(r worker.Registry) {
			r.RegisterWorkflowWithOptions(traced, workflow.RegisterOptions{Name: tracedWorkflow})
			r.RegisterActivityWithOptions(whoAmI, activity.RegisterOptions{Name: whoAmIActivity})
		},
		Worker: func(o *worker.Options) {
			o.Interceptors = append([]interceptor.WorkerInterceptor{tel.TracingInterceptor()}, o.Interceptors...)
		},
	})

	tok := cl.Login(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := interceptors.Dial(ctx, interceptors.DialOptions{
		Client: client.Options{
			HostPort: st.Env("TEMPORAL_ADDRESS"), Namespace: st.Env("TEMPORAL_NAMESPACE"),
			Interceptors: []interceptor.ClientInterceptor{tel.TracingInterceptor()},
		},
		TokenSource:   oauth2.StaticTokenSource(tok),
		PublicKey:     st.Env("OIDCFLOW_ENVELOPE_PUBLIC_KEY"),
		Bearer:        st.Authorizes(),
		CodecEndpoint: st.Env("OIDCFLOW_CODEC_ENDPOINT"), CodecCAFile: st.Env("OIDCFLOW_CODEC_CA_FILE"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "telemetry-trace-" + queue, TaskQueue: queue},
		tracedWorkflow, ttl-2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var subject string
	if err := run.Get(ctx, &subject); err != nil {
		t.Fatal(err)
	}

	ended := spans.Ended()
	var start sdktrace.ReadOnlySpan
	for _, s := range ended {
		if s.Name() == "StartWorkflow:"+tracedWorkflow {
			start = s
		}
	}
	if start == nil {
		t.Fatalf("no client start span among %s", names(ended))
	}
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var inTrace []sdktrace.ReadOnlySpan
	for _, s := range ended {
		if s.SpanContext().TraceID() == start.SpanContext().TraceID() {
			byID[s.SpanContext().SpanID()] = s
			inTrace = append(inTrace, s)
		}
	}
	slices.SortFunc(inTrace, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	t.Logf("trace %s:\n%s", start.SpanContext().TraceID(), tree(inTrace, byID))

	// find returns the span of the trace named name whose attributes include want.
	find := func(name string, want ...attribute.KeyValue) sdktrace.ReadOnlySpan {
		t.Helper()
		for _, s := range inTrace {
			if s.Name() == name && hasAll(s, want) {
				return s
			}
		}
		t.Errorf("the trace has no span %s %v", name, want)
		return nil
	}
	// under reports whether ancestor is s or one of its ancestors in the trace.
	under := func(s, ancestor sdktrace.ReadOnlySpan) bool {
		for s != nil {
			if s.SpanContext().SpanID() == ancestor.SpanContext().SpanID() {
				return true
			}
			s = byID[s.Parent().SpanID()]
		}
		return false
	}
	runWF := find("RunWorkflow:" + tracedWorkflow)
	verifyStart := find(telemetry.SpanVerify, telemetry.AttrOperation.String("start"),
		telemetry.AttrResult.String(telemetry.ResultOK), telemetry.AttrSubject.String(subject))
	runActivity := find("RunActivity:" + whoAmIActivity)
	verifySession := find(telemetry.SpanVerify, telemetry.AttrOperation.String("resume"),
		telemetry.AttrResult.String(telemetry.ResultOK), telemetry.AttrSubject.String(subject))
	refresh := find(telemetry.SpanRefresh, telemetry.AttrResult.String(telemetry.ResultOK), telemetry.AttrSubject.String(subject))
	if t.Failed() {
		t.FailNow()
	}
	for _, c := range []struct {
		what      string
		s, parent sdktrace.ReadOnlySpan
	}{
		{"the run", runWF, start},
		{"the start's verification", verifyStart, runWF},
		{"the activity", runActivity, runWF},
		{"the session's verification", verifySession, runActivity},
		{"the refresh", refresh, verifySession},
	} {
		if !under(c.s, c.parent) {
			t.Errorf("%s (%s) is not under %s", c.what, c.s.Name(), c.parent.Name())
		}
	}

	// No token in any span, ours or the SDK's.
	for _, text := range []string{tok.AccessToken, tok.RefreshToken, tok.Extra("id_token").(string)} {
		noSecret(t, ended, text)
	}
	for _, prefix := range []string{"eyJ", "ory_at_", "ory_rt_", "ory_ac_"} { // JWTs, Hydra's opaque tokens
		noSecret(t, ended, prefix)
	}
	if got := tel.Sum(telemetry.MetricRefreshDuration); got < 1 {
		t.Errorf("%s observed %v refreshes, want at least 1", telemetry.MetricRefreshDuration, got)
	}
}

func hasAll(s sdktrace.ReadOnlySpan, want []attribute.KeyValue) bool {
	have := attrs(s)
	for _, kv := range want {
		if have[kv.Key] != kv.Value.String() {
			return false
		}
	}
	return true
}

func names(spans []sdktrace.ReadOnlySpan) string {
	var b []string
	for _, s := range spans {
		b = append(b, s.Name())
	}
	return strings.Join(b, ", ")
}

// tree draws the trace, children under their parents in start order.
func tree(spans []sdktrace.ReadOnlySpan, byID map[trace.SpanID]sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	var draw func(parent trace.SpanID, depth int)
	draw = func(parent trace.SpanID, depth int) {
		for _, s := range spans {
			p := s.Parent().SpanID()
			if _, known := byID[p]; !known {
				p = trace.SpanID{}
			}
			if p == parent {
				fmt.Fprintf(&b, "%s%s %v\n", strings.Repeat("  ", depth), s.Name(), attrs(s))
				draw(s.SpanContext().SpanID(), depth+1)
			}
		}
	}
	draw(trace.SpanID{}, 0)
	return b.String()
}
