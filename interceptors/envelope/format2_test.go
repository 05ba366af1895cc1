package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const testRunID = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

// testContentsRun is testContents for an update on a known run, with every commitment set.
func testContentsRun() Contents {
	c := testContents()
	c.RefreshToken = ""
	c.ID = "q83vEjRWeJq83vEjRWeJqw"
	c.IssuedAt = time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)
	c.RunID = testRunID
	c.InputDigest = testDigest("update:approve")
	return c
}

func assertCommitments(t *testing.T, got, want Contents) {
	t.Helper()
	if got.Version != Version || got.ID != want.ID || !got.IssuedAt.Equal(want.IssuedAt) ||
		got.RunID != want.RunID || !bytes.Equal(got.InputDigest, want.InputDigest) {
		t.Fatalf("commitments differ after the round trip:\n got %v\nwant %v", got, want)
	}
}

func TestRoundTripV2(t *testing.T) {
	for _, kc := range kemCases {
		t.Run(kc.name, func(t *testing.T) {
			k := mustKeyPair(t, "pool-2026-03", kc.kem)
			r := mustKeyring(t, k)

			// Every commitment given: all come back exactly (IssuedAt to the nanosecond).
			want := testContentsRun()
			sealed, err := Seal(k.Public(), testBinding(), want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Open(testBinding(), sealed)
			if err != nil {
				t.Fatal(err)
			}
			assertContents(t, got, want)
			assertCommitments(t, got, want)
			if got.IssuedAt.Location() != time.UTC {
				t.Errorf("IssuedAt in %v, want UTC", got.IssuedAt.Location())
			}

			// Defaults: Seal draws the id and stamps the time; a start has no run.
			before := time.Now()
			sealed, err = Seal(k.Public(), testBinding(), testContents())
			after := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			got, err = r.Open(testBinding(), sealed)
			if err != nil {
				t.Fatal(err)
			}
			assertContents(t, got, testContents())
			if got.Version != 2 || !validID(got.ID) || got.RunID != "" ||
				!bytes.Equal(got.InputDigest, testContents().InputDigest) {
				t.Fatalf("defaults: %v", got)
			}
			if got.IssuedAt.Before(before.Truncate(time.Nanosecond)) || got.IssuedAt.After(after) {
				t.Fatalf("IssuedAt %v outside [%v, %v]", got.IssuedAt, before, after)
			}
		})
	}
}

// TestSealV1 seals format 1: it opens as Version 1 with no commitments, whatever the
// Contents held.
func TestSealV1(t *testing.T) {
	for _, kc := range kemCases {
		t.Run(kc.name, func(t *testing.T) {
			k := mustKeyPair(t, "k1", kc.kem)
			sealed, err := SealV1(k.Public(), testBinding(), testContentsRun())
			if err != nil {
				t.Fatal(err)
			}
			if sealed[3] != 1 {
				t.Fatalf("SealV1 wrote version %d", sealed[3])
			}
			got, err := mustKeyring(t, k).Open(testBinding(), sealed)
			if err != nil {
				t.Fatal(err)
			}
			assertContents(t, got, testContentsRun())
			if got.Version != 1 || got.ID != "" || !got.IssuedAt.IsZero() || got.RunID != "" || got.InputDigest != nil {
				t.Fatalf("version 1 contents with commitments: %v", got)
			}
		})
	}
}

func TestSealIDsAreFresh(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	r := mustKeyring(t, k)
	seen := map[string]bool{}
	for range 64 {
		sealed, err := Seal(k.Public(), testBinding(), testContents())
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.Open(testBinding(), sealed)
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.ID] {
			t.Fatalf("envelope id %s drawn twice", c.ID)
		}
		seen[c.ID] = true
	}
}

// TestVersionSwap relabels an envelope as the other version: it must not open, in either
// direction (the version byte is additional data and part of the HPKE info).
func TestVersionSwap(t *testing.T) {
	for _, kc := range kemCases {
		k := mustKeyPair(t, "k1", kc.kem)
		r := mustKeyring(t, k)
		for _, sc := range sealers {
			t.Run(kc.name+"/"+sc.name, func(t *testing.T) {
				sealed, err := sc.seal(k.Public(), testBinding(), testContentsRun())
				if err != nil {
					t.Fatal(err)
				}
				swapped := bytes.Clone(sealed)
				swapped[3] ^= 1 ^ 2
				_, err = r.Open(testBinding(), swapped)
				assertIs(t, err, ErrOpen)
			})
		}
	}
}

