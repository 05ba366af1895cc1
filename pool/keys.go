package pool

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/interceptors/envelope"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// ErrNoEnvelopeKeys: Vault holds no envelope keys where the pool looks (Config.EnvelopeKeysPath);
// seed them (see the package documentation's Vault layout).
var ErrNoEnvelopeKeys = errors.New("pool: no envelope keys in Vault")

// LoadEnvelopeKeys reads the pool's envelope keys from Vault KV v2 at mount/path (see the
// package documentation's Vault layout): field "current" holds the private text form of the
// current key pair, "previous" a list of older ones still opened. It also returns the
// propagation secrets derived from them (current first), so that every worker of the pool
// agrees on them without another secret. It does not watch for rotations: a worker reads the
// keys when it starts.
func LoadEnvelopeKeys(ctx context.Context, c *vault.Client, mount, path string) (*envelope.Keyring, [][]byte, error) {
	sec, err := c.KVv2(mount).Get(ctx, path)
	if err != nil {
		if errors.Is(err, vault.ErrSecretNotFound) {
			return nil, nil, fmt.Errorf("%w at %s/%s (seed them: see package pool's Vault layout)", ErrNoEnvelopeKeys, mount, path)
		}
		return nil, nil, fmt.Errorf("pool: read envelope keys at %s/%s: %w", mount, path, err)
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
		return nil, nil, fmt.Errorf("%w: the secret at %s/%s has no current key", ErrNoEnvelopeKeys, mount, path)
	}
	pairs := make([]*envelope.KeyPair, len(texts))
	secrets := make([][]byte, len(texts))
	for i, t := range texts {
		pairs[i] = new(envelope.KeyPair)
		if err := pairs[i].UnmarshalText([]byte(t)); err != nil {
			return nil, nil, fmt.Errorf("pool: envelope key %d at %s/%s: %w", i, mount, path, err)
		}
		secrets[i] = []byte(t)
	}
	ring, err := envelope.NewKeyring(pairs[0], pairs[1:]...)
	if err != nil {
		return nil, nil, err
	}
	return ring, secrets, nil
}

// SeedEnvelopeKeys creates the pool's first envelope key pair, named keyID, and writes it to
// Vault KV v2 at mount/path (Config.VaultKVMount, Config.EnvelopeKeysPath) as the "current"
// key, with a create-only write: it fails when keys are there already, so it never replaces
// a pool's keys. It returns the public key in text form, which starters need
// (OIDCFLOW_ENVELOPE_PUBLIC_KEY). An operator runs it once, with a Vault token that may write
// the path (the worker policy may not); the private key goes nowhere but Vault. It does not
// rotate keys: write a new version with the new pair as "current" and the old one first in
// "previous" for that.
func SeedEnvelopeKeys(ctx context.Context, c *vault.Client, mount, path, keyID string) (publicKey string, err error) {
	kp, err := envelope.GenerateKeyPair(keyID, envelope.KEMHybrid)
	if err != nil {
		return "", err
	}
	priv, err := kp.MarshalText()
	if err != nil {
		return "", err
	}
	pub, err := kp.Public().MarshalText()
	if err != nil {
		return "", err
	}
	if _, err := c.KVv2(mount).Put(ctx, path, map[string]any{"current": string(priv), "previous": []string{}},
		vault.WithCheckAndSet(0)); err != nil {
		return "", fmt.Errorf("pool: seed envelope keys at %s/%s (create only; are they there already?): %w", mount, path, err)
	}
	return string(pub), nil
}

// SessionIDKeyPath is where the pool's session-id key lives in the KV v2 mount (see the
// package documentation's Vault layout).
const SessionIDKeyPath = "sessions/pool/session-id-key"

// SessionIDKeyFormat is the format of the session-id key record LoadSessionIDKey creates, in
// its "format" member. A record without one (seeded before formats were numbered) is format
// 1 too: the same "key". LoadSessionIDKey refuses a record of a newer format.
const SessionIDKeyFormat = 1

// sessionIDKeySize is the length of the session-id key in bytes.
const sessionIDKeySize = tokenstore.MinSessionIDKeySize

// LoadSessionIDKey returns the pool's session-id key from KV v2 at mount/path
// (SessionIDKeyPath in New), for tokenstore.SharedSessionsOptions.IDKey. Every worker of
// the pool must map a refresh token to the same session id, now and after any envelope key
// rotation: two sessions holding one rotating refresh chain would refresh it twice, and the
// IdP's reuse detection would kill it. So the key lives apart from the envelope keys and does not change when they rotate.
//
// When the key is missing, the first worker creates it with a create-only write
// (check-and-set 0); a worker that loses that race reads the winner's, so all agree. The
// created key is the one workers derived from the current envelope key before the key had a
// place of its own (HKDF-SHA256 of seed, the current envelope key's text), so that the
// sessions of a pool that upgrades keep their ids; the dev stack seeds a random one when it
// creates the envelope keys. There is no rotation: a new key would move every live refresh
// token to a second session. To replace it, drain the pool (no live sessions), delete the
// secret, and let the next worker create one.
//
// The record is {"format": SessionIDKeyFormat, "key": "<base64>"}. One of a newer format (a
// newer worker of the pool wrote it) fails with a *tokenstore.FormatError, and the worker
// must not start: with the key read otherwise than the newer workers read it, it would give
// refresh tokens other session ids than they do. Nothing is written over it.
func LoadSessionIDKey(ctx context.Context, c *vault.Client, mount, path string, seed []byte) ([]byte, error) {
	kv := c.KVv2(mount)
	key, err := readSessionIDKey(ctx, kv, mount, path)
	if err == nil || !errors.Is(err, vault.ErrSecretNotFound) {
		return key, err
	}
	derived, err := hkdf.Key(sha256.New, seed, nil, "oidcflow session id v1", sessionIDKeySize)
	if err != nil {
		return nil, fmt.Errorf("pool: derive the session-id key: %w", err)
	}
	_, werr := kv.Put(ctx, path, map[string]any{"format": SessionIDKeyFormat, "key": base64.StdEncoding.EncodeToString(derived)},
		vault.WithCheckAndSet(0))
	// Whether this write won or lost (check-and-set, or 403 where the policy lets workers
	// only create), the stored key is the pool's.
	key, err = readSessionIDKey(ctx, kv, mount, path)
	if err != nil && werr != nil && !errors.Is(err, tokenstore.ErrUnsupportedFormat) {
		return nil, fmt.Errorf("pool: create the session-id key at %s/%s (seed it, or let workers create %s): %w", mount, path, path, werr)
	}
	return key, err
}

func readSessionIDKey(ctx context.Context, kv *vault.KVv2, mount, path string) ([]byte, error) {
	sec, err := kv.Get(ctx, path)
	if err != nil {
		if errors.Is(err, vault.ErrSecretNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("pool: read the session-id key at %s/%s: %w", mount, path, err)
	}
	if err := tokenstore.CheckStoredFormat("the session-id key at "+mount+"/"+path, sec.Data["format"], SessionIDKeyFormat); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	text, _ := sec.Data["key"].(string)
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(key) < sessionIDKeySize {
		return nil, fmt.Errorf("pool: the session-id key at %s/%s is not %d bytes of base64", mount, path, sessionIDKeySize)
	}
	return key, nil
}
