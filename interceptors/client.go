package interceptors

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// ClientOptions configure NewClientInterceptor.
type ClientOptions struct {
	// TokenSource yields the caller's token; its Extra("id_token") must hold an OIDC ID token
	// (request the `openid` scope). Required.
	TokenSource oauth2.TokenSource
	// PublicKey is the worker pool's envelope key (envelope.ParsePublicKey of
	// OIDCFLOW_ENVELOPE_PUBLIC_KEY). Required.
	PublicKey *envelope.PublicKey
	// Namespace is the Temporal namespace the client talks to; it is part of the envelope
	// binding and must match the worker's. Default "default".
	Namespace string
	// OmitRefreshToken keeps the refresh token out of start envelopes. Then the worker cannot
	// refresh the session, and a run outlives the caller's access token only by failing with
	// ReauthRequired. Default false: the refresh token (if any) rides on start only.
	OmitRefreshToken bool
}

// NewClientInterceptor returns a client interceptor that seals the caller's token into the
// header of every StartWorkflow, SignalWithStart, Signal and Update it sends. Queries carry
// nothing: they cannot change state.
func NewClientInterceptor(opts ClientOptions) (interceptor.ClientInterceptor, error) {
	if opts.TokenSource == nil {
		return nil, fmt.Errorf("interceptors: ClientOptions.TokenSource is required")
	}
	if opts.PublicKey == nil {
		return nil, fmt.Errorf("interceptors: ClientOptions.PublicKey is required (set OIDCFLOW_ENVELOPE_PUBLIC_KEY)")
	}
	if opts.Namespace == "" {
		opts.Namespace = client.DefaultNamespace
	}
	return &clientInterceptor{opts: opts}, nil
}

type clientInterceptor struct {
	interceptor.ClientInterceptorBase
	opts ClientOptions
}

func (c *clientInterceptor) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &clientOutbound{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next}, root: c}
}

// sealed names what an envelope is sealed for.
type sealed struct {
	header     string // EnvelopeHeader, or SignalEnvelopeHeader on a signal-with-start
	workflowID string
	runID      string // "" when the caller does not name a run (a start)
	op         string
	name       string // workflow type, update or signal name
	args       []any
	refresh    bool // hand over the refresh token too
}

// seal writes an envelope for s into the outgoing header.
func (c *clientInterceptor) seal(ctx context.Context, s sealed) error {
	tok, err := c.opts.TokenSource.Token()
	if err != nil {
		return fmt.Errorf("interceptors: get the caller's token: %w", err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" {
		return fmt.Errorf("interceptors: the caller's token has no id_token; request the openid scope: %w",
			identity.ErrUnauthenticated)
	}
	digest, err := InputDigest(s.name, s.args...)
	if err != nil {
		return err
	}
	contents := envelope.Contents{IDToken: idToken, AccessToken: tok.AccessToken, Expiry: tok.Expiry,
		RunID: s.runID, InputDigest: digest}
	if s.refresh && !c.opts.OmitRefreshToken {
		contents.RefreshToken = tok.RefreshToken
	}
	b := envelope.Binding{Namespace: c.opts.Namespace, WorkflowID: s.workflowID, Operation: s.op}
	env, err := envelope.Seal(c.opts.PublicKey, b, contents)
	if err != nil {
		return err
	}
	return setHeader(interceptor.Header(ctx), s.header, env)
}

type clientOutbound struct {
	interceptor.ClientOutboundInterceptorBase
	root *clientInterceptor
}

func (c *clientOutbound) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	if err := c.root.seal(ctx, sealed{header: EnvelopeHeader, workflowID: in.Options.ID, op: envelope.OpStart,
		name: in.WorkflowType, args: in.Args, refresh: true}); err != nil {
		return nil, err
	}
	return c.Next.ExecuteWorkflow(ctx, in)
}

// SignalWithStartWorkflow seals twice: for "start" and for the signal, under their own
// header keys, since Temporal gives the one header to both the start and the signal.
func (c *clientOutbound) SignalWithStartWorkflow(ctx context.Context, in *interceptor.ClientSignalWithStartWorkflowInput) (client.WorkflowRun, error) {
	if err := c.root.seal(ctx, sealed{header: EnvelopeHeader, workflowID: in.Options.ID, op: envelope.OpStart,
		name: in.WorkflowType, args: in.Args, refresh: true}); err != nil {
		return nil, err
	}
	if err := c.root.seal(ctx, sealed{header: SignalEnvelopeHeader, workflowID: in.Options.ID,
		op: envelope.SignalOp(in.SignalName), name: in.SignalName, args: []any{in.SignalArg}}); err != nil {
		return nil, err
	}
	return c.Next.SignalWithStartWorkflow(ctx, in)
}

// SignalWorkflow seals for the run the caller names; name one (RunID) so that a copy cannot
// be sent to a later run of the workflow.
func (c *clientOutbound) SignalWorkflow(ctx context.Context, in *interceptor.ClientSignalWorkflowInput) error {
	if err := c.root.seal(ctx, sealed{header: EnvelopeHeader, workflowID: in.WorkflowID, runID: in.RunID,
		op: envelope.SignalOp(in.SignalName), name: in.SignalName, args: []any{in.Arg}}); err != nil {
		return err
	}
	return c.Next.SignalWorkflow(ctx, in)
}

// UpdateWorkflow seals for the run the caller names (UpdateWorkflowOptions.RunID): an update
// bound to its run may wait for a worker up to the pool's MaxBacklog; one that names no run
// must be accepted within its MaxAge.
func (c *clientOutbound) UpdateWorkflow(ctx context.Context, in *interceptor.ClientUpdateWorkflowInput) (client.WorkflowUpdateHandle, error) {
	// Only a re-consent hands the worker a new refresh token.
	if err := c.root.seal(ctx, sealed{header: EnvelopeHeader, workflowID: in.WorkflowID, runID: in.RunID,
		op: envelope.UpdateOp(in.UpdateName), name: in.UpdateName, args: in.Args,
		refresh: in.UpdateName == identity.ReconsentUpdate}); err != nil {
		return nil, err
	}
	return c.Next.UpdateWorkflow(ctx, in)
}
