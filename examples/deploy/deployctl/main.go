// Command deployctl asks for a deploy and approves one, as the person logged in with
// `starter login` (or login.Login): `deployctl request <service> <version> [reason]` prints
// the workflow id; `deployctl approve <workflow id> <version>` approves it. It reads
// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, OIDCFLOW_TASK_QUEUE, OIDCFLOW_ISSUER,
// OIDCFLOW_ENVELOPE_PUBLIC_KEY and OIDCFLOW_TOKEN_CACHE.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/examples/deploy"
	"github.com/oidcflow/oidcflow/login"
)

func main() {
	if len(os.Args) < 4 {
		log.Fatal("usage: deployctl request <service> <version> [reason] | deployctl approve <workflow id> <version>")
	}
	ctx := context.Background()
	ts, err := login.Open(ctx, login.Options{Issuer: os.Getenv("OIDCFLOW_ISSUER"), CachePath: os.Getenv("OIDCFLOW_TOKEN_CACHE")})
	if err != nil {
		log.Fatal(err)
	}
	c, err := login.Dial(ctx, login.DialOptions{Source: ts, PublicKey: os.Getenv("OIDCFLOW_ENVELOPE_PUBLIC_KEY"),
		Client: client.Options{HostPort: os.Getenv("TEMPORAL_ADDRESS"), Namespace: os.Getenv("TEMPORAL_NAMESPACE")},
		// A frontend that authorizes its callers takes the person's access token.
		Bearer:        os.Getenv("OIDCFLOW_TEMPORAL_AUTH") != "" && os.Getenv("OIDCFLOW_TEMPORAL_AUTH") != "none",
		CodecEndpoint: os.Getenv("OIDCFLOW_CODEC_ENDPOINT"), CodecCAFile: os.Getenv("OIDCFLOW_CODEC_CA_FILE")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	switch os.Args[1] {
	case "request":
		req := deploy.Request{Service: os.Args[2], Version: os.Args[3]}
		if len(os.Args) > 4 {
			req.Reason = os.Args[4]
		}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: os.Getenv("OIDCFLOW_TASK_QUEUE")}, deploy.WorkflowName, req)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(run.GetID())
	case "approve":
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: os.Args[2], UpdateName: deploy.UpdateApprove,
			Args: []any{deploy.Approve{Version: os.Args[3]}}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err == nil {
			var msg string
			err = h.Get(ctx, &msg)
			fmt.Println(msg)
		}
		if err != nil {
			log.Fatal(err)
		}
	default:
		log.Fatalf("deployctl: unknown command %q", os.Args[1])
	}
}
