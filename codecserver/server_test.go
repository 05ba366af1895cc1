package codecserver

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/payloadcodec"
)

const (
	issuer   = "https://idp.example"
	audience = "temporal"
	ns       = "oidcflow"
	uiOrigin = "http://127.0.0.1:8233"
)

// signer makes JWT access tokens with a generated key, as Hydra would (typ JWT).
type signer struct {
	key *ecdsa.PrivateKey
	kid string
}

func newSigner(t *testing.T) *signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: k, kid: "k1"}
}

func (s *signer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.kid)
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	base := map[string]any{
		"iss": issuer, "sub": "alice", "aud": []string{audience}, "client_id": "temporal-ui",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range claims {
		if v == nil {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	b, _ := json.Marshal(base)
	jws, err := sg.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// fakeTransit is an in-memory Transit: the data key is wrapped as "vault:v1:<hex index>".
type fakeTransit struct {
	keys [][]byte
	down bool
}

func (f *fakeTransit) DataKey(context.Context, string) (*payloadcodec.DataKey, error) {
	if f.down {
		return nil, payloadcodec.ErrTransit
	}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	f.keys = append(f.keys, k)
	return &payloadcodec.DataKey{Plaintext: bytes.Clone(k), Wrapped: "vault:v1:" + string(rune('A'+len(f.keys)-1)), Version: 1}, nil
}

func (f *fakeTransit) Unwrap(_ context.Context, _, wrapped string) ([]byte, error) {
	if f.down {
		return nil, payloadcodec.ErrTransit
	}
	i := int(wrapped[len(wrapped)-1] - 'A')
	if i < 0 || i >= len(f.keys) {
		return nil, payloadcodec.ErrTampered
	}
	return bytes.Clone(f.keys[i]), nil
}

type rig struct {
	srv     *Server
	sign    *signer
	codec   *payloadcodec.Codec
	transit *fakeTransit
	logs    *bytes.Buffer
	sealed  *commonpb.Payload
	plain   *commonpb.Payload
}

func newRig(t *testing.T, mod func(*Options)) *rig {
	t.Helper()
	sg := newSigner(t)
	v, err := identity.NewVerifier(context.Background(), identity.VerifierOptions{
		Issuer: issuer, ClientID: "starter", AccessTokenAudience: audience,
		AccessTokenTypes: []string{"at+jwt", "JWT"},
		StaticKeys:       map[string]crypto.PublicKey{sg.kid: sg.key.Public()},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := &fakeTransit{}
	c, err := payloadcodec.New(payloadcodec.Options{Transit: tr})
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	o := Options{Codec: c, Verifier: v, Namespaces: []string{ns}, Origins: []string{uiOrigin},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := converter.GetDefaultDataConverter().ToPayload(map[string]string{"email": "alice@example.com"})
	sealed, err := c.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{srv: s, sign: sg, codec: c, transit: tr, logs: logs, sealed: sealed[0], plain: plain}
}

func body(t *testing.T, ps ...*commonpb.Payload) string {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func perms(p ...string) map[string]any { return map[string]any{"permissions": p} }

func TestServer(t *testing.T) {
	r := newRig(t, nil)
	reader := r.sign.token(t, perms("oidcflow:read"))
	writer := r.sign.token(t, perms("oidcflow:write"))
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		token   string // "" for none
		body    string
		status  int
		want    string // in the body
	}{
		{name: "decode as reader", path: "/decode", token: reader, status: 200, want: b64(`{"email":"alice@example.com"}`)},
		{name: "decode as writer", path: "/decode", token: writer, status: 200, want: b64(`{"email":"alice@example.com"}`)},
		{name: "decode as worker", path: "/decode", token: r.sign.token(t, perms("oidcflow:worker")), status: 200},
		{name: "decode as admin", path: "/decode", token: r.sign.token(t, perms("oidcflow:admin")), status: 200},
		{name: "decode under a prefix", path: "/codec/decode", token: reader, status: 200},
		{name: "bearer scheme in lower case", path: "/decode", headers: map[string]string{"Authorization": "bearer " + reader}, status: 200},
		{name: "decode without permission", path: "/decode", token: r.sign.token(t, perms("other:admin")), status: 403, want: "needs any of"},
		{name: "decode with no permissions claim", path: "/decode", token: r.sign.token(t, nil), status: 403},
		{name: "decode with temporal-system only", path: "/decode", token: r.sign.token(t, perms("temporal-system:read")), status: 403},
		{name: "encode as reader", path: "/encode", token: reader, status: 403},
		{name: "encode as writer", path: "/encode", token: writer, status: 200, want: b64(payloadcodec.EncodingEncrypted)},
		{name: "no token", path: "/decode", status: 401},
		{name: "basic auth", path: "/decode", headers: map[string]string{"Authorization": "Basic YWxpY2U6c2VjcmV0"}, status: 401},
		{name: "empty bearer", path: "/decode", headers: map[string]string{"Authorization": "Bearer "}, status: 401},
		{name: "garbage token", path: "/decode", token: "not-a-jwt", status: 401},
		{name: "wrong audience", path: "/decode", token: r.sign.token(t, map[string]any{"aud": []string{"other"}, "permissions": []string{"oidcflow:admin"}}), status: 401, want: "AccessTokenAudience"},
		{name: "expired", path: "/decode", token: r.sign.token(t, map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix(), "permissions": []string{"oidcflow:admin"}}), status: 401, want: "expired"},
		{name: "other issuer", path: "/decode", token: r.sign.token(t, map[string]any{"iss": "https://evil.example", "permissions": []string{"oidcflow:admin"}}), status: 401},
		{name: "signed by another key", path: "/decode", token: newSigner(t).token(t, perms("oidcflow:admin")), status: 401},
		{name: "no namespace", path: "/decode", token: reader, headers: map[string]string{HeaderNamespace: ""}, status: 400},
		{name: "namespace not served", path: "/decode", token: r.sign.token(t, perms("other:admin")), headers: map[string]string{HeaderNamespace: "other"}, status: 403, want: "does not serve"},
		{name: "GET", method: http.MethodGet, path: "/decode", token: reader, status: 405},
		{name: "unknown path", path: "/metrics", token: reader, status: 404},
		{name: "not JSON", path: "/decode", token: reader, body: "payloads", status: 400},
		{name: "tampered payload", path: "/decode", token: reader, body: tampered(t, r.sealed), status: 400, want: "failed authentication"},
		{name: "origin not allowed", path: "/decode", token: reader, headers: map[string]string{"Origin": "https://evil.example"}, status: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			b := tc.body
			if b == "" {
				b = body(t, r.sealed)
				if strings.HasSuffix(tc.path, "encode") {
					b = body(t, r.plain)
				}
			}
			req := httptest.NewRequest(method, tc.path, strings.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(HeaderNamespace, ns)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			r.srv.ServeHTTP(rec, req)
			got, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, got)
			}
			if !strings.Contains(string(got), tc.want) {
				t.Errorf("body %s lacks %q", got, tc.want)
			}
			if tc.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tc.token != "" && (strings.Contains(r.logs.String(), tc.token) || strings.Contains(string(got), tc.token)) {
				t.Error("the token appears in the logs or the answer")
			}
		})
	}
}

func tampered(t *testing.T, p *commonpb.Payload) string {
	b := []byte(body(t, p))
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	pl := m["payloads"].([]any)[0].(map[string]any)
	d := []byte(pl["data"].(string))
	if d[10] == 'A' {
		d[10] = 'B'
	} else {
		d[10] = 'A'
	}
	pl["data"] = string(d)
	out, _ := json.Marshal(m)
	return string(out)
}

func TestRoundTripThroughHTTP(t *testing.T) {
	r := newRig(t, nil)
	ts := httptest.NewServer(r.srv)
	defer ts.Close()
	tok := r.sign.token(t, perms("oidcflow:write"))
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint: ts.URL,
		ModifyRequest: func(req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set(HeaderNamespace, ns)
			return nil
		},
	})
	enc, err := remote.Encode([]*commonpb.Payload{r.plain})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc[0].GetData(), []byte("alice")) {
		t.Fatal("not encrypted")
	}
	// The worker's own codec opens what the server sealed.
	dec, err := r.codec.Decode(enc)
	if err != nil || !bytes.Equal(dec[0].GetData(), r.plain.GetData()) {
		t.Fatalf("decoded %v, %v", dec, err)
	}
	back, err := remote.Decode(enc)
	if err != nil || !bytes.Equal(back[0].GetData(), r.plain.GetData()) {
		t.Fatalf("remote decode %v, %v", back, err)
	}
}

