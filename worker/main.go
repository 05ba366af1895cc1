// Command worker runs one member of an oidcflow worker pool: it verifies the identity that
// arrives with each workflow, keeps sessions fresh in Vault, and runs the access workflows.
// Run several on one task queue to form a pool. Configuration comes from environment
// variables (see the README's table); the HTTP listener serves /metrics, /healthz and
// /readyz. SIGTERM or SIGINT drains in-flight activities for up to
// OIDCFLOW_SHUTDOWN_TIMEOUT, then exits. With OIDCFLOW_BUILD_ID (and
// OIDCFLOW_DEPLOYMENT_NAME) it runs as that build of a Temporal Worker Deployment: roll a
// new build as the README's "Deploying a new version" shows.
//
// `worker codec-server` runs the pool's payload codec instead (OIDCFLOW_ENCRYPT_PAYLOADS):
// an HTTPS endpoint (OIDCFLOW_CODEC_LISTEN, OIDCFLOW_CODEC_TLS_CERT, OIDCFLOW_CODEC_TLS_KEY)
// that the Temporal Web UI and starters decode and encode payloads through, with a person's
// access token. It logs in to Vault as the worker does.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oidcflow/oidcflow/internal/app"
	"github.com/oidcflow/oidcflow/internal/config"
)

func main() {
	run, err := command(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	if err := withSetup(run); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// command picks what the arguments ask for: no argument runs a pool member, "codec-server"
// the codec server.
func command(args []string) (runner, error) {
	switch {
	case len(args) == 0:
		return runWorker, nil
	case len(args) == 1 && args[0] == "codec-server":
		return runCodecServer, nil
	default:
		return nil, fmt.Errorf("unknown arguments %q; usage: worker [codec-server] (settings come from the environment)", args)
	}
}

// runner is one of the binary's commands.
type runner func(ctx context.Context, env *config.Env, logger *slog.Logger) error

// withSetup reads the configuration, sets the logger up and runs run with a context that
// ends at SIGTERM or SIGINT.
func withSetup(run runner) error {
	env, err := config.FromEnvironment()
	if err != nil {
		return err
	}
	logger, err := newLogger(env)
	if err != nil {
		return err
	}
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return run(ctx, env, logger)
}

// runCodecServer serves the payload codec until ctx ends.
func runCodecServer(ctx context.Context, env *config.Env, logger *slog.Logger) error {
	s, err := app.NewCodecServer(ctx, app.CodecServerOptions{Env: env, Logger: logger})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// runWorker runs a pool member until ctx ends, then drains it.
func runWorker(ctx context.Context, env *config.Env, logger *slog.Logger) error {
	var ready atomic.Bool
	w, err := app.NewWorker(ctx, app.WorkerOptions{Env: env, Logger: logger})
	if err != nil {
		return err
	}
	defer w.Close()

	addr := env.String("OIDCFLOW_HTTP_ADDR")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on OIDCFLOW_HTTP_ADDR=%s: %w (another worker on this port? set a free one)", addr, err)
	}
	srv := &http.Server{Handler: routes(w, &ready), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	version := []any{"versioning", "off"}
	if id := env.String("OIDCFLOW_BUILD_ID"); id != "" {
		version = []any{"deployment", env.String("OIDCFLOW_DEPLOYMENT_NAME"), "build_id", id}
	}
	logger.Info("worker starting", append([]any{"task_queue", env.String("OIDCFLOW_TASK_QUEUE"),
		"temporal", env.String("TEMPORAL_ADDRESS"), "namespace", env.String("TEMPORAL_NAMESPACE"),
		"http", ln.Addr().String()}, version...)...)
	ready.Store(true)
	go func() {
		<-ctx.Done()
		ready.Store(false) // draining: load balancers and probes stop counting on this one
	}()
	err = w.Run(ctx) // returns after SIGTERM/SIGINT, once in-flight activities drained
	logger.Info("worker stopped")
	return err
}

// routes serves metrics and health. /healthz: the process is alive. /readyz: polling, and
// Temporal answers.
func routes(w *app.Worker, ready *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", w.Telemetry)
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if !ready.Load() {
			http.Error(rw, "not ready: starting or draining", http.StatusServiceUnavailable)
			return
		}
		if _, err := w.Client.CheckHealth(ctx, nil); err != nil {
			http.Error(rw, "not ready: Temporal does not answer", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	return mux
}

func newLogger(env *config.Env) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(env.String("OIDCFLOW_LOG_LEVEL"))); err != nil {
		return nil, fmt.Errorf("OIDCFLOW_LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f := env.String("OIDCFLOW_LOG_FORMAT"); f {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	default:
		return nil, errors.New("OIDCFLOW_LOG_FORMAT must be json or text")
	}
}