// TestInfoCarriesVersion seals a valid version 2 plaintext under a version 2 header, but with
// version 1's HPKE info: Open must use the header's version in the info, so it fails. (The
// header is also additional data; this test holds the info alone to account.)
func TestInfoCarriesVersion(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	spec, _ := k.Public().kem.spec()
	p, err := testContentsRun().marshalV2(time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		header, info byte
	}{{2, 1}, {1, 2}} {
		sealed, err := sealInfo(k.Public(), spec, tc.header, testBinding().info(tc.info), p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = mustKeyring(t, k).Open(testBinding(), sealed)
		assertIs(t, err, ErrOpen)
	}
	// The control: matching versions open.
	sealed, err := sealInfo(k.Public(), spec, 2, testBinding().info(2), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mustKeyring(t, k).Open(testBinding(), sealed); err != nil {
		t.Fatal(err)
	}
}

// TestCrossVersionPlaintext: a version 1 envelope around a version 2 plaintext, and the other
// way round, are malformed (each version knows its own members only).
func TestCrossVersionPlaintext(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	r := mustKeyring(t, k)
	p1, err := testContentsRun().marshalV1()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := testContentsRun().marshalV2(time.Now)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Open(testBinding(), sealRaw(t, k.Public(), 1, string(p2)))
	assertIs(t, err, ErrMalformed)
	_, err = r.Open(testBinding(), sealRaw(t, k.Public(), 2, string(p1)))
	assertIs(t, err, ErrMalformed)
}

// TestContentsParsingV2 walks version 2 plaintexts: each of jti, iat and input is required and
// has one spelling; run is optional but never empty; unknown members are refused.
func TestContentsParsingV2(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	r := mustKeyring(t, k)
	const (
		jti   = `"jti":"q83vEjRWeJq83vEjRWeJqw"`
		iat   = `"iat":"2026-03-04T05:06:07.890123456Z"`
		input = `"input":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"`
		run   = `"run":"` + testRunID + `"`
	)
	obj := func(members ...string) string { return "{" + strings.Join(members, ",") + "}" }
	cases := []struct {
		name      string
		plaintext string
		ok        bool
	}{
		{"complete", obj(`"access_token":"a"`, jti, iat, input, run), true},
		{"no run", obj(`"id_token":"i"`, jti, iat, input), true},
		{"all tokens", obj(`"id_token":"i"`, `"access_token":"a"`, `"refresh_token":"r"`, `"expiry":"2030-01-01T00:00:00Z"`, jti, iat, input), true},

		{"no jti", obj(`"access_token":"a"`, iat, input), false},
		{"no iat", obj(`"access_token":"a"`, jti, input), false},
		{"no input", obj(`"access_token":"a"`, jti, iat), false},
		{"no token", obj(`"refresh_token":"r"`, jti, iat, input), false},
		{"empty jti", obj(`"access_token":"a"`, `"jti":""`, iat, input), false},
		{"jti 21 chars", obj(`"access_token":"a"`, `"jti":"q83vEjRWeJq83vEjRWeJq"`, iat, input), false},
		{"jti 23 chars", obj(`"access_token":"a"`, `"jti":"q83vEjRWeJq83vEjRWeJqwA"`, iat, input), false},
		{"jti not canonical", obj(`"access_token":"a"`, `"jti":"q83vEjRWeJq83vEjRWeJqx"`, iat, input), false},
		{"jti std alphabet", obj(`"access_token":"a"`, `"jti":"q83vEjRWeJq83vEjRW+Jqw"`, iat, input), false},
		{"jti number", obj(`"access_token":"a"`, `"jti":12`, iat, input), false},
		{"iat without nanoseconds", obj(`"access_token":"a"`, jti, `"iat":"2026-03-04T05:06:07Z"`, input), false},
		{"iat with offset", obj(`"access_token":"a"`, jti, `"iat":"2026-03-04T05:06:07.890123456+00:00"`, input), false},
		{"iat zero", obj(`"access_token":"a"`, jti, `"iat":"0001-01-01T00:00:00.000000000Z"`, input), false},
		{"iat year 0", obj(`"access_token":"a"`, jti, `"iat":"0000-01-01T00:00:00.000000000Z"`, input), false},
		{"iat unix", obj(`"access_token":"a"`, jti, `"iat":1772600767`, input), false},
		{"input 31 bytes", obj(`"access_token":"a"`, jti, iat, `"input":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuA"`), false},
		{"input 33 bytes", obj(`"access_token":"a"`, jti, iat, `"input":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFUA"`), false},
		{"input padded", obj(`"access_token":"a"`, jti, iat, `"input":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="`), false},
		{"input std alphabet", obj(`"access_token":"a"`, jti, iat, `"input":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"`), false},
		{"input hex", obj(`"access_token":"a"`, jti, iat, `"input":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"`), false},
		{"empty run", obj(`"access_token":"a"`, jti, iat, input, `"run":""`), false},
		{"long run", obj(`"access_token":"a"`, jti, iat, input, `"run":"`+strings.Repeat("r", MaxRunIDLength+1)+`"`), false},
		{"unknown member", obj(`"access_token":"a"`, jti, iat, input, `"scope":"x"`), false},
		{"trailing data", obj(`"access_token":"a"`, jti, iat, input) + "{}", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := r.Open(testBinding(), sealRaw(t, k.Public(), Version, tc.plaintext))
			if tc.ok {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if c.Version != 2 || c.ID != "q83vEjRWeJq83vEjRWeJqw" || len(c.InputDigest) != 32 ||
					!c.IssuedAt.Equal(time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)) {
					t.Fatalf("opened %v", c)
				}
				return
			}
			assertIs(t, err, ErrMalformed)
			if strings.Contains(err.Error(), "q83v") || strings.Contains(err.Error(), `"a"`) {
				t.Fatalf("error quotes the plaintext: %v", err)
			}
		})
	}
}

