package envelope

import (
	"errors"
	"strings"
	"testing"

	"github.com/oidcflow/oidcflow/identity"
)

// TestNewerFormatSaysUpgrade: an envelope of a format newer than this build reads (a newer
// client sealed it) is refused, as an identity error (non-retryable), with a message that
// says to upgrade the workers rather than the client.
func TestNewerFormatSaysUpgrade(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	r := mustKeyring(t, k)
	sealed, err := Seal(k.Public(), testBinding(), testContents())
	if err != nil {
		t.Fatal(err)
	}
	sealed[3] = Version + 1
	_, err = r.Open(testBinding(), sealed)
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("Open = %v, want ErrUnsupported (unauthenticated)", err)
	}
	if !strings.Contains(err.Error(), "upgrade the worker pool") {
		t.Errorf("message %q does not say to upgrade the workers", err)
	}
}
