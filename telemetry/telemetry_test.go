package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
	"github.com/oidcflow/oidcflow/telemetry"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// secret stands for a token: it must never reach a span.
const secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2VuLXRleHQ.c2lnbmF0dXJl"

func newTelemetry(t *testing.T) (*telemetry.Telemetry, *tracetest.SpanRecorder, trace.Tracer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tel, err := telemetry.New(telemetry.Options{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	return tel, rec, tp.Tracer("test")
}

func scrape(t *testing.T, tel *telemetry.Telemetry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics = %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// noSecret fails t when text appears anywhere a span can carry it: name, attributes,
// status, events and their attributes.
func noSecret(t *testing.T, spans []sdktrace.ReadOnlySpan, text string) {
	t.Helper()
	for _, s := range spans {
		var all []string
		all = append(all, s.Name(), s.Status().Description)
		for _, kv := range s.Attributes() {
			all = append(all, string(kv.Key), kv.Value.String())
		}
		for _, e := range s.Events() {
			all = append(all, e.Name)
			for _, kv := range e.Attributes {
				all = append(all, kv.Value.String())
			}
		}
		for _, v := range all {
			if strings.Contains(v, text) {
				t.Errorf("span %q carries the token: %q", s.Name(), v)
			}
		}
	}
}

func TestExposition(t *testing.T) {
	tel, _, _ := newTelemetry(t)
	h := tel.MetricsHandler().WithTags(map[string]string{"task_queue": "q"})
	h.Counter("temporal_request").Inc(2)
	h.Gauge("temporal_worker_task_slots_available").Update(3)
	h.Timer("temporal_activity_execution_latency").Record(1500 * time.Millisecond)
	auth := tel.Authenticator(fakeAuth{})
	if _, err := auth.Resume(t.Context(), "s"); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, tel)
	for _, want := range []string{
		"# TYPE temporal_request_total counter\n",
		`temporal_request_total{task_queue="q"} 2`,
		`temporal_worker_task_slots_available{task_queue="q"} 3`,
		"# TYPE temporal_activity_execution_latency_seconds histogram\n",
		`temporal_activity_execution_latency_seconds_bucket{task_queue="q",le="2.5"} 1`,
		`temporal_activity_execution_latency_seconds_count{task_queue="q"} 1`,
		`temporal_activity_execution_latency_seconds_sum{task_queue="q"} 1.5`,
		"# TYPE " + telemetry.MetricVerifications + " counter\n",
		telemetry.MetricVerifications + `{result="ok"} 1`,
		"# TYPE " + telemetry.MetricVerificationDuration + " histogram\n",
		telemetry.MetricVerificationDuration + `_count{kind="session",result="ok"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "otel_scope") {
		t.Errorf("/metrics labels series with the instrumentation scope")
	}
	if t.Failed() {
		t.Log(body)
	}
	if got := tel.Sum("temporal_request_total"); got != 2 {
		t.Errorf("Sum(temporal_request_total) = %v, want 2", got)
	}
	if got := tel.Sum(telemetry.MetricVerificationDuration); got != 1 {
		t.Errorf("Sum(%s) = %v, want 1 observation", telemetry.MetricVerificationDuration, got)
	}
	if got := tel.Sum("no_such_metric"); got != 0 {
		t.Errorf("Sum(no_such_metric) = %v", got)
	}
}

func TestCountersStartAtZero(t *testing.T) {
	tel, _, _ := newTelemetry(t)
	body := scrape(t, tel)
	for _, series := range []string{
		telemetry.MetricVerifications + `{result="ok"}`, telemetry.MetricVerifications + `{result="refused"}`,
		telemetry.MetricVerifications + `{result="error"}`, telemetry.MetricRefreshes, telemetry.MetricRefreshFailures,
		telemetry.MetricDenials + `{surface="activity"}`, telemetry.MetricDenials + `{surface="update"}`,
	} {
		if got := value(t, body, series); got != 0 {
			t.Errorf("%s = %v, want a series at 0", series, got)
		}
	}
}

func TestOwnRegistriesDoNotCollide(t *testing.T) {
	a, _, _ := newTelemetry(t)
	b, _, _ := newTelemetry(t)
	a.Authenticator(fakeAuth{}).Resume(t.Context(), "s")
	if got := b.Sum(telemetry.MetricVerifications); got != 0 {
		t.Errorf("a second Telemetry sees the first's verifications: %v", got)
	}
}

// fakeAuth answers as the real Authenticator would, per sealed content or session id:
// "refuse" refuses, "down" fails transiently, anything else verifies bob.
type fakeAuth struct{}

func (fakeAuth) verdict(what string) (*identity.Identity, error) {
	switch what {
	case "refuse":
		// A careless message with the token in it: the span must not repeat it.
		return nil, fmt.Errorf("interceptors: token %s is expired: %w", secret, &identity.TokenExpiredError{Expiry: time.Unix(0, 0)})
	case "down":
		return nil, fmt.Errorf("vault at %s: %w", secret, tokenstore.ErrUnavailable)
	}
	return &identity.Identity{Subject: "bob"}, nil
}

func (f fakeAuth) Open(_ context.Context, _ interceptors.Operation, sealed []byte) (*identity.Identity, error) {
	return f.verdict(string(sealed))
}
func (f fakeAuth) Resume(_ context.Context, sessionID string) (*identity.Identity, error) {
	return f.verdict(sessionID)
}
func (fakeAuth) End(context.Context, string, string) error                           { return nil }
func (fakeAuth) SpendEnvelope(context.Context, interceptors.Operation, []byte) error { return nil }
func (fakeAuth) Spend(_ context.Context, id, _ string, _ time.Time) error {
	if id == "replayed" {
		return fmt.Errorf("spent: %w", identity.ErrUnauthenticated)
	}
	return nil
}

func TestAuthenticator(t *testing.T) {
	tel, rec, tracer := newTelemetry(t)
	auth := tel.Authenticator(fakeAuth{})
	ctx, parent := tracer.Start(t.Context(), "RunActivity:OidcflowOpen")
	op := func(name string) interceptors.Operation {
		return interceptors.Operation{Binding: envelope.Binding{Namespace: "ns", WorkflowID: "wf", Operation: name}}
	}
	type call struct {
		name    string
		do      func() error
		op      string
		result  string
		subject string
		errType string
	}
	for _, c := range []call{
		{"open ok", func() error { _, err := auth.Open(ctx, op("start"), []byte("ok")); return err }, "start", "ok", "bob", ""},
		{"open refused", func() error { _, err := auth.Open(ctx, op("update:approve"), []byte("refuse")); return err },
			"update:approve", "refused", "", identity.TypeTokenExpired},
		{"resume ok", func() error { _, err := auth.Resume(ctx, "ok"); return err }, "resume", "ok", "bob", ""},
		{"resume down", func() error { _, err := auth.Resume(ctx, "down"); return err }, "resume", "error", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec.Reset()
			err := c.do()
			if (err != nil) != (c.result != "ok") {
				t.Fatalf("err = %v", err)
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want one", len(spans))
			}
			s := spans[0]
			a := attrs(s)
			if s.Name() != telemetry.SpanVerify || a[telemetry.AttrOperation] != c.op || a[telemetry.AttrResult] != c.result ||
				a[telemetry.AttrSubject] != c.subject || a[telemetry.AttrErrorType] != c.errType {
				t.Errorf("span %s %v", s.Name(), a)
			}
			if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
				t.Errorf("the span is not a child of the span in the context")
			}
			if wantErr := c.result != "ok"; wantErr != (s.Status().Code == codes.Error) {
				t.Errorf("status %v", s.Status())
			}
			noSecret(t, spans, secret)
		})
	}
	if err := auth.Spend(ctx, "replayed", "o", time.Now()); err == nil {
		t.Fatal("Spend of a replayed id passed")
	}
	auth.Spend(ctx, "first", "o", time.Now())
	auth.End(ctx, "s", "h")
	for series, want := range map[string]float64{
		`{result="ok"}`: 2, `{result="refused"}`: 2, `{result="error"}`: 1,
	} {
		if got := value(t, scrape(t, tel), telemetry.MetricVerifications+series); got != want {
			t.Errorf("%s%s = %v, want %v", telemetry.MetricVerifications, series, got, want)
		}
	}
	body := scrape(t, tel)
	for series, want := range map[string]float64{
		`_count{kind="envelope",result="ok"}`: 1, `_count{kind="envelope",result="refused"}`: 1,
		`_count{kind="session",result="ok"}`: 1, `_count{kind="session",result="error"}`: 1,
	} {
		if got := value(t, body, telemetry.MetricVerificationDuration+series); got != want {
			t.Errorf("%s%s = %v, want %v", telemetry.MetricVerificationDuration, series, got, want)
		}
	}
}

// value reads one series' value from a Prometheus text exposition; -1 when absent.
func value(t *testing.T, exposition, series string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// idp is a token endpoint that rotates refresh tokens, or refuses them with invalid_grant.
type idp struct {
	*httptest.Server
	mu     sync.Mutex
	refuse bool
	calls  int
}

func newIdP(t *testing.T) *idp {
	p := &idp{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.calls++
		w.Header().Set("Content-Type", "application/json")
		if p.refuse {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"refresh token %s was revoked"}`, secret)
			return
		}
		fmt.Fprintf(w, `{"access_token":"%s-at%d","token_type":"Bearer","refresh_token":"%s-rt%d","expires_in":3600}`,
			secret, p.calls, secret, p.calls)
	}))
	t.Cleanup(p.Close)
	return p
}

