package envelope

import (
	"crypto/hpke"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

const (
	// MaxSize is the largest envelope Seal produces and Open accepts, in bytes. Open checks it
	// before it parses anything.
	MaxSize = 16 << 10

	// Version is the format version Seal produces. Open reads it and Version1 (for replay of
	// old histories); Contents.Version says which one an envelope was.
	Version = 2
	// Version1 is the first format: tokens only, no commitments. SealV1 produces it.
	Version1 = 1

	magic = "OFE"

	kdfID  = 0x0001 // HKDF-SHA256
	aeadID = 0x0002 // AES-256-GCM

	tagSize = 16 // AES-256-GCM tag
)

var (
	suiteKDF  = hpke.HKDFSHA256()
	suiteAEAD = hpke.AES256GCM()
)

// Seal encrypts c to pub for the binding b as a version 2 envelope and returns it (format
// in the package documentation). Each call uses a fresh encapsulation and, unless c.ID is set,
// a fresh envelope id, so sealing the same contents twice gives different envelopes. c.Version
// is ignored; a zero c.IssuedAt becomes time.Now(). It fails with ErrInvalidBinding for an
// invalid b, ErrMalformed when c holds neither an ID token nor an access token, when
// c.InputDigest is not 32 bytes, c.ID is set but not a valid id or c.RunID is longer than
// MaxRunIDLength, and ErrTooLarge when the envelope would exceed MaxSize.
func Seal(pub *PublicKey, b Binding, c Contents) ([]byte, error) {
	return sealContents(pub, b, Version, func() ([]byte, error) { return c.marshalV2(time.Now) })
}

// SealV1 seals c as a version 1 envelope, ignoring the version 2 fields (ID, IssuedAt, RunID,
// InputDigest). It is for tests of upgrade paths only: workers refuse format 1 for new
// operations (they read it only when replaying old histories, and replay opens no envelope).
func SealV1(pub *PublicKey, b Binding, c Contents) ([]byte, error) {
	return sealContents(pub, b, Version1, c.marshalV1)
}

func sealContents(pub *PublicKey, b Binding, version byte, marshal func() ([]byte, error)) ([]byte, error) {
	if pub == nil || pub.pk == nil {
		return nil, fmt.Errorf("%w (no public key to seal to)", ErrInvalidKey)
	}
	spec, ok := pub.kem.spec()
	if !ok {
		return nil, fmt.Errorf("%w (unsupported %v)", ErrInvalidKey, pub.kem)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	plaintext, err := marshal()
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)
	return seal(pub, spec, b, version, plaintext)
}

// seal builds an envelope of the given format version around an already encoded plaintext.
// The version goes into the header (and so the additional data) and into the HPKE info.
func seal(pub *PublicKey, spec kemSpec, b Binding, version byte, plaintext []byte) ([]byte, error) {
	return sealInfo(pub, spec, version, b.info(version), plaintext)
}

// sealInfo is seal with the HPKE info given (tests use it to seal a mismatched one).
func sealInfo(pub *PublicKey, spec kemSpec, version byte, info, plaintext []byte) ([]byte, error) {
	headerSize := 3 + 1 + 2 + 2 + 2 + 1 + len(pub.id) + 2 + spec.encSize
	if headerSize+len(plaintext)+tagSize > MaxSize {
		return nil, ErrTooLarge
	}
	enc, sender, err := hpke.NewSender(pub.pk, suiteKDF, suiteAEAD, info)
	if err != nil {
		return nil, fmt.Errorf("envelope: sealing to key %q: %w", pub.id, err)
	}
	if len(enc) != spec.encSize {
		return nil, fmt.Errorf("envelope: sealing to key %q: encapsulated key of %d bytes, want %d",
			pub.id, len(enc), spec.encSize)
	}
	out := make([]byte, 0, headerSize+len(plaintext)+tagSize)
	out = append(out, magic...)
	out = append(out, version)
	out = binary.BigEndian.AppendUint16(out, uint16(pub.kem))
	out = binary.BigEndian.AppendUint16(out, kdfID)
	out = binary.BigEndian.AppendUint16(out, aeadID)
	out = append(out, byte(len(pub.id)))
	out = append(out, pub.id...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(enc)))
	out = append(out, enc...)
	header := out
	ct, err := sender.Seal(header, plaintext)
	if err != nil {
		return nil, fmt.Errorf("envelope: sealing to key %q: %w", pub.id, err)
	}
	return append(out, ct...), nil
}

