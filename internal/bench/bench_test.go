package bench

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/proto"
)

func TestSpreadOf(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Spread
	}{
		{nil, Spread{}},
		{[]float64{2}, Spread{2, 2, 2}},
		{[]float64{3, 1, 2}, Spread{2, 1, 3}},
		{[]float64{4, 1, 2, 3}, Spread{2.5, 1, 4}},
	} {
		if got := spreadOf(tc.in); got != tc.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(100 - i) // 100 .. 1, unsorted
	}
	for _, tc := range []struct {
		q    float64
		want float64
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentile(v, tc.q); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
	if v[0] != 100 {
		t.Error("percentile sorted its input in place")
	}
}

func TestSummarizeRatios(t *testing.T) {
	l := Level{Repeats: []Repeat{
		{PlainRate: 10, FlowRate: 9, PlainP50: 100, FlowP50: 110, PlainP99: 200, FlowP99: 260},
		{PlainRate: 10, FlowRate: 10, PlainP50: 100, FlowP50: 100, PlainP99: 200, FlowP99: 200},
		{PlainRate: 10, FlowRate: 8, PlainP50: 100, FlowP50: 120, PlainP99: 200, FlowP99: 220},
	}}
	l.summarize()
	if l.RateRatio != (Spread{0.9, 0.8, 1}) {
		t.Errorf("rate ratio %+v", l.RateRatio)
	}
	if l.P50Ratio != (Spread{1.1, 1, 1.2}) {
		t.Errorf("p50 ratio %+v", l.P50Ratio)
	}
	if l.P99Ratio.Median != 1.1 || l.P99Ratio.Max != 1.3 {
		t.Errorf("p99 ratio %+v", l.P99Ratio)
	}
}

func TestKinds(t *testing.T) {
	for path, want := range map[string]string{
		"/oauth2/token": IdPToken, "/oauth2/revoke": IdPRevoke, "/.well-known/jwks.json": IdPJWKS,
		"/.well-known/openid-configuration": IdPDiscovery, "/userinfo": IdPUserinfo, "/hook": IdPOther,
	} {
		if got := idpKind(path); got != want {
			t.Errorf("idpKind(%s) = %s, want %s", path, got, want)
		}
	}
	for _, tc := range []struct{ method, url, want string }{
		{"GET", "/v1/oidcflow/data/sessions/x", VaultRead},
		{"GET", "/v1/oidcflow/metadata/sessions?list=true", VaultList},
		{"LIST", "/v1/oidcflow/metadata/sessions", VaultList},
		{"PUT", "/v1/oidcflow/data/sessions/x", VaultWrite},
		{"POST", "/v1/oidcflow/data/sessions/x", VaultWrite},
		{"DELETE", "/v1/oidcflow/metadata/sessions/x", VaultDelete},
		{"PUT", "/v1/auth/approle/login", VaultAuth},
		{"POST", "/v1/auth/token/renew-self", VaultAuth},
		{"GET", "/v1/sys/health", VaultOther},
	} {
		u, _ := url.Parse(tc.url)
		if got := vaultKind(&http.Request{Method: tc.method, URL: u}); got != tc.want {
			t.Errorf("vaultKind(%s %s) = %s, want %s", tc.method, tc.url, got, tc.want)
		}
	}
}

