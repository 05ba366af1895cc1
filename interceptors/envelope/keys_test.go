package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestKeyTextRoundTrip(t *testing.T) {
	for _, kc := range kemCases {
		t.Run(kc.name, func(t *testing.T) {
			k := mustKeyPair(t, "pool_2026-02", kc.kem)
			if k.ID() != "pool_2026-02" || k.KEM() != kc.kem || k.Public().KEM() != kc.kem {
				t.Fatalf("key pair %v", k)
			}

			// Public text form.
			s := k.Public().String()
			if !strings.HasPrefix(s, "ofk1.pool_2026-02.") {
				t.Fatalf("public text form %.30q...", s)
			}
			pub, err := ParsePublicKey(s)
			if err != nil {
				t.Fatalf("ParsePublicKey: %v", err)
			}
			if !pub.Equal(k.Public()) || pub.ID() != k.ID() || pub.String() != s {
				t.Fatal("public key changed in the round trip")
			}
			if pub2, err := ParsePublicKey("  " + s + "\n"); err != nil || !pub2.Equal(pub) {
				t.Fatalf("ParsePublicKey with surrounding space: %v", err)
			}
			var viaText PublicKey
			mt, err := pub.MarshalText()
			if err != nil || string(mt) != s {
				t.Fatalf("MarshalText = %q, %v", mt, err)
			}
			if err := viaText.UnmarshalText(mt); err != nil || !viaText.Equal(pub) {
				t.Fatalf("UnmarshalText: %v", err)
			}

			// Private text form: the restored pair opens what was sealed to the original.
			priv, err := k.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(priv, []byte("ofs1.pool_2026-02.")) {
				t.Fatalf("private text form does not start with ofs1.<id>.")
			}
			var restored KeyPair
			if err := restored.UnmarshalText(priv); err != nil {
				t.Fatalf("UnmarshalText: %v", err)
			}
			if !restored.Public().Equal(k.Public()) {
				t.Fatal("restored key pair has another public key")
			}
			again, err := restored.MarshalText()
			if err != nil || !bytes.Equal(again, priv) {
				t.Fatalf("private text form not stable: %v", err)
			}
			sealed, err := Seal(pub, testBinding(), testContents())
			if err != nil {
				t.Fatal(err)
			}
			got, err := mustKeyring(t, &restored).Open(testBinding(), sealed)
			if err != nil {
				t.Fatalf("Open with restored key: %v", err)
			}
			assertContents(t, got, testContents())

			// A JSON string is decoded through UnmarshalText, as from a Vault KV secret.
			var fromJSON struct{ Key *KeyPair }
			if err := json.Unmarshal(fmt.Appendf(nil, `{"Key":%q}`, priv), &fromJSON); err != nil {
				t.Fatalf("json: %v", err)
			}
			if !fromJSON.Key.Public().Equal(k.Public()) {
				t.Fatal("key pair decoded from JSON differs")
			}
		})
	}
}

func TestGenerateKeyPair(t *testing.T) {
	k, err := GenerateKeyPair("default", 0)
	if err != nil || k.KEM() != KEMHybrid {
		t.Fatalf("GenerateKeyPair with the zero KEM: %v, %v", k, err)
	}
	for _, id := range []string{"", "a.b", "a b", "ä", "a/b", "a:b", strings.Repeat("a", MaxKeyIDLength+1), "a\n"} {
		_, err := GenerateKeyPair(id, KEMX25519)
		assertIs(t, err, ErrInvalidKey)
	}
	if _, err := GenerateKeyPair(strings.Repeat("a", MaxKeyIDLength), KEMX25519); err != nil {
		t.Fatalf("64-character key id: %v", err)
	}
	_, err = GenerateKeyPair("k", KEM(0x0010))
	assertIs(t, err, ErrInvalidKey)
	if KEMHybrid.String() != "MLKEM768-X25519" || KEM(0x10).String() != "KEM(0x0010)" {
		t.Fatalf("KEM names %v, %v", KEMHybrid, KEM(0x10))
	}
}