// header is a parsed envelope header.
type header struct {
	version    byte
	kem        KEM
	kid        string
	enc        []byte
	aad        []byte // all header bytes, enc included
	ciphertext []byte
}

// parseHeader reads the header of an untrusted envelope. Every length is checked against the
// remaining bytes before it is used; nothing is allocated.
func parseHeader(sealed []byte) (header, error) {
	if len(sealed) == 0 {
		return header{}, ErrMissing
	}
	if len(sealed) > MaxSize {
		return header{}, ErrTooLarge
	}
	const fixed = 3 + 1 + 2 + 2 + 2 + 1
	if len(sealed) < 4 || string(sealed[:3]) != magic {
		return header{}, fmt.Errorf("%w (not an oidcflow envelope)", ErrMalformed)
	}
	v := sealed[3]
	if v > Version {
		return header{}, fmt.Errorf("%w (format version %d is newer than this build reads, %d and %d: "+
			"a newer client sealed it; upgrade the worker pool)", ErrUnsupported, v, Version1, Version)
	}
	if v != Version1 && v != Version {
		return header{}, fmt.Errorf("%w (format version %d; this build reads %d and %d)", ErrUnsupported, v, Version1, Version)
	}
	if len(sealed) < fixed {
		return header{}, fmt.Errorf("%w (truncated header)", ErrMalformed)
	}
	h := header{version: v}
	h.kem = KEM(binary.BigEndian.Uint16(sealed[4:]))
	spec, ok := h.kem.spec()
	if !ok {
		return header{}, fmt.Errorf("%w (%v)", ErrUnsupported, h.kem)
	}
	if kdf, aead := binary.BigEndian.Uint16(sealed[6:]), binary.BigEndian.Uint16(sealed[8:]); kdf != kdfID || aead != aeadID {
		return header{}, fmt.Errorf("%w (KDF %#04x, AEAD %#04x)", ErrUnsupported, kdf, aead)
	}
	n := int(sealed[10])
	rest := sealed[fixed:]
	if n == 0 || n > MaxKeyIDLength || len(rest) < n+2 {
		return header{}, fmt.Errorf("%w (bad key id length)", ErrMalformed)
	}
	kid := rest[:n]
	if !ValidKeyID(string(kid)) {
		return header{}, fmt.Errorf("%w (bad key id)", ErrMalformed)
	}
	h.kid = string(kid)
	rest = rest[n:]
	m := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if m != spec.encSize {
		return header{}, fmt.Errorf("%w (encapsulated key of %d bytes; %v uses %d)", ErrMalformed, m, h.kem, spec.encSize)
	}
	if len(rest) < m+tagSize {
		return header{}, fmt.Errorf("%w (truncated)", ErrMalformed)
	}
	h.enc = rest[:m:m]
	aadLen := len(sealed) - len(rest) + m
	h.aad = sealed[:aadLen:aadLen]
	h.ciphertext = rest[m:]
	return h, nil
}

// Keyring is a worker's set of key pairs: the current one, which starters are told to seal
// to, and previous ones still accepted while starters move to the current key. It is safe for
// concurrent use; it never changes after NewKeyring.
type Keyring struct {
	current *KeyPair
	keys    map[string]*KeyPair
	ids     []string
}

