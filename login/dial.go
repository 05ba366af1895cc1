package login

import (
	"context"
	"errors"
	"log/slog"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/interceptors"
)

// DialOptions configure Dial.
type DialOptions struct {
	// Client are the Temporal client options (HostPort, Namespace, Logger, ...). Default:
	// the SDK's defaults (localhost:7233, namespace "default"); the namespace must be the
	// worker pool's.
	Client client.Options
	// Source is the person's login (Open or Login). Required.
	Source *TokenSource
	// PublicKey is the worker pool's envelope public key, text form with key id (the pool's
	// OIDCFLOW_ENVELOPE_PUBLIC_KEY). Required.
	PublicKey string
	// OmitRefreshToken keeps the refresh token out of start envelopes: the login stays this
	// program's, and runs outlive the access token only by failing with ReauthRequired.
	// Default false: starts hand the refresh token to the pool.
	OmitRefreshToken bool
	// Bearer: see interceptors.DialOptions.Bearer. Default false.
	Bearer bool
	// CodecEndpoint and CodecCAFile: see interceptors.DialOptions (OIDCFLOW_CODEC_ENDPOINT,
	// OIDCFLOW_CODEC_CA_FILE). Default none: payloads are sent as they are.
	CodecEndpoint, CodecCAFile string
	// OnHandOverError receives a failure to record a hand-over in the cache (the start
	// itself went through). Default: a warning through slog.Default().
	OnHandOverError func(error)
}

// Dial connects to Temporal with a client that seals the person's identity (interceptors.Dial)
// on every start, signal, signal-with-start and update, and records in the cache when a start
// or a re-consent (identity.ReconsentUpdate) handed the refresh token to the worker pool
// (Session.HandedOver; see the package documentation). The hand-over is recorded once the
// server took the request, or might have (a timeout, a cancelled call): a second holder of a
// rotating refresh token costs the whole token family, a needless record only a new login.
// A request the server refused (invalid, already started, not permitted) hands nothing over.
func Dial(ctx context.Context, opts DialOptions) (client.Client, error) {
	if opts.Source == nil {
		return nil, errors.New("login: DialOptions.Source is required")
	}
	co := opts.Client
	if !opts.OmitRefreshToken {
		onErr := opts.OnHandOverError
		if onErr == nil {
			onErr = func(err error) {
				slog.Default().Warn("login: could not record the refresh token's hand-over", "err", err)
			}
		}
		// interceptors.Dial puts its sealing interceptor first: this one sees each request
		// once sealed, right before it is sent.
		co.Interceptors = append([]interceptor.ClientInterceptor{&handOver{src: opts.Source, onErr: onErr}}, co.Interceptors...)
	}
	return interceptors.Dial(ctx, interceptors.DialOptions{
		Client: co, TokenSource: opts.Source, PublicKey: opts.PublicKey, OmitRefreshToken: opts.OmitRefreshToken,
		Bearer:        opts.Bearer,
		CodecEndpoint: opts.CodecEndpoint, CodecCAFile: opts.CodecCAFile,
	})
}

// handOver records the refresh token's hand-over after the requests that carry it.
type handOver struct {
	interceptor.ClientInterceptorBase
	src   *TokenSource
	onErr func(error)
}

func (h *handOver) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &handOverOutbound{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next}, root: h}
}

// record marks the hand-over unless err says the server refused the request.
func (h *handOver) record(err error) {
	if err != nil && !mayHaveArrived(err) {
		return
	}
	if herr := h.src.HandOver(); herr != nil {
		h.onErr(herr)
	}
}

// mayHaveArrived reports whether a request that failed with err may still have been taken by
// the server: everything but the answers by which the server refused it.
func mayHaveArrived(err error) bool {
	var (
		invalid    *serviceerror.InvalidArgument
		started    *serviceerror.WorkflowExecutionAlreadyStarted
		exists     *serviceerror.AlreadyExists
		denied     *serviceerror.PermissionDenied
		notFound   *serviceerror.NotFound
		noNS       *serviceerror.NamespaceNotFound
		inactiveNS *serviceerror.NamespaceNotActive
		failed     *serviceerror.FailedPrecondition
		exhausted  *serviceerror.ResourceExhausted
		unimpl     *serviceerror.Unimplemented
	)
	refused := errors.As(err, &invalid) || errors.As(err, &started) || errors.As(err, &exists) ||
		errors.As(err, &denied) || errors.As(err, &notFound) || errors.As(err, &noNS) || errors.As(err, &inactiveNS) ||
		errors.As(err, &failed) || errors.As(err, &exhausted) || errors.As(err, &unimpl)
	return !refused
}

type handOverOutbound struct {
	interceptor.ClientOutboundInterceptorBase
	root *handOver
}

func (o *handOverOutbound) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	run, err := o.Next.ExecuteWorkflow(ctx, in)
	o.root.record(err)
	return run, err
}

func (o *handOverOutbound) SignalWithStartWorkflow(ctx context.Context, in *interceptor.ClientSignalWithStartWorkflowInput) (client.WorkflowRun, error) {
	run, err := o.Next.SignalWithStartWorkflow(ctx, in)
	o.root.record(err)
	return run, err
}

func (o *handOverOutbound) UpdateWorkflow(ctx context.Context, in *interceptor.ClientUpdateWorkflowInput) (client.WorkflowUpdateHandle, error) {
	h, err := o.Next.UpdateWorkflow(ctx, in)
	if in.UpdateName == identity.ReconsentUpdate {
		o.root.record(err)
	}
	return h, err
}
