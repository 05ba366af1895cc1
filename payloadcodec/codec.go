// Package payloadcodec encrypts Temporal payloads so that workflow inputs, results, memos and
// the recorded Identity are not readable in history: a converter.PayloadCodec that seals each
// payload with AES-256-GCM under a data key from Vault Transit (envelope encryption).
//
// A process asks Transit for a data key (transit/datakey/plaintext/<key>), keeps its
// plaintext in memory and writes the Transit-wrapped form into the metadata of every payload
// it seals. Any holder of transit/decrypt/<key> (the workers, the codec server) unwraps it
// once and caches it. Rotating the Transit key (transit/keys/<key>/rotate) makes new data
// keys come from the new version at the next data key rotation (Options.RotateAfter,
// Options.MaxUses); payloads sealed under older versions still open while Transit allows
// those versions to decrypt (min_decryption_version).
//
// A sealed payload looks like this:
//
//	metadata:
//	  encoding:               binary/encrypted
//	  encryption-cipher:      AES256-GCM/1       (format of data; anything else is refused)
//	  encryption-transit-key: oidcflow-payloads  (Transit key that wrapped the data key)
//	  encryption-key-id:      vault:v3:...       (the wrapped data key: the key id)
//	  encryption-key-version: 3                  (Transit key version, as in the key id)
//	data: nonce (12 bytes) || AES-256-GCM(proto(original payload)), with the cipher label,
//	      Transit key name and key id as additional data
//
// Decode passes payloads that are not "binary/encrypted" through unchanged, so histories
// written before encryption was turned on still read. It does not compress, and it does not
// hide payload sizes or the metadata above.
package payloadcodec

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"
)

// Metadata keys and values of a sealed payload.
const (
	// EncodingEncrypted is the "encoding" of a sealed payload.
	EncodingEncrypted = "binary/encrypted"
	// MetadataCipher names the format of the payload's data; CipherAESGCM is the only one.
	MetadataCipher = "encryption-cipher"
	CipherAESGCM   = "AES256-GCM/1"
	// MetadataTransitKey is the name of the Transit key that wrapped the data key.
	MetadataTransitKey = "encryption-transit-key"
	// MetadataKeyID is the Transit-wrapped data key ("vault:v<version>:<base64>"). It is
	// not a secret: only Transit can unwrap it.
	MetadataKeyID = "encryption-key-id"
	// MetadataKeyVersion is the Transit key version that wrapped the data key, in decimal.
	MetadataKeyVersion = "encryption-key-version"
)

// Defaults of Options.
const (
	DefaultTransitKey  = "oidcflow-payloads"
	DefaultRotateAfter = 24 * time.Hour
	// DefaultMaxUses keeps a data key far below the 2^32 random-nonce limit of AES-GCM
	// (NIST SP 800-38D section 8.3).
	DefaultMaxUses   = 1 << 24
	DefaultCacheSize = 1024
	DefaultTimeout   = 10 * time.Second
)

const (
	keySize   = 32
	nonceSize = 12
	// maxKeyID caps the key id read from a payload before it goes to Vault.
	maxKeyID = 1024
)

// Sentinel errors. Decode and Encode errors wrap one of them (through a *PayloadError that
// names the payload); no message holds key material or payload contents.
var (
	// ErrTampered: the payload, or its wrapped data key, does not authenticate: it was
	// changed, or sealed under a key this codec cannot have (a Transit version that may no
	// longer decrypt answers the same).
	ErrTampered = errors.New("payloadcodec: payload failed authentication (tampered, or sealed under another key)")
	// ErrMalformed: a payload marked encrypted whose metadata or data are not in the format
	// above.
	ErrMalformed = errors.New("payloadcodec: malformed encrypted payload")
	// ErrUnknownKey: the payload was sealed under a Transit key this codec is not configured
	// for (Options.Key, Options.DecryptKeys).
	ErrUnknownKey = errors.New("payloadcodec: payload sealed under an unknown Transit key")
	// ErrTransit: Vault Transit could not be reached or refused the request (permissions,
	// a sealed Vault); retrying may help.
	ErrTransit = errors.New("payloadcodec: vault transit unavailable")
)

