package payloadcodec

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

type person struct {
	Name   string   `json:"name"`
	Email  string   `json:"email"`
	Groups []string `json:"groups"`
}

var alice = person{Name: "Alice Example", Email: "alice@example.com", Groups: []string{"db-admins"}}

func jsonPayload(t *testing.T, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newCodec(t *testing.T, tr Transit, mod func(*Options)) *Codec {
	t.Helper()
	o := Options{Transit: tr}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	tr := newFakeTransit(DefaultTransitKey)
	c := newCodec(t, tr, nil)
	in := []*commonpb.Payload{jsonPayload(t, alice), nil, jsonPayload(t, "reason: quarterly audit")}
	enc, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if enc[1] != nil {
		t.Error("a nil payload was encoded")
	}
	for _, i := range []int{0, 2} {
		md := enc[i].GetMetadata()
		if got := string(md["encoding"]); got != EncodingEncrypted {
			t.Errorf("encoding %q", got)
		}
		if string(md[MetadataCipher]) != CipherAESGCM || string(md[MetadataTransitKey]) != DefaultTransitKey ||
			string(md[MetadataKeyVersion]) != "1" || !strings.HasPrefix(string(md[MetadataKeyID]), "vault:v1:") {
			t.Errorf("metadata %q", md)
		}
		for _, secret := range []string{"alice@example.com", "Alice", "quarterly", "json/plain"} {
			if bytes.Contains(enc[i].GetData(), []byte(secret)) {
				t.Errorf("sealed data holds %q", secret)
			}
		}
	}
	if bytes.Equal(enc[0].GetData(), mustEncode(t, c, in[0]).GetData()) {
		t.Error("two encodings of one payload are equal: the nonce is not random")
	}
	dec, err := c.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if !proto.Equal(dec[i], in[i]) {
			t.Errorf("payload %d: decoded %v, want %v", i, dec[i], in[i])
		}
	}
	if dk, unwraps := tr.counts(); dk != 1 || unwraps != 0 {
		t.Errorf("transit calls: %d data keys, %d unwraps; want 1 and 0 (own key cached)", dk, unwraps)
	}
	// Another process (the codec server, another worker) unwraps once, then caches.
	other := newCodec(t, tr, nil)
	for range 3 {
		if _, err := other.Decode(enc); err != nil {
			t.Fatal(err)
		}
	}
	if _, unwraps := tr.counts(); unwraps != 1 {
		t.Errorf("unwraps = %d, want 1", unwraps)
	}
}

func mustEncode(t *testing.T, c *Codec, p *commonpb.Payload) *commonpb.Payload {
	t.Helper()
	out, err := c.Encode([]*commonpb.Payload{p})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func TestDataConverter(t *testing.T) {
	c := newCodec(t, newFakeTransit(DefaultTransitKey), nil)
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
	p, err := dc.ToPayload(alice)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.GetData(), []byte("alice")) {
		t.Fatal("payload is not encrypted")
	}
	var got person
	if err := dc.FromPayload(p, &got); err != nil {
		t.Fatal(err)
	}
	if got.Email != alice.Email || got.Name != alice.Name {
		t.Errorf("got %+v", got)
	}
	// A history written before encryption was on still reads.
	var old person
	if err := dc.FromPayload(jsonPayload(t, alice), &old); err != nil || old.Email != alice.Email {
		t.Errorf("plain payload: %+v, %v", old, err)
	}
}