func TestCORS(t *testing.T) {
	r := newRig(t, nil)
	pre := httptest.NewRequest(http.MethodOptions, "/decode", nil)
	pre.Header.Set("Origin", uiOrigin)
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization,authorization-extras,content-type,x-namespace")
	rec := httptest.NewRecorder()
	r.srv.ServeHTTP(rec, pre)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("preflight status %d", rec.Code)
	}
	h := rec.Header()
	if h.Get("Access-Control-Allow-Origin") != uiOrigin || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight headers %v", h)
	}
	allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
	for _, want := range []string{"authorization", "authorization-extras", "content-type", "x-namespace"} {
		if !strings.Contains(allowed, want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, want)
		}
	}
	// A preflight from another origin gets no CORS grant.
	pre.Header.Set("Origin", "https://evil.example")
	rec = httptest.NewRecorder()
	r.srv.ServeHTTP(rec, pre)
	if rec.Code != http.StatusForbidden || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight: %d %v", rec.Code, rec.Header())
	}
	// The actual request from the UI carries the CORS answer.
	req := httptest.NewRequest(http.MethodPost, "/decode", strings.NewReader(body(t, r.sealed)))
	req.Header.Set("Origin", uiOrigin)
	req.Header.Set(HeaderNamespace, ns)
	req.Header.Set("Authorization", "Bearer "+r.sign.token(t, perms("oidcflow:read")))
	req.Header.Set(HeaderAuthorizationExtras, "an-id-token")
	rec = httptest.NewRecorder()
	r.srv.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("Access-Control-Allow-Origin") != uiOrigin {
		t.Errorf("UI request: %d %v", rec.Code, rec.Header())
	}
	// Refusals carry it too, so the UI can show why.
	req2 := httptest.NewRequest(http.MethodPost, "/decode", strings.NewReader("{}"))
	req2.Header.Set("Origin", uiOrigin)
	req2.Header.Set(HeaderNamespace, ns)
	rec = httptest.NewRecorder()
	r.srv.ServeHTTP(rec, req2)
	if rec.Code != 401 || rec.Header().Get("Access-Control-Allow-Origin") != uiOrigin {
		t.Errorf("401 to the UI: %d %v", rec.Code, rec.Header())
	}
}

