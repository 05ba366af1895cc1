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
// # What an envelope commits to
//
// A version 2 envelope (the one Seal makes) also commits, inside its AEAD-protected plaintext,
// to a random envelope id (128 bits), the time it was sealed, the Temporal run the operation
// targets (when the sealer knows it: updates and signals, not starts) and a SHA-256 digest of
// the operation's input (the workflow type or update/signal name and the arguments, as the
// interceptors package defines it). Open returns them in [Contents]; it does not judge them.
//
// What this package does not do: it does not verify the tokens it carries (the identity
// package does); it does not prevent replay of an envelope (the worker records every envelope
// id it honours in a pool-wide one-time store, tokenstore.OneTime, and refuses an id seen
// before); it does not check the issue time against a clock (IssuedAt is the sealer's claim,
// which the worker bounds with its maximum age); it does not compare the run or the input
// digest with the request (the worker does, from the request it handles); it does not refuse
// version 1 (the worker refuses it outside replay, and replay opens no envelope); and it does
// not hide the key id, the algorithms or the approximate size of the tokens.
//
// # Format, version 2
//
// All integers are big-endian. An envelope is at most [MaxSize] bytes; larger input is
// refused before any parsing.
//
//	offset  size  field
//	0       3     magic "OFE" (0x4f 0x46 0x45)
//	3       1     format version, 0x02
//	4       2     KEM id (RFC 9180 section 7.1 / draft-ietf-hpke-pq):
//	              0x647a MLKEM768-X25519 (X-Wing, the default), 0x0020 DHKEM(X25519, HKDF-SHA256)
//	6       2     KDF id, 0x0001 HKDF-SHA256 (the only one accepted)
//	8       2     AEAD id, 0x0002 AES-256-GCM (the only one accepted)
//	10      1     key id length n, 1..64
//	11      n     key id, characters [A-Za-z0-9_-]
//	11+n    2     enc length m, which must equal the KEM's Nenc (1120 for X-Wing, 32 for X25519)
//	13+n    m     enc, the HPKE encapsulated key
//	13+n+m  rest  ciphertext: the AEAD output (at least the 16-byte tag) over the contents
//
// The header (every byte before the ciphertext, enc included) is the AEAD's additional data,
// so a change to any byte of the envelope makes opening fail. The HPKE info is
//
//	"oidcflow/envelope" 0x00 version(1 byte, 0x02)
//	len(namespace)(2 bytes) namespace len(workflow id)(2 bytes) workflow id
//	len(operation)(2 bytes) operation
//
// Every field is length-prefixed, so two different bindings never encode to the same info;
// the version byte in both the header and the info means an envelope relabelled as the other
// version does not open. The plaintext is one JSON object with exactly these members:
//
//	id_token       string, omitted when empty
//	access_token   string, omitted when empty (at least one of the two tokens is present)
//	refresh_token  string, omitted when empty
//	expiry         RFC 3339, the access token's expiry, omitted when unknown
//	jti            required: the envelope id, 16 random bytes in base64url without padding
//	               (22 characters, the unused low bits zero)
//	iat            required: the issue time, RFC 3339 in UTC with exactly nine fractional
//	               digits, "2006-01-02T15:04:05.000000000Z" (30 characters)
//	run            the Temporal run id the operation targets, 1..1024 bytes; omitted when the
//	               sealer does not know it (a start)
//	input          required: the 32-byte input digest in base64url without padding
//	               (43 characters)
//
// Open refuses, as [ErrMalformed], a member it does not know, a missing or badly spelled jti,
// iat or input, an empty run, and trailing data.
//
// # Format, version 1
//
// Version 1 is the header above with version byte 0x01, the same HPKE info with version byte
// 0x01, and the plaintext
// {"id_token":...,"access_token":...,"refresh_token":...,"expiry":RFC 3339}, empty members
// omitted and no other member allowed. It commits to no id, time, run or input: copied from
// history, it opens again for the same binding until its tokens expire. Open still reads it
// (Contents.Version 1, no commitments) so that old histories stay readable; Seal no longer
// makes it, and [SealV1] exists only to test upgrade paths.
//
// # Sizes
//
// An envelope is the plaintext plus 13 bytes, the key id, the enc and the 16-byte tag: with a
// 7-character key id, 1156 bytes of overhead for X-Wing and 68 for X25519. Version 2's
// commitments add exactly 124 bytes to the plaintext of a start (jti, iat, input and their
// names) and 45 more with a 36-character run id. Under a 5-character key id, a 1 KiB ID token,
// a 1 KiB access token and a 64-byte refresh token seal to 3474 bytes (X-Wing) or 2386 bytes
// (X25519) as a version 2 start, 3350 and 2262 as version 1, well below MaxSize.
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
