package interceptors

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"golang.org/x/oauth2"
)

// codecTimeout bounds one request to the codec server.
const codecTimeout = 30 * time.Second

// RemoteCodecOptions configure NewRemoteCodec.
type RemoteCodecOptions struct {
	// Endpoint is the codec server's base URL (https; the worker's codec-server command),
	// without /encode or /decode. Required.
	Endpoint string
	// CAFile is a PEM file of the CA that signed the server's certificate. Default: the
	// system's roots.
	CAFile string
	// Namespace is sent as X-Namespace; the server serves only its pool's namespace.
	// Required.
	Namespace string
	// TokenSource yields the caller's access token, sent as Authorization: Bearer on every
	// request (the server needs <namespace>:write to encode, :read to decode). Required.
	TokenSource oauth2.TokenSource
}

// NewRemoteCodec returns a converter.PayloadCodec that encodes and decodes through a codec
// server (Temporal's remote codec protocol) as the caller: what a starter uses when the pool
// encrypts payloads (pool.Config.EncryptPayloads), since starters have no Vault access. It
// refuses an endpoint that is not https, as the access token goes with every request.
func NewRemoteCodec(opts RemoteCodecOptions) (converter.PayloadCodec, error) {
	u, err := url.Parse(opts.Endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("interceptors: codec endpoint %q is not an https URL (OIDCFLOW_CODEC_ENDPOINT); the access token must not travel in clear", opts.Endpoint)
	}
	if opts.TokenSource == nil {
		return nil, fmt.Errorf("interceptors: RemoteCodecOptions.TokenSource is required")
	}
	if opts.Namespace == "" {
		return nil, fmt.Errorf("interceptors: RemoteCodecOptions.Namespace is required")
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("interceptors: codec CA file (OIDCFLOW_CODEC_CA_FILE): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("interceptors: codec CA file %s holds no PEM certificate (OIDCFLOW_CODEC_CA_FILE)", opts.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	ts := opts.TokenSource
	return skipEmpty{converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint: opts.Endpoint,
		Client:   http.Client{Transport: transport, Timeout: codecTimeout},
		ModifyRequest: func(req *http.Request) error {
			tok, err := ts.Token()
			if err != nil {
				return fmt.Errorf("interceptors: access token for the codec server: %w", err)
			}
			if tok.AccessToken == "" {
				return fmt.Errorf("interceptors: the login has no access token for the codec server")
			}
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			req.Header.Set("X-Namespace", opts.Namespace)
			return nil
		},
	})}, nil
}

// skipEmpty answers a call without payloads itself: the SDK encodes the empty argument list
// of every start that takes none, and a round trip to the codec server would change nothing.
type skipEmpty struct{ converter.PayloadCodec }

func (c skipEmpty) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if len(payloads) == 0 {
		return payloads, nil
	}
	return c.PayloadCodec.Encode(payloads)
}

func (c skipEmpty) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if len(payloads) == 0 {
		return payloads, nil
	}
	return c.PayloadCodec.Decode(payloads)
}