func TestPlainPayloadsPassThrough(t *testing.T) {
	c := newCodec(t, newFakeTransit(DefaultTransitKey), nil)
	plain := []*commonpb.Payload{jsonPayload(t, "x"), {Metadata: map[string][]byte{"encoding": []byte("binary/null")}}, {}}
	out, err := c.Decode(plain)
	if err != nil {
		t.Fatal(err)
	}
	for i := range plain {
		if out[i] != plain[i] {
			t.Errorf("payload %d was changed", i)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	tr := newFakeTransit(DefaultTransitKey)
	c := newCodec(t, tr, nil)
	sealed := mustEncode(t, c, jsonPayload(t, alice))
	other := mustEncode(t, newCodec(t, tr, nil), jsonPayload(t, alice))
	for _, tc := range []struct {
		name   string
		change func(p *commonpb.Payload)
		want   error
	}{
		{"flipped data bit", func(p *commonpb.Payload) { p.Data[len(p.Data)/2] ^= 1 }, ErrTampered},
		{"flipped tag bit", func(p *commonpb.Payload) { p.Data[len(p.Data)-1] ^= 0x80 }, ErrTampered},
		{"flipped nonce bit", func(p *commonpb.Payload) { p.Data[0] ^= 1 }, ErrTampered},
		{"truncated data", func(p *commonpb.Payload) { p.Data = p.Data[:len(p.Data)-1] }, ErrTampered},
		{"too short", func(p *commonpb.Payload) { p.Data = p.Data[:27] }, ErrMalformed},
		{"no data", func(p *commonpb.Payload) { p.Data = nil }, ErrMalformed},
		{"key id of another data key", func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = other.Metadata[MetadataKeyID] }, ErrTampered},
		{"tampered key id", func(p *commonpb.Payload) {
			id := []byte(string(p.Metadata[MetadataKeyID]))
			id[len(id)-3] ^= 1
			p.Metadata[MetadataKeyID] = id
		}, ErrTampered},
		{"key id of an unknown version", func(p *commonpb.Payload) {
			p.Metadata[MetadataKeyID] = []byte(strings.Replace(string(p.Metadata[MetadataKeyID]), "vault:v1:", "vault:v7:", 1))
			p.Metadata[MetadataKeyVersion] = []byte("7")
		}, ErrTampered},
		{"version mismatch", func(p *commonpb.Payload) { p.Metadata[MetadataKeyVersion] = []byte("2") }, ErrMalformed},
		{"no version", func(p *commonpb.Payload) { delete(p.Metadata, MetadataKeyVersion) }, ErrMalformed},
		{"key id not from transit", func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("k1") }, ErrMalformed},
		{"key id with leading zero version", func(p *commonpb.Payload) {
			p.Metadata[MetadataKeyID] = []byte(strings.Replace(string(p.Metadata[MetadataKeyID]), "vault:v1:", "vault:v01:", 1))
		}, ErrMalformed},
		{"huge key id", func(p *commonpb.Payload) {
			p.Metadata[MetadataKeyID] = append([]byte("vault:v1:"), bytes.Repeat([]byte("A"), 4096)...)
		}, ErrMalformed},
		{"other cipher", func(p *commonpb.Payload) { p.Metadata[MetadataCipher] = []byte("AES128-CBC") }, ErrMalformed},
		{"no cipher", func(p *commonpb.Payload) { delete(p.Metadata, MetadataCipher) }, ErrMalformed},
		{"other transit key", func(p *commonpb.Payload) { p.Metadata[MetadataTransitKey] = []byte("someone-elses") }, ErrUnknownKey},
		{"no transit key", func(p *commonpb.Payload) { delete(p.Metadata, MetadataTransitKey) }, ErrUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := proto.Clone(sealed).(*commonpb.Payload)
			tc.change(p)
			fresh := newCodec(t, tr, nil) // nothing cached: the key id goes to Transit
			for _, dec := range []*Codec{c, fresh} {
				out, err := dec.Decode([]*commonpb.Payload{jsonPayload(t, 1), p})
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				var pe *PayloadError
				if !errors.As(err, &pe) || pe.Index != 1 {
					t.Errorf("err = %#v, want a *PayloadError for payload 1", err)
				}
				if out != nil {
					t.Error("a failed decode returned payloads")
				}
				if strings.Contains(err.Error(), "alice") {
					t.Errorf("error shows payload contents: %v", err)
				}
			}
		})
	}
}

func TestTransitKeyRotation(t *testing.T) {
	tr := newFakeTransit(DefaultTransitKey)
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newCodec(t, tr, func(o *Options) { o.Now = clk.now; o.RotateAfter = time.Hour })
	v1 := mustEncode(t, c, jsonPayload(t, alice))
	tr.rotate() // an operator rotates the Transit key
	clk.add(59 * time.Minute)
	if got := string(mustEncode(t, c, jsonPayload(t, alice)).Metadata[MetadataKeyVersion]); got != "1" {
		t.Errorf("within RotateAfter: version %s, want the data key of v1 kept", got)
	}
	clk.add(time.Minute)
	v2 := mustEncode(t, c, jsonPayload(t, alice))
	if got := string(v2.Metadata[MetadataKeyVersion]); got != "2" {
		t.Errorf("after RotateAfter: version %s, want 2", got)
	}
	if c.KeyVersion() != 2 {
		t.Errorf("KeyVersion = %d", c.KeyVersion())
	}
	fresh := newCodec(t, tr, nil)
	if _, err := fresh.Decode([]*commonpb.Payload{v1, v2}); err != nil {
		t.Fatalf("payloads of both versions: %v", err)
	}
	// Once Transit no longer decrypts v1, its payloads are refused, typed.
	tr.mu.Lock()
	tr.minDecrypt = 2
	tr.mu.Unlock()
	if _, err := newCodec(t, tr, nil).Decode([]*commonpb.Payload{v1}); !errors.Is(err, ErrTampered) {
		t.Errorf("v1 below min_decryption_version: %v", err)
	}
}

