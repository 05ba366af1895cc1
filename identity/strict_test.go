package identity

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// signParts signs a header and a payload given as raw bytes (json.Marshal would replace
// invalid UTF-8 with U+FFFD, which is what these tests must not let happen).
func (k *testKey) signParts(t testing.TB, header, payload []byte) string {
	t.Helper()
	input := b64(header) + "." + b64(payload)
	return input + "." + b64(k.signInput(t, input))
}

// respell returns raw with the last character of part i replaced by one that differs only
// in the bits base64url decoding throws away (a non-canonical encoding of the same bytes),
// or "" when the part has no spare bits.
func respell(raw string, i int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	parts := strings.Split(raw, ".")
	p := parts[i]
	var spare uint
	switch len(p) % 4 {
	case 2:
		spare = 4
	case 3:
		spare = 2
	default:
		return ""
	}
	last := strings.IndexByte(alphabet, p[len(p)-1])
	parts[i] = p[:len(p)-1] + string(alphabet[last|(1<<spare-1)])
	return strings.Join(parts, ".")
}

// TestStrictCompactJWS is the attack of a token with many spellings: whitespace, padding
// and non-canonical base64url all decode to the same signed bytes (go-jose strips
// whitespace and padding; Go's base64 ignores CR and LF and, unless strict, spare bits), so
// a caller's cache, block-list or one-time store keyed by the token string sees a new
// token each time. Every spelling but the one the IdP issued is refused, as malformed,
// before any key is fetched.
func TestStrictCompactJWS(t *testing.T) {
	for _, alg := range signingAlgs {
		key := newKey(t, alg, "k1")
		t.Run(alg, func(t *testing.T) {
			p := newIDP(t, key)
			v := p.verifier(t, func(o *VerifierOptions) { o.CacheTTL = -1 })
			valid := key.sign(t, nil, p.claims())
			if _, err := v.VerifyIDToken(context.Background(), valid); err != nil {
				t.Fatalf("the token as issued: %v", err)
			}
			p.fetches.Store(0)
			parts := strings.Split(valid, ".")
			h, pl, sig := parts[0], parts[1], parts[2]
			mid := func(s, ins string) string { return s[:len(s)/2] + ins + s[len(s)/2:] }
			cases := []struct{ name, raw string }{
				{"newline in the header", mid(h, "\n") + "." + pl + "." + sig},
				{"CRLF in the payload", h + "." + mid(pl, "\r\n") + "." + sig},
				{"space in the signature", h + "." + pl + "." + mid(sig, " ")},
				{"tab in the signature", h + "." + pl + "." + mid(sig, "\t")},
				{"newline at the end", valid + "\n"},
				{"CR at the end", valid + "\r"},
				{"space before a dot", h + " ." + pl + "." + sig},
				{"padding on the signature", valid + "=="},
				{"NUL in the signature", h + "." + pl + "." + mid(sig, "\x00")},
				{"non-ASCII in the signature", h + "." + pl + "." + mid(sig, "é")},
				{"non-canonical signature", respell(valid, 2)},
			}
			if r := respell(valid, 0); r != "" {
				cases = append(cases, struct{ name, raw string }{"non-canonical header", r})
			}
			for _, c := range cases {
				if c.raw == "" || c.raw == valid {
					t.Fatalf("%s: no respelling", c.name)
				}
				_, err := v.VerifyIDToken(context.Background(), c.raw)
				if !errors.Is(err, ErrMalformedToken) {
					t.Errorf("%s: want ErrMalformedToken, got %v", c.name, err)
					continue
				}
				leaksToken(t, c.raw, err.Error())
			}
			if n := p.fetches.Load(); n != 0 {
				t.Errorf("%d JWKS fetches for respelled tokens, want 0", n)
			}
		})
	}
}

