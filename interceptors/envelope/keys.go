package envelope

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// KEM selects the HPKE key encapsulation mechanism of a key pair. Its value is the KEM id of
// RFC 9180 section 7.1 (and draft-ietf-hpke-pq for the hybrid one).
type KEM uint16

const (
	// KEMHybrid is MLKEM768-X25519 (X-Wing, draft-ietf-hpke-pq): secure as long as either
	// ML-KEM-768 or X25519 is. The default. Envelopes are about 1.2 KiB larger than with
	// KEMX25519 and public keys are 1216 bytes.
	KEMHybrid KEM = 0x647a
	// KEMX25519 is DHKEM(X25519, HKDF-SHA256) (RFC 9180 section 7.1): small keys and
	// envelopes, no protection against a future quantum computer recording traffic today.
	KEMX25519 KEM = 0x0020
)

// kemSpec describes what this package needs to know of a KEM.
type kemSpec struct {
	hpke    func() hpke.KEM
	encSize int
	pubSize int
	name    string
}

var kems = map[KEM]kemSpec{
	KEMHybrid: {hpke: hpke.MLKEM768X25519, encSize: 1120, pubSize: 1216, name: "MLKEM768-X25519"},
	KEMX25519: {hpke: func() hpke.KEM { return hpke.DHKEM(ecdh.X25519()) }, encSize: 32, pubSize: 32,
		name: "DHKEM(X25519, HKDF-SHA256)"},
}

// String returns the KEM's RFC name, or "KEM(0x....)" for one this package does not support.
func (k KEM) String() string {
	if s, ok := kems[k]; ok {
		return s.name
	}
	return fmt.Sprintf("KEM(%#04x)", uint16(k))
}

func (k KEM) spec() (kemSpec, bool) {
	s, ok := kems[k]
	return s, ok
}

const (
	// MaxKeyIDLength is the longest key id, in bytes.
	MaxKeyIDLength = 64

	publicPrefix  = "ofk1."
	privatePrefix = "ofs1."
	// maxKeyText bounds the text forms before decoding: prefix, id, dot and the base64 of
	// 2 + 1216 bytes fit with room to spare.
	maxKeyText = 2048
)

// ValidKeyID reports whether id can name a key: 1 to 64 characters of [A-Za-z0-9_-], so that
// it is safe in file names, env values, logs and the text forms.
func ValidKeyID(id string) bool {
	if len(id) == 0 || len(id) > MaxKeyIDLength {
		return false
	}
	return isBase64URL(id)
}

// isBase64URL reports whether s uses only the unpadded base64url alphabet (RFC 4648 section 5).
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// PublicKey is a worker pool's public key with its key id. Starters seal to it. It is not a
// secret.
type PublicKey struct {
	id  string
	kem KEM
	pk  hpke.PublicKey
}

// KeyPair is a worker pool's private key with its key id. It prints and logs without its
// private key; its text form (MarshalText) holds the private key and belongs only in Vault.
type KeyPair struct {
	id  string
	kem KEM
	pub *PublicKey
	// priv returns the private key. It is held in a closure because fmt prints the contents
	// of unexported fields (it cannot call String on them) but never looks inside a func: a
	// KeyPair inside someone's struct, printed with any verb, shows no key bytes.
	priv func() hpke.PrivateKey
}

// GenerateKeyPair returns a new key pair named id for kem (the zero KEM means KEMHybrid).
func GenerateKeyPair(id string, kem KEM) (*KeyPair, error) {
	if kem == 0 {
		kem = KEMHybrid
	}
	if !ValidKeyID(id) {
		return nil, fmt.Errorf("%w (bad key id)", ErrInvalidKey)
	}
	spec, ok := kem.spec()
	if !ok {
		return nil, fmt.Errorf("%w (unsupported %v)", ErrInvalidKey, kem)
	}
	priv, err := spec.hpke().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("envelope: generating a %v key: %w", kem, err)
	}
	return newKeyPair(id, kem, priv), nil
}

func newKeyPair(id string, kem KEM, priv hpke.PrivateKey) *KeyPair {
	return &KeyPair{id: id, kem: kem, priv: func() hpke.PrivateKey { return priv },
		pub: &PublicKey{id: id, kem: kem, pk: priv.PublicKey()}}
}

// ID returns the key id.
func (k *KeyPair) ID() string { return k.id }

// KEM returns the key's KEM.
func (k *KeyPair) KEM() KEM { return k.kem }

// Public returns the public half, which starters seal to.
func (k *KeyPair) Public() *PublicKey { return k.pub }

// MarshalText returns the private text form ofs1.<key id>.<base64url>. It holds the private
// key: store it in Vault only, never in an env file, a log or a payload.
func (k *KeyPair) MarshalText() ([]byte, error) {
	if k == nil || k.priv == nil {
		return nil, fmt.Errorf("%w (empty key pair)", ErrInvalidKey)
	}
	b, err := k.priv().Bytes()
	if err != nil {
		return nil, fmt.Errorf("envelope: serialising key %q: %w", k.id, err)
	}
	return encodeKey(privatePrefix, k.id, k.kem, b), nil
}

