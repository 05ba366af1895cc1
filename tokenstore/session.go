package tokenstore

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
)

// Session is one person's OAuth session as stored in Vault: the tokens and what is needed to
// refresh and re-check them. It holds secrets: String, GoString, LogValue and MarshalJSON
// redact the tokens, so a Session that slips into a log line, an error or a Temporal payload
// shows no token. Store it only through Store.
type Session struct {
	ID       string   // random, URL-safe; the only part workflows keep
	Subject  string   // sub of the original ID token
	Issuer   string   // iss of the original ID token
	Audience []string // aud of the original ID token (OIDC Core 12.2 compares it on refresh)
	ClientID string   // the OAuth client the refresh token was issued to
	// AuthorizedParty is the original identity's ClientID as the verifier mapped it (azp);
	// "" when the original ID token named none. Compared on refresh.
	AuthorizedParty string

	AccessToken  string
	IDToken      string
	RefreshToken string
	TokenType    string
	Expiry       time.Time // expiry of AccessToken
	IssuedAt     time.Time // when AccessToken was obtained; bounds the refresh skew

	// IDTokenExpiry is the exp of IDToken as its verification read it. Zero in sessions
	// stored before it existed: then RefreshDue reads exp from IDToken's payload without
	// verifying it (it only schedules a refresh; the activities still verify the token).
	IDTokenExpiry time.Time
	// IDTokenKept reports that the last refresh returned no ID token (OIDC Core 12.2 allows
	// that), so IDToken is the one of an earlier sign-in or refresh. The Refresher then
	// re-checked the person through the userinfo endpoint with the new access token (see
	// identity.Verifier.RecheckKeptIDToken), and vouches for them until Expiry: the kept
	// token's exp no longer makes a refresh due, since no refresh could renew it.
	IDTokenKept bool

	Created   time.Time // when the session was created
	Refreshed time.Time // when the tokens were last refreshed (zero: never)
	Refreshes int       // number of successful refreshes

	// Version is the Vault KV version this value was read at (or written as). Update writes
	// with check-and-set on it.
	Version int

	// Refresh coordination between processes (see Refresher): who claimed the refresh, until
	// when, and whether the ID token of the last refresh still awaits its check.
	claimOwner   string
	claimUntil   time.Time
	pendingCheck bool
}

const redacted = "[redacted]"

func redact(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// String names the session without its tokens.
func (s Session) String() string {
	return fmt.Sprintf("tokenstore.Session{ID:%s Subject:%s Issuer:%s ClientID:%s Expiry:%s Version:%d AccessToken:%s IDToken:%s RefreshToken:%s}",
		s.ID, s.Subject, s.Issuer, s.ClientID, s.Expiry.UTC().Format(time.RFC3339), s.Version,
		redact(s.AccessToken), redact(s.IDToken), redact(s.RefreshToken))
}

// GoString is String, so %#v redacts too.
func (s Session) GoString() string { return s.String() }

// LogValue implements slog.LogValuer: non-secret fields only.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", s.ID),
		slog.String("sub", s.Subject),
		slog.String("iss", s.Issuer),
		slog.String("client_id", s.ClientID),
		slog.Time("expiry", s.Expiry),
		slog.Int("version", s.Version),
		slog.Int("refreshes", s.Refreshes),
	)
}

// SessionInfo is the non-secret view of a Session, safe for logs and workflow history.
type SessionInfo struct {
	ID        string    `json:"id"`
	Subject   string    `json:"sub"`
	Issuer    string    `json:"iss"`
	ClientID  string    `json:"client_id,omitempty"`
	Expiry    time.Time `json:"expiry"`
	Refreshed time.Time `json:"refreshed,omitzero"`
	Refreshes int       `json:"refreshes,omitempty"`
	Version   int       `json:"version"`
	// IDTokenExpiry and IDTokenKept are Session's fields of these names.
	IDTokenExpiry time.Time `json:"id_token_expiry,omitzero"`
	IDTokenKept   bool      `json:"id_token_kept,omitempty"`
}