// TestCountVault checks that every request a Vault client sends is counted once, a retried
// one once per attempt, and that the client still retries as before.
func TestCountVault(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if r.Method == http.MethodGet && calls == 2 {
			w.WriteHeader(http.StatusBadGateway) // retried by the client's policy
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":{"a":"b"}}`))
	}))
	defer srv.Close()
	cfg := vault.DefaultConfig()
	cfg.Address, cfg.MaxRetries, cfg.MinRetryWait, cfg.MaxRetryWait = srv.URL, 2, time.Millisecond, time.Millisecond
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("t")
	counters := NewCounters()
	CountVault(c, counters)
	ctx := context.Background()
	if _, err := c.Logical().WriteWithContext(ctx, "kv/data/x", map[string]any{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().ReadWithContext(ctx, "kv/data/x"); err != nil {
		t.Fatal(err)
	}
	s := counters.Snapshot()
	if s[VaultWrite] != 1 || s[VaultRead] != 2 || calls != 3 {
		t.Errorf("counted %v over %d calls; want 1 write, 2 reads (one retried), 3 calls", s, calls)
	}
}

func TestCountingTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	counters := NewCounters()
	hc := &http.Client{Transport: &CountingTransport{Next: http.DefaultTransport, Counters: counters}}
	for _, p := range []string{"/oauth2/token", "/oauth2/token", "/.well-known/jwks.json"} {
		resp, err := hc.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if s := counters.Snapshot(); s[IdPToken] != 2 || s[IdPJWKS] != 1 {
		t.Errorf("counted %v", s)
	}
}

func TestPayloadBytes(t *testing.T) {
	p1 := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"hello"`)}
	p2 := &commonpb.Payload{Data: make([]byte, 1000)}
	e := &historypb.HistoryEvent{EventId: 1, Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{
		WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
			Input:  &commonpb.Payloads{Payloads: []*commonpb.Payload{p1}},
			Header: &commonpb.Header{Fields: map[string]*commonpb.Payload{"oidcflow-envelope": p2}},
		}}}
	want := proto.Size(p1) + proto.Size(p2)
	if got := payloadBytes(e.ProtoReflect()); got != want {
		t.Errorf("payloadBytes = %d, want %d", got, want)
	}
}

func TestReplaceSection(t *testing.T) {
	readme := "# x\n\n## Performance\n\n<!-- bench:begin old wording -->\nold table\n" + EndMarker + "\n\nmore\n"
	out, err := ReplaceSection(readme, "new table\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "old") || !strings.Contains(out, BeginMarker+"\n\nnew table\n\n"+EndMarker+"\n\nmore\n") {
		t.Errorf("replaced:\n%s", out)
	}
	if _, err := ReplaceSection("# no section\n", "x"); !errors.Is(err, ErrNoMarkers) {
		t.Errorf("without markers: %v", err)
	}
}

func TestMarkdownRendersEveryPart(t *testing.T) {
	r := &Result{Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Machine: Machine{CPUs: 2, CPUModel: "Test CPU"},
		Params:       Params{Runs: 300, RunsAt1: 100, Repeats: 3, Persona: "bob", TokenTTL: "30s", StepEvery: "20s", LateAfter: "5s"},
		Levels:       []Level{{InFlight: 10, PerRun: PerRun{Vault: map[string]float64{VaultRead: 7}, IdP: map[string]float64{}}}},
		History:      &History{Sample: 5},
		Verification: &Verification{Alg: "RS256"},
		LongRuns:     []*LongRun{{Sessions: 20, ReuseReports: -1}},
	}
	md := Markdown(r)
	for _, want := range []string{"2 × Test CPU", "2026-01-02 03:04 UTC", "| 10 |", "| 7.00 |", "History of a run", "RS256", "| 20 |", "n/a"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestGoals(t *testing.T) {
	got := goals([]Level{
		{InFlight: 1, P50Ratio: Spread{Median: 1.05}, P99Ratio: Spread{Median: 1.2}},
		{InFlight: 10, RateRatio: Spread{Median: 0.96}},
		{InFlight: 50, RateRatio: Spread{Median: 0.9}},
		{InFlight: 20, RateRatio: Spread{Median: 0.5}}, // no goal
	})
	want := "p50 and p99 ratio at most 1.1 at 1 in flight: not met (1.05, 1.20); " +
		"throughput ratio at least 0.95 at 10 in flight: met (0.96); throughput ratio at least 0.95 at 50 in flight: not met (0.90)"
	if got != want {
		t.Errorf("goals:\n%s\nwant\n%s", got, want)
	}
}
