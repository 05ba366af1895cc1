package interceptors

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/oidcflow/oidcflow/identity"
)

// reference is what outbound calls carry instead of a token: the session id and subject,
// bound to where it may be used, and a MAC under a key that only the worker pool holds.
// Headers are readable in history, so a reference can be copied; the binding makes a copy
// useless elsewhere:
//
//   - activity: bound to the run that scheduled it (activity info names the run);
//   - child: bound to the parent run, which the server records as the child's parent;
//   - continue: bound to the previous run, which the server records as the continued run;
//   - signal:<name>: bound to the target workflow and a unique id that the receiver accepts once.
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
	Target  string             `json:"to"`   // namespace/workflow id (signals), empty otherwise
	From    string             `json:"from"` // run id of the sender, or a unique id for signals
	Owner   bool               `json:"own,omitempty"`
	Sender  *identity.Identity `json:"id,omitempty"` // all but activities
	MAC     []byte             `json:"mac"`
}

const (
	opActivity = "activity"
	opChild    = "child"
	opContinue = "continue"
	opSignal   = "signal:"
)

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
	return b
}

func (k macKeys) sum(key []byte, r *reference) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(r.message())
	return m.Sum(nil)
}

// sign sets r.MAC with the current key.
func (k macKeys) sign(r *reference) {
	r.Version = 1
	r.MAC = k.sum(k[0], r)
}

// verify checks r's MAC against every key (current and previous) and its binding against
// what the receiver knows: op, target and from. It returns ErrBadReference on any mismatch.
func (k macKeys) verify(r *reference, op, target, from string) error {
	if r.Version != 1 || r.Op != op || r.Target != target || r.From != from || r.Session == "" {
		return ErrBadReference
	}
	for _, key := range k {
		if hmac.Equal(r.MAC, k.sum(key, r)) {
			return nil
		}
	}
	return ErrBadReference
}