func TestDataKeyRotation(t *testing.T) {
	tr := newFakeTransit(DefaultTransitKey)
	c := newCodec(t, tr, func(o *Options) { o.MaxUses = 3 })
	ids := map[string]int{}
	for range 7 {
		ids[string(mustEncode(t, c, jsonPayload(t, 1)).Metadata[MetadataKeyID])]++
	}
	if len(ids) != 3 {
		t.Errorf("7 payloads with MaxUses 3 used %d data keys, want 3", len(ids))
	}
	c.Rotate()
	mustEncode(t, c, jsonPayload(t, 1))
	if dk, _ := tr.counts(); dk != 4 {
		t.Errorf("after Rotate: %d data keys, want 4", dk)
	}
}

func TestTransitDown(t *testing.T) {
	tr := newFakeTransit(DefaultTransitKey)
	sealed := mustEncode(t, newCodec(t, tr, nil), jsonPayload(t, alice))
	tr.mu.Lock()
	tr.down = errors.New("connection refused")
	tr.mu.Unlock()
	c := newCodec(t, tr, nil)
	if _, err := c.Encode([]*commonpb.Payload{jsonPayload(t, 1)}); !errors.Is(err, ErrTransit) {
		t.Errorf("encode: %v", err)
	}
	if _, err := c.Decode([]*commonpb.Payload{sealed}); !errors.Is(err, ErrTransit) || errors.Is(err, ErrTampered) {
		t.Errorf("decode: %v", err)
	}
	tr.mu.Lock()
	tr.down = nil
	tr.mu.Unlock()
	if _, err := c.Decode([]*commonpb.Payload{sealed}); err != nil {
		t.Errorf("after recovery: %v", err)
	}
}

func TestDecryptKeys(t *testing.T) {
	old := newFakeTransit("old-key")
	sealed := mustEncode(t, newCodec(t, old, func(o *Options) { o.Key = "old-key" }), jsonPayload(t, alice))
	if _, err := newCodec(t, old, nil).Decode([]*commonpb.Payload{sealed}); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("without DecryptKeys: %v", err)
	}
	c := newCodec(t, old, func(o *Options) { o.DecryptKeys = []string{"old-key"} })
	if _, err := c.Decode([]*commonpb.Payload{sealed}); err != nil {
		t.Errorf("with DecryptKeys: %v", err)
	}
	for _, bad := range []Options{{}, {Transit: old, Key: "a/b"}, {Transit: old, DecryptKeys: []string{""}}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

func TestCacheBoundAndSingleFlight(t *testing.T) {
	tr := newFakeTransit(DefaultTransitKey)
	var sealed []*commonpb.Payload
	for range 3 {
		sealed = append(sealed, mustEncode(t, newCodec(t, tr, nil), jsonPayload(t, 1)))
	}
	c := newCodec(t, tr, func(o *Options) { o.CacheSize = 2 })
	if _, err := c.Decode(sealed); err != nil {
		t.Fatal(err)
	}
	if n := c.cache.len(); n != 2 {
		t.Errorf("cache holds %d keys, want 2", n)
	}
	// Many decoders of one new key: one unwrap.
	c2 := newCodec(t, tr, nil)
	_, before := tr.counts()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := c2.DecodeContext(context.Background(), sealed[:1]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, after := tr.counts(); after-before != 1 {
		t.Errorf("16 concurrent decodes made %d unwraps, want 1", after-before)
	}
}

func TestWrappedVersion(t *testing.T) {
	for in, want := range map[string]int{
		"vault:v1:abc": 1, "vault:v12:x": 12, "vault:v0:x": 0, "vault:v:x": 0, "vault:v1:": 0,
		"vault:v01:x": 0, "vault:v-1:x": 0, "vault:v1": 0, "v1:x": 0, "vault:v9999999999:x": 0,
	} {
		got, ok := wrappedVersion(in)
		if got != want || ok != (want > 0) {
			t.Errorf("wrappedVersion(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
}