// TestUTF8 is the attack of subjects that collide after decoding: encoding/json replaces
// each invalid UTF-8 byte, and each lone UTF-16 surrogate escape, with U+FFFD, so
// "\xffbob", "\xfebob" and "\ud800bob" would all verify as the subject "\ufffdbob" (RFC
// 7519 section 7.2 requires the decoded header and payload to be UTF-8). Such a header or
// payload is refused, even when validly signed.
func TestUTF8(t *testing.T) {
	key := newKey(t, "ES256", "k1")
	p := newIDP(t, key)
	v := p.verifier(t, func(o *VerifierOptions) { o.CacheTTL = -1 })
	claimsOf := func(p *idp, sub string) []byte {
		now := p.clock.Now().Unix()
		return []byte(`{"iss":"` + p.issuer + `","aud":"` + testClientID + `","iat":` + strconv.FormatInt(now, 10) + `,"exp":` + strconv.FormatInt(now+3600, 10) + `,"sub":"` + sub + `"}`)
	}
	claims := func(sub string) []byte { return claimsOf(p, sub) }
	header := []byte(`{"alg":"ES256","kid":"k1","typ":"JWT"}`)
	for _, c := range []struct {
		name            string
		header, payload []byte
		want            error // nil: accepted
		sub             string
	}{
		{name: "valid", header: header, payload: claims("bob"), sub: "bob"},
		{name: "valid non-ASCII", header: header, payload: claims("b\u00f6b \U0001F600"), sub: "b\u00f6b \U0001F600"},
		{name: "escaped surrogate pair", header: header, payload: claims(`\ud83d\ude00bob`), sub: "\U0001F600bob"},
		{name: "escaped U+FFFD", header: header, payload: claims(`\ufffdbob`), sub: "\ufffdbob"},
		{name: "literal U+FFFD", header: header, payload: claims("\ufffdbob"), sub: "\ufffdbob"},
		{name: "escaped backslash before u", header: header, payload: claims(`\\ud800bob`), sub: `\ud800bob`},
		{name: "payload byte 0xff", header: header, payload: claims("\xffbob"), want: ErrMalformedToken},
		{name: "payload byte 0xfe", header: header, payload: claims("\xfebob"), want: ErrMalformedToken},
		{name: "payload truncated sequence", header: header, payload: claims("bob\xc3"), want: ErrMalformedToken},
		{name: "payload overlong slash", header: header, payload: claims("\xc0\xafbob"), want: ErrMalformedToken},
		{name: "payload encoded surrogate", header: header, payload: claims("\xed\xa0\x80bob"), want: ErrMalformedToken},
		{name: "payload lone high surrogate escape", header: header, payload: claims(`\ud800bob`), want: ErrMalformedToken},
		{name: "payload lone low surrogate escape", header: header, payload: claims(`\udc00bob`), want: ErrMalformedToken},
		{name: "payload high surrogate escape at the end", header: header, payload: claims(`bob\uD83D`), want: ErrMalformedToken},
		{name: "payload reversed surrogate pair", header: header, payload: claims(`\ude00\ud83dbob`), want: ErrMalformedToken},
		{name: "payload bad byte in a claim name", header: header, payload: []byte(strings.Replace(string(claims("bob")), `"sub"`, `"x\xff":1,"sub"`, 1)), want: ErrMalformedToken},
		{name: "header byte 0xff in kid", header: []byte("{\"alg\":\"ES256\",\"kid\":\"k1\",\"x\":\"\xff\",\"typ\":\"JWT\"}"), payload: claims("bob"), want: ErrMalformedToken},
		{name: "header lone surrogate escape", header: []byte(`{"alg":"ES256","kid":"k1","x":"\udfff","typ":"JWT"}`), payload: claims("bob"), want: ErrMalformedToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := key.signParts(t, c.header, c.payload)
			id, err := v.VerifyIDToken(context.Background(), raw)
			checkErr(t, raw, err, c.want)
			if err == nil && id.Subject != c.sub {
				t.Fatalf("subject %q, want %q", id.Subject, c.sub)
			}
		})
	}
	// A kid that only matches after its bad byte became U+FFFD.
	p2 := newIDP(t, newKey(t, "ES256", "\ufffd"))
	v2 := p2.verifier(t, nil)
	raw := newKey(t, "ES256", "\ufffd").signParts(t, []byte("{\"alg\":\"ES256\",\"kid\":\"\xff\"}"), claimsOf(p2, "bob"))
	_, err := v2.VerifyIDToken(context.Background(), raw)
	checkErr(t, raw, err, ErrMalformedToken)
}