// memStore is a tokenstore.Sessions in memory, with check-and-set on Version.
type memStore struct {
	mu sync.Mutex
	m  map[string]tokenstore.Session
}

func (s *memStore) Get(_ context.Context, id string) (tokenstore.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok {
		return tokenstore.Session{}, tokenstore.ErrNotFound
	}
	return v, nil
}

func (s *memStore) Update(_ context.Context, n tokenstore.Session) (tokenstore.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[n.ID].Version != n.Version {
		return tokenstore.Session{}, tokenstore.ErrConflict
	}
	n.Version++
	s.m[n.ID] = n
	return n, nil
}

func (s *memStore) Destroy(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

func TestRefresher(t *testing.T) {
	tel, rec, tracer := newTelemetry(t)
	p := newIdP(t)
	store := &memStore{m: map[string]tokenstore.Session{}}
	session := func(expiry time.Time) string {
		id := tokenstore.NewSessionID()
		store.m[id] = tokenstore.Session{
			ID: id, Subject: "bob", Issuer: p.URL, ClientID: "c", AccessToken: secret, RefreshToken: secret,
			TokenType: "Bearer", Expiry: expiry, IssuedAt: expiry.Add(-time.Hour), Version: 1,
		}
		return id
	}
	var hooked int
	r, err := tel.NewRefresher(tokenstore.RefresherOptions{
		Store:                    store,
		OAuth2:                   oauth2.Config{ClientID: "c", Endpoint: oauth2.Endpoint{TokenURL: p.URL + "/token"}},
		RevocationURL:            p.URL + "/revoke",
		InsecureSkipIDTokenCheck: true,
		OnRefreshed:              func(context.Context, string) { hooked++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tracer.Start(t.Context(), "oidcflow.verify")

	// Fresh already: nothing to record.
	if _, err := r.Fresh(ctx, session(time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 || tel.Sum(telemetry.MetricRefreshes) != 0 || tel.Sum(telemetry.MetricRefreshDuration) != 0 {
		t.Errorf("a fresh session recorded %d spans and %v refreshes", n, tel.Sum(telemetry.MetricRefreshes))
	}

	// Due: one refresh, counted, timed and traced under the caller's span.
	s, err := r.Fresh(ctx, session(time.Now().Add(-time.Minute)))
	if err != nil || s.Refreshes != 1 {
		t.Fatalf("Fresh: %v, %d refreshes", err, s.Refreshes)
	}
	if hooked != 1 {
		t.Errorf("the caller's OnRefreshed ran %d times, want once", hooked)
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != telemetry.SpanRefresh {
		t.Fatalf("spans %v, want one %s", spans, telemetry.SpanRefresh)
	}
	a := attrs(spans[0])
	if a[telemetry.AttrResult] != "ok" || a[telemetry.AttrSubject] != "bob" || spans[0].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("refresh span %v, parent %v", a, spans[0].Parent().SpanID())
	}
	if !spans[0].StartTime().Before(spans[0].EndTime()) {
		t.Errorf("refresh span from %v to %v", spans[0].StartTime(), spans[0].EndTime())
	}

	// Refused: a failure, counted, timed and traced without the error's message.
	p.mu.Lock()
	p.refuse = true
	p.mu.Unlock()
	rec.Reset()
	if _, err := r.Fresh(ctx, session(time.Now().Add(-time.Minute))); !errors.Is(err, identity.ErrReauthRequired) {
		t.Fatalf("Fresh with invalid_grant: %v", err)
	}
	spans = rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	if a := attrs(spans[0]); a[telemetry.AttrResult] != "refused" || a[telemetry.AttrErrorType] != identity.TypeReauthRequired ||
		spans[0].Status().Code != codes.Error {
		t.Errorf("refused refresh span %v %v", a, spans[0].Status())
	}
	noSecret(t, spans, secret)

	// Not a session id: no refresh was tried.
	rec.Reset()
	if _, err := r.Fresh(ctx, "short"); err == nil {
		t.Fatal("Fresh of a bad id passed")
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("a bad session id recorded %d spans", n)
	}

	body := scrape(t, tel)
	for series, want := range map[string]float64{
		telemetry.MetricRefreshes:                                          1,
		telemetry.MetricRefreshFailures:                                    1,
		telemetry.MetricRefreshDuration + `_count{result="ok"}`:            1,
		telemetry.MetricRefreshDuration + `_count{result="refused"}`:       1,
		telemetry.MetricRefreshDuration + `_bucket{result="ok",le="+Inf"}`: 1,
	} {
		if got := value(t, body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if strings.Contains(body, secret) {
		t.Error("/metrics shows a token")
	}
}

// nextActivity returns err from ExecuteActivity.
type nextActivity struct {
	interceptor.ActivityInboundInterceptorBase
	err error
}

func (n *nextActivity) ExecuteActivity(context.Context, *interceptor.ExecuteActivityInput) (any, error) {
	return nil, n.err
}

func TestDenialsActivity(t *testing.T) {
	tel, _, _ := newTelemetry(t)
	d := tel.Denials()
	for _, err := range []error{
		identity.ApplicationError(&identity.DeniedError{Subject: "bob", Reason: "needs admin"}),
		fmt.Errorf("wrapped: %w", identity.ErrForbidden),
		identity.ApplicationError(identity.ErrUnauthenticated), // not a denial
		errors.New("database down"),                            // not a denial
		nil,
	} {
		d.InterceptActivity(t.Context(), &nextActivity{err: err}).ExecuteActivity(t.Context(), &interceptor.ExecuteActivityInput{})
	}
	if got := value(t, scrape(t, tel), telemetry.MetricDenials+`{surface="activity"}`); got != 2 {
		t.Errorf(`%s{surface="activity"} = %v, want 2`, telemetry.MetricDenials, got)
	}
}

// approval waits for one "approve" update, which a policy refuses, and ends.
func approval(ctx workflow.Context) error {
	done := false
	if err := workflow.SetUpdateHandler(ctx, "approve", func(ctx workflow.Context) error {
		done = true
		return identity.ApplicationError(&identity.DeniedError{Subject: "bob", Reason: "self-approval"})
	}); err != nil {
		return err
	}
	return workflow.Await(ctx, func() bool { return done })
}

func TestDenialsUpdate(t *testing.T) {
	tel, _, _ := newTelemetry(t)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{tel.Denials()}})
	var refused error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow("approve", "1", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { t.Errorf("rejected: %v", err) },
			OnAccept:   func() {},
			OnComplete: func(_ any, err error) { refused = err },
		})
	}, time.Second)
	env.ExecuteWorkflow(approval)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if refused == nil {
		t.Fatal("the update was not refused")
	}
	if got := value(t, scrape(t, tel), telemetry.MetricDenials+`{surface="update"}`); got != 1 {
		t.Errorf(`%s{surface="update"} = %v, want 1`, telemetry.MetricDenials, got)
	}
}
