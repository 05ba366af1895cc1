// Command devstack runs the oidcflow development stack on loopback.
//
//	devstack up        start what is not running, wait for health, seed, write .stack/env
//	devstack down [server...]  stop exactly what up started (pids in .stack/run); with
//	                   names only those (postgres, vault, temporal, idp, hydra)
//	devstack status    show each server's pid and health
//	devstack serve-idp run the login/consent app for Hydra (started by up)
//	devstack compose-init --state DIR   prepare secrets and configs for docker-compose.yml
//	devstack seed --state DIR           seed servers started by docker compose, write DIR/env
//	                   and the worker's and codec server's env files
//
// Launcher settings (environment of `up`): OIDCFLOW_ACCESS_TOKEN_TTL (default 1h),
// OIDCFLOW_ID_TOKEN_TTL (1h), OIDCFLOW_REFRESH_TOKEN_TTL (720h),
// OIDCFLOW_REFRESH_ROTATION_GRACE (0s, at most 5m; also written to .stack/env for workers).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/oidcflow/oidcflow/internal/devstack"
	"github.com/oidcflow/oidcflow/internal/devstack/idp"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "up", "down", "status":
		err = launcher(ctx, os.Args[1], os.Args[2:])
	case "compose-init", "seed":
		err = composeStep(ctx, os.Args[1], os.Args[2:])
	case "serve-idp":
		err = serveIDP(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: devstack up|down|status|serve-idp")
	os.Exit(2)
}

func launcher(ctx context.Context, cmd string, args []string) error {
	l, err := devstack.New(devstack.Options{})
	if err != nil {
		return err
	}
	switch cmd {
	case "up":
		return l.Up(ctx)
	case "down":
		return l.Down(ctx, args...)
	}
	down := 0
	for _, st := range l.Status(ctx) {
		pid := "-"
		if st.Pid != 0 {
			pid = fmt.Sprint(st.Pid)
		}
		fmt.Printf("%-9s pid %-8s %s\n", st.Server, pid, st.Detail)
		if !st.Healthy {
			down++
		}
	}
	if down > 0 {
		return fmt.Errorf("devstack: %d servers not healthy", down)
	}
	return nil
}

func composeStep(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	state := fs.String("state", "/stack", "state folder shared by the compose services")
	_ = fs.Parse(args)
	l, err := devstack.New(devstack.Options{State: *state, Timeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	if cmd == "compose-init" {
		return l.ComposeInit()
	}
	return l.ComposeSeed(ctx)
}

func serveIDP(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve-idp", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4446", "listen address")
	admin := fs.String("hydra-admin", devstack.HydraAdminURL(), "Hydra admin API base URL")
	state := fs.String("personas", ".stack/idp/personas.json", "persona state file (read at every request)")
	defaults := fs.String("defaults", "", "committed persona file restored by POST /admin/reset (default: the embedded one)")
	hookKeyFile := fs.String("hook-key-file", "", "file holding the token hook key (default: $OIDCFLOW_IDP_HOOK_KEY)")
	_ = fs.Parse(args)
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var def []byte
	if *defaults != "" {
		b, err := os.ReadFile(*defaults)
		if err != nil {
			return err
		}
		def = b
	}
	hookKey := os.Getenv("OIDCFLOW_IDP_HOOK_KEY")
	if *hookKeyFile != "" {
		b, err := os.ReadFile(*hookKeyFile)
		if err != nil {
			return err
		}
		hookKey = strings.TrimSpace(string(b))
	}
	srv, err := idp.New(idp.Options{
		HydraAdminURL: *admin, StatePath: *state, Defaults: def,
		HookKey: hookKey, Logger: logger,
	})
	if err != nil {
		return err
	}
	hs := &http.Server{Addr: *addr, Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	logger.Info("idp: listening", "addr", *addr)
	if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
