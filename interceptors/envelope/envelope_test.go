package envelope

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

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
		InputDigest:  testDigest("start:AccessRequest"),
	}
}

// testDigest stands in for the interceptors package's input digest.
func testDigest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
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

func TestSealIsRandomised(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	a, err := Seal(k.Public(), testBinding(), testContents())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Seal(k.Public(), testBinding(), testContents())
	if err != nil {
		t.Fatal(err)
	}
	if string(a) == string(b) {
		t.Fatal("two seals of the same contents are identical")
	}
}

func TestBindingMismatch(t *testing.T) {
	base := testBinding()
	cases := []struct {
		name string
		b    Binding
	}{
		{"namespace", Binding{Namespace: "other", WorkflowID: base.WorkflowID, Operation: base.Operation}},
		{"workflow id", Binding{Namespace: base.Namespace, WorkflowID: "access-request-43", Operation: base.Operation}},
		{"operation", Binding{Namespace: base.Namespace, WorkflowID: base.WorkflowID, Operation: UpdateOp("approve")}},
		{"signal name", Binding{Namespace: base.Namespace, WorkflowID: base.WorkflowID, Operation: SignalOp("cancel")}},
		// Same concatenation, different split: the length prefixes keep them apart.
		{"shifted boundary ns/wf", Binding{Namespace: base.Namespace + "a", WorkflowID: base.WorkflowID[1:], Operation: base.Operation}},
	}
	for _, kc := range kemCases {
		k := mustKeyPair(t, "k1", kc.kem)
		r := mustKeyring(t, k)
		sealed, err := Seal(k.Public(), base, testContents())
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			t.Run(kc.name+"/"+tc.name, func(t *testing.T) {
				if err := tc.b.Validate(); err != nil {
					t.Fatalf("test binding %+v: %v", tc.b, err)
				}
				_, err := r.Open(tc.b, sealed)
				assertIs(t, err, ErrBinding)
			})
		}
	}
}

func TestBindingInfoIsInjective(t *testing.T) {
	// Pairs whose plain concatenation is equal must encode differently.
	pairs := [][2]Binding{
		{{"ab", "c", "start"}, {"a", "bc", "start"}},
		{{"n", "wf", "signal:x"}, {"n", "wfsignal:", "x"}},
		{{"n", "w", "update:a"}, {"n", "w", "update:a\x00"}},
	}
	for _, p := range pairs {
		if string(p[0].info(Version)) == string(p[1].info(Version)) {
			t.Errorf("%+v and %+v encode to the same info", p[0], p[1])
		}
	}
	b := testBinding()
	if string(b.info(1)) == string(b.info(2)) {
		t.Error("the version is not part of the info")
	}
}

func TestBindingValidate(t *testing.T) {
	long := string(make([]byte, MaxBindingField+1))
	cases := []struct {
		b  Binding
		ok bool
	}{
		{Binding{"ns", "wf", "start"}, true},
		{Binding{"ns", "wf", "signal:approve"}, true},
		{Binding{"ns", "wf", "update:approve"}, true},
		{Binding{"", "wf", "start"}, false},
		{Binding{"ns", "", "start"}, false},
		{Binding{"ns", "wf", ""}, false},
		{Binding{"ns", "wf", "signal:"}, false},
		{Binding{"ns", "wf", "update:"}, false},
		{Binding{"ns", "wf", "query:x"}, false},
		{Binding{"ns", "wf", "Start"}, false},
		{Binding{long, "wf", "start"}, false},
		{Binding{"ns", long, "start"}, false},
		{Binding{"ns", "wf", "signal:" + long}, false},
	}
	for _, tc := range cases {
		err := tc.b.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%.40q/%.40q/%.40q) = %v, want ok=%v", tc.b.Namespace, tc.b.WorkflowID, tc.b.Operation, err, tc.ok)
		}
		if !tc.ok {
			assertIs(t, err, ErrInvalidBinding)
			_, err := Seal(mustKeyPair(t, "k", KEMX25519).Public(), tc.b, testContents())
			assertIs(t, err, ErrInvalidBinding)
		}
	}
}

