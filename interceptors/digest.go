package interceptors

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// digestLabel starts every input digest, so it cannot collide with another use of SHA-256.
const digestLabel = "oidcflow/input v1\x00"

// InputDigest returns the SHA-256 that a sealed envelope commits to: the operation's name
// (workflow type, update or signal name) and its arguments, each encoded by the default data
// converter and put into a canonical form. The client computes it from the values it sends,
// the worker from the values it received, so an envelope copied onto other arguments does not
// speak for them.
//
// The canonical form of a JSON argument drops object members whose value is null, false, 0,
// "", {} or [] (at any depth), sorts object members and writes numbers in their shortest
// form: two encodings that decode into the same Go value digest alike, whichever side has a
// field the other lacks as long as it is zero. A non-zero member that only one side knows
// changes the digest: the worker refuses an argument it would silently drop. Other encodings
// (binary, protobuf) are digested byte for byte.
func InputDigest(name string, args ...any) ([]byte, error) {
	payloads := make([]*commonpb.Payload, len(args))
	for i, a := range args {
		p, err := headerConverter.ToPayload(a)
		if err != nil {
			return nil, fmt.Errorf("interceptors: encode argument %d of %s for its digest: %w", i, name, err)
		}
		payloads[i] = p
	}
	return payloadDigest(name, payloads)
}

// payloadDigest is InputDigest over already encoded arguments (a signal's, as the worker
// receives it).
func payloadDigest(name string, payloads []*commonpb.Payload) ([]byte, error) {
	h := sha256.New()
	h.Write([]byte(digestLabel))
	writeField(h, []byte(name))
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(payloads))))
	for i, p := range payloads {
		enc, canon, err := canonicalPayload(p)
		if err != nil {
			return nil, fmt.Errorf("interceptors: argument %d of %s: %w", i, name, err)
		}
		writeField(h, []byte(enc))
		writeField(h, canon)
	}
	return h.Sum(nil), nil
}

func writeField(h interface{ Write([]byte) (int, error) }, b []byte) {
	_, _ = h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
	_, _ = h.Write(b)
}

// canonicalPayload returns the encoding label and canonical bytes of one payload.
func canonicalPayload(p *commonpb.Payload) (string, []byte, error) {
	enc := string(p.GetMetadata()[converter.MetadataEncoding])
	switch enc {
	case converter.MetadataEncodingNil:
		return converter.MetadataEncodingJSON, []byte("null"), nil
	case converter.MetadataEncodingJSON:
		d := json.NewDecoder(bytes.NewReader(p.GetData()))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return "", nil, fmt.Errorf("not JSON: %w", errMalformedHeader)
		}
		if foldedTwice(v) {
			return "", nil, fmt.Errorf("an object has two members whose names differ only in case, which Go decodes as one: %w", errMalformedHeader)
		}
		v = canonicalJSON(v)
		if v == nil {
			return enc, []byte("null"), nil
		}
		b, err := json.Marshal(v) // maps are written with sorted keys
		return enc, b, err
	}
	return enc, p.GetData(), nil
}

// foldedTwice reports whether an object anywhere in v has two member names that are equal
// under Unicode case folding: encoding/json decodes both into one struct field (the last one
// wins), so the canonical form, which keeps both, would not describe what the worker acts on.
func foldedTwice(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		seen := make(map[string]bool, len(x))
		//workflowcheck:ignore whether two names collide does not depend on the order
		for k, m := range x {
			f := foldKey(k)
			if seen[f] || foldedTwice(m) {
				return true
			}
			seen[f] = true
		}
	case []any:
		for _, e := range x {
			if foldedTwice(e) {
				return true
			}
		}
	}
	return false
}

// foldKey maps every rune of k to the smallest rune of its case-folding orbit, so two names
// equal under strings.EqualFold (which encoding/json's matching follows) map alike.
func foldKey(k string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, k)
}

// canonicalJSON drops zero members and normalizes numbers; it returns nil for a zero value.
func canonicalJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		//workflowcheck:ignore each member is rewritten on its own, so the order does not matter
		for k, m := range x {
			if c := canonicalJSON(m); c == nil {
				delete(x, k)
			} else {
				x[k] = c
			}
		}
		if len(x) == 0 {
			return nil
		}
		return x
	case []any:
		if len(x) == 0 {
			return nil
		}
		for i, e := range x {
			if c := canonicalJSON(e); c == nil {
				x[i] = nil // positions matter in a list: keep the zero element
			} else {
				x[i] = c
			}
		}
		return x
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			if n == 0 {
				return nil
			}
			return json.Number(strconv.FormatInt(n, 10))
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) {
			return x
		}
		if f == 0 {
			return nil
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
	case string:
		if x == "" {
			return nil
		}
		return x
	case bool:
		if !x {
			return nil
		}
		return x
	}
	return v // nil
}
