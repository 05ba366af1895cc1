package envelope

import (
	"errors"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/identity"
)

var kemCases = []struct {
	name string
	kem  KEM
}{
	{"hybrid", KEMHybrid},
	{"x25519", KEMX25519},
}

func testBinding() Binding {
	return Binding{Namespace: "oidcflow", WorkflowID: "access-request-42", Operation: OpStart}
}

func testContents() Contents {
	return Contents{
		IDToken:      "eyJhbGciOiJSUzI1NiJ9.id-token-payload.signature-of-id-token",
		AccessToken:  "eyJhbGciOiJSUzI1NiJ9.access-token-payload.signature-of-access",
		RefreshToken: "ory_rt_refresh-token-secret-value-0123456789",
		Expiry:       time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func mustKeyPair(t testing.TB, id string, kem KEM) *KeyPair {
	t.Helper()
	k, err := GenerateKeyPair(id, kem)
	if err != nil {
		t.Fatalf("GenerateKeyPair(%q, %v): %v", id, kem, err)
	}
	return k
}

func mustKeyring(t testing.TB, current *KeyPair, previous ...*KeyPair) *Keyring {
	t.Helper()
	r, err := NewKeyring(current, previous...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return r
}

func assertContents(t *testing.T, got, want Contents) {
	t.Helper()
	if got.IDToken != want.IDToken || got.AccessToken != want.AccessToken ||
		got.RefreshToken != want.RefreshToken || !got.Expiry.Equal(want.Expiry) {
		t.Fatalf("contents differ after the round trip (%v vs %v)", got, want)
	}
}

func assertIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
	if !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("error %v does not wrap identity.ErrUnauthenticated", err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range kemCases {
		t.Run(tc.name, func(t *testing.T) {
			k := mustKeyPair(t, "pool-2026-01", tc.kem)
			r := mustKeyring(t, k)
			sealed, err := Seal(k.Public(), testBinding(), testContents())
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			got, err := r.Open(testBinding(), sealed)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			assertContents(t, got, testContents())
		})
	}
}
