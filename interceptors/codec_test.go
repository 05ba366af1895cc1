package interceptors

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

func TestRemoteCodec(t *testing.T) {
	var gotAuth, gotNS, gotPath string
	var calls int
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		gotAuth, gotNS, gotPath = r.Header.Get("Authorization"), r.Header.Get("X-Namespace"), r.URL.Path
		b, _ := io.ReadAll(r.Body)
		var in commonpb.Payloads
		if err := protojson.Unmarshal(b, &in); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, p := range in.Payloads {
			p.Metadata["encoding"] = []byte("binary/encrypted")
		}
		out, _ := protojson.Marshal(&in)
		w.Write(out)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-123"})
	codec, err := NewRemoteCodec(RemoteCodecOptions{Endpoint: srv.URL + "/", CAFile: ca, Namespace: "oidcflow", TokenSource: ts})
	if err != nil {
		t.Fatal(err)
	}
	for _, empty := range [][]*commonpb.Payload{nil, {}} {
		if out, err := codec.Encode(empty); err != nil || len(out) != 0 {
			t.Errorf("Encode(%v) = %v, %v", empty, out, err)
		}
		if out, err := codec.Decode(empty); err != nil || len(out) != 0 {
			t.Errorf("Decode(%v) = %v, %v", empty, out, err)
		}
	}
	if calls != 0 {
		t.Errorf("no payloads: %d calls to the codec server, want 0", calls)
	}
	in := []*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}}
	out, err := codec.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(out[0].Metadata["encoding"]) != "binary/encrypted" || gotPath != "/encode" {
		t.Errorf("encode went to %s and returned %v", gotPath, out[0])
	}
	if gotAuth != "Bearer at-123" || gotNS != "oidcflow" {
		t.Errorf("Authorization %q, X-Namespace %q", gotAuth, gotNS)
	}
	if _, err := codec.Decode(in); err != nil || gotPath != "/decode" {
		t.Errorf("decode: %v at %s", err, gotPath)
	}

	// Without the CA the server is not trusted.
	untrusted, err := NewRemoteCodec(RemoteCodecOptions{Endpoint: srv.URL, Namespace: "oidcflow", TokenSource: ts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusted.Encode(in); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted server: %v", err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o644)
	for name, o := range map[string]RemoteCodecOptions{
		"http":         {Endpoint: strings.Replace(srv.URL, "https", "http", 1), Namespace: "oidcflow", TokenSource: ts},
		"no endpoint":  {Namespace: "oidcflow", TokenSource: ts},
		"no token":     {Endpoint: srv.URL, Namespace: "oidcflow"},
		"no namespace": {Endpoint: srv.URL, TokenSource: ts},
		"missing CA":   {Endpoint: srv.URL, Namespace: "oidcflow", TokenSource: ts, CAFile: filepath.Join(t.TempDir(), "none.pem")},
		"garbage CA":   {Endpoint: srv.URL, Namespace: "oidcflow", TokenSource: ts, CAFile: garbage},
	} {
		if _, err := NewRemoteCodec(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDialRefusesPlainCodecEndpoint(t *testing.T) {
	_, err := Dial(t.Context(), DialOptions{
		TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"}), PublicKey: testPublicKey(t),
		CodecEndpoint: "http://127.0.0.1:8234",
	})
	if err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("err = %v", err)
	}
}

func testPublicKey(t *testing.T) string {
	t.Helper()
	kp, err := envelope.GenerateKeyPair("k1", 0)
	if err != nil {
		t.Fatal(err)
	}
	return kp.Public().String()
}