// PayloadError names the payload (its index in the batch) an error is about.
type PayloadError struct {
	Index int
	Err   error
}

func (e *PayloadError) Error() string { return fmt.Sprintf("payload %d: %v", e.Index, e.Err) }
func (e *PayloadError) Unwrap() error { return e.Err }

// DataKey is a fresh data key from Transit.
type DataKey struct {
	// Plaintext is the 32-byte key. The codec wipes it once it has built its cipher.
	Plaintext []byte
	// Wrapped is the key encrypted by Transit ("vault:v<version>:..."), the payloads' key id.
	Wrapped string
	// Version is the Transit key version that wrapped it.
	Version int
}

// Transit is what the codec needs of Vault Transit. VaultTransit is the real one; tests use
// fakes.
type Transit interface {
	// DataKey returns a new 256-bit data key from the latest version of Transit key key.
	DataKey(ctx context.Context, key string) (*DataKey, error)
	// Unwrap decrypts a wrapped data key with Transit key key. A ciphertext that Transit
	// refuses as invalid must give an error wrapping ErrTampered; other failures ErrTransit.
	Unwrap(ctx context.Context, key, wrapped string) ([]byte, error)
}

// Options configure New.
type Options struct {
	// Transit wraps and unwraps data keys. Required.
	Transit Transit
	// Key is the Transit key that wraps new data keys (an aes256-gcm96 key).
	// Default DefaultTransitKey ("oidcflow-payloads").
	Key string
	// DecryptKeys are more Transit keys whose payloads Decode opens (after a move to a new
	// Key). Default none.
	DecryptKeys []string
	// RotateAfter is how long the process seals with one data key before it asks Transit
	// for a new one. Default DefaultRotateAfter (24h).
	RotateAfter time.Duration
	// MaxUses is how many payloads one data key seals at most. Default DefaultMaxUses.
	MaxUses int64
	// CacheSize bounds the unwrapped data keys kept in memory. Default DefaultCacheSize.
	CacheSize int
	// Timeout bounds each Transit call made by Encode and Decode, which have no context of
	// their own. Default DefaultTimeout (10s).
	Timeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Codec is the encrypting converter.PayloadCodec. It is safe for concurrent use.
type Codec struct {
	transit   Transit
	key       string
	keys      map[string]bool
	rotate    time.Duration
	maxUses   int64
	timeout   time.Duration
	now       func() time.Time
	cache     *keyCache
	unwraps   singleflight.Group
	mu        sync.Mutex
	current   *sealKey
	forceNext bool
}

// sealKey is the data key the process currently seals with.
type sealKey struct {
	aead    cipher.AEAD
	wrapped string
	version int
	created time.Time
	uses    int64
}

// New returns a Codec. It calls Transit only when it first seals or opens a payload.
func New(opts Options) (*Codec, error) {
	if opts.Transit == nil {
		return nil, errors.New("payloadcodec: Options.Transit is required")
	}
	c := &Codec{
		transit: opts.Transit, key: opts.Key, rotate: opts.RotateAfter, maxUses: opts.MaxUses,
		timeout: opts.Timeout, now: opts.Now,
	}
	if c.key == "" {
		c.key = DefaultTransitKey
	}
	if c.rotate <= 0 {
		c.rotate = DefaultRotateAfter
	}
	if c.maxUses <= 0 {
		c.maxUses = DefaultMaxUses
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	size := opts.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	c.cache = newKeyCache(size)
	c.keys = map[string]bool{c.key: true}
	for _, k := range opts.DecryptKeys {
		if k == "" || strings.ContainsAny(k, "/\x00") {
			return nil, fmt.Errorf("payloadcodec: Options.DecryptKeys holds %q, not a Transit key name", k)
		}
		c.keys[k] = true
	}
	if strings.ContainsAny(c.key, "/\x00") {
		return nil, fmt.Errorf("payloadcodec: Options.Key %q is not a Transit key name", c.key)
	}
	return c, nil
}

// Encode seals every payload (converter.PayloadCodec). Nil payloads stay nil.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return c.EncodeContext(ctx, payloads)
}

// Decode opens every sealed payload and passes the others through (converter.PayloadCodec).
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return c.DecodeContext(ctx, payloads)
}

