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

// seal writes an envelope for (workflowID, op) into the outgoing header.
func (c *clientInterceptor) seal(ctx context.Context, workflowID, op string, withRefresh bool) error {
	return c.sealAs(ctx, EnvelopeHeader, workflowID, op, withRefresh)
}

// sealAs is seal under another header key.
func (c *clientInterceptor) sealAs(ctx context.Context, key, workflowID, op string, withRefresh bool) error {
	tok, err := c.opts.TokenSource.Token()
	if err != nil {
		return fmt.Errorf("interceptors: get the caller's token (if the session expired, run `starter login`): %w", err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" {
		return fmt.Errorf("interceptors: the caller's token has no id_token; request the openid scope: %w",
			identity.ErrUnauthenticated)
	}
	contents := envelope.Contents{IDToken: idToken, AccessToken: tok.AccessToken, Expiry: tok.Expiry}
	if withRefresh && !c.opts.OmitRefreshToken {
		contents.RefreshToken = tok.RefreshToken
	}
	b := envelope.Binding{Namespace: c.opts.Namespace, WorkflowID: workflowID, Operation: op}
	sealed, err := envelope.Seal(c.opts.PublicKey, b, contents)
	if err != nil {
		return err
	}
	return setHeader(interceptor.Header(ctx), key, sealed)
}

type clientOutbound struct {
	interceptor.ClientOutboundInterceptorBase
	root *clientInterceptor
}

func (c *clientOutbound) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	if err := c.root.seal(ctx, in.Options.ID, "start", true); err != nil {
		return nil, err
	}
	return c.Next.ExecuteWorkflow(ctx, in)
}

// SignalWithStartWorkflow seals twice: for "start" and for the signal, under their own
// header keys, since Temporal gives the one header to both the start and the signal.
func (c *clientOutbound) SignalWithStartWorkflow(ctx context.Context, in *interceptor.ClientSignalWithStartWorkflowInput) (client.WorkflowRun, error) {
	if err := c.root.seal(ctx, in.Options.ID, "start", true); err != nil {
		return nil, err
	}
	if err := c.root.sealAs(ctx, SignalEnvelopeHeader, in.Options.ID, "signal:"+in.SignalName, false); err != nil {
		return nil, err
	}
	return c.Next.SignalWithStartWorkflow(ctx, in)
}

func (c *clientOutbound) SignalWorkflow(ctx context.Context, in *interceptor.ClientSignalWorkflowInput) error {
	if err := c.root.seal(ctx, in.WorkflowID, "signal:"+in.SignalName, false); err != nil {
		return err
	}
	return c.Next.SignalWorkflow(ctx, in)
}

func (c *clientOutbound) UpdateWorkflow(ctx context.Context, in *interceptor.ClientUpdateWorkflowInput) (client.WorkflowUpdateHandle, error) {
	// Only a re-consent hands the worker a new refresh token.
	if err := c.root.seal(ctx, in.WorkflowID, "update:"+in.UpdateName, in.UpdateName == ReconsentUpdate); err != nil {
		return nil, err
	}
	return c.Next.UpdateWorkflow(ctx, in)
}
