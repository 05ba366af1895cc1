// Package telemetry gives a worker pool metrics and traces through OpenTelemetry: the
// Temporal SDK's metrics handler and tracing interceptor (go.temporal.io/sdk/contrib/
// opentelemetry), oidcflow's own instruments for verifications, refreshes and denials, and
// a Prometheus endpoint for all of them.
//
// A pool builds one Telemetry and hands its parts to the places they observe:
//
//	tel, err := telemetry.New(telemetry.Options{})
//	c, err := client.Dial(client.Options{MetricsHandler: tel.MetricsHandler(), ...})
//	refresher, err := tel.NewRefresher(refresherOptions)   // refresh count, latency, spans
//	auth := tel.Authenticator(authenticator)                // verification count, latency, spans
//	wi, err := interceptors.NewWorkerInterceptor(interceptors.WorkerOptions{Authenticator: auth, ...})
//	w := worker.New(c, queue, worker.Options{Interceptors: []interceptor.WorkerInterceptor{
//		tel.TracingInterceptor(), wi, tel.Denials()}})
//	w.RegisterActivity(&activities.SessionActivities{Refresher: refresher, Sessions: auth})
//	http.Handle("/metrics", tel)
//
// The tracing interceptor goes first, so that the workflow and activity spans it opens are
// the parents of oidcflow's verification and refresh spans; on a starter, add it to the
// client options' Interceptors (interceptors.DialOptions.Client) to open the trace there.
//
// oidcflow's spans carry the subject, the operation and the outcome of a verification or a
// refresh, never a token or an error's message; metric labels take only a few constant
// values (no subject).
package telemetry

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// ScopeName is the OpenTelemetry instrumentation scope of oidcflow's own meters and tracers.
// The SDK's use "temporal-sdk-go".
const ScopeName = "github.com/oidcflow/oidcflow/telemetry"

// sdkScope is the scope the SDK's contrib package uses by default; kept for its metrics and
// spans so that dashboards made for it apply.
const sdkScope = "temporal-sdk-go"

// buckets are the bounds, in seconds, of oidcflow's latency histograms and, on the
// MeterProvider that New makes, of the SDK's timers: from 5 ms, a Vault read, to a minute, a
// refresh that waited for another worker's claim. (OpenTelemetry's default bounds, 0 to
// 10000, suit milliseconds.)
var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Options configure New.
type Options struct {
	// MeterProvider receives the SDK's and oidcflow's metrics. Default: a MeterProvider of
	// the Telemetry's own that exports to Registry, which ServeHTTP serves in the Prometheus
	// text format. With a MeterProvider of the caller's, ServeHTTP answers 404 and Sum 0:
	// the caller exports (for instance over OTLP).
	MeterProvider metric.MeterProvider
	// Registry is where the default MeterProvider's Prometheus exporter registers. Default:
	// a new registry (not prometheus.DefaultRegisterer, so two pools in one process do not
	// collide). Give one Registry to one Telemetry only. Ignored with a MeterProvider.
	Registry *prometheus.Registry
	// TracerProvider receives oidcflow's spans and those of TracingInterceptor. Default:
	// otel.GetTracerProvider(), which records nothing until the application installs one
	// with otel.SetTracerProvider.
	TracerProvider trace.TracerProvider
	// Logger receives the errors of instruments and of the exporter (never a token).
	// Default slog.Default().
	Logger *slog.Logger
}

// Telemetry holds oidcflow's instruments and tracer and the SDK's metrics handler and
// tracing interceptor, all on one MeterProvider and one TracerProvider. It is safe for
// concurrent use; a pool needs one.
type Telemetry struct {
	inst     *instruments
	tracer   trace.Tracer
	handler  client.MetricsHandler
	tracing  interceptor.Interceptor
	registry *prometheus.Registry // nil with a caller's MeterProvider
	http     http.Handler
	logger   *slog.Logger
}

// New builds a Telemetry. It fails only when an instrument or the exporter cannot be made.
func New(opts Options) (*Telemetry, error) {
	t := &Telemetry{logger: opts.Logger}
	if t.logger == nil {
		t.logger = slog.Default()
	}
	mp := opts.MeterProvider
	if mp == nil {
		t.registry = opts.Registry
		if t.registry == nil {
			t.registry = prometheus.NewRegistry()
		}
		exp, err := otelprom.New(otelprom.WithRegisterer(t.registry), otelprom.WithoutScopeInfo())
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		mp = sdkmetric.NewMeterProvider(
			sdkmetric.WithResource(resource.Default()),
			sdkmetric.WithReader(exp),
			sdkmetric.WithView(sdkmetric.NewView(
				sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
				sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: buckets}},
			)),
		)
		t.http = promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{
			ErrorLog:      promLogger{t.logger},
			ErrorHandling: promhttp.ContinueOnError,
		})
	}
	var err error
	if t.inst, err = newInstruments(mp.Meter(ScopeName)); err != nil {
		return nil, err
	}
	t.handler = temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter:                mp.Meter(sdkScope),
		UseMonotonicCounters: true, // counters, not gauges, with the _total suffix
		OnError: func(err error) { // the default panics
			t.logger.Warn("telemetry: an SDK metric could not be made", "err", err)
		},
	})
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t.tracer = tp.Tracer(ScopeName)
	if t.tracing, err = temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{Tracer: tp.Tracer(sdkScope)}); err != nil {
		return nil, fmt.Errorf("telemetry: tracing interceptor: %w", err)
	}
	return t, nil
}

// MetricsHandler is the SDK's metrics handler on the Telemetry's MeterProvider, for
// client.Options.MetricsHandler. Its timers are histograms in seconds (name_seconds_bucket
// on the Prometheus endpoint) and its counters monotonic (name_total).
func (t *Telemetry) MetricsHandler() client.MetricsHandler { return t.handler }

// TracingInterceptor is the SDK's OpenTelemetry tracing interceptor on the Telemetry's
// TracerProvider. It is both a client and a worker interceptor: set it once, either in
// client.Options.Interceptors (then the client's workers use it too) or first in
// worker.Options.Interceptors, not in both. It is not installed by anything in this package.
func (t *Telemetry) TracingInterceptor() interceptor.Interceptor { return t.tracing }

// ServeHTTP serves the metrics in the Prometheus text format (at /metrics, say), or 404
// when the MeterProvider is the caller's.
func (t *Telemetry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if t.http == nil {
		http.Error(w, "telemetry: metrics are exported by the application's MeterProvider", http.StatusNotFound)
		return
	}
	t.http.ServeHTTP(w, r)
}

// Sum returns the sum over all series of the metric named as on the Prometheus endpoint
// (MetricRefreshes, "temporal_request_total", ...): a counter's count, a histogram's number
// of observations, the sum of a gauge's values. It is 0 for a metric not yet recorded, and
// always with a MeterProvider of the caller's. Tests and health checks use it.
func (t *Telemetry) Sum(name string) float64 {
	if t.registry == nil {
		return 0
	}
	families, err := t.registry.Gather()
	if err != nil {
		t.logger.Warn("telemetry: gather metrics", "err", err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += value(f.GetType(), m)
		}
	}
	return sum
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// promLogger passes the HTTP handler's gathering errors to slog.
type promLogger struct{ l *slog.Logger }

func (p promLogger) Println(v ...any) { p.l.Warn("telemetry: serve metrics", "err", fmt.Sprint(v...)) }