func TestWrongKey(t *testing.T) {
	for _, kc := range kemCases {
		t.Run(kc.name, func(t *testing.T) {
			ours := mustKeyPair(t, "pool-a", kc.kem)
			r := mustKeyring(t, ours)

			// Another pool's key under another id: unknown key.
			other := mustKeyPair(t, "pool-b", kc.kem)
			sealed, err := Seal(other.Public(), testBinding(), testContents())
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Open(testBinding(), sealed)
			assertIs(t, err, ErrUnknownKey)
			if !strings.Contains(err.Error(), `"pool-b"`) || !strings.Contains(err.Error(), `"pool-a"`) {
				t.Errorf("error does not name the key ids: %v", err)
			}

			// Another pool's key under our id: does not open.
			impostor := mustKeyPair(t, "pool-a", kc.kem)
			sealed, err = Seal(impostor.Public(), testBinding(), testContents())
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Open(testBinding(), sealed)
			assertIs(t, err, ErrOpen)
		})
	}
	t.Run("kem mismatch under the same id", func(t *testing.T) {
		r := mustKeyring(t, mustKeyPair(t, "k", KEMHybrid))
		sealed, err := Seal(mustKeyPair(t, "k", KEMX25519).Public(), testBinding(), testContents())
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Open(testBinding(), sealed)
		assertIs(t, err, ErrOpen)
	})
}

func TestRotation(t *testing.T) {
	old := mustKeyPair(t, "2026-01", KEMHybrid)
	cur := mustKeyPair(t, "2026-02", KEMHybrid)
	sealedOld, err := Seal(old.Public(), testBinding(), testContents())
	if err != nil {
		t.Fatal(err)
	}
	sealedCur, err := Seal(cur.Public(), testBinding(), testContents())
	if err != nil {
		t.Fatal(err)
	}

	// During the rotation both open.
	during := mustKeyring(t, cur, old)
	if got := during.Public().ID(); got != "2026-02" {
		t.Fatalf("current key id %q", got)
	}
	if got := during.IDs(); len(got) != 2 || got[0] != "2026-02" || got[1] != "2026-01" {
		t.Fatalf("IDs() = %v", got)
	}
	for _, s := range [][]byte{sealedOld, sealedCur} {
		got, err := during.Open(testBinding(), s)
		if err != nil {
			t.Fatalf("Open during rotation: %v", err)
		}
		assertContents(t, got, testContents())
	}

	// After the old key is dropped, envelopes sealed to it fail with a clear error.
	after := mustKeyring(t, cur)
	_, err = after.Open(testBinding(), sealedOld)
	assertIs(t, err, ErrUnknownKey)
	if _, err := after.Open(testBinding(), sealedCur); err != nil {
		t.Fatalf("Open after rotation: %v", err)
	}
}

func TestNewKeyringRejects(t *testing.T) {
	a := mustKeyPair(t, "a", KEMX25519)
	a2 := mustKeyPair(t, "a", KEMHybrid)
	for name, f := range map[string]func() (*Keyring, error){
		"nil current":   func() (*Keyring, error) { return NewKeyring(nil) },
		"nil previous":  func() (*Keyring, error) { return NewKeyring(a, nil) },
		"duplicate id":  func() (*Keyring, error) { return NewKeyring(a, a2) },
		"zero key pair": func() (*Keyring, error) { return NewKeyring(&KeyPair{}) },
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f()
			assertIs(t, err, ErrInvalidKey)
		})
	}
}

// sealers are the formats the tests of the whole envelope run against.
var sealers = []struct {
	name string
	seal func(*PublicKey, Binding, Contents) ([]byte, error)
}{
	{"v2", Seal},
	{"v1", SealV1},
}

// forEachFormat runs f for every format and KEM with a fresh key and an envelope of
// testContents.
func forEachFormat(t *testing.T, f func(t *testing.T, r *Keyring, sealed []byte)) {
	for _, sc := range sealers {
		for _, kc := range kemCases {
			t.Run(sc.name+"/"+kc.name, func(t *testing.T) {
				k := mustKeyPair(t, "k1", kc.kem)
				sealed, err := sc.seal(k.Public(), testBinding(), testContents())
				if err != nil {
					t.Fatal(err)
				}
				f(t, mustKeyring(t, k), sealed)
			})
		}
	}
}

func TestTruncated(t *testing.T) {
	forEachFormat(t, func(t *testing.T, r *Keyring, sealed []byte) {
		for n := 0; n < len(sealed); n++ {
			_, err := r.Open(testBinding(), sealed[:n])
			if err == nil {
				t.Fatalf("envelope truncated to %d of %d bytes opened", n, len(sealed))
			}
			if n == 0 {
				assertIs(t, err, ErrMissing)
			} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrOpen) {
				t.Fatalf("truncated to %d bytes: %v, want ErrMalformed or ErrOpen", n, err)
			}
			if !errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("truncated to %d bytes: %v does not wrap ErrUnauthenticated", n, err)
			}
		}
		// Appended bytes are tampering too.
		_, err := r.Open(testBinding(), append(sealed[:len(sealed):len(sealed)], 0))
		assertIs(t, err, ErrOpen)
	})
}

