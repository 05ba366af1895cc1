package payloadcodec

import (
	"testing"

	commonpb "go.temporal.io/api/common/v1"
)

// FuzzDecode feeds Decode encrypted-looking payloads: it must never panic, and anything it
// refuses is refused with one of the package's errors.
func FuzzDecode(f *testing.F) {
	tr := newFakeTransit(DefaultTransitKey)
	c, _ := New(Options{Transit: tr})
	p, _ := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}})
	md := p[0].Metadata
	f.Add(md[MetadataCipher], md[MetadataTransitKey], md[MetadataKeyID], md[MetadataKeyVersion], p[0].Data)
	f.Add([]byte(CipherAESGCM), []byte(DefaultTransitKey), []byte("vault:v1:AAAA"), []byte("1"), []byte{})
	f.Fuzz(func(t *testing.T, cipherName, transitKey, keyID, version, data []byte) {
		in := &commonpb.Payload{Metadata: map[string][]byte{
			"encoding": []byte(EncodingEncrypted), MetadataCipher: cipherName, MetadataTransitKey: transitKey,
			MetadataKeyID: keyID, MetadataKeyVersion: version,
		}, Data: data}
		if _, err := c.Decode([]*commonpb.Payload{in}); err != nil {
			var pe *PayloadError
			if !asPayloadError(err, &pe) {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}

func asPayloadError(err error, pe **PayloadError) bool {
	e, ok := err.(*PayloadError)
	*pe = e
	return ok
}
