package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// jwtHeader is the part of a JOSE header (RFC 7515 section 4) that the Verifier looks at
// before any signature is checked. jku, x5u, x5c and jwk are read only to be ignored: no
// key is ever taken or fetched from a token (RFC 8725 section 3.10).
type jwtHeader struct {
	Alg  string
	Kid  string
	Typ  string
	Crit bool
}

// parseHeader does the cheap, bounded checks on a compact JWS before go-jose sees it: the
// size cap, nothing but the base64url alphabet and dots (RFC 7515 section 7.1; go-jose
// would strip whitespace and padding, and Go's base64 skips CR and LF, so one token would
// have many spellings that defeat caches, block-lists and one-time stores keyed by it),
// exactly two dots (counted before anything is split), three segments in canonical
// unpadded base64url (no spare bits set: the same bytes have one spelling), and a header
// that is UTF-8 JSON text (RFC 7519 section 7.2) holding one object. Keys are matched
// exactly (a map, not a struct), so "ALG" cannot shadow "alg" the way encoding/json's
// case-insensitive fields would allow. It does not verify anything: the signature is
// checked later, by the key set, and the payload's text by decodeClaims.
func parseHeader(raw string, maxSize int) (jwtHeader, error) {
	var h jwtHeader
	if len(raw) == 0 {
		return h, malformed("empty token; send the ID or access token from the login")
	}
	if len(raw) > maxSize { // check:size-header
		return h, malformed("token is %d bytes, more than the %d-byte cap (VerifierOptions.MaxTokenSize); check that a token, not some other value, is sent", len(raw), maxSize)
	}
	if i := strings.IndexFunc(raw, notCompact); i >= 0 { // check:alphabet
		return h, malformed("token holds a character outside base64url and '.' at byte %d (whitespace, padding, a quote?); send the token exactly as the IdP issued it", i)
	}
	n := strings.Count(raw, ".")
	if n == 4 { // check:jwe
		return h, malformed("token has 5 parts: an encrypted JWT (JWE) is not supported; configure the IdP to issue signed tokens")
	}
	if n != 2 { // check:parts
		return h, malformed("token has %d parts, a signed JWT (JWS compact form) has 3", n+1)
	}
	head, rest, _ := strings.Cut(raw, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	b, err := decodeSegment(head)
	if err != nil {
		return h, malformed("header is not base64url: %v", err)
	}
	for _, seg := range []struct{ name, s string }{{"payload", payload}, {"signature", sig}} {
		if _, err := decodeSegment(seg.s); err != nil { // check:canonical
			return h, malformed("%s is not canonical base64url: %v", seg.name, err)
		}
	}
	if err := checkText(b); err != nil { // check:header-utf8
		return h, malformed("header: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return h, malformed("header is not a JSON object")
	}
	if h.Alg, err = headerString(m, "alg"); err != nil {
		return h, err
	}
	if h.Kid, err = headerString(m, "kid"); err != nil {
		return h, err
	}
	if h.Typ, err = headerString(m, "typ"); err != nil {
		return h, err
	}
	_, h.Crit = m["crit"]
	return h, nil
}

// notCompact reports a rune that has no place in a compact JWS: anything but the base64url
// alphabet (RFC 4648 section 5) and ".".
func notCompact(r rune) bool {
	switch {
	case 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '-', r == '_', r == '.':
		return false
	}
	return true
}

// checkText refuses JSON text that encoding/json would change while decoding it: bytes
// that are not UTF-8 (RFC 8259 section 8.1, RFC 7519 section 7.2) and \u escapes of lone
// UTF-16 surrogates, both of which it silently turns into U+FFFD, so that two different
// tokens would decode to the same subject. Backslashes occur only inside JSON strings, so
// no string tracking is needed; the text is not otherwise validated here.
func checkText(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("not UTF-8 text (RFC 7519 section 7.2)")
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 < len(b) && b[i+1] != 'u' {
			i++ // a one-character escape, \\ included
			continue
		}
		r := hex4(b, i+2)
		switch {
		case r < 0:
			continue // not an escape JSON accepts; the decoder refuses it
		case 0xD800 <= r && r < 0xDC00:
			if lo := hex4(b, i+8); i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' && 0xDC00 <= lo && lo < 0xE000 {
				i += 11
				continue
			}
			return errors.New("a \\u escape holds a lone UTF-16 surrogate")
		case 0xDC00 <= r && r < 0xE000:
			return errors.New("a \\u escape holds a lone UTF-16 surrogate")
		}
		i += 5
	}
	return nil
}

// hex4 returns the value of the four hex digits at b[i:], or -1.
func hex4(b []byte, i int) int {
	if i < 0 || i+4 > len(b) {
		return -1
	}
	v := 0
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | int(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | int(c-'A'+10)
		default:
			return -1
		}
	}
	return v
}

func headerString(m map[string]json.RawMessage, name string) (string, error) {
	v, ok := m[name]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil { // check:header-string
		return "", malformed("header %s is not a string", name)
	}
	return s, nil
}

// decodeSegment decodes one unpadded base64url segment (RFC 7515 section 2), refusing padding
// and the standard alphabet.
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// mediaType normalises a typ value for comparison (RFC 7515 section 4.1.9: the
// "application/" prefix may be omitted; media types are case-insensitive).
func mediaType(typ string) string {
	typ = strings.ToLower(typ)
	return strings.TrimPrefix(typ, "application/")
}

// claimSet is a verified token's payload, decoded with exact key matching and json.Number.
type claimSet map[string]any

// decodeClaims decodes a JSON object with numbers kept exact, from text checkText accepts
// (no invalid UTF-8, no lone surrogate escapes: those would silently become U+FFFD).
// Duplicate keys keep the last value, as encoding/json does; the signature already vouches
// for the bytes.
func decodeClaims(payload []byte) (claimSet, error) {
	if err := checkText(payload); err != nil { // check:claims-utf8
		return nil, malformed("claims: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, malformed("claims are not a JSON object")
	}
	if dec.More() { // check:trailing
		return nil, malformed("claims are followed by trailing data")
	}
	return m, nil
}

// str returns a string claim; present is false when absent, err set when of another type.
func (c claimSet) str(name string) (s string, present bool, err error) {
	v, ok := c[name]
	if !ok || v == nil {
		return "", false, nil
	}
	s, ok = v.(string)
	if !ok {
		return "", true, malformed("claim %s is not a string", name)
	}
	return s, true, nil
}

// audience returns aud as a list: a string or an array of strings (RFC 7519 section 4.1.3).
func (c claimSet) audience() ([]string, error) {
	switch v := c["aud"].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, a := range v {
			s, ok := a.(string)
			if !ok {
				return nil, malformed("claim aud holds a non-string value")
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, malformed("claim aud is neither a string nor an array of strings")
	}
}

// maxUnixTime is the largest NumericDate accepted (year 9999), so time arithmetic cannot
// overflow.
const maxUnixTime = 253402300799

// time returns a NumericDate claim (RFC 7519 section 2): seconds since the epoch, fractions
// allowed.
func (c claimSet) time(name string) (t time.Time, present bool, err error) {
	v, ok := c[name]
	if !ok || v == nil {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, true, malformed("claim %s is not a number", name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxUnixTime { // check:numeric-date
		return time.Time{}, true, malformed("claim %s is not a valid NumericDate", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, nil
}