// EncodeContext is Encode with ctx bounding the Transit calls.
func (c *Codec) EncodeContext(ctx context.Context, payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if p == nil {
			continue
		}
		k, err := c.sealKey(ctx)
		if err != nil {
			return nil, &PayloadError{Index: i, Err: err}
		}
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, &PayloadError{Index: i, Err: fmt.Errorf("payloadcodec: marshal payload: %w", err)}
		}
		nonce := make([]byte, nonceSize, nonceSize+len(plain)+k.aead.Overhead())
		_, _ = rand.Read(nonce) // crypto/rand.Read never fails
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				"encoding":         []byte(EncodingEncrypted),
				MetadataCipher:     []byte(CipherAESGCM),
				MetadataTransitKey: []byte(c.key),
				MetadataKeyID:      []byte(k.wrapped),
				MetadataKeyVersion: []byte(strconv.Itoa(k.version)),
			},
			Data: k.aead.Seal(nonce, nonce, plain, additionalData(c.key, k.wrapped)),
		}
	}
	return out, nil
}

// DecodeContext is Decode with ctx bounding the Transit calls.
func (c *Codec) DecodeContext(ctx context.Context, payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if p == nil || string(p.GetMetadata()["encoding"]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		d, err := c.open(ctx, p)
		if err != nil {
			return nil, &PayloadError{Index: i, Err: err}
		}
		out[i] = d
	}
	return out, nil
}

// Rotate makes the next Encode ask Transit for a new data key (after a Transit key
// rotation, say).
func (c *Codec) Rotate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forceNext = true
}

// KeyVersion reports the Transit key version of the data key the codec seals with now
// (0 before the first Encode).
func (c *Codec) KeyVersion() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil {
		return 0
	}
	return c.current.version
}

// sealKey returns the data key to seal one payload with, asking Transit for a new one when
// there is none yet, or the current one is too old or used up. The lock is held across the
// Transit call so that concurrent encoders share one new key.
func (c *Codec) sealKey(ctx context.Context) (*sealKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.current
	if k == nil || c.forceNext || k.uses >= c.maxUses || c.now().Sub(k.created) >= c.rotate {
		dk, err := c.transit.DataKey(ctx, c.key)
		if err != nil {
			return nil, fmt.Errorf("payloadcodec: new data key from transit key %s: %w", c.key, err)
		}
		aead, err := newAEAD(dk.Plaintext)
		if err != nil {
			return nil, err
		}
		version := dk.Version
		if v, ok := wrappedVersion(dk.Wrapped); ok && version == 0 {
			version = v
		}
		k = &sealKey{aead: aead, wrapped: dk.Wrapped, version: version, created: c.now()}
		c.current, c.forceNext = k, false
		c.cache.put(c.key+"\x00"+dk.Wrapped, aead) // this process opens its own payloads without Transit
	}
	k.uses++
	return k, nil
}

