// Package envelope seals a caller's OIDC tokens to a worker pool's public key so that they can
// ride in a Temporal header (which Temporal stores in history in plaintext) without exposing a
// live credential to anyone who can read history.
//
// An envelope is HPKE-sealed (RFC 9180, base mode, crypto/hpke) to the pool's public key and
// bound through the HPKE info parameter (RFC 9180 section 5.1) to a [Binding]: the Temporal
// namespace, the workflow id and the operation (start, signal:<name>, update:<name>). An
// envelope copied onto another workflow or operation does not open. Starters hold only a
// [PublicKey]; workers hold a [Keyring] with the current [KeyPair] and any previous ones that
// are still accepted during a rotation.
//
// What this package does not do: it does not verify the tokens it carries (the identity
// package does), it does not prevent replay of an envelope on the same binding (Temporal's
// workflow id uniqueness and the token's own expiry bound that), and it does not hide the
// key id, the algorithms or the approximate size of the tokens.
//
// # Format, version 1
//
// All integers are big-endian. An envelope is at most [MaxSize] bytes; larger input is
// refused before any parsing.
//
//	offset  size  field
//	0       3     magic "OFE" (0x4f 0x46 0x45)
//	3       1     format version, 0x01
//	4       2     KEM id (RFC 9180 section 7.1 / draft-ietf-hpke-pq):
//	              0x647a MLKEM768-X25519 (X-Wing, the default), 0x0020 DHKEM(X25519, HKDF-SHA256)
//	6       2     KDF id, 0x0001 HKDF-SHA256 (the only one accepted in version 1)
//	8       2     AEAD id, 0x0002 AES-256-GCM (the only one accepted in version 1)
//	10      1     key id length n, 1..64
//	11      n     key id, characters [A-Za-z0-9_-]
//	11+n    2     enc length m, which must equal the KEM's Nenc (1120 for X-Wing, 32 for X25519)
//	13+n    m     enc, the HPKE encapsulated key
//	13+n+m  rest  ciphertext: the AEAD output (at least the 16-byte tag) over the contents
//
// The header (every byte before the ciphertext, enc included) is the AEAD's additional data,
// so a change to any byte of the envelope makes opening fail. The HPKE info is
//
//	"oidcflow/envelope" 0x00 version(1 byte)
//	len(namespace)(2 bytes) namespace len(workflow id)(2 bytes) workflow id
//	len(operation)(2 bytes) operation
//
// Every field is length-prefixed, so two different bindings never encode to the same info.
// The plaintext is the JSON object
// {"id_token":...,"access_token":...,"refresh_token":...,"expiry":RFC 3339}, with empty
// members omitted.
//
// # Sizes
//
// An envelope is the plaintext plus 13 bytes, the key id, the enc and the 16-byte tag: with a
// 7-character key id, 1156 bytes of overhead for X-Wing and 68 for X25519. Under a 5-character
// key id, a 1 KiB ID token, a 1 KiB access token and a 64-byte refresh token seal to 3350
// bytes (X-Wing) or 2262 bytes (X25519), well below MaxSize.
//
// # Keys
//
// A public key's text form, as set in OIDCFLOW_ENVELOPE_PUBLIC_KEY, is
//
//	ofk1.<key id>.<base64url without padding of (KEM id (2 bytes) || public key)>
//
// and a key pair's text form, stored only in Vault, is
//
//	ofs1.<key id>.<base64url without padding of (KEM id (2 bytes) || private key)>
//
// where the key bytes are RFC 9180's SerializePublicKey / SerializePrivateKey (for X-Wing, the
// 32-byte seed).
//
// # Errors
//
// Every error of Open and of the key parsers wraps identity.ErrUnauthenticated, so
// identity.ApplicationError turns it into a non-retryable Temporal error. A wrong key with a
// known key id, a wrong binding and tampering are all reported as [ErrOpen]: an AEAD failure
// does not say which input was wrong, by design. No error carries token material or key bytes.
package envelope
