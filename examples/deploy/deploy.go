// Package deploy is a deploy approval built on oidcflow the way a team would build it in its
// own module, with exported packages only: a person who holds the deployer role asks to
// deploy a version of a service, a second person approves it, and the deploy activity checks
// the requester's role again, on a fresh token, before it deploys.
//
// The worker (./worker) is a pool member from package pool with this workflow registered;
// the client (./deployctl) starts and approves as the person logged in through package login.
package deploy

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/workflows"
)

// Names the worker registers and clients call.
const (
	// WorkflowName is the name Approval is registered under.
	WorkflowName = "DeployApproval"
	// UpdateApprove is the update a second person sends to approve.
	UpdateApprove = "approve"
	// DeployerRole is the role the requester must hold, at the start and again when the
	// deploy runs.
	DeployerRole = "deployer"
	// ApproverRole is the role the approver must hold.
	ApproverRole = "engineer"
	// ApprovalWindow is how long a request waits for its approval.
	ApprovalWindow = 7 * 24 * time.Hour
)

// Error types of this workflow (the identity package's types cover refusals of a person).
const (
	TypeInvalidInput     = "deploy.InvalidInput"
	TypeApprovalMismatch = "deploy.ApprovalMismatch"
	TypeNotApproved      = "deploy.NotApproved"
)

// Request starts Approval.
type Request struct {
	Service string `json:"service"`
	Version string `json:"version"`
	Reason  string `json:"reason,omitempty"`
}

// Approve is the input of UpdateApprove. It names the version it approves: an approval of
// another version than the request's is refused.
type Approve struct {
	Version string `json:"version"`
	Comment string `json:"comment,omitempty"`
}

// Result is what a deploy did.
type Result struct {
	Service     string    `json:"service"`
	Version     string    `json:"version"`
	RequestedBy string    `json:"requested_by"`
	ApprovedBy  string    `json:"approved_by"`
	DeployedBy  string    `json:"deployed_by"` // the requester as the fresh token names them
	DeployedAt  time.Time `json:"deployed_at"`
}

// Approval is the deploy approval workflow; register it as WorkflowName. The requester (the
// verified starter) must hold DeployerRole. Another person who holds ApproverRole approves
// through UpdateApprove within ApprovalWindow; meanwhile the requester's session is kept
// fresh (workflows.AwaitFresh). Then Deploy runs with the requester's identity.
func Approval(ctx workflow.Context, req Request) (Result, error) {
	requester, err := identity.FromWorkflow(ctx)
	if err != nil {
		return Result{}, identity.ApplicationError(err)
	}
	if err := identity.HasRole(DeployerRole).Check(requester); err != nil {
		return Result{}, identity.ApplicationError(err)
	}
	if req.Service == "" || req.Version == "" {
		return Result{}, temporal.NewNonRetryableApplicationError("deploy: service and version are required", TypeInvalidInput, nil)
	}
	var approver *identity.Identity
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateApprove,
		func(ctx workflow.Context, in Approve) (string, error) {
			caller, err := identity.FromWorkflow(ctx) // the approver: the interceptor verified their envelope
			if err != nil {
				return "", identity.ApplicationError(err)
			}
			if caller.Subject == requester.Subject && caller.Issuer == requester.Issuer {
				return "", identity.ApplicationError(fmt.Errorf("deploy: a second person must approve: %w", identity.ErrForbidden))
			}
			if err := identity.HasRole(ApproverRole).Check(caller); err != nil {
				return "", identity.ApplicationError(err)
			}
			if in.Version != req.Version {
				return "", temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("deploy: the request is for version %s, not %s", req.Version, in.Version), TypeApprovalMismatch, nil)
			}
			approver = caller
			return "approved by " + caller.Subject, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, in Approve) error {
			if approver != nil {
				return fmt.Errorf("deploy: already approved by %s", approver.Subject)
			}
			return nil
		}})
	if err != nil {
		return Result{}, err
	}
	approved, err := workflows.AwaitFresh(ctx, ApprovalWindow, func() bool { return approver != nil }, workflows.FreshOptions{})
	if err != nil {
		return Result{}, err
	}
	if !approved {
		return Result{}, temporal.NewNonRetryableApplicationError("deploy: nobody approved within "+ApprovalWindow.String(), TypeNotApproved, nil)
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 5 * time.Minute})
	var a *Activities
	var done DeployResult
	if err := workflow.ExecuteActivity(ctx, a.Deploy, DeployInput{Service: req.Service, Version: req.Version}).Get(ctx, &done); err != nil {
		return Result{}, err
	}
	return Result{Service: req.Service, Version: req.Version, RequestedBy: requester.Subject, ApprovedBy: approver.Subject,
		DeployedBy: done.DeployedBy, DeployedAt: done.DeployedAt}, nil
}

// Activities deploy. A real one would hold a deploy tool's client.
type Activities struct{}

// DeployInput names what to deploy.
type DeployInput struct {
	Service string `json:"service"`
	Version string `json:"version"`
}

// DeployResult says who deployed, and when.
type DeployResult struct {
	DeployedBy string    `json:"deployed_by"`
	DeployedAt time.Time `json:"deployed_at"`
}

// Deploy checks, on the requester's current token (the worker refreshes and verifies it
// before the activity runs), that they still hold DeployerRole, then deploys. A role removed
// at the identity provider since the request fails it with identity.TypeForbidden.
func (a *Activities) Deploy(ctx context.Context, in DeployInput) (DeployResult, error) {
	id, err := identity.Require(ctx, identity.HasRole(DeployerRole))
	if err != nil {
		return DeployResult{}, identity.ApplicationError(err)
	}
	activity.GetLogger(ctx).Info("deploying", "service", in.Service, "version", in.Version)
	return DeployResult{DeployedBy: id.Subject, DeployedAt: time.Now().UTC()}, nil
}