func TestBodyCap(t *testing.T) {
	r := newRig(t, func(o *Options) { o.MaxBodySize = 1024 })
	big := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("binary/plain")}, Data: make([]byte, 4096)}
	req := httptest.NewRequest(http.MethodPost, "/encode", strings.NewReader(body(t, big)))
	req.Header.Set(HeaderNamespace, ns)
	req.Header.Set("Authorization", "Bearer "+r.sign.token(t, perms("oidcflow:write")))
	rec := httptest.NewRecorder()
	r.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", rec.Code)
	}
}

func TestTransitDown(t *testing.T) {
	r := newRig(t, nil)
	r.transit.down = true
	r.codec.Rotate()
	req := httptest.NewRequest(http.MethodPost, "/encode", strings.NewReader(body(t, r.plain)))
	req.Header.Set(HeaderNamespace, ns)
	req.Header.Set("Authorization", "Bearer "+r.sign.token(t, perms("oidcflow:write")))
	rec := httptest.NewRecorder()
	r.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadGateway {
		t.Errorf("status %d, want 502", rec.Code)
	}
}

func TestCustomPolicy(t *testing.T) {
	r := newRig(t, func(o *Options) {
		o.Policy = func(namespace, op string) identity.Policy {
			if op == OpDecode {
				return identity.HasPermission(namespace + ":admin")
			}
			return identity.Any()
		}
	})
	req := httptest.NewRequest(http.MethodPost, "/decode", strings.NewReader(body(t, r.sealed)))
	req.Header.Set(HeaderNamespace, ns)
	req.Header.Set("Authorization", "Bearer "+r.sign.token(t, perms("oidcflow:read")))
	rec := httptest.NewRecorder()
	r.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("reader under an admin-only policy: %d", rec.Code)
	}
}

func TestNewRefuses(t *testing.T) {
	c, _ := payloadcodec.New(payloadcodec.Options{Transit: &fakeTransit{}})
	v := verifierFunc(func(context.Context, string) (*identity.Identity, error) { return nil, errors.New("no") })
	for name, o := range map[string]Options{
		"no codec":      {Verifier: v, Namespaces: []string{ns}},
		"no verifier":   {Codec: c, Namespaces: []string{ns}},
		"no namespaces": {Codec: c, Verifier: v},
		"wildcard":      {Codec: c, Verifier: v, Namespaces: []string{ns}, Origins: []string{"*"}},
		"slash":         {Codec: c, Verifier: v, Namespaces: []string{ns}, Origins: []string{uiOrigin + "/"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

type verifierFunc func(context.Context, string) (*identity.Identity, error)

func (f verifierFunc) VerifyAccessToken(ctx context.Context, raw string) (*identity.Identity, error) {
	return f(ctx, raw)
}

func TestRoleAtLeast(t *testing.T) {
	for _, tc := range []struct {
		role  string
		perms []string
		ok    bool
	}{
		{"read", []string{"oidcflow:read"}, true},
		{"read", []string{"oidcflow:admin"}, true},
		{"write", []string{"oidcflow:read"}, false},
		{"write", []string{"oidcflow:worker"}, true},
		{"admin", []string{"oidcflow:worker"}, false},
		{"read", []string{"oidcflowx:read", "oidcflow:reader"}, false},
		{"owner", []string{"oidcflow:admin"}, false},
	} {
		err := RoleAtLeast(ns, tc.role).Check(&identity.Identity{Subject: "a", Permissions: tc.perms})
		if (err == nil) != tc.ok {
			t.Errorf("RoleAtLeast(%s) with %v: %v", tc.role, tc.perms, err)
		}
	}
}
