package envelope

import "github.com/oidcflow/oidcflow/identity"

// sentinelError is the type of this package's sentinel errors. Its message stands alone (it
// does not repeat identity.ErrUnauthenticated's), and it unwraps to identity.ErrUnauthenticated.
type sentinelError struct{ msg string }

func (e *sentinelError) Error() string { return e.msg }

// Unwrap makes errors.Is(err, identity.ErrUnauthenticated) true.
func (e *sentinelError) Unwrap() error { return identity.ErrUnauthenticated }

// Sentinel errors. Each wraps identity.ErrUnauthenticated; test for them with errors.Is.
var (
	// ErrMissing: the request carried no envelope at all.
	ErrMissing error = &sentinelError{"envelope: no identity envelope; start the workflow " +
		"through oidcflow's client so the caller's identity is sealed into the request"}

	// ErrTooLarge: the envelope (or the contents to seal) exceeds MaxSize. Checked before any
	// parsing.
	ErrTooLarge error = &sentinelError{"envelope: larger than the 16 KiB limit; seal fewer or " +
		"smaller tokens (an access token and an ID token of a few KiB each fit)"}

	// ErrMalformed: the bytes are not a well-formed envelope (bad magic, truncated, lengths out
	// of range, bad key id, or contents that are not the expected JSON of their version, such
	// as a version 2 plaintext without its envelope id, issue time or 32-byte input digest).
	// Seal returns it for contents it cannot seal (no token, an input digest that is not 32
	// bytes, a malformed envelope id).
	ErrMalformed error = &sentinelError{"envelope: malformed envelope; it was not produced " +
		"by oidcflow's client, or it was truncated or altered on the way"}

	// ErrUnsupported: a format version, KEM, KDF or AEAD this build does not accept.
	ErrUnsupported error = &sentinelError{"envelope: unsupported envelope version or " +
		"algorithm; seal with this version's client and a supported key (X-Wing or X25519, " +
		"HKDF-SHA256, AES-256-GCM)"}

	// ErrUnknownKey: the envelope names a key id that is not in the worker's keyring.
	ErrUnknownKey error = &sentinelError{"envelope: sealed to a key this worker does not " +
		"hold; set the starter's OIDCFLOW_ENVELOPE_PUBLIC_KEY to the pool's current public " +
		"key, or keep the previous key in the workers' keyring until starters have moved"}

	// ErrOpen: the envelope does not open. Sealed for another binding (namespace, workflow id
	// or operation), sealed to another key under the same key id, or altered: HPKE's AEAD does
	// not tell these apart, by design, so neither does this error.
	ErrOpen error = &sentinelError{"envelope: does not open: it was sealed for another " +
		"workflow or operation (or to another key, or altered); start the workflow through " +
		"oidcflow's client so it is sealed for this one"}

	// ErrBinding is ErrOpen: a binding mismatch cannot be told apart from a wrong key or
	// tampering (see ErrOpen).
	ErrBinding = ErrOpen

	// ErrInvalidBinding: a Binding with an empty namespace or workflow id, an operation that
	// is not start, signal:<name> or update:<name>, or a field longer than MaxBindingField.
	ErrInvalidBinding error = &sentinelError{"envelope: invalid binding; namespace and " +
		"workflow id must be non-empty and the operation one of start, signal:<name>, " +
		"update:<name>, each at most 1024 bytes"}

	// ErrInvalidKey: a key or key id that cannot be used: bad text form, unknown KEM, bad key
	// bytes, a key id outside [A-Za-z0-9_-]{1,64}, or a keyring with duplicate ids.
	ErrInvalidKey error = &sentinelError{"envelope: invalid key; generate keys with " +
		"envelope.GenerateKeyPair and pass them in their text form (ofk1.<id>.<key> for " +
		"public keys, ofs1.<id>.<key> for key pairs)"}
)
