package envelope

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Contents is what an envelope carries: the caller's tokens. It never prints, logs or
// JSON-encodes its tokens: String, GoString, LogValue and MarshalJSON redact them (they say
// only which are present), and Format prints String for every verb, so a Contents that reaches
// a log or a payload by accident leaks nothing. Not done: a Contents held in an unexported
// struct field is printed by fmt field by field (fmt cannot call its methods there); keep it
// in exported fields or pointers.
type Contents struct {
	IDToken      string
	AccessToken  string
	RefreshToken string    // optional; only on start, for offline access
	Expiry       time.Time // the access token's expiry; zero if unknown
}

// wireContents is the plaintext of an envelope.
type wireContents struct {
	IDToken      string    `json:"id_token,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

func redacted(s string) string {
	if s == "" {
		return "absent"
	}
	return "REDACTED"
}

// String describes c without any token.
func (c Contents) String() string {
	return fmt.Sprintf("envelope.Contents{IDToken: %s, AccessToken: %s, RefreshToken: %s, Expiry: %s}",
		redacted(c.IDToken), redacted(c.AccessToken), redacted(c.RefreshToken), c.expiryString())
}

func (c Contents) expiryString() string {
	if c.Expiry.IsZero() {
		return "unknown"
	}
	return c.Expiry.UTC().Format(time.RFC3339)
}

// GoString describes c without any token (for %#v).
func (c Contents) GoString() string { return c.String() }

// Format prints String for every verb, so that %d, %x or %#v cannot print a token either
// (fmt.Formatter).
func (c Contents) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue logs which tokens are present and the expiry, never a token (slog.LogValuer).
func (c Contents) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id_token", redacted(c.IDToken)),
		slog.String("access_token", redacted(c.AccessToken)),
		slog.String("refresh_token", redacted(c.RefreshToken)),
		slog.String("expiry", c.expiryString()))
}

// MarshalJSON encodes c redacted, like String. It is not the envelope's plaintext encoding.
func (c Contents) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireContents{IDToken: redacted(c.IDToken), AccessToken: redacted(c.AccessToken),
		RefreshToken: redacted(c.RefreshToken), Expiry: c.Expiry})
}

func (c Contents) marshal() ([]byte, error) {
	if c.IDToken == "" && c.AccessToken == "" {
		return nil, fmt.Errorf("%w (nothing to seal: no ID token and no access token)", ErrMalformed)
	}
	return json.Marshal(wireContents{IDToken: c.IDToken, AccessToken: c.AccessToken,
		RefreshToken: c.RefreshToken, Expiry: c.Expiry.Round(0)})
}

// unmarshalContents parses the plaintext strictly: one JSON object, known members only, and
// at least an ID or access token. Its errors never quote the input.
func unmarshalContents(b []byte) (Contents, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var w wireContents
	if err := d.Decode(&w); err != nil {
		return Contents{}, fmt.Errorf("%w (contents are not the expected JSON)", ErrMalformed)
	}
	if _, err := d.Token(); err != io.EOF {
		return Contents{}, fmt.Errorf("%w (trailing data after the contents)", ErrMalformed)
	}
	if w.IDToken == "" && w.AccessToken == "" {
		return Contents{}, fmt.Errorf("%w (contents hold no ID token and no access token)", ErrMalformed)
	}
	return Contents{IDToken: w.IDToken, AccessToken: w.AccessToken, RefreshToken: w.RefreshToken,
		Expiry: w.Expiry}, nil
}
