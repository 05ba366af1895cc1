// Package attacks holds the attack tests of oidcflow's security invariants (SECURITY.md): each
// test plays an attacker who reads history, holds a low-privilege account, or calls the
// Temporal frontend with a plain SDK client, against the real dev stack, and asserts that the
// attack is refused with a typed error and leaves no side effect. This file holds the small
// workflows the tests run on a real worker pool.
package attacks

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
)

// Workflow, update, signal and query names.
const (
	ApprovableName = "attacks.Approvable"
	ListenerName   = "attacks.Listener"
	PingerName     = "attacks.Pinger"
	ApproveUpdate  = "approve"
	PingSignal     = "ping"
	StopSignal     = "stop"
	ApproversQuery = "approvers"
)

// Register adds the workflows of this package to a worker.
func Register(r worker.Registry) {
	r.RegisterWorkflowWithOptions(Approvable, workflow.RegisterOptions{Name: ApprovableName})
	r.RegisterWorkflowWithOptions(Listener, workflow.RegisterOptions{Name: ListenerName})
	r.RegisterWorkflowWithOptions(Pinger, workflow.RegisterOptions{Name: PingerName})
}

// ApprovableInput starts Approvable.
type ApprovableInput struct {
	What string `json:"what"` // what is asked for; part of the input digest
}

// Approvable records the verified caller of every approve update until it is stopped, and
// returns the approvers' subjects.
func Approvable(ctx workflow.Context, in ApprovableInput) ([]string, error) {
	if _, err := identity.FromWorkflow(ctx); err != nil {
		return nil, identity.ApplicationError(err)
	}
	var approvers []string
	if err := workflow.SetUpdateHandler(ctx, ApproveUpdate, func(ctx workflow.Context, note string) (string, error) {
		caller, err := identity.FromWorkflow(ctx)
		if err != nil {
			return "", identity.ApplicationError(err)
		}
		approvers = append(approvers, caller.Subject)
		return caller.Subject, nil
	}); err != nil {
		return nil, err
	}
	if err := workflow.SetQueryHandler(ctx, ApproversQuery, func() ([]string, error) { return approvers, nil }); err != nil {
		return nil, err
	}
	workflow.GetSignalChannel(ctx, StopSignal).Receive(ctx, nil)
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	return approvers, nil
}

// Listener receives count ping signals and returns "value:sender" for each, sender being the
// verified subject or "-" when the signal carried none.
func Listener(ctx workflow.Context, count int) ([]string, error) {
	var got []string
	ch := workflow.GetSignalChannel(ctx, PingSignal)
	for range count {
		var v string
		ch.Receive(ctx, &v)
		sender := "-"
		if id := identity.SignalSender(ctx, PingSignal, v); id != nil {
			sender = id.Subject
		}
		got = append(got, v+":"+sender)
	}
	return got, nil
}

// PingerInput starts Pinger.
type PingerInput struct {
	Target string   `json:"target"`
	RunID  string   `json:"run_id,omitempty"`
	Values []string `json:"values"`
}

// Pinger sends one ping signal per value to the target, as its verified starter.
func Pinger(ctx workflow.Context, in PingerInput) error {
	for _, v := range in.Values {
		if err := workflow.SignalExternalWorkflow(ctx, in.Target, in.RunID, PingSignal, v).Get(ctx, nil); err != nil {
			return fmt.Errorf("ping %s: %w", in.Target, err)
		}
		_ = workflow.Sleep(ctx, 10*time.Millisecond)
	}
	return nil
}
