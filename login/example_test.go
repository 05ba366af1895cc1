package login_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/login"
)

// ExampleDial starts a workflow as the person who logged in with `starter login` (or
// login.Login): the client seals their identity on the start, hands the refresh token to the
// worker pool and records that, so this program never refreshes it again.
func ExampleDial() {
	ctx := context.Background()
	ts, err := login.Open(ctx, login.Options{Issuer: os.Getenv("OIDCFLOW_ISSUER")})
	if err != nil {
		log.Fatal(err) // login.ErrNotLoggedIn: log in first
	}
	c, err := login.Dial(ctx, login.DialOptions{Source: ts, PublicKey: os.Getenv("OIDCFLOW_ENVELOPE_PUBLIC_KEY"),
		Client: client.Options{HostPort: "127.0.0.1:7233", Namespace: "oidcflow"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "deploy"}, "DeployApproval",
		map[string]any{"service": "billing", "version": "1.4.2", "window": time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("started:", run.GetID())
}