// NewKeyring returns a keyring that opens envelopes sealed to current or any of previous.
// Key ids must be distinct. To finish a rotation, build a keyring without the old key:
// envelopes sealed to it then fail with ErrUnknownKey.
func NewKeyring(current *KeyPair, previous ...*KeyPair) (*Keyring, error) {
	r := &Keyring{current: current, keys: make(map[string]*KeyPair, 1+len(previous))}
	for _, k := range append([]*KeyPair{current}, previous...) {
		if k == nil || k.priv == nil {
			return nil, fmt.Errorf("%w (nil key pair in keyring)", ErrInvalidKey)
		}
		if _, dup := r.keys[k.id]; dup {
			return nil, fmt.Errorf("%w (key id %q twice in keyring)", ErrInvalidKey, k.id)
		}
		r.keys[k.id] = k
		r.ids = append(r.ids, k.id)
	}
	return r, nil
}

// Current returns the current key pair.
func (r *Keyring) Current() *KeyPair { return r.current }

// Public returns the current public key, the one starters should seal to.
func (r *Keyring) Public() *PublicKey { return r.current.pub }

// IDs returns the key ids, current first.
func (r *Keyring) IDs() []string { return slices.Clone(r.ids) }

// String lists the key ids, never a private key.
func (r *Keyring) String() string {
	return fmt.Sprintf("envelope.Keyring{IDs: [%s], Private: REDACTED}", strings.Join(r.ids, " "))
}

// GoString lists the key ids, never a private key (for %#v).
func (r *Keyring) GoString() string { return r.String() }

// Format prints String for every verb (fmt.Formatter).
func (r *Keyring) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, r.String()) }

// LogValue logs the key ids only (slog.LogValuer).
func (r *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("current", r.current.id), slog.Any("kids", r.ids))
}

// Open checks and decrypts an envelope sealed for the binding b. The size is checked first,
// then the header is parsed within bounds, the key is picked by key id, and HPKE opens the
// ciphertext with b and the header's format version as info and the header as additional
// data. It reads versions 1 and 2 and sets Contents.Version; a version 1 envelope has no
// commitments (empty ID, RunID, InputDigest and zero IssuedAt), so refusing it outside
// replay is the caller's job. Open does not check IssuedAt against a clock, nor whether the
// envelope id was seen before: the worker's one-time store does.
//
// Errors: ErrMissing (empty input), ErrTooLarge, ErrMalformed, ErrUnsupported, ErrUnknownKey,
// ErrInvalidBinding (b itself is invalid) and ErrOpen (wrong binding, wrong key or tampered:
// these are indistinguishable by design). All wrap identity.ErrUnauthenticated.
func (r *Keyring) Open(b Binding, sealed []byte) (Contents, error) {
	if r == nil || r.keys == nil {
		return Contents{}, fmt.Errorf("%w (no keyring: build one with NewKeyring)", ErrInvalidKey)
	}
	h, err := parseHeader(sealed)
	if err != nil {
		return Contents{}, err
	}
	if err := b.Validate(); err != nil {
		return Contents{}, err
	}
	k, ok := r.keys[h.kid]
	if !ok {
		return Contents{}, fmt.Errorf("%w (sealed to key id %q; this worker holds %s)", ErrUnknownKey, h.kid, r.quotedIDs())
	}
	if k.kem != h.kem {
		return Contents{}, fmt.Errorf("%w (key %q is %v, envelope says %v)", ErrOpen, h.kid, k.kem, h.kem)
	}
	rcpt, err := hpke.NewRecipient(h.enc, k.priv(), suiteKDF, suiteAEAD, b.info(h.version))
	if err != nil {
		return Contents{}, ErrOpen
	}
	plaintext, err := rcpt.Open(h.aad, h.ciphertext)
	if err != nil {
		return Contents{}, ErrOpen
	}
	defer clear(plaintext)
	return unmarshalContents(h.version, plaintext)
}

func (r *Keyring) quotedIDs() string {
	q := make([]string, len(r.ids))
	for i, id := range r.ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, ", ")
}
