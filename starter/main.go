// Command starter logs people in with OIDC and starts and decides identity-carrying oidcflow
// workflows: `starter login`, `starter request-access`, `starter approve`, ... Run
// `starter help` for the commands. Configuration comes from environment variables (see the
// README's table), or the env file named by OIDCFLOW_ENV_FILE.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/oidcflow/oidcflow/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Options{})
	stop()
	os.Exit(code)
}