func TestEveryBitFlip(t *testing.T) {
	forEachFormat(t, func(t *testing.T, r *Keyring, sealed []byte) {
		buf := make([]byte, len(sealed))
		counts := map[error]int{}
		for i := 0; i < len(sealed)*8; i++ {
			copy(buf, sealed)
			buf[i/8] ^= 1 << (i % 8)
			_, err := r.Open(testBinding(), buf)
			if err == nil {
				t.Fatalf("envelope with bit %d (byte %d) flipped opened", i, i/8)
			}
			if !errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("bit %d: %v does not wrap ErrUnauthenticated", i, err)
			}
			for _, s := range []error{ErrMalformed, ErrUnsupported, ErrUnknownKey, ErrOpen} {
				if errors.Is(err, s) {
					counts[s]++
				}
			}
		}
		t.Logf("%d bit flips over %d bytes: %d malformed, %d unsupported, %d unknown key, %d open",
			len(sealed)*8, len(sealed), counts[ErrMalformed], counts[ErrUnsupported], counts[ErrUnknownKey], counts[ErrOpen])
	})
}

func TestOversized(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	r := mustKeyring(t, k)
	sealed, err := Seal(k.Public(), testBinding(), testContents())
	if err != nil {
		t.Fatal(err)
	}
	// A valid envelope padded past the cap, and garbage past the cap: both are refused for
	// their size, before the header is looked at.
	padded := append(append([]byte{}, sealed...), make([]byte, MaxSize+1-len(sealed))...)
	_, err = r.Open(testBinding(), padded)
	assertIs(t, err, ErrTooLarge)
	_, err = r.Open(testBinding(), make([]byte, MaxSize+1))
	assertIs(t, err, ErrTooLarge)
	_, err = r.Open(testBinding(), make([]byte, 1<<20))
	assertIs(t, err, ErrTooLarge)

	// Seal refuses to make what Open would refuse.
	big := testContents()
	big.AccessToken = strings.Repeat("a", MaxSize)
	_, err = Seal(k.Public(), testBinding(), big)
	assertIs(t, err, ErrTooLarge)

	// The largest accepted envelope opens.
	c := Contents{AccessToken: "x", InputDigest: testDigest("x")}
	small, err := Seal(k.Public(), testBinding(), c)
	if err != nil {
		t.Fatal(err)
	}
	c.AccessToken = strings.Repeat("x", 1+MaxSize-len(small))
	exact, err := Seal(k.Public(), testBinding(), c)
	if err != nil {
		t.Fatalf("Seal of exactly MaxSize: %v", err)
	}
	if len(exact) != MaxSize {
		t.Fatalf("envelope of %d bytes, want %d", len(exact), MaxSize)
	}
	if _, err := r.Open(testBinding(), exact); err != nil {
		t.Fatalf("Open of exactly MaxSize: %v", err)
	}
}

func TestUnsupported(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	r := mustKeyring(t, k)
	sealed, err := Seal(k.Public(), testBinding(), testContents())
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte)) []byte {
		b := append([]byte{}, sealed...)
		f(b)
		return b
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"version 0", edit(func(b []byte) { b[3] = 0 }), ErrUnsupported},
		{"version 3", edit(func(b []byte) { b[3] = 3 }), ErrUnsupported},
		{"version 255", edit(func(b []byte) { b[3] = 255 }), ErrUnsupported},
		{"version 1", edit(func(b []byte) { b[3] = 1 }), ErrOpen},
		{"unknown kem", edit(func(b []byte) { b[4], b[5] = 0x00, 0x10 }), ErrUnsupported}, // DHKEM(P-256)
		{"hybrid kem id on x25519 envelope", edit(func(b []byte) { b[4], b[5] = 0x64, 0x7a }), ErrMalformed},
		{"kdf", edit(func(b []byte) { b[7] = 0x02 }), ErrUnsupported},
		{"aead", edit(func(b []byte) { b[9] = 0x01 }), ErrUnsupported},
		{"magic", edit(func(b []byte) { b[0] = 'X' }), ErrMalformed},
		{"key id length 0", edit(func(b []byte) { b[10] = 0 }), ErrMalformed},
		{"key id length 65", edit(func(b []byte) { b[10] = 65 }), ErrMalformed},
		{"key id charset", edit(func(b []byte) { b[11] = '.' }), ErrMalformed},
		{"enc length", edit(func(b []byte) { b[11+2+1]++ }), ErrMalformed},
		{"just the magic", []byte("OFE"), ErrMalformed},
		{"magic and version", []byte("OFE\x01"), ErrMalformed},
		{"json", []byte(`{"access_token":"x"}`), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Open(testBinding(), tc.in)
			assertIs(t, err, tc.want)
		})
	}
}

