package envelope

import (
	"encoding/binary"
	"strings"
)

// MaxBindingField is the longest namespace, workflow id or operation a Binding accepts, in
// bytes. Temporal's own default limit for ids and names is 1000.
const MaxBindingField = 1024

// Operation strings of a Binding.
const (
	// OpStart binds an envelope to starting the workflow (StartWorkflow, and the start half of
	// SignalWithStart).
	OpStart = "start"
	// OpSignalPrefix prefixes the signal name: "signal:<name>".
	OpSignalPrefix = "signal:"
	// OpUpdatePrefix prefixes the update name: "update:<name>".
	OpUpdatePrefix = "update:"
)

// SignalOp returns the operation string for the signal name.
func SignalOp(name string) string { return OpSignalPrefix + name }

// UpdateOp returns the operation string for the update name.
func UpdateOp(name string) string { return OpUpdatePrefix + name }

// Binding is what an envelope is sealed for: it opens only with the same Binding. It goes into
// HPKE's info (RFC 9180 section 5.1), not into the envelope, so the opener supplies it from the
// request it is handling.
type Binding struct {
	Namespace  string // Temporal namespace
	WorkflowID string // the workflow id the request targets
	Operation  string // "start", "signal:<name>" or "update:<name>"
}

// Validate returns ErrInvalidBinding if a field is empty or too long, or the operation is not
// start, signal:<name> or update:<name> with a non-empty name.
func (b Binding) Validate() error {
	for _, f := range []string{b.Namespace, b.WorkflowID, b.Operation} {
		if f == "" || len(f) > MaxBindingField {
			return ErrInvalidBinding
		}
	}
	if b.Operation == OpStart {
		return nil
	}
	for _, p := range []string{OpSignalPrefix, OpUpdatePrefix} {
		if name, ok := strings.CutPrefix(b.Operation, p); ok && name != "" {
			return nil
		}
	}
	return ErrInvalidBinding
}

// infoLabel starts every info, so it cannot collide with another protocol's use of the key.
const infoLabel = "oidcflow/envelope\x00"

// info returns the canonical, length-prefixed encoding of (version, namespace, workflow id,
// operation). Call Validate first: it keeps each length within 16 bits.
func (b Binding) info(version byte) []byte {
	out := make([]byte, 0, len(infoLabel)+1+6+len(b.Namespace)+len(b.WorkflowID)+len(b.Operation))
	out = append(out, infoLabel...)
	out = append(out, version)
	for _, f := range []string{b.Namespace, b.WorkflowID, b.Operation} {
		out = binary.BigEndian.AppendUint16(out, uint16(len(f)))
		out = append(out, f...)
	}
	return out
}
