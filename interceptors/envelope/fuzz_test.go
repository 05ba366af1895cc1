package envelope

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oidcflow/oidcflow/identity"
)

// fuzzState is one keyring and the envelopes sealed to it, shared by the fuzz workers of one
// process (the keys are random, so the seeds are made in the same process).
var fuzzState = sync.OnceValues(func() (*Keyring, [][]byte) {
	h, err := GenerateKeyPair("fuzz-h", KEMHybrid)
	if err != nil {
		panic(err)
	}
	x, err := GenerateKeyPair("fuzz-x", KEMX25519)
	if err != nil {
		panic(err)
	}
	r, err := NewKeyring(h, x)
	if err != nil {
		panic(err)
	}
	var valid [][]byte
	for _, k := range []*KeyPair{h, x} {
		for _, c := range []Contents{testContents(), testContentsRun(), {AccessToken: "a", InputDigest: testDigest("a")}} {
			for _, seal := range []func(*PublicKey, Binding, Contents) ([]byte, error){Seal, SealV1} {
				s, err := seal(k.Public(), testBinding(), c)
				if err != nil {
					panic(err)
				}
				valid = append(valid, s)
			}
		}
	}
	return r, valid
})

// FuzzOpen feeds untrusted bytes to Keyring.Open. It must not panic, every error must wrap
// identity.ErrUnauthenticated, the only inputs that open are the envelopes Seal and SealV1
// made, and a version 2 envelope opens with all its commitments.
func FuzzOpen(f *testing.F) {
	_, valid := fuzzState()
	for _, s := range valid {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(s[:20])
		relabelled := append([]byte{}, s...)
		relabelled[3] ^= 3 // version 1 <-> 2
		f.Add(relabelled)
	}
	f.Add([]byte{})
	f.Add([]byte("OFE\x01"))
	f.Add([]byte("OFE\x02"))
	f.Add([]byte("OFE\x01\x00\x20\x00\x01\x00\x02\x01k\x00\x20"))
	f.Add([]byte("OFE\x02\x00\x20\x00\x01\x00\x02\x01k\x00\x20"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, valid := fuzzState()
		c, err := r.Open(testBinding(), in)
		if err != nil {
			if !errors.Is(err, identity.ErrUnauthenticated) || !strings.HasPrefix(err.Error(), "envelope: ") {
				t.Fatalf("error %q does not wrap ErrUnauthenticated or lacks the prefix", err)
			}
			return
		}
		for _, s := range valid {
			if bytes.Equal(in, s) {
				if c.IDToken == "" && c.AccessToken == "" {
					t.Fatal("opened contents without a token")
				}
				if int(in[3]) != c.Version {
					t.Fatalf("header says version %d, contents say %d", in[3], c.Version)
				}
				if c.Version == Version && (!validID(c.ID) || c.IssuedAt.IsZero() || len(c.InputDigest) != InputDigestSize) {
					t.Fatalf("version 2 contents without their commitments: %v", c)
				}
				return
			}
		}
		t.Fatalf("an input that Seal did not make opened (%d bytes)", len(in))
	})
}

// FuzzContents feeds untrusted plaintexts to the contents parser of both versions (Open
// reaches it only behind the AEAD, so FuzzOpen cannot). It must not panic, every error must be
// ErrMalformed, and what parses as version 2 seals back to a plaintext that parses to the same
// contents.
func FuzzContents(f *testing.F) {
	for _, c := range []Contents{testContents(), testContentsRun(), {AccessToken: "a", InputDigest: testDigest("a")}} {
		p1, err := c.marshalV1()
		if err != nil {
			f.Fatal(err)
		}
		p2, err := c.marshalV2(time.Now)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(1), p1)
		f.Add(byte(2), p2)
		f.Add(byte(1), p2)
		f.Add(byte(2), p1)
	}
	f.Add(byte(2), []byte(`{"access_token":"a","jti":"AAAAAAAAAAAAAAAAAAAAAA","iat":"2026-01-01T00:00:00.000000000Z","input":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","run":"r"}`))
	f.Fuzz(func(t *testing.T, version byte, in []byte) {
		if version != Version1 && version != Version {
			return
		}
		c, err := unmarshalContents(version, in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || !errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("error %q is not ErrMalformed", err)
			}
			return
		}
		if c.Version != int(version) {
			t.Fatalf("Version %d from a version %d plaintext", c.Version, version)
		}
		if version != Version {
			return
		}
		p, err := c.marshalV2(nil)
		if err != nil {
			t.Fatalf("opened contents do not seal again: %v", err)
		}
		d, err := unmarshalContents(Version, p)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if d.ID != c.ID || !d.IssuedAt.Equal(c.IssuedAt) || d.RunID != c.RunID ||
			!bytes.Equal(d.InputDigest, c.InputDigest) || d.IDToken != c.IDToken ||
			d.AccessToken != c.AccessToken || d.RefreshToken != c.RefreshToken {
			t.Fatalf("round trip changed the contents: %v vs %v", c, d)
		}
	})
}

// FuzzParsePublicKey feeds untrusted text to ParsePublicKey. It must not panic; what parses
// prints back to the same text (the form is canonical) and parses to an equal key.
func FuzzParsePublicKey(f *testing.F) {
	for _, kc := range kemCases {
		k, err := GenerateKeyPair("seed-"+kc.name, kc.kem)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(k.Public().String())
		priv, _ := k.MarshalText()
		f.Add(string(priv))
	}
	f.Add("")
	f.Add("ofk1.")
	f.Add("ofk1.k.ACA")
	f.Add("ofk1.k.ACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublicKey(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error %q is not ErrInvalidKey", err)
			}
			return
		}
		if !ValidKeyID(p.ID()) {
			t.Fatalf("parsed key id %q is invalid", p.ID())
		}
		if got := p.String(); got != strings.TrimSpace(s) {
			t.Fatalf("text form not canonical: %q parsed and printed as %q", s, got)
		}
		q, err := ParsePublicKey(p.String())
		if err != nil || !q.Equal(p) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

// FuzzKeyPairUnmarshalText feeds untrusted text to the private text form's parser.
func FuzzKeyPairUnmarshalText(f *testing.F) {
	for _, kc := range kemCases {
		k, err := GenerateKeyPair("seed-"+kc.name, kc.kem)
		if err != nil {
			f.Fatal(err)
		}
		priv, _ := k.MarshalText()
		f.Add(string(priv))
		f.Add(k.Public().String())
	}
	f.Fuzz(func(t *testing.T, s string) {
		var k KeyPair
		if err := k.UnmarshalText([]byte(s)); err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error %q is not ErrInvalidKey", err)
			}
			return
		}
		if _, err := k.MarshalText(); err != nil {
			t.Fatalf("MarshalText of a parsed key pair: %v", err)
		}
		if !ValidKeyID(k.ID()) || k.Public() == nil {
			t.Fatal("parsed key pair is incomplete")
		}
	})
}