// open checks a sealed payload's metadata, gets its data key and opens it.
func (c *Codec) open(ctx context.Context, p *commonpb.Payload) (*commonpb.Payload, error) {
	md := p.GetMetadata()
	if string(md[MetadataCipher]) != CipherAESGCM {
		return nil, fmt.Errorf("%w: cipher %q is not %s", ErrMalformed, printable(md[MetadataCipher]), CipherAESGCM)
	}
	transitKey := string(md[MetadataTransitKey])
	if !c.keys[transitKey] {
		return nil, fmt.Errorf("%w: %q (this codec opens %s; add it to DecryptKeys)", ErrUnknownKey, printable(md[MetadataTransitKey]), c.keyList())
	}
	wrapped := string(md[MetadataKeyID])
	version, ok := wrappedVersion(wrapped)
	if !ok || len(wrapped) > maxKeyID {
		return nil, fmt.Errorf("%w: key id is not a Transit ciphertext", ErrMalformed)
	}
	if v, err := strconv.Atoi(string(md[MetadataKeyVersion])); err != nil || v != version {
		return nil, fmt.Errorf("%w: key version %q does not match the key id's v%d", ErrMalformed, printable(md[MetadataKeyVersion]), version)
	}
	data := p.GetData()
	if len(data) < nonceSize+16 {
		return nil, fmt.Errorf("%w: data is %d bytes, shorter than a nonce and a tag", ErrMalformed, len(data))
	}
	aead, err := c.dataKey(ctx, transitKey, wrapped)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, data[:nonceSize], data[nonceSize:], additionalData(transitKey, wrapped))
	if err != nil {
		return nil, fmt.Errorf("%w (transit key %s v%d)", ErrTampered, transitKey, version)
	}
	var out commonpb.Payload
	if err := proto.Unmarshal(plain, &out); err != nil {
		return nil, fmt.Errorf("%w: sealed contents are not a payload", ErrMalformed)
	}
	return &out, nil
}

// dataKey returns the cipher of a wrapped data key: from the cache, else unwrapped by
// Transit (one call per key however many decoders wait for it).
func (c *Codec) dataKey(ctx context.Context, transitKey, wrapped string) (cipher.AEAD, error) {
	id := transitKey + "\x00" + wrapped
	if a, ok := c.cache.get(id); ok {
		return a, nil
	}
	v, err, _ := c.unwraps.Do(id, func() (any, error) {
		if a, ok := c.cache.get(id); ok {
			return a, nil
		}
		plain, err := c.transit.Unwrap(ctx, transitKey, wrapped)
		if err != nil {
			return nil, fmt.Errorf("payloadcodec: unwrap data key with transit key %s: %w", transitKey, err)
		}
		a, err := newAEAD(plain)
		if err != nil {
			return nil, err
		}
		c.cache.put(id, a)
		return a, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(cipher.AEAD), nil
}

func (c *Codec) keyList() string {
	names := make([]string, 0, len(c.keys))
	for k := range c.keys {
		names = append(names, k)
	}
	return strings.Join(names, ", ")
}

// newAEAD builds AES-256-GCM from a data key and wipes the key bytes.
func newAEAD(key []byte) (cipher.AEAD, error) {
	defer clear(key)
	if len(key) != keySize {
		return nil, fmt.Errorf("%w: data key is %d bytes, want %d (is the Transit key aes256-gcm96?)", ErrTransit, len(key), keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// additionalData binds the sealed data to the key that sealed it.
func additionalData(transitKey, wrapped string) []byte {
	return []byte(CipherAESGCM + "\x00" + transitKey + "\x00" + wrapped)
}

// wrappedVersion parses the version of a Transit ciphertext "vault:v<N>:<base64>".
func wrappedVersion(wrapped string) (int, bool) {
	rest, ok := strings.CutPrefix(wrapped, "vault:v")
	if !ok {
		return 0, false
	}
	num, body, ok := strings.Cut(rest, ":")
	if !ok || body == "" || num == "" || len(num) > 9 || num[0] == '0' {
		return 0, false
	}
	v, err := strconv.Atoi(num)
	if err != nil || v <= 0 {
		return 0, false
	}
	return v, true
}

// printable shortens and cleans a metadata value for an error message.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return '?'
		}
		return r
	}, string(b))
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return s
}
