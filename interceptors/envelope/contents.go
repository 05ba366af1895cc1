package envelope

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// InputDigestSize is the size of Contents.InputDigest: a SHA-256.
	InputDigestSize = sha256.Size
	// IDLength is the length of an envelope id: 128 random bits in base64url without padding
	// (RFC 4648 section 5).
	IDLength = 22
	// MaxRunIDLength is the longest Contents.RunID, in bytes (Temporal run ids are UUIDs).
	MaxRunIDLength = MaxBindingField

	// iatLayout is the one spelling of a version 2 issue time: RFC 3339 in UTC with exactly
	// nine fractional digits, so every issue time has the same length.
	iatLayout = "2006-01-02T15:04:05.000000000Z"
)

// Contents is what an envelope carries: the caller's tokens and, from format 2 on, what the
// envelope commits to (an id, an issue time, the run and a digest of the operation's input).
// It never prints, logs or JSON-encodes its tokens: String, GoString, LogValue and MarshalJSON
// redact them (they say only which are present) and show the commitments, which are not
// secrets; Format prints String for every verb, so a Contents that reaches a log or a payload
// by accident leaks nothing. Not done: a Contents held in an unexported struct field is printed
// by fmt field by field (fmt cannot call its methods there); keep it in exported fields or
// pointers.
type Contents struct {
	IDToken      string
	AccessToken  string
	RefreshToken string    // optional; only on start, for offline access
	Expiry       time.Time // the access token's expiry; zero if unknown

	// Version is the format the envelope was opened from (1 or 2); Seal ignores it.
	Version int
	// ID is a random envelope id (128 bits, base64url without padding, 22 chars). Seal
	// generates it when empty. Version 2 only.
	ID string
	// IssuedAt is when the envelope was sealed (the sealer's clock, second precision or
	// better). Seal sets it to time.Now() when zero. Version 2 only.
	IssuedAt time.Time
	// RunID is the Temporal run the operation targets; empty when the sealer cannot know it
	// (a start). Version 2 only.
	RunID string
	// InputDigest is a SHA-256 (32 bytes) of the operation's name and arguments, computed by
	// the caller (the interceptors package defines it). Required to seal version 2.
	InputDigest []byte
}

// wireV1 is the plaintext of a version 1 envelope.
type wireV1 struct {
	IDToken      string    `json:"id_token,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// wireV2 is the plaintext of a version 2 envelope. jti, iat and input are required; run is
// omitted when empty and, when present, not empty.
type wireV2 struct {
	IDToken      string    `json:"id_token,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	JTI          string    `json:"jti"`
	IAT          string    `json:"iat"`
	Run          *string   `json:"run,omitempty"`
	Input        string    `json:"input"`
}

