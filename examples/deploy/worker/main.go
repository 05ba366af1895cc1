// Command worker runs a deploy approval worker: a pool member (package pool) configured from
// the OIDCFLOW_* variables, with the deploy workflow and its activity registered.
package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"

	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/examples/deploy"
	"github.com/oidcflow/oidcflow/pool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := pool.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	cfg.IdentityWorkflows = []string{deploy.WorkflowName} // other workflows on this worker pass through
	p, err := pool.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	p.Worker.RegisterWorkflowWithOptions(deploy.Approval, workflow.RegisterOptions{Name: deploy.WorkflowName})
	p.Worker.RegisterActivity(&deploy.Activities{})
	if err := p.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