func TestSealV2Rejects(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	with := func(f func(c *Contents)) Contents {
		c := testContentsRun()
		f(&c)
		return c
	}
	cases := map[string]Contents{
		"no digest":         with(func(c *Contents) { c.InputDigest = nil }),
		"digest 31 bytes":   with(func(c *Contents) { c.InputDigest = c.InputDigest[:31] }),
		"digest 33 bytes":   with(func(c *Contents) { c.InputDigest = append(c.InputDigest, 0) }),
		"short id":          with(func(c *Contents) { c.ID = "abc" }),
		"id not canonical":  with(func(c *Contents) { c.ID = "q83vEjRWeJq83vEjRWeJqx" }),
		"id std alphabet":   with(func(c *Contents) { c.ID = "q83vEjRWeJq83vEjRW+Jqw" }),
		"run too long":      with(func(c *Contents) { c.RunID = strings.Repeat("r", MaxRunIDLength+1) }),
		"run not UTF-8":     with(func(c *Contents) { c.RunID = "run\xff" }),
		"issued year 10000": with(func(c *Contents) { c.IssuedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"no token":          with(func(c *Contents) { c.IDToken, c.AccessToken = "", "" }),
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Seal(k.Public(), testBinding(), c)
			assertIs(t, err, ErrMalformed)
		})
	}
	// SealV1 ignores what only version 2 needs.
	if _, err := SealV1(k.Public(), testBinding(), cases["no digest"]); err != nil {
		t.Fatalf("SealV1 without a digest: %v", err)
	}
}

// TestRedactionV2: every printed, logged or JSON form of opened version 2 contents shows the
// commitments and no token.
func TestRedactionV2(t *testing.T) {
	k := mustKeyPair(t, "k1", KEMX25519)
	in := testContentsRun()
	in.RefreshToken = testContents().RefreshToken
	sealed, err := Seal(k.Public(), testBinding(), in)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mustKeyring(t, k).Open(testBinding(), sealed)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for _, v := range []any{c, &c, struct{ C Contents }{c}, []Contents{c}} {
			out = append(out, fmt.Sprintf(verb, v))
		}
	}
	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(newHandler(&buf)).Info("opened", "contents", c, "ptr", &c)
		out = append(out, buf.String())
	}
	js, err := json.Marshal(struct{ C *Contents }{&c})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(js))

	digest := base64.RawURLEncoding.EncodeToString(in.InputDigest)
	for _, o := range out {
		for _, s := range []string{in.IDToken, in.AccessToken, in.RefreshToken} {
			if strings.Contains(o, s[:20]) {
				t.Fatalf("output holds a token: %s", o)
			}
		}
		for _, s := range []string{in.ID, testRunID, digest, "2026-03-04T05:06:07.890123456Z"} {
			if !strings.Contains(o, s) {
				t.Fatalf("output lacks %q: %s", s, o)
			}
		}
	}
}

// TestSizeV2 pins what version 2 adds to an envelope: the jti (22), iat (30) and input (43)
// members with their names, and the run when there is one. Deterministic: the id and the
// issue time have one length.
func TestSizeV2(t *testing.T) {
	for _, kc := range kemCases {
		t.Run(kc.name, func(t *testing.T) {
			k := mustKeyPair(t, "k1", kc.kem)
			v1, err := SealV1(k.Public(), testBinding(), testContents())
			if err != nil {
				t.Fatal(err)
			}
			start, err := Seal(k.Public(), testBinding(), testContents())
			if err != nil {
				t.Fatal(err)
			}
			run := testContents()
			run.RunID = testRunID
			update, err := Seal(k.Public(), testBinding(), run)
			if err != nil {
				t.Fatal(err)
			}
			const (
				commitments = len(`,"jti":""`) + IDLength + len(`,"iat":""`) + len(iatLayout) + len(`,"input":""`) + 43
				runMember   = len(`,"run":""`) + len(testRunID)
			)
			if got := len(start) - len(v1); got != commitments {
				t.Errorf("version 2 adds %d bytes without a run, want %d", got, commitments)
			}
			if got := len(update) - len(v1); got != commitments+runMember {
				t.Errorf("version 2 adds %d bytes with a run, want %d", got, commitments+runMember)
			}
			t.Logf("version 1: %d bytes, version 2: %d bytes (start), %d bytes (with a run id)", len(v1), len(start), len(update))
		})
	}
}
