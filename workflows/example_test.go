package workflows_test

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"

	"github.com/oidcflow/oidcflow/workflows"
)

// An approver decides on exactly the request they were shown: the status names its run and
// request digest, and ApproveAccess addresses the update to that run and names the digest.
// If bob replaced the request in the meantime, the server answers "not found" (the run
// ended) or the workflow refuses with workflows.TypeApprovalMismatch; nothing is approved.
// c is a client from interceptors.Dial with the approver's tokens.
func ExampleApproveAccess() {
	var c client.Client
	ctx, id := context.Background(), "access-demo-1"

	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
	if err != nil {
		panic(err)
	}
	var st workflows.AccessStatus
	if err := v.Get(&st); err != nil {
		panic(err)
	}
	fmt.Printf("%s asks for %s on %s for %s: %s\n", st.Requester.Subject, st.Role, st.Resource, st.Duration, st.Reason)

	h, err := c.UpdateWorkflow(ctx, workflows.ApproveAccess(id, st, "ok for the incident"))
	if err != nil {
		panic(err)
	}
	var after workflows.AccessStatus
	if err := h.Get(ctx, &after); err != nil {
		panic(err)
	}
}
