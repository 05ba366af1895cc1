package payloadcodec

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	vault "github.com/hashicorp/vault/api"
)

// DefaultTransitMount is where Vault's Transit engine is mounted by default.
const DefaultTransitMount = "transit"

// VaultTransit is Transit on a Vault client: datakey/plaintext/<key> for new data keys,
// decrypt/<key> to unwrap them. The client's token needs "update" on both paths (see the
// dev stack's worker policy); it does not read or rotate the key itself.
type VaultTransit struct {
	client *vault.Client
	mount  string
}

// NewVaultTransit returns the Transit engine mounted at mount ("" for DefaultTransitMount)
// of client. The client keeps its own token fresh (tokenstore/vaultauth).
func NewVaultTransit(client *vault.Client, mount string) *VaultTransit {
	if mount == "" {
		mount = DefaultTransitMount
	}
	return &VaultTransit{client: client, mount: mount}
}

// DataKey asks Transit for a new 256-bit data key (transit/datakey/plaintext/<key>).
func (t *VaultTransit) DataKey(ctx context.Context, key string) (*DataKey, error) {
	sec, err := t.client.Logical().WriteWithContext(ctx, t.mount+"/datakey/plaintext/"+key, map[string]any{"bits": 256})
	if err != nil {
		return nil, transitError(err, false)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("%w: empty answer from %s/datakey", ErrTransit, t.mount)
	}
	wrapped, _ := sec.Data["ciphertext"].(string)
	plainB64, _ := sec.Data["plaintext"].(string)
	plain, err := base64.StdEncoding.DecodeString(plainB64)
	if err != nil || wrapped == "" {
		return nil, fmt.Errorf("%w: %s/datakey answered without a key", ErrTransit, t.mount)
	}
	dk := &DataKey{Plaintext: plain, Wrapped: wrapped}
	if n, ok := sec.Data["key_version"].(json.Number); ok {
		v, _ := n.Int64()
		dk.Version = int(v)
	}
	if v, ok := wrappedVersion(wrapped); ok {
		dk.Version = v // the ciphertext is what decrypt goes by
	}
	return dk, nil
}

// Unwrap decrypts a wrapped data key (transit/decrypt/<key>). Transit's 400 (bad
// ciphertext, or a version below min_decryption_version) is ErrTampered.
func (t *VaultTransit) Unwrap(ctx context.Context, key, wrapped string) ([]byte, error) {
	sec, err := t.client.Logical().WriteWithContext(ctx, t.mount+"/decrypt/"+key, map[string]any{"ciphertext": wrapped})
	if err != nil {
		return nil, transitError(err, true)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("%w: empty answer from %s/decrypt", ErrTransit, t.mount)
	}
	plainB64, _ := sec.Data["plaintext"].(string)
	plain, err := base64.StdEncoding.DecodeString(plainB64)
	if err != nil {
		return nil, fmt.Errorf("%w: %s/decrypt answered without a key", ErrTransit, t.mount)
	}
	return plain, nil
}

// transitError classifies a Vault error without its request body (which may hold a key):
// a 400 of decrypt is ErrTampered, everything else ErrTransit.
func transitError(err error, decrypt bool) error {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		if decrypt && re.StatusCode == http.StatusBadRequest {
			return fmt.Errorf("%w: transit refused the key id (%d %v)", ErrTampered, re.StatusCode, re.Errors)
		}
		return fmt.Errorf("%w: %d %v", ErrTransit, re.StatusCode, re.Errors)
	}
	return fmt.Errorf("%w: %v", ErrTransit, err)
}
