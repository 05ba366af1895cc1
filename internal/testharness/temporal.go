package testharness

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oidcflow/oidcflow/interceptors"
	"github.com/oidcflow/oidcflow/tokenstore/workercreds"
)

// Authorizes reports whether the stack's Temporal frontend wants a bearer token on every
// call (OIDCFLOW_TEMPORAL_AUTH other than none).
func (s *Stack) Authorizes() bool {
	mode := s.env["OIDCFLOW_TEMPORAL_AUTH"]
	return mode != "" && mode != "none"
}

// TemporalOptions are client options for the stack's frontend and namespace that send ts's
// access token as the bearer token, when the frontend authorizes its callers (TLS off:
// the dev frontend is plaintext on loopback), and encode and decode payloads through the
// stack's codec server with it, when the stack's workers encrypt them. A nil ts sends none.
func (s *Stack) TemporalOptions(ts oauth2.TokenSource) client.Options {
	opts := client.Options{HostPort: s.env["TEMPORAL_ADDRESS"], Namespace: s.env["TEMPORAL_NAMESPACE"]}
	if ts == nil {
		return opts
	}
	if s.Authorizes() {
		opts.Credentials = workercreds.TemporalCredentials(ts)
		opts.ConnectionOptions.TLSDisabled = interceptors.IsLoopback(opts.HostPort)
	}
	if s.env["OIDCFLOW_CODEC_ENDPOINT"] != "" {
		if codec, err := s.remoteCodec(ts); err == nil {
			opts.DataConverter = converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), codec)
		}
	}
	return opts
}

// remoteCodec is the stack's codec server, called with ts's access token.
func (s *Stack) remoteCodec(ts oauth2.TokenSource) (converter.PayloadCodec, error) {
	return interceptors.NewRemoteCodec(interceptors.RemoteCodecOptions{
		Endpoint: s.env["OIDCFLOW_CODEC_ENDPOINT"], CAFile: s.env["OIDCFLOW_CODEC_CA_FILE"],
		Namespace: s.env["TEMPORAL_NAMESPACE"], TokenSource: ts,
	})
}

// ClientCredentials is the client credentials configuration of a confidential client of
// the stack (worker, operator), asking for the Temporal frontend's audience.
func (s *Stack) ClientCredentials(clientID, secret string) *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID: clientID, ClientSecret: secret, TokenURL: s.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInHeader,
		EndpointParams: url.Values{"audience": {s.env["OIDCFLOW_TEMPORAL_AUDIENCE"]}},
	}
}

var (
	operatorMu sync.Mutex
	operatorTS = map[*Stack]oauth2.TokenSource{}
)

// OperatorTokenSource yields the operator client's tokens: Temporal admin, the tests' own
// authority for what no person or worker may do (terminate, reset, delete schedules of
// other queues).
func (s *Stack) OperatorTokenSource() oauth2.TokenSource {
	operatorMu.Lock()
	defer operatorMu.Unlock()
	if ts, ok := operatorTS[s]; ok {
		return ts
	}
	cfg := s.ClientCredentials(s.env["OIDCFLOW_OPERATOR_CLIENT_ID"], s.env["OIDCFLOW_OPERATOR_CLIENT_SECRET"])
	ts := oauth2.ReuseTokenSource(nil, cfg.TokenSource(context.Background()))
	operatorTS[s] = ts
	return ts
}

// WorkerTokenSource yields the worker client's tokens (Temporal worker and write).
func (s *Stack) WorkerTokenSource() oauth2.TokenSource {
	cfg := s.ClientCredentials(s.env["OIDCFLOW_WORKER_CLIENT_ID"], s.env["OIDCFLOW_WORKER_CLIENT_SECRET"])
	return oauth2.ReuseTokenSource(nil, cfg.TokenSource(context.Background()))
}

// OperatorClient dials the stack's frontend as the operator (Temporal admin, no identity):
// for the tests' own reads, cleanup and checks.
func (s *Stack) OperatorClient(t testing.TB) client.Client {
	t.Helper()
	return s.DialTemporal(t, s.TemporalOptions(s.OperatorTokenSource()))
}

// DialTemporal dials opts and closes the client when t ends.
func (s *Stack) DialTemporal(t testing.TB, opts client.Options) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		t.Fatalf("testharness: dial Temporal: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// DataConverter reads the stack's payloads: through its codec server as the operator when
// the stack's workers encrypt them (OIDCFLOW_CODEC_ENDPOINT), else the SDK's converter.
func (s *Stack) DataConverter(t testing.TB) converter.DataConverter {
	t.Helper()
	if s.env["OIDCFLOW_CODEC_ENDPOINT"] == "" {
		return converter.GetDefaultDataConverter()
	}
	codec, err := s.remoteCodec(s.OperatorTokenSource())
	if err != nil {
		t.Fatalf("testharness: codec: %v", err)
	}
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), codec)
}
