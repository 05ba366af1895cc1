package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
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
// size cap, exactly two dots (counted before anything is split), and a header that is
// strict base64url holding one JSON object. Keys are matched exactly (a map, not a struct),
// so "ALG" cannot shadow "alg" the way encoding/json's case-insensitive fields would allow.
// It does not verify anything: the signature is checked later, by the key set.
func parseHeader(raw string, maxSize int) (jwtHeader, error) {
	var h jwtHeader
	if len(raw) == 0 {
		return h, malformed("empty token; send the ID or access token from the login")
	}
	if len(raw) > maxSize { // check:size-header
		return h, malformed("token is %d bytes, more than the %d-byte cap (VerifierOptions.MaxTokenSize); check that a token, not some other value, is sent", len(raw), maxSize)
	}
	n := strings.Count(raw, ".")
	if n == 4 { // check:jwe
		return h, malformed("token has 5 parts: an encrypted JWT (JWE) is not supported; configure the IdP to issue signed tokens")
	}
	if n != 2 { // check:parts
		return h, malformed("token has %d parts, a signed JWT (JWS compact form) has 3", n+1)
	}
	head, _, _ := strings.Cut(raw, ".")
	b, err := decodeSegment(head)
	if err != nil {
		return h, malformed("header is not base64url: %v", err)
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

// decodeClaims decodes a JSON object with numbers kept exact. Duplicate keys keep the last
// value, as encoding/json does; the signature already vouches for the bytes.
func decodeClaims(payload []byte) (claimSet, error) {
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
