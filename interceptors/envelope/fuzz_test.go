package envelope

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

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
		for _, c := range []Contents{testContents(), {AccessToken: "a"}} {
			s, err := Seal(k.Public(), testBinding(), c)
			if err != nil {
				panic(err)
			}
			valid = append(valid, s)
		}
	}
	return r, valid
})

// FuzzOpen feeds untrusted bytes to Keyring.Open. It must not panic, every error must wrap
// identity.ErrUnauthenticated, and the only inputs that open are the envelopes Seal made.
func FuzzOpen(f *testing.F) {
	_, valid := fuzzState()
	for _, s := range valid {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(s[:20])
	}
	f.Add([]byte{})
	f.Add([]byte("OFE\x01"))
	f.Add([]byte("OFE\x01\x00\x20\x00\x01\x00\x02\x01k\x00\x20"))
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
				return
			}
		}
		t.Fatalf("an input that Seal did not make opened (%d bytes)", len(in))
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
