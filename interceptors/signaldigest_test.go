package interceptors

import (
	"bytes"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// xorCodec stands in for an encrypting codec (package payloadcodec): it changes the bytes and
// the encoding, as history then holds them.
type xorCodec struct{}

func (xorCodec) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		d := bytes.Clone(p.GetData())
		for j := range d {
			d[j] ^= 0x5a
		}
		out[i] = &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("binary/encrypted"), "inner": p.GetMetadata()["encoding"]}, Data: d}
	}
	return out, nil
}

func (xorCodec) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		if string(p.GetMetadata()["encoding"]) != "binary/encrypted" {
			out[i] = p
			continue
		}
		d := bytes.Clone(p.GetData())
		for j := range d {
			d[j] ^= 0x5a
		}
		out[i] = &commonpb.Payload{Metadata: map[string][]byte{"encoding": p.GetMetadata()["inner"]}, Data: d}
	}
	return out, nil
}

// TestSignalDigestDecodesArguments: with an encrypting data converter, a signal's arguments
// reach the worker encoded; their digest must still match the sender's envelope, which the
// client computed over the values.
func TestSignalDigestDecodesArguments(t *testing.T) {
	type approval struct {
		Approve bool   `json:"approve"`
		Note    string `json:"note"`
	}
	value := approval{Approve: true, Note: "ok"}
	want, err := InputDigest("approve", value)
	if err != nil {
		t.Fatal(err)
	}
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), xorCodec{})
	sent, err := dc.ToPayloads(value)
	if err != nil {
		t.Fatal(err)
	}
	with := &workerInterceptor{opts: WorkerOptions{PayloadCodec: xorCodec{}}}
	if got := with.signalDigest(nil, "approve", sent.GetPayloads()); !bytes.Equal(got, want) {
		t.Error("with PayloadCodec, the digest of the encoded arguments differs from the sender's")
	}
	without := &workerInterceptor{}
	if got := without.signalDigest(nil, "approve", sent.GetPayloads()); bytes.Equal(got, want) {
		t.Error("without PayloadCodec, encoded arguments matched (the test codec encodes nothing?)")
	}
	// Plain arguments (a signal sent before encryption was on) still match.
	plain, _ := converter.GetDefaultDataConverter().ToPayloads(value)
	if got := with.signalDigest(nil, "approve", plain.GetPayloads()); !bytes.Equal(got, want) {
		t.Error("plain arguments no longer match with PayloadCodec set")
	}
	// Other arguments never match.
	other, _ := dc.ToPayloads(approval{Approve: false, Note: "ok"})
	if got := with.signalDigest(nil, "approve", other.GetPayloads()); bytes.Equal(got, want) {
		t.Error("other arguments matched")
	}
}
