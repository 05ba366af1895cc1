package app

import (
	"context"
	"errors"
	"fmt"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/interceptors/envelope"
)

// LoadKeyring reads the pool's envelope keys from Vault KV v2 at mount/path: field
// "current" holds the private text form of the current key pair, "previous" a list of
// older ones still accepted. It also returns the propagation secrets derived from them
// (current first), so that every worker of the pool agrees on them without another secret.
func LoadKeyring(ctx context.Context, c *vault.Client, mount, path string) (*envelope.Keyring, [][]byte, error) {
	sec, err := c.KVv2(mount).Get(ctx, path)
	if err != nil {
		if errors.Is(err, vault.ErrSecretNotFound) {
			return nil, nil, fmt.Errorf("app: no envelope keys at %s/%s; run `make up` (dev) or seed them: %w", mount, path, err)
		}
		return nil, nil, fmt.Errorf("app: read envelope keys at %s/%s: %w", mount, path, err)
	}
	texts := []string{}
	if cur, ok := sec.Data["current"].(string); ok && cur != "" {
		texts = append(texts, cur)
	}
	if prev, ok := sec.Data["previous"].([]any); ok {
		for _, p := range prev {
			if s, ok := p.(string); ok && s != "" {
				texts = append(texts, s)
			}
		}
	}
	if len(texts) == 0 {
		return nil, nil, fmt.Errorf("app: envelope keys at %s/%s have no current key", mount, path)
	}
	pairs := make([]*envelope.KeyPair, len(texts))
	secrets := make([][]byte, len(texts))
	for i, t := range texts {
		pairs[i] = new(envelope.KeyPair)
		if err := pairs[i].UnmarshalText([]byte(t)); err != nil {
			return nil, nil, fmt.Errorf("app: envelope key %d at %s/%s: %w", i, mount, path, err)
		}
		secrets[i] = []byte(t)
	}
	ring, err := envelope.NewKeyring(pairs[0], pairs[1:]...)
	if err != nil {
		return nil, nil, err
	}
	return ring, secrets, nil
}
