package pool

import (
	"errors"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"go.temporal.io/sdk/converter"

	"github.com/oidcflow/oidcflow/payloadcodec"
)

func TestEncryptPayloadsFromEnv(t *testing.T) {
	c, err := FromLookup(lookup())
	if err != nil {
		t.Fatal(err)
	}
	if c.EncryptPayloads || c.PayloadTransitKey != payloadcodec.DefaultTransitKey {
		t.Errorf("defaults: EncryptPayloads %v, PayloadTransitKey %q", c.EncryptPayloads, c.PayloadTransitKey)
	}
	c, err = FromLookup(lookup("OIDCFLOW_ENCRYPT_PAYLOADS", "true", "OIDCFLOW_PAYLOAD_TRANSIT_KEY", "team-payloads"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.EncryptPayloads || c.PayloadTransitKey != "team-payloads" {
		t.Errorf("set: EncryptPayloads %v, PayloadTransitKey %q", c.EncryptPayloads, c.PayloadTransitKey)
	}
	if _, err := FromLookup(lookup("OIDCFLOW_ENCRYPT_PAYLOADS", "yes please")); err == nil {
		t.Error("a malformed OIDCFLOW_ENCRYPT_PAYLOADS was accepted")
	}
}

func TestDataConverter(t *testing.T) {
	if (&Parts{}).DataConverter() != converter.GetDefaultDataConverter() {
		t.Error("without EncryptPayloads the data converter is not the SDK's default")
	}
	vc, err := vault.NewClient(vault.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	codec, err := valid().NewPayloadCodec(vc)
	if err != nil {
		t.Fatal(err)
	}
	p := &Parts{PayloadCodec: codec}
	if pc, ok := p.DataConverter().(converter.PayloadCodecProvider); !ok || pc.Codec() == nil {
		t.Errorf("with a codec the data converter is a %T without it", p.DataConverter())
	}
	if p.payloadCodec() == nil || (&Parts{}).payloadCodec() != nil {
		t.Error("payloadCodec: a nil codec must stay a nil interface")
	}
}

func TestNewAccessTokenVerifierNeedsAudience(t *testing.T) {
	if _, err := valid().NewAccessTokenVerifier(t.Context(), ""); !errors.Is(err, ErrConfig) {
		t.Errorf("err = %v, want ErrConfig", err)
	}
}