// redactedJSON is what MarshalJSON writes: no token, only presence and the commitments.
type redactedJSON struct {
	Version      int       `json:"version,omitzero"`
	ID           string    `json:"id,omitempty"`
	IssuedAt     time.Time `json:"issued_at,omitzero"`
	RunID        string    `json:"run_id,omitempty"`
	InputDigest  string    `json:"input_digest,omitempty"`
	IDToken      string    `json:"id_token"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

func redacted(s string) string {
	if s == "" {
		return "absent"
	}
	return "REDACTED"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// String describes c without any token.
func (c Contents) String() string {
	var b strings.Builder
	b.WriteString("envelope.Contents{")
	if c.Version != 0 {
		fmt.Fprintf(&b, "Version: %d, ", c.Version)
	}
	if c.hasCommitments() {
		fmt.Fprintf(&b, "ID: %s, IssuedAt: %s, RunID: %s, InputDigest: %s, ",
			orNone(c.ID), timeString(c.IssuedAt), orNone(c.RunID), orNone(c.digestString()))
	}
	fmt.Fprintf(&b, "IDToken: %s, AccessToken: %s, RefreshToken: %s, Expiry: %s}",
		redacted(c.IDToken), redacted(c.AccessToken), redacted(c.RefreshToken), timeString(c.Expiry))
	return b.String()
}

func (c Contents) hasCommitments() bool {
	return c.ID != "" || !c.IssuedAt.IsZero() || c.RunID != "" || len(c.InputDigest) > 0
}

func (c Contents) digestString() string {
	return base64.RawURLEncoding.EncodeToString(c.InputDigest)
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// GoString describes c without any token (for %#v).
func (c Contents) GoString() string { return c.String() }

// Format prints String for every verb, so that %d, %x or %#v cannot print a token either
// (fmt.Formatter).
func (c Contents) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue logs which tokens are present, the expiry and the commitments, never a token
// (slog.LogValuer).
func (c Contents) LogValue() slog.Value {
	attrs := []slog.Attr{}
	if c.Version != 0 {
		attrs = append(attrs, slog.Int("version", c.Version))
	}
	if c.hasCommitments() {
		attrs = append(attrs,
			slog.String("id", orNone(c.ID)),
			slog.String("issued_at", timeString(c.IssuedAt)),
			slog.String("run_id", orNone(c.RunID)),
			slog.String("input_digest", orNone(c.digestString())))
	}
	attrs = append(attrs,
		slog.String("id_token", redacted(c.IDToken)),
		slog.String("access_token", redacted(c.AccessToken)),
		slog.String("refresh_token", redacted(c.RefreshToken)),
		slog.String("expiry", timeString(c.Expiry)))
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes c redacted, like String. It is not the envelope's plaintext encoding.
func (c Contents) MarshalJSON() ([]byte, error) {
	return json.Marshal(redactedJSON{Version: c.Version, ID: c.ID, IssuedAt: c.IssuedAt.UTC(),
		RunID: c.RunID, InputDigest: c.digestString(),
		IDToken: redacted(c.IDToken), AccessToken: redacted(c.AccessToken),
		RefreshToken: redacted(c.RefreshToken), Expiry: c.Expiry})
}

func (c Contents) checkTokens() error {
	if c.IDToken == "" && c.AccessToken == "" {
		return fmt.Errorf("%w (nothing to seal: no ID token and no access token)", ErrMalformed)
	}
	return nil
}

// marshalV1 encodes the version 1 plaintext; the version 2 fields are ignored.
func (c Contents) marshalV1() ([]byte, error) {
	if err := c.checkTokens(); err != nil {
		return nil, err
	}
	return json.Marshal(wireV1{IDToken: c.IDToken, AccessToken: c.AccessToken,
		RefreshToken: c.RefreshToken, Expiry: c.Expiry.Round(0)})
}

// marshalV2 encodes the version 2 plaintext. An empty ID is replaced by a random one and a
// zero IssuedAt by now().
func (c Contents) marshalV2(now func() time.Time) ([]byte, error) {
	if err := c.checkTokens(); err != nil {
		return nil, err
	}
	if len(c.InputDigest) != InputDigestSize {
		return nil, fmt.Errorf("%w (input digest of %d bytes; version 2 needs the %d-byte SHA-256 of the operation's input)",
			ErrMalformed, len(c.InputDigest), InputDigestSize)
	}
	id := c.ID
	if id == "" {
		id = newID()
	} else if !validID(id) {
		return nil, fmt.Errorf("%w (envelope id is not %d base64url characters of 128 bits)", ErrMalformed, IDLength)
	}
	if len(c.RunID) > MaxRunIDLength || !utf8.ValidString(c.RunID) {
		return nil, fmt.Errorf("%w (run id longer than %d bytes or not UTF-8)", ErrMalformed, MaxRunIDLength)
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = now()
	}
	if y := iat.UTC().Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("%w (issue time outside the years 1 to 9999)", ErrMalformed)
	}
	w := wireV2{IDToken: c.IDToken, AccessToken: c.AccessToken, RefreshToken: c.RefreshToken,
		Expiry: c.Expiry.Round(0), JTI: id, IAT: iat.UTC().Format(iatLayout),
		Input: base64.RawURLEncoding.EncodeToString(c.InputDigest)}
	if c.RunID != "" {
		w.Run = &c.RunID
	}
	return json.Marshal(w)
}

// newID returns IDLength base64url characters of 128 random bits.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validID reports whether id is the canonical base64url form of 16 bytes (so one id has one
// spelling: the two unused low bits of the last character are zero).
func validID(id string) bool {
	if len(id) != IDLength {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(id)
	return err == nil && len(b) == 16
}

// decodeStrict parses one JSON object of known members only, and nothing after it. Its errors
// never quote the input.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w (contents are not the expected JSON)", ErrMalformed)
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("%w (trailing data after the contents)", ErrMalformed)
	}
	return nil
}

// unmarshalContents parses the plaintext of the given format version strictly: one JSON
// object, known members only, at least an ID or access token and, in version 2, a valid jti,
// iat and input (and run, when present, not empty). Its errors never quote the input.
func unmarshalContents(version byte, b []byte) (Contents, error) {
	switch version {
	case 1:
		var w wireV1
		if err := decodeStrict(b, &w); err != nil {
			return Contents{}, err
		}
		c := Contents{IDToken: w.IDToken, AccessToken: w.AccessToken, RefreshToken: w.RefreshToken,
			Expiry: w.Expiry, Version: 1}
		if err := c.checkOpened(); err != nil {
			return Contents{}, err
		}
		return c, nil
	case 2:
		var w wireV2
		if err := decodeStrict(b, &w); err != nil {
			return Contents{}, err
		}
		c := Contents{IDToken: w.IDToken, AccessToken: w.AccessToken, RefreshToken: w.RefreshToken,
			Expiry: w.Expiry, Version: 2, ID: w.JTI}
		if err := c.checkOpened(); err != nil {
			return Contents{}, err
		}
		if !validID(w.JTI) {
			return Contents{}, fmt.Errorf("%w (contents hold no valid envelope id)", ErrMalformed)
		}
		iat, err := time.Parse(iatLayout, w.IAT)
		if err != nil || iat.Year() < 1 || iat.IsZero() {
			return Contents{}, fmt.Errorf("%w (contents hold no valid issue time)", ErrMalformed)
		}
		c.IssuedAt = iat
		digest, err := base64.RawURLEncoding.Strict().DecodeString(w.Input)
		if err != nil || len(digest) != InputDigestSize {
			return Contents{}, fmt.Errorf("%w (contents hold no valid input digest)", ErrMalformed)
		}
		c.InputDigest = digest
		if w.Run != nil {
			if *w.Run == "" || len(*w.Run) > MaxRunIDLength {
				return Contents{}, fmt.Errorf("%w (contents hold an empty or overlong run id)", ErrMalformed)
			}
			c.RunID = *w.Run
		}
		return c, nil
	default:
		return Contents{}, fmt.Errorf("%w (format version %d)", ErrUnsupported, version)
	}
}

func (c Contents) checkOpened() error {
	if c.IDToken == "" && c.AccessToken == "" {
		return fmt.Errorf("%w (contents hold no ID token and no access token)", ErrMalformed)
	}
	return nil
}