// Info returns the non-secret view of s.
func (s Session) Info() SessionInfo {
	return SessionInfo{ID: s.ID, Subject: s.Subject, Issuer: s.Issuer, ClientID: s.ClientID,
		Expiry: s.Expiry, Refreshed: s.Refreshed, Refreshes: s.Refreshes, Version: s.Version,
		IDTokenExpiry: s.IDTokenExpiry, IDTokenKept: s.IDTokenKept}
}

// MarshalJSON encodes only Info, so a Session passed by mistake to a Temporal data converter
// or a JSON logger never carries its tokens. The tokens are encoded only by Store.
func (s Session) MarshalJSON() ([]byte, error) { return json.Marshal(s.Info()) }

// NewSession returns a session (not yet stored: use Store.Create) for the tokens of a login
// through client clientID: orig is the identity VerifyIDToken returned for tok's ID token,
// recorded so that refreshed ID tokens can be compared with it (its Expiry is the ID
// token's exp). now is the time tok was obtained.
func NewSession(orig *identity.Identity, clientID string, tok *oauth2.Token, now time.Time) Session {
	idToken, _ := tok.Extra("id_token").(string)
	exp := tok.Expiry
	if tok.ExpiresIn > 0 {
		exp = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	return Session{
		Subject: orig.Subject, Issuer: orig.Issuer, Audience: slices.Clone(orig.Audience),
		ClientID: clientID, AuthorizedParty: orig.ClientID,
		AccessToken: tok.AccessToken, IDToken: idToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType,
		Expiry: exp, IssuedAt: now, Created: now, IDTokenExpiry: orig.Expiry,
	}
}

// WithTokens returns a copy of s carrying fresh tokens obtained at now (a re-consent, say),
// with any refresh claim and pending check cleared. Version is kept for the CAS write.
// IDTokenExpiry is cleared (RefreshDue then reads the new ID token's exp) and IDTokenKept
// too.
func (s Session) WithTokens(accessToken, idToken, refreshToken string, expiry, now time.Time) Session {
	s.AccessToken, s.IDToken, s.RefreshToken = accessToken, idToken, refreshToken
	s.Expiry, s.IssuedAt = expiry, now
	s.IDTokenExpiry, s.IDTokenKept = time.Time{}, false
	s.claimOwner, s.claimUntil, s.pendingCheck = "", time.Time{}, false
	return s
}

func (s Session) clone() Session {
	s.Audience = slices.Clone(s.Audience)
	return s
}

// Session record formats. Store writes SessionFormat and reads every format up to it.
const (
	// SessionFormat is the format of the session records Store writes, in their "format"
	// member: the fields of record, id_token_expiry and id_token_kept included.
	SessionFormat = 2
	// sessionFormatUnnumbered is the format of a record without a "format" member, written
	// by a release before formats were numbered: the same fields, without id_token_expiry and
	// id_token_kept (which read as zero: RefreshDue then reads exp from the ID token). Get
	// rewrites such a record as SessionFormat.
	sessionFormatUnnumbered = 1
)

// record is the stored form of a Session (the data of the KV v2 secret).
type record struct {
	// Format is the record's format (SessionFormat when written by this build); 0 when the
	// record has none (sessionFormatUnnumbered).
	Format       int       `json:"format,omitempty"`
	ID           string    `json:"id"`
	Subject      string    `json:"sub"`
	Issuer       string    `json:"iss"`
	Audience     []string  `json:"aud,omitempty"`
	ClientID     string    `json:"client_id"`
	AZP          string    `json:"azp,omitempty"`
	AccessToken  string    `json:"access_token"`
	IDToken      string    `json:"id_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry"`
	IssuedAt     time.Time `json:"issued_at,omitzero"`
	Created      time.Time `json:"created,omitzero"`
	Refreshed    time.Time `json:"refreshed,omitzero"`
	Refreshes    int       `json:"refreshes,omitempty"`
	ClaimOwner   string    `json:"claim_owner,omitempty"`
	ClaimUntil   time.Time `json:"claim_until,omitzero"`
	PendingCheck bool      `json:"pending_check,omitempty"`
	// Added later: records without them load with zero values.
	IDTokenExpiry time.Time `json:"id_token_expiry,omitzero"`
	IDTokenKept   bool      `json:"id_token_kept,omitempty"`
}

func toRecord(s Session) record {
	return record{Format: SessionFormat, ID: s.ID, Subject: s.Subject, Issuer: s.Issuer, Audience: s.Audience,
		ClientID: s.ClientID, AZP: s.AuthorizedParty, AccessToken: s.AccessToken, IDToken: s.IDToken,
		RefreshToken: s.RefreshToken, TokenType: s.TokenType, Expiry: s.Expiry,
		IssuedAt: s.IssuedAt, Created: s.Created, Refreshed: s.Refreshed, Refreshes: s.Refreshes,
		IDTokenExpiry: s.IDTokenExpiry, IDTokenKept: s.IDTokenKept,
		ClaimOwner: s.claimOwner, ClaimUntil: s.claimUntil, PendingCheck: s.pendingCheck}
}

func fromRecord(r record, version int) Session {
	return Session{ID: r.ID, Subject: r.Subject, Issuer: r.Issuer, Audience: r.Audience,
		ClientID: r.ClientID, AuthorizedParty: r.AZP, AccessToken: r.AccessToken, IDToken: r.IDToken,
		RefreshToken: r.RefreshToken, TokenType: r.TokenType, Expiry: r.Expiry,
		IssuedAt: r.IssuedAt, Created: r.Created, Refreshed: r.Refreshed, Refreshes: r.Refreshes,
		IDTokenExpiry: r.IDTokenExpiry, IDTokenKept: r.IDTokenKept, Version: version, claimOwner: r.ClaimOwner, claimUntil: r.ClaimUntil, pendingCheck: r.PendingCheck}
}

// NewSessionID returns a fresh random session id: 32 bytes from crypto/rand, base64url
// without padding (43 characters).
func NewSessionID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ValidateSessionID reports whether id has the shape of an id this package issues (16 to 128
// characters of the base64url alphabet), so that an id from the outside can never name
// another Vault path. It returns an error wrapping ErrInvalidSessionID, or nil.
func ValidateSessionID(id string) error {
	if len(id) < 16 || len(id) > 128 {
		return fmt.Errorf("%w: length %d", ErrInvalidSessionID, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: character %q at %d", ErrInvalidSessionID, c, i)
		}
	}
	return nil
}

// idTokenExpiry returns the exp of s's ID token: IDTokenExpiry, or for a session stored
// before that field existed, the exp read from the token's payload without verifying it.
// Zero when unknown.
func (s Session) idTokenExpiry() time.Time {
	if !s.IDTokenExpiry.IsZero() {
		return s.IDTokenExpiry
	}
	return payloadExpiry(s.IDToken)
}

// maxPayload bounds the payload payloadExpiry decodes.
const maxPayload = 16 << 10

// payloadExpiry reads the exp claim (RFC 7519 section 4.1.4) from the payload of a compact
// JWS without verifying anything: zero when raw is not one, has no numeric exp, or is
// larger than maxPayload. Only for scheduling a refresh: nothing may trust the value.
func payloadExpiry(raw string) time.Time {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || len(parts[1]) > maxPayload {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp json.Number `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return time.Time{}
	}
	f, err := c.Exp.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > maxUnixTime {
		return time.Time{}
	}
	return time.Unix(int64(f), 0).UTC()
}

// maxUnixTime is the largest exp payloadExpiry accepts (year 9999).
const maxUnixTime = 253402300799