func TestParsePublicKeyRejects(t *testing.T) {
	x := mustKeyPair(t, "k1", KEMX25519)
	h := mustKeyPair(t, "k1", KEMHybrid)
	xs, hs := x.Public().String(), h.Public().String()
	privText, _ := x.MarshalText()
	b64 := func(kem uint16, key []byte) string {
		return base64.RawURLEncoding.EncodeToString(append(binary.BigEndian.AppendUint16(nil, kem), key...))
	}
	xraw := x.Public().pk.Bytes()
	cases := map[string]string{
		"empty":             "",
		"prefix only":       "ofk1.",
		"no key":            "ofk1.k1",
		"empty key":         "ofk1.k1.",
		"empty id":          "ofk1..AAAg",
		"bad id":            "ofk1.k 1." + b64(0x20, xraw),
		"long id":           "ofk1." + strings.Repeat("a", 65) + "." + b64(0x20, xraw),
		"other version":     "ofk2" + xs[4:],
		"private form":      string(privText),
		"no prefix":         xs[5:],
		"padded base64":     xs + "=",
		"std base64":        "ofk1.k1." + base64.StdEncoding.EncodeToString(append([]byte{0, 0x20}, xraw...)),
		"extra dot":         xs + ".x",
		"bad base64":        "ofk1.k1.!!!!",
		"kem only":          "ofk1.k1.ACA",
		"unknown kem":       "ofk1.k1." + b64(0x10, xraw),
		"short x25519":      "ofk1.k1." + b64(0x20, xraw[:31]),
		"long x25519":       "ofk1.k1." + b64(0x20, append(xraw, 0)),
		"x25519 as hybrid":  "ofk1.k1." + b64(0x647a, xraw),
		"truncated hybrid":  hs[:len(hs)-4],
		"too long":          "ofk1.k1." + strings.Repeat("A", 4096),
		"inner space":       xs[:20] + " " + xs[20:],
		"inner newline":     xs[:20] + "\n" + xs[20:],
		"inner CR":          xs[:20] + "\r" + xs[20:],
		"upper-case prefix": "OFK1" + xs[4:],
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePublicKey(s)
			assertIs(t, err, ErrInvalidKey)
			var p PublicKey
			assertIs(t, p.UnmarshalText([]byte(s)), ErrInvalidKey)
		})
	}

	// Private forms reject public ones and garbage alike.
	for _, s := range []string{xs, "", "ofs1.k1.", "ofs1.k1." + b64(0x20, make([]byte, 31)), "ofs1.k1." + b64(0x647a, make([]byte, 33))} {
		var k KeyPair
		assertIs(t, k.UnmarshalText([]byte(s)), ErrInvalidKey)
	}
	var empty KeyPair
	_, err := empty.MarshalText()
	assertIs(t, err, ErrInvalidKey)
	_, err = (*PublicKey)(nil).MarshalText()
	assertIs(t, err, ErrInvalidKey)
}

func TestRedaction(t *testing.T) {
	c := testContents()
	k := mustKeyPair(t, "k1", KEMHybrid)
	r := mustKeyring(t, k)
	privText, err := k.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	privB64 := string(privText[strings.LastIndexByte(string(privText), '.')+1:])
	rawPriv, _ := k.priv().Bytes()
	secrets := []string{c.IDToken, c.AccessToken, c.RefreshToken, privB64}

	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x", "%T %[1]v", "%10.3v"} {
		for _, v := range []any{c, &c, *k, k, r, struct{ C Contents }{c}, []Contents{c},
			map[string]*KeyPair{"k": k}, struct{ K *KeyPair }{k}, struct{ k KeyPair }{*k}, struct{ r *Keyring }{r}} {
			out = append(out, fmt.Sprintf(verb, v))
		}
	}
	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var buf bytes.Buffer
		l := slog.New(newHandler(&buf))
		l.Info("opened", "contents", c, "contents_ptr", &c, "key", k, "keypair", *k, "keyring", r)
		l.Info("any", slog.Any("c", c), slog.Any("k", k))
		out = append(out, buf.String())
	}
	js, err := json.Marshal(struct {
		C  Contents
		CP *Contents
	}{c, &c})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(js))

	for _, o := range out {
		for _, s := range secrets {
			if strings.Contains(o, s) || strings.Contains(o, s[:20]) {
				t.Fatalf("output holds a secret: %s", o)
			}
		}
		if strings.Contains(o, fmt.Sprint(rawPriv)) || strings.Contains(o, fmt.Sprintf("%x", rawPriv[:8])) {
			t.Fatalf("output holds private key bytes: %s", o)
		}
	}
	if !strings.Contains(fmt.Sprint(c), "REDACTED") || !strings.Contains(fmt.Sprint(k), `"k1"`) {
		t.Fatalf("String() says too little: %v / %v", c, k)
	}
	if s := fmt.Sprint(Contents{AccessToken: "a"}); !strings.Contains(s, "IDToken: absent") {
		t.Fatalf("String() does not tell absent tokens: %s", s)
	}

	// A KeyPair refuses to be JSON-encoded instead of leaking.
	if b, err := json.Marshal(struct{ K *KeyPair }{k}); err == nil {
		t.Fatalf("json.Marshal of a KeyPair succeeded: %s", b)
	} else if strings.Contains(err.Error(), privB64) {
		t.Fatal("json error holds the private key")
	}
}
