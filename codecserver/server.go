// Package codecserver serves a payload codec to the Temporal Web UI and to starters over
// Temporal's remote codec protocol: POST {endpoint}/decode and {endpoint}/encode with the
// JSON form of temporal.api.common.v1.Payloads ({"payloads": [...]}) and the namespace in
// X-Namespace. Every request needs a person's access token (Authorization: Bearer, as the
// UI sends it with codec.passAccessToken), which is verified and checked against a Policy
// for that namespace: by default decode needs <namespace>:read and encode
// <namespace>:write, or a role above (read < write < worker < admin), as the top-level
// permissions claim of Temporal's JWT claim mapper holds them.
//
// The ID token the UI adds in Authorization-Extras is allowed through CORS but not used:
// authorization comes from the access token alone. Tokens are never logged. The server
// does not terminate TLS itself; the UI sends tokens only to https endpoints, so serve it
// with http.Server.ServeTLS (see the worker's codec-server command).
package codecserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/payloadcodec"
)

// Defaults of Options.
const (
	// DefaultMaxBodySize caps a request body: the UI decodes a whole history page at once,
	// and Temporal's own blob limit is 2 MiB per payload.
	DefaultMaxBodySize = 8 << 20
	// DefaultMaxAge is how long browsers may cache a CORS preflight answer (seconds).
	DefaultMaxAge = 600
)

// Request headers of the remote codec protocol.
const (
	HeaderNamespace = "X-Namespace"
	// HeaderAuthorizationExtras carries the UI's ID token; allowed, never read.
	HeaderAuthorizationExtras = "Authorization-Extras"
)

// Operations a Policy is chosen for.
const (
	OpDecode = "decode"
	OpEncode = "encode"
)

// Roles of the permissions claim, lowest first: each implies the ones before it.
var Roles = []string{"read", "write", "worker", "admin"}

// AccessTokenVerifier verifies a bearer access token; *identity.Verifier is one (with
// VerifierOptions.AccessTokenAudience set to the audience Temporal's tokens carry).
type AccessTokenVerifier interface {
	VerifyAccessToken(ctx context.Context, raw string) (*identity.Identity, error)
}

// ContextCodec is a payload codec whose Transit calls follow the request's context
// (*payloadcodec.Codec is one). Other converter.PayloadCodecs work too.
type ContextCodec interface {
	EncodeContext(ctx context.Context, payloads []*commonpb.Payload) ([]*commonpb.Payload, error)
	DecodeContext(ctx context.Context, payloads []*commonpb.Payload) ([]*commonpb.Payload, error)
}

// Options configure New.
type Options struct {
	// Codec encodes and decodes. Required.
	Codec converter.PayloadCodec
	// Verifier verifies the bearer access token. Required.
	Verifier AccessTokenVerifier
	// Namespaces the server serves (X-Namespace must be one). Payloads are not bound to a
	// namespace, so a permission in any other namespace must not open them. Required.
	Namespaces []string
	// Policy returns what an identity needs for op (OpDecode, OpEncode) in namespace.
	// Default DefaultPolicy.
	Policy func(namespace, op string) identity.Policy
	// Origins are the browser origins allowed through CORS (the Temporal Web UI's, e.g.
	// "http://127.0.0.1:8233"), compared exactly. A request with an Origin header not
	// listed is refused. Default none: only non-browser callers (starters).
	Origins []string
	// MaxBodySize caps a request body in bytes. Default DefaultMaxBodySize.
	MaxBodySize int64
	// Logger receives one record per request (subject, namespace, op, status; never a
	// token). Default slog.Default().
	Logger *slog.Logger
}

// DefaultPolicy needs <namespace>:<role> for the lowest role op needs (read to decode,
// write to encode) or any role above it.
func DefaultPolicy(namespace, op string) identity.Policy {
	min := "read"
	if op == OpEncode {
		min = "write"
	}
	return RoleAtLeast(namespace, min)
}

// RoleAtLeast needs permission <namespace>:<role> for role or any role after it in Roles.
// An unknown role denies everyone.
func RoleAtLeast(namespace, role string) identity.Policy {
	i := slices.Index(Roles, role)
	if i < 0 {
		return identity.Any()
	}
	var ps []identity.Policy
	for _, r := range Roles[i:] {
		ps = append(ps, identity.HasPermission(namespace+":"+r))
	}
	return identity.Any(ps...)
}

// Server is the codec http.Handler.
type Server struct {
	codec      converter.PayloadCodec
	verifier   AccessTokenVerifier
	namespaces []string
	policy     func(namespace, op string) identity.Policy
	origins    []string
	maxBody    int64
	log        *slog.Logger
}