// sealRaw seals an arbitrary plaintext as the given format version, to test the contents
// parser behind the AEAD.
func sealRaw(t *testing.T, pub *PublicKey, version byte, plaintext string) []byte {
	t.Helper()
	spec, _ := pub.kem.spec()
	out, err := seal(pub, spec, testBinding(), version, []byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestContentsParsing parses version 1 plaintexts (TestContentsParsingV2 does version 2).
func TestContentsParsing(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	r := mustKeyring(t, k)
	cases := []struct {
		plaintext string
		ok        bool
	}{
		{`{"access_token":"a"}`, true},
		{`{"id_token":"i","expiry":"2030-01-01T00:00:00Z"}`, true},
		{` {"access_token":"a"} `, true},
		{`{}`, false},
		{`null`, false},
		{``, false},
		{`{"refresh_token":"r"}`, false},
		{`{"access_token":"a","scope":"x"}`, false},
		{`{"access_token":"a"}{}`, false},
		{`{"access_token":"a"} x`, false},
		{`{"access_token":1}`, false},
		{`{"access_token":"a","expiry":"yesterday"}`, false},
		{`[{"access_token":"a"}]`, false},
		// Version 2 members are unknown in version 1.
		{`{"access_token":"a","jti":"AAAAAAAAAAAAAAAAAAAAAA"}`, false},
		{`{"access_token":"a","input":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.plaintext, func(t *testing.T) {
			c, err := r.Open(testBinding(), sealRaw(t, k.Public(), Version1, tc.plaintext))
			if tc.ok {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if c.Version != 1 {
					t.Fatalf("Version %d, want 1", c.Version)
				}
				return
			}
			assertIs(t, err, ErrMalformed)
			if strings.Contains(err.Error(), `"a"`) || strings.Contains(err.Error(), "access_token") {
				t.Fatalf("error quotes the plaintext: %v", err)
			}
		})
	}
}

func TestSealRejects(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	_, err := Seal(k.Public(), testBinding(), Contents{RefreshToken: "r", InputDigest: testDigest("x")})
	assertIs(t, err, ErrMalformed)
	_, err = SealV1(k.Public(), testBinding(), Contents{RefreshToken: "r"})
	assertIs(t, err, ErrMalformed)
	_, err = Seal(nil, testBinding(), testContents())
	assertIs(t, err, ErrInvalidKey)
	_, err = Seal(&PublicKey{}, testBinding(), testContents())
	assertIs(t, err, ErrInvalidKey)
}

func TestApplicationError(t *testing.T) {
	for _, s := range []error{ErrMissing, ErrTooLarge, ErrMalformed, ErrUnsupported, ErrUnknownKey,
		ErrOpen, ErrBinding, ErrInvalidBinding, ErrInvalidKey} {
		if !strings.HasPrefix(s.Error(), "envelope: ") {
			t.Errorf("%q lacks the package prefix", s)
		}
		var appErr *temporal.ApplicationError
		if !errors.As(identity.ApplicationError(fmt.Errorf("opening: %w", s)), &appErr) {
			t.Fatalf("%v does not map to an ApplicationError", s)
		}
		if appErr.Type() != identity.TypeUnauthenticated || !appErr.NonRetryable() {
			t.Errorf("%v maps to type %q, non-retryable %v", s, appErr.Type(), appErr.NonRetryable())
		}
	}
}

func TestNilKeyring(t *testing.T) {
	var r *Keyring
	_, err := r.Open(testBinding(), []byte("x"))
	assertIs(t, err, ErrInvalidKey)
	_, err = (&Keyring{}).Open(testBinding(), []byte("x"))
	assertIs(t, err, ErrInvalidKey)
}
