package interceptors

import (
	"context"
	"fmt"
	"net"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/interceptors/envelope"
	"github.com/oidcflow/oidcflow/tokenstore/workercreds"
)

// DialOptions configure Dial.
type DialOptions struct {
	// Client are the Temporal client options (HostPort, Namespace, Logger, ...). Default:
	// the SDK's defaults (localhost:7233, namespace "default").
	Client client.Options
	// TokenSource yields the caller's token, with an ID token in Extra("id_token"). Required.
	TokenSource oauth2.TokenSource
	// PublicKey is the worker pool's envelope key, in text form (the value of
	// OIDCFLOW_ENVELOPE_PUBLIC_KEY). Required.
	PublicKey string
	// OmitRefreshToken: see ClientOptions.OmitRefreshToken. Default false.
	OmitRefreshToken bool
	// Bearer sends the caller's current access token as the bearer token of every call, for
	// a Temporal frontend that authorizes its callers (its audience must be in the token).
	// Like every SDK credential it turns TLS on, except towards a loopback address, which
	// is plaintext in the dev stack. Default false: Client.Credentials as given.
	Bearer bool
	// CodecEndpoint is the https URL of the pool's codec server (OIDCFLOW_CODEC_ENDPOINT):
	// when set, the client's payloads are encoded and decoded there with the caller's access
	// token (NewRemoteCodec), as the pool encrypts them (pool.Config.EncryptPayloads). The
	// data converter of Client (default: the SDK's) is wrapped. Default none.
	CodecEndpoint string
	// CodecCAFile is the PEM CA file the codec server's certificate is checked against
	// (OIDCFLOW_CODEC_CA_FILE). Default: the system's roots.
	CodecCAFile string
}

// Dial connects to Temporal with a client that carries the caller's identity, sealed, on
// every start, signal, signal-with-start and update. Starting an identity-carrying
// workflow is then an ordinary ExecuteWorkflow:
//
//	c, err := interceptors.Dial(ctx, interceptors.DialOptions{
//		Client:      client.Options{HostPort: "127.0.0.1:7233", Namespace: "oidcflow"},
//		TokenSource: tokens, // must not refresh a refresh token it handed over: see login.Dial
//		PublicKey:   os.Getenv("OIDCFLOW_ENVELOPE_PUBLIC_KEY"),
//	})
//	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue},
//		workflows.AccessRequestWorkflow, input)
func Dial(ctx context.Context, opts DialOptions) (client.Client, error) {
	pub, err := envelope.ParsePublicKey(opts.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("interceptors: OIDCFLOW_ENVELOPE_PUBLIC_KEY: %w", err)
	}
	ns := opts.Client.Namespace
	if ns == "" {
		ns = client.DefaultNamespace
	}
	ci, err := NewClientInterceptor(ClientOptions{
		TokenSource: opts.TokenSource, PublicKey: pub, Namespace: ns, OmitRefreshToken: opts.OmitRefreshToken,
	})
	if err != nil {
		return nil, err
	}
	co := opts.Client
	co.Interceptors = append([]interceptor.ClientInterceptor{ci}, co.Interceptors...)
	if opts.Bearer {
		co.Credentials = workercreds.TemporalCredentials(opts.TokenSource)
		if IsLoopback(co.HostPort) {
			co.ConnectionOptions.TLSDisabled = true
		}
	}
	if opts.CodecEndpoint != "" {
		codec, err := NewRemoteCodec(RemoteCodecOptions{
			Endpoint: opts.CodecEndpoint, CAFile: opts.CodecCAFile, Namespace: ns, TokenSource: opts.TokenSource,
		})
		if err != nil {
			return nil, err
		}
		parent := co.DataConverter
		if parent == nil {
			parent = converter.GetDefaultDataConverter()
		}
		co.DataConverter = converter.NewCodecDataConverter(parent, codec)
	}
	return client.DialContext(ctx, co)
}

// IsLoopback reports whether hostPort names a loopback host (localhost or a loopback IP).
func IsLoopback(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		host = hostPort
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
