package interceptors

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/oidcflow/oidcflow/identity"
)

// reference is what outbound calls carry instead of a token: a person's session id and
// subject, or the pool's own authority, bound to where it may be used, and a MAC under a key
// that only the worker pool holds. Headers are readable in history, so a reference can be
// copied; the binding makes a copy useless elsewhere:
//
//   - activity: bound to the run that scheduled it (activity info names the run);
//   - pool:<activity type>: the pool's own authority for one activity type, bound to the
//     scheduling run; it names no session;
//   - child: bound to the parent run, which the server records as the child's parent;
//   - continue: bound to the previous run, which the server records as the continued run;
//   - signal:<name>: bound to the target workflow (and run, when the sender names it), the
//     digest of the signal's arguments, an expiry, and a unique id that the pool honours once.
//
// Except on activities, a reference also carries the sender's verified identity (no
// secrets) under the MAC: a signal's sender may be gone, with its session, by the time the
// signal is read, and a child or the next run starts from it without a round trip to Vault
// and the IdP (its activities verify a fresh token as always).
type reference struct {
	Version int                `json:"v"`
	Session string             `json:"sid"`
	Subject string             `json:"sub"`
	Op      string             `json:"op"`
	Target  string             `json:"to"`   // namespace/workflow id[/run id] (signals), empty otherwise
	From    string             `json:"from"` // run id of the sender, or a unique id for signals
	Owner   bool               `json:"own,omitempty"`
	Sender  *identity.Identity `json:"id,omitempty"`  // all but activities
	Digest  string             `json:"dig,omitempty"` // signals: hex InputDigest of the arguments (version 2)
	Expires int64              `json:"exp,omitempty"` // signals: Unix seconds (version 2)
	MAC     []byte             `json:"mac"`
}

const (
	opActivity = "activity"
	opPool     = "pool:"
	opChild    = "child"
	opContinue = "continue"
	opSignal   = "signal:"
)

// referenceVersion is the version sign writes. Version 1 references (no digest, no expiry)
// are still honoured on activities, children and continued runs, which were bound to a run
// already; never on signals or as the pool's authority.
const referenceVersion = 2

// macKeys derives the reference MAC keys from the pool's secrets; the first signs.
type macKeys [][]byte

// newMACKeys derives one 32-byte key per secret with HKDF-SHA256 (RFC 5869).
func newMACKeys(secrets [][]byte) (macKeys, error) {
	keys := make(macKeys, 0, len(secrets))
	for _, s := range secrets {
		if len(s) < 32 {
			return nil, fmt.Errorf("interceptors: a propagation secret has %d bytes, needs at least 32", len(s))
		}
		k, err := hkdf.Key(sha256.New, s, nil, "oidcflow session reference v1", 32)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("interceptors: WorkerOptions.PropagationSecrets is empty")
	}
	return keys, nil
}

// message is the canonical, length-prefixed encoding the MAC covers.
func (r *reference) message() []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(r.Version))
	for _, f := range []string{r.Session, r.Subject, r.Op, r.Target, r.From} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	if r.Owner {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	if r.Sender != nil {
		sender, _ := json.Marshal(r.Sender) // a struct: fields in a fixed order
		b = binary.BigEndian.AppendUint32(b, uint32(len(sender)))
		b = append(b, sender...)
	}
	if r.Version >= 2 {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Digest)))
		b = append(b, r.Digest...)
		b = binary.BigEndian.AppendUint64(b, uint64(r.Expires))
	}
	return b
}

func (k macKeys) sum(key []byte, r *reference) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(r.message())
	return m.Sum(nil)
}

// sign sets r.MAC with the current key.
func (k macKeys) sign(r *reference) {
	r.Version = referenceVersion
	r.MAC = k.sum(k[0], r)
}

// verify checks r's MAC against every key (current and previous) and its binding against
// what the receiver knows: op and from. It returns ErrBadReference on any mismatch. Signal
// targets, digests and expiries are the signal receiver's to check.
func (k macKeys) verify(r *reference, op, from string) error {
	if r.Version > referenceVersion {
		return fmt.Errorf("interceptors: reference format %d is newer than this worker reads (%d at most): "+
			"a newer worker wrote it; upgrade this worker: %w", r.Version, referenceVersion, ErrBadReference)
	}
	legacyOK := r.Version == 1 && (op == opActivity || op == opChild || op == opContinue)
	if (r.Version != referenceVersion && !legacyOK) || r.Op != op || r.From != from {
		return ErrBadReference
	}
	if (r.Session == "") != strings.HasPrefix(op, opPool) { // a person's, or the pool's
		return ErrBadReference
	}
	for _, key := range k {
		if hmac.Equal(r.MAC, k.sum(key, r)) {
			return nil
		}
	}
	return ErrBadReference
}
