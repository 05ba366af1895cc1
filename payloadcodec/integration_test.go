package payloadcodec_test

import (
	"context"
	"errors"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/payloadcodec"
)

// TestVaultTransit seals and opens payloads through the dev stack's Vault, under a Transit
// key of its own (random name, deleted at the end), across a key rotation.
func TestVaultTransit(t *testing.T) {
	s := testharness.Load(t)
	vc, key := s.TransitKey(t, "test-payloads")
	path := payloadcodec.DefaultTransitMount + "/keys/" + key
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	transit := payloadcodec.NewVaultTransit(vc, "")
	c, err := payloadcodec.New(payloadcodec.Options{Transit: transit, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := converter.GetDefaultDataConverter().ToPayload(map[string]string{"email": "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := c.EncodeContext(ctx, []*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(v1[0].Metadata[payloadcodec.MetadataKeyVersion]); got != "1" {
		t.Errorf("version %s, want 1", got)
	}
	if _, err := vc.Logical().WriteWithContext(ctx, path+"/rotate", nil); err != nil {
		t.Fatal(err)
	}
	c.Rotate()
	v2, err := c.EncodeContext(ctx, []*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(v2[0].Metadata[payloadcodec.MetadataKeyVersion]); got != "2" {
		t.Errorf("after rotation: version %s, want 2", got)
	}

	// Another process (nothing cached) opens both through transit/decrypt.
	other, err := payloadcodec.New(payloadcodec.Options{Transit: transit, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	out, err := other.DecodeContext(ctx, []*commonpb.Payload{v1[0], v2[0], plain})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range out {
		if !proto.Equal(p, plain) {
			t.Errorf("payload %d: %v", i, p)
		}
	}

	// A tampered key id is refused by Transit: typed, not "unavailable".
	bad := proto.Clone(v1[0]).(*commonpb.Payload)
	id := []byte(string(bad.Metadata[payloadcodec.MetadataKeyID]))
	id[len(id)-4] ^= 1
	bad.Metadata[payloadcodec.MetadataKeyID] = id
	fresh, _ := payloadcodec.New(payloadcodec.Options{Transit: transit, Key: key})
	if _, err := fresh.DecodeContext(ctx, []*commonpb.Payload{bad}); !errors.Is(err, payloadcodec.ErrTampered) {
		t.Errorf("tampered key id: %v", err)
	}
	// Retired versions no longer open.
	if _, err := vc.Logical().WriteWithContext(ctx, path+"/config", map[string]any{"min_decryption_version": 2}); err != nil {
		t.Fatal(err)
	}
	fresh, _ = payloadcodec.New(payloadcodec.Options{Transit: transit, Key: key})
	if _, err := fresh.DecodeContext(ctx, []*commonpb.Payload{v1[0]}); !errors.Is(err, payloadcodec.ErrTampered) {
		t.Errorf("v1 below min_decryption_version: %v", err)
	}
}
