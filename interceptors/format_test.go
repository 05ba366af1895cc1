package interceptors

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
)

// TestReferenceOfANewerFormat: a reference of a format this worker does not know (a newer
// worker signed it) is refused, as every bad reference is (non-retryable
// oidcflow.Unauthenticated), and the message says to upgrade instead of blaming a copy.
func TestReferenceOfANewerFormat(t *testing.T) {
	keys, err := newMACKeys([][]byte{secret})
	if err != nil {
		t.Fatal(err)
	}
	r := reference{Session: "s1", Subject: "bob", Op: opActivity, From: "run-1"}
	keys.sign(&r)
	r.Version = referenceVersion + 1
	r.MAC = keys.sum(keys[0], &r) // signed as the newer worker would
	err = keys.verify(&r, opActivity, "run-1")
	if !errors.Is(err, ErrBadReference) || !strings.Contains(err.Error(), "upgrade this worker") {
		t.Fatalf("verify = %v, want ErrBadReference saying to upgrade", err)
	}
	var app *temporal.ApplicationError
	if !errors.As(identity.ApplicationError(err), &app) || app.Type() != identity.TypeUnauthenticated || !app.NonRetryable() {
		t.Fatalf("as a Temporal error: %v", identity.ApplicationError(err))
	}
}

// TestReferenceFormat1IsBounded: references an earlier release signed (format 1: no digest,
// no expiry) still resume what that release scheduled: activities, children and continued
// runs, each bound to the run that the server records. They are never the pool's authority
// and never a signal's sender, whose format 2 commitments (digest, expiry, one use) they
// lack. A format 1 reference only comes from history an earlier release wrote, under the
// pool's MAC key: this release signs format 2 only.
func TestReferenceFormat1IsBounded(t *testing.T) {
	keys, err := newMACKeys([][]byte{secret})
	if err != nil {
		t.Fatal(err)
	}
	v1 := func(op, session string) *reference {
		r := &reference{Version: 1, Session: session, Subject: "bob", Op: op, From: "run-1"}
		r.MAC = keys.sum(keys[0], r)
		return r
	}
	for _, op := range []string{opActivity, opChild, opContinue} {
		if err := keys.verify(v1(op, "s1"), op, "run-1"); err != nil {
			t.Errorf("format 1 %s reference refused: %v", op, err)
		}
		if err := keys.verify(v1(op, "s1"), op, "run-2"); !errors.Is(err, ErrBadReference) {
			t.Errorf("format 1 %s reference accepted for another run: %v", op, err)
		}
	}
	for _, op := range []string{opPool + "RevokeAccess", opSignal + "finish"} {
		session := "s1"
		if strings.HasPrefix(op, opPool) {
			session = ""
		}
		if err := keys.verify(v1(op, session), op, "run-1"); !errors.Is(err, ErrBadReference) {
			t.Errorf("format 1 %s reference accepted: %v", op, err)
		}
	}
	r := reference{Session: "s1", Subject: "bob", Op: opActivity, From: "run-1"}
	keys.sign(&r)
	if r.Version != referenceVersion {
		t.Errorf("sign wrote format %d, want %d", r.Version, referenceVersion)
	}
}