// UnmarshalText parses the private text form made by MarshalText.
func (k *KeyPair) UnmarshalText(text []byte) error {
	id, kem, spec, raw, err := decodeKey(privatePrefix, string(text))
	if err != nil {
		return err
	}
	priv, err := spec.hpke().NewPrivateKey(raw)
	clear(raw)
	if err != nil {
		return fmt.Errorf("%w (bad private key bytes)", ErrInvalidKey)
	}
	*k = *newKeyPair(id, kem, priv)
	return nil
}

// MarshalJSON refuses, so that a KeyPair placed in a JSON payload, config dump or log record
// fails loudly instead of leaking its private key. Store string(MarshalText()) instead.
func (k KeyPair) MarshalJSON() ([]byte, error) {
	return nil, fmt.Errorf("envelope: a KeyPair is not JSON-encoded, to keep its private key " +
		"out of payloads and logs; store the string of its MarshalText in Vault instead")
}

// String describes the key pair without its private key.
func (k KeyPair) String() string {
	return fmt.Sprintf("envelope.KeyPair{ID: %q, KEM: %v, Private: REDACTED}", k.id, k.kem)
}

// GoString describes the key pair without its private key (for %#v).
func (k KeyPair) GoString() string { return k.String() }

// Format prints String for every verb (fmt.Formatter).
func (k KeyPair) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue logs the key id and KEM only (slog.LogValuer).
func (k KeyPair) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", k.id), slog.String("kem", k.kem.String()),
		slog.String("private", "REDACTED"))
}

// ParsePublicKey parses the text form ofk1.<key id>.<base64url> of a public key, as found in
// OIDCFLOW_ENVELOPE_PUBLIC_KEY. Surrounding white space is ignored.
func ParsePublicKey(s string) (*PublicKey, error) {
	id, kem, spec, raw, err := decodeKey(publicPrefix, s)
	if err != nil {
		return nil, err
	}
	if len(raw) != spec.pubSize {
		return nil, fmt.Errorf("%w (public key of %d bytes; %v wants %d)", ErrInvalidKey, len(raw), kem, spec.pubSize)
	}
	pk, err := spec.hpke().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w (bad public key bytes)", ErrInvalidKey)
	}
	return &PublicKey{id: id, kem: kem, pk: pk}, nil
}

// ID returns the key id.
func (p *PublicKey) ID() string { return p.id }

// KEM returns the key's KEM.
func (p *PublicKey) KEM() KEM { return p.kem }

// String returns the text form ofk1.<key id>.<base64url>.
func (p *PublicKey) String() string {
	if p == nil || p.pk == nil {
		return "<nil>"
	}
	return string(encodeKey(publicPrefix, p.id, p.kem, p.pk.Bytes()))
}

// MarshalText returns the text form, as String.
func (p *PublicKey) MarshalText() ([]byte, error) {
	if p == nil || p.pk == nil {
		return nil, fmt.Errorf("%w (empty public key)", ErrInvalidKey)
	}
	return []byte(p.String()), nil
}

// UnmarshalText parses the text form, as ParsePublicKey.
func (p *PublicKey) UnmarshalText(text []byte) error {
	q, err := ParsePublicKey(string(text))
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

// Equal reports whether p and q are the same key under the same id.
func (p *PublicKey) Equal(q *PublicKey) bool {
	if p == nil || q == nil || p.pk == nil || q.pk == nil {
		return p == q
	}
	return p.id == q.id && p.kem == q.kem && string(p.pk.Bytes()) == string(q.pk.Bytes())
}

func encodeKey(prefix, id string, kem KEM, key []byte) []byte {
	raw := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(key)), uint16(kem))
	raw = append(raw, key...)
	out := make([]byte, 0, len(prefix)+len(id)+1+base64.RawURLEncoding.EncodedLen(len(raw)))
	out = append(out, prefix...)
	out = append(out, id...)
	out = append(out, '.')
	out = base64.RawURLEncoding.AppendEncode(out, raw)
	clear(raw)
	return out
}

// decodeKey parses prefix<id>.<base64url(kem || key)>, bounded in size before decoding.
func decodeKey(prefix, s string) (id string, kem KEM, spec kemSpec, key []byte, err error) {
	s = strings.TrimSpace(s)
	if len(s) > maxKeyText {
		return "", 0, kemSpec{}, nil, fmt.Errorf("%w (text form too long)", ErrInvalidKey)
	}
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return "", 0, kemSpec{}, nil, fmt.Errorf("%w (text form does not start with %q)", ErrInvalidKey, prefix)
	}
	id, b64, ok := strings.Cut(rest, ".")
	if !ok || !ValidKeyID(id) {
		return "", 0, kemSpec{}, nil, fmt.Errorf("%w (bad key id)", ErrInvalidKey)
	}
	// The alphabet check comes first: encoding/base64 skips \r and \n even in strict mode, and
	// the text form must stay canonical.
	if !isBase64URL(b64) {
		return "", 0, kemSpec{}, nil, fmt.Errorf("%w (key of %q is not base64url)", ErrInvalidKey, id)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(b64)
	if err != nil || len(raw) < 2 {
		return "", 0, kemSpec{}, nil, fmt.Errorf("%w (bad base64url key of %q)", ErrInvalidKey, id)
	}
	kem = KEM(binary.BigEndian.Uint16(raw))
	spec, ok = kem.spec()
	if !ok {
		return "", 0, kemSpec{}, nil, fmt.Errorf("%w (unsupported %v)", ErrInvalidKey, kem)
	}
	return id, kem, spec, raw[2:], nil
}
