package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/config"
	"github.com/oidcflow/oidcflow/internal/lifetimes"
	"github.com/oidcflow/oidcflow/pool"
	"github.com/oidcflow/oidcflow/telemetry"
)

// The kinds of worker RunWorker runs.
const (
	KindPlain    = "plain"    // worker.New with no interceptors
	KindOIDCFlow = "oidcflow" // app.NewWorker: the pool's interceptors, Vault sessions, telemetry
)

// ErrWorker is wrapped by the errors of RunWorker and of the driver's worker processes.
var ErrWorker = errors.New("bench: worker")

// WorkerOptions configure RunWorker.
type WorkerOptions struct {
	// Kind is KindPlain or KindOIDCFlow. Required.
	Kind string
	// Env is the configuration: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, OIDCFLOW_TASK_QUEUE and,
	// for KindOIDCFlow, everything app.NewWorker reads. Required.
	Env *config.Env
	// Addr is where the worker serves /stats, /metrics and /debug/pprof/. Default
	// "127.0.0.1:0".
	Addr string
	// Ready receives one line, "listening <address>", once the worker polls. Default none.
	Ready io.Writer
	// BlockProfileRate and MutexProfileFraction switch on the block and mutex profiles
	// (runtime.SetBlockProfileRate, runtime.SetMutexProfileFraction). Default 0: off.
	BlockProfileRate, MutexProfileFraction int
	// Logger. Default: warnings and errors to standard error.
	Logger *slog.Logger
}

// Stats is what a worker process reports at /stats: request counts since it started,
// oidcflow's telemetry, and its own CPU time and memory.
type Stats struct {
	// Counters are the Vault and identity provider request counts (VaultRead, IdPToken, ...).
	Counters map[string]float64 `json:"counters"`
	// Metrics are sums of oidcflow's telemetry (see Metric*). Empty on a plain worker.
	Metrics map[string]float64 `json:"metrics"`
	// CPUSeconds is the process's user and system CPU time.
	CPUSeconds float64 `json:"cpu_seconds"`
	// RSSBytes is the resident set now, PeakRSSBytes its high-water mark.
	RSSBytes     int64 `json:"rss_bytes"`
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	Goroutines   int   `json:"goroutines"`
}

// Keys of Stats.Metrics.
const (
	MetricEnvelopeOpens   = "envelope_opens"     // verifications of kind envelope
	MetricEnvelopeSeconds = "envelope_seconds"   // their total duration
	MetricResumes         = "session_resumes"    // verifications of kind session (one per activity)
	MetricResumeSeconds   = "session_seconds"    // their total duration
	MetricRefreshes       = "refreshes"          // telemetry.MetricRefreshes
	MetricRefreshFailures = "refresh_failures"   // telemetry.MetricRefreshFailures
	MetricVerifyRefused   = "verifications_fail" // verifications refused or failed
)

// RunWorker runs one worker of opts.Kind until ctx is done, serving its statistics.
func RunWorker(ctx context.Context, opts WorkerOptions) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.BlockProfileRate > 0 {
		runtime.SetBlockProfileRate(opts.BlockProfileRate)
	}
	if opts.MutexProfileFraction > 0 {
		runtime.SetMutexProfileFraction(opts.MutexProfileFraction)
	}
	counters, times := NewCounters(), newTimings()
	var registry *prometheus.Registry
	var run func(context.Context) error
	switch opts.Kind {
	case KindPlain:
		copts := client.Options{
			HostPort: opts.Env.String("TEMPORAL_ADDRESS"), Namespace: opts.Env.String("TEMPORAL_NAMESPACE"),
			Logger: sdklog.NewStructuredLogger(opts.Logger),
		}
		// The plain worker authenticates as the pool's does.
		cfg, err := pool.FromLookup(opts.Env.Lookup)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrWorker, err)
		}
		if err := cfg.ApplyTemporalAuth(ctx, &copts); err != nil {
			return fmt.Errorf("%w: %w", ErrWorker, err)
		}
		c, err := client.DialContext(ctx, copts)
		if err != nil {
			return fmt.Errorf("%w: dial Temporal: %w", ErrWorker, err)
		}
		defer c.Close()
		w := worker.New(c, opts.Env.String("OIDCFLOW_TASK_QUEUE"), worker.Options{})
		Register(w)
		run = func(ctx context.Context) error {
			if err := w.Start(); err != nil {
				return err
			}
			<-ctx.Done()
			w.Stop()
			return nil
		}
	case KindOIDCFlow:
		// The verifier and the refresher use clients without a transport of their own.
		http.DefaultTransport = &CountingTransport{Next: http.DefaultTransport, Counters: counters}
		registry = prometheus.NewRegistry()
		tel, err := telemetry.New(telemetry.Options{Registry: registry, Logger: opts.Logger})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrWorker, err)
		}
		w, err := app.NewWorker(ctx, app.WorkerOptions{
			Env: opts.Env, Logger: opts.Logger, Telemetry: tel, Authenticator: timeStores(times),
			Register: func(r worker.Registry) { Register(r); lifetimes.Register(r) },
		})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrWorker, err)
		}
		defer w.Close()
		CountVault(w.Vault, counters)
		run = w.Run
	default:
		return fmt.Errorf("%w: kind %q; use %s or %s", ErrWorker, opts.Kind, KindPlain, KindOIDCFlow)
	}

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("%w: listen: %w", ErrWorker, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		s := collectStats(counters, registry)
		if registry != nil {
			times.into(s.Metrics)
		}
		_ = json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- run(runCtx) }()
	if opts.Ready != nil {
		fmt.Fprintf(opts.Ready, "listening %s\n", ln.Addr())
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		stop()
		return <-done
	}
}

// collectStats reads the counters, the registry (nil on a plain worker) and the process.
func collectStats(counters *Counters, registry *prometheus.Registry) Stats {
	s := Stats{Counters: counters.Snapshot(), Metrics: map[string]float64{}, Goroutines: runtime.NumGoroutine()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.CPUSeconds = tv(ru.Utime) + tv(ru.Stime)
		s.PeakRSSBytes = ru.Maxrss * 1024 // kilobytes on Linux
	}
	s.RSSBytes = residentBytes()
	if registry == nil {
		return s
	}
	families, _ := registry.Gather()
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case telemetry.MetricVerificationDuration:
				h := m.GetHistogram()
				switch label(m, "kind") {
				case "envelope":
					s.Metrics[MetricEnvelopeOpens] += float64(h.GetSampleCount())
					s.Metrics[MetricEnvelopeSeconds] += h.GetSampleSum()
				case "session":
					s.Metrics[MetricResumes] += float64(h.GetSampleCount())
					s.Metrics[MetricResumeSeconds] += h.GetSampleSum()
				}
			case telemetry.MetricVerifications:
				if label(m, "result") != telemetry.ResultOK {
					s.Metrics[MetricVerifyRefused] += m.GetCounter().GetValue()
				}
			case telemetry.MetricRefreshes:
				s.Metrics[MetricRefreshes] += m.GetCounter().GetValue()
			case telemetry.MetricRefreshFailures:
				s.Metrics[MetricRefreshFailures] += m.GetCounter().GetValue()
			}
		}
	}
	return s
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// residentBytes reads the resident set from /proc/self/statm (0 where there is none).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