// New returns a Server.
func New(opts Options) (*Server, error) {
	switch {
	case opts.Codec == nil:
		return nil, errors.New("codecserver: Options.Codec is required")
	case opts.Verifier == nil:
		return nil, errors.New("codecserver: Options.Verifier is required")
	case len(opts.Namespaces) == 0:
		return nil, errors.New("codecserver: Options.Namespaces is required (e.g. TEMPORAL_NAMESPACE)")
	}
	for _, o := range opts.Origins {
		if o == "*" || o == "" || strings.HasSuffix(o, "/") || !strings.Contains(o, "://") {
			return nil, fmt.Errorf("codecserver: origin %q is not scheme://host[:port] (no wildcard, no trailing slash)", o)
		}
	}
	s := &Server{
		codec: opts.Codec, verifier: opts.Verifier, namespaces: slices.Clone(opts.Namespaces),
		policy: opts.Policy, origins: slices.Clone(opts.Origins), maxBody: opts.MaxBodySize, log: opts.Logger,
	}
	if s.policy == nil {
		s.policy = DefaultPolicy
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodySize
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// ServeHTTP implements the protocol: CORS preflight, then method, path, namespace, token,
// policy, body, codec.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin != "" {
		w.Header().Add("Vary", "Origin")
		if !slices.Contains(s.origins, origin) {
			s.fail(w, r, "", "", http.StatusForbidden, "origin not allowed", nil)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
	}
	if r.Method == http.MethodOptions {
		if origin == "" {
			w.Header().Set("Allow", "POST, OPTIONS")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Add("Vary", "Access-Control-Request-Method")
		w.Header().Add("Vary", "Access-Control-Request-Headers")
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, "+HeaderAuthorizationExtras+", Content-Type, "+HeaderNamespace)
		w.Header().Set("Access-Control-Max-Age", strconv.Itoa(DefaultMaxAge))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var op string
	switch {
	case strings.HasSuffix(r.URL.Path, "/"+OpDecode):
		op = OpDecode
	case strings.HasSuffix(r.URL.Path, "/"+OpEncode):
		op = OpEncode
	default:
		s.fail(w, r, "", "", http.StatusNotFound, "not found: POST .../decode or .../encode", nil)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		s.fail(w, r, op, "", http.StatusMethodNotAllowed, "use POST", nil)
		return
	}
	ns := r.Header.Get(HeaderNamespace)
	if ns == "" {
		s.fail(w, r, op, "", http.StatusBadRequest, "the "+HeaderNamespace+" header is required", nil)
		return
	}
	if !slices.Contains(s.namespaces, ns) {
		s.fail(w, r, op, "", http.StatusForbidden, "this codec does not serve namespace "+strconv.Quote(ns), nil)
		return
	}
	raw, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="oidcflow-codec"`)
		s.fail(w, r, op, "", http.StatusUnauthorized, "an access token is required (Authorization: Bearer; in the Web UI set codec.passAccessToken)", nil)
		return
	}
	id, err := s.verifier.VerifyAccessToken(r.Context(), raw)
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, identity.ErrProviderUnavailable) || errors.Is(err, identity.ErrKeyNotYetKnown) {
			status = http.StatusServiceUnavailable
		} else {
			// RFC 6750 section 3.1; the description is the verifier's, which names no token.
			w.Header().Set("WWW-Authenticate", `Bearer realm="oidcflow-codec", error="invalid_token"`)
		}
		s.fail(w, r, op, "", status, "access token refused", err)
		return
	}
	if err := s.policy(ns, op).Check(id); err != nil {
		s.fail(w, r, op, id.Subject, http.StatusForbidden, "not allowed to "+op+" in namespace "+ns, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, op, id.Subject, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.maxBody), nil)
			return
		}
		s.fail(w, r, op, id.Subject, http.StatusBadRequest, "cannot read the body", err)
		return
	}
	var in commonpb.Payloads
	if err := protojson.Unmarshal(body, &in); err != nil {
		s.fail(w, r, op, id.Subject, http.StatusBadRequest, `body is not {"payloads": [...]}`, nil)
		return
	}
	out, err := s.run(r.Context(), op, in.GetPayloads())
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, payloadcodec.ErrTransit) {
			status = http.StatusBadGateway
		}
		s.fail(w, r, op, id.Subject, status, op+" failed", err)
		return
	}
	resp, err := protojson.Marshal(&commonpb.Payloads{Payloads: out})
	if err != nil {
		s.fail(w, r, op, id.Subject, http.StatusInternalServerError, "cannot encode the answer", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(resp)
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "codecserver: "+op,
		slog.String("namespace", ns), slog.String("subject", id.Subject), slog.Int("payloads", len(out)))
}

func (s *Server) run(ctx context.Context, op string, in []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if cc, ok := s.codec.(ContextCodec); ok {
		if op == OpEncode {
			return cc.EncodeContext(ctx, in)
		}
		return cc.DecodeContext(ctx, in)
	}
	if op == OpEncode {
		return s.codec.Encode(in)
	}
	return s.codec.Decode(in)
}

// fail answers with status and a one-line message (msg, then err's text, which never holds
// a token or payload contents), and logs it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, op, subject string, status int, msg string, err error) {
	text := msg
	if err != nil {
		text += ": " + err.Error()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "codecserver: "+text, status)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(r.Context(), level, "codecserver: refused",
		slog.String("op", op), slog.String("namespace", r.Header.Get(HeaderNamespace)),
		slog.String("subject", subject), slog.Int("status", status), slog.String("reason", text))
}

// bearer returns the token of an "Authorization: Bearer <token>" header (RFC 6750 section
// 2.1; the scheme is case-insensitive).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
