package login

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/oauth2"
)

// FileName is the cache file's name inside its folder.
const FileName = "tokens.json"

// CacheFormat is the format of the cache file Save writes, in its "format" member. A file
// without one (written before formats were numbered) is format 1 too: the same members.
// Load refuses a file of a newer format (*CacheFormatError).
const CacheFormat = 1

// Sentinel errors. Messages say what to do; none holds a token.
var (
	// ErrNotLoggedIn: there is no cached session.
	ErrNotLoggedIn = errors.New("login: not logged in")
	// ErrSessionExpired: the session cannot be refreshed any more (no refresh token, or the
	// IdP refused it: invalid_grant). SessionExpiredError wraps it with the reason.
	ErrSessionExpired = errors.New("login: session expired")
	// ErrIdPUnreachable: the IdP's token endpoint could not be reached or answered with a
	// server error; the cached session is left as it was.
	ErrIdPUnreachable = errors.New("login: identity provider unreachable")
	// ErrUnsupportedFormat: the cache file is in a format newer than this build reads, so a
	// newer version of the program wrote it. Nothing is read from it: its tokens are not
	// used, refreshed or revoked, and the file is not written. Errors wrapping it are
	// *CacheFormatError.
	ErrUnsupportedFormat = errors.New("login: the session cache is in a newer format than this build reads")
)

// CacheFormatError reports a cache file of a format this build does not read. It wraps
// ErrUnsupportedFormat. It says what happened; what to do (upgrade, or log in again, which
// replaces the file) is the program's advice to give.
type CacheFormatError struct {
	// Path is the cache file.
	Path string
	// Format is the file's format, -1 when it is not a whole number; Newest is the newest
	// format this build reads (CacheFormat).
	Format, Newest int
}

func (e *CacheFormatError) Error() string {
	format := fmt.Sprint("format ", e.Format)
	if e.Format < 0 {
		format = "an unknown format"
	}
	return fmt.Sprintf("login: %s is in %s, and this build reads formats up to %d: a newer version wrote it; "+
		"it was not read, refreshed, revoked or changed", e.Path, format, e.Newest)
}

// Is makes errors.Is(err, ErrUnsupportedFormat) true.
func (e *CacheFormatError) Is(target error) bool { return target == ErrUnsupportedFormat }

// SessionExpiredError says why a session cannot be used any more.
type SessionExpiredError struct {
	Reason string // e.g. "the identity provider refused the refresh token: invalid_grant"
}

func (e *SessionExpiredError) Error() string {
	return fmt.Sprintf("login: session expired (%s)", e.Reason)
}

// Is makes errors.Is(err, ErrSessionExpired) true.
func (e *SessionExpiredError) Is(target error) bool { return target == ErrSessionExpired }

// Session is the cached login: the tokens and the verified facts about whom they belong to.
// Its String method and JSON output in this package never expose tokens to callers'
// printing: print Session.Summary() instead.
type Session struct {
	Issuer        string    `json:"issuer"`
	ClientID      string    `json:"client_id"`
	Subject       string    `json:"subject"`
	Audience      []string  `json:"audience,omitempty"`
	AuthorizedBy  string    `json:"authorized_by,omitempty"` // the client the ID token names in azp
	TokenType     string    `json:"token_type,omitempty"`
	AccessToken   string    `json:"access_token"`
	RefreshToken  string    `json:"refresh_token,omitempty"`
	IDToken       string    `json:"id_token"`
	Expiry        time.Time `json:"expiry"`          // access token expiry
	IDTokenExpiry time.Time `json:"id_token_expiry"` // exp of the ID token
	Scope         string    `json:"scope,omitempty"`
	SavedAt       time.Time `json:"saved_at"`
	// HandedOver is when the refresh token rode to the worker pool in a start envelope. From
	// then on the pool rotates it, so this cache never refreshes or revokes it: a second
	// holder of one rotating refresh token would trip the IdP's reuse detection and end the
	// whole token family, the running workflows' session included.
	HandedOver time.Time `json:"handed_over,omitempty"`
}

// String redacts: a Session printed by accident shows no token.
func (s Session) String() string {
	return fmt.Sprintf("session{sub=%s iss=%s expiry=%s refresh=%t}", s.Subject, s.Issuer,
		s.Expiry.UTC().Format(time.RFC3339), s.RefreshToken != "")
}

// GoString redacts too (%#v).
func (s Session) GoString() string { return s.String() }

// Token returns the session as an oauth2.Token with the ID token in Extra("id_token"), the
// form interceptors.Dial expects.
func (s Session) Token() *oauth2.Token {
	t := &oauth2.Token{AccessToken: s.AccessToken, TokenType: s.TokenType, RefreshToken: s.RefreshToken, Expiry: s.Expiry}
	return t.WithExtra(map[string]any{"id_token": s.IDToken})
}

// CacheOptions configure NewCache.
type CacheOptions struct {
	// Path is the cache file. Default: DefaultPath().
	Path string
}

// Cache is the session file. Its methods are safe for concurrent use by one process; across
// processes, Update serializes through an advisory lock file next to the cache (Unix).
type Cache struct {
	path string
}

// DefaultPath returns os.UserConfigDir()/oidcflow/tokens.json ($XDG_CONFIG_HOME or
// ~/.config on Linux).
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("login: no config folder (%v); give CacheOptions.Path", err)
	}
	return filepath.Join(dir, "oidcflow", FileName), nil
}

// NewCache returns the cache at opts.Path (default DefaultPath()). Nothing is read or
// created.
func NewCache(opts CacheOptions) (*Cache, error) {
	p := opts.Path
	if p == "" {
		var err error
		if p, err = DefaultPath(); err != nil {
			return nil, err
		}
	}
	return &Cache{path: p}, nil
}

// Path returns the cache file's path.
func (c *Cache) Path() string { return c.path }

// Load reads the session; ErrNotLoggedIn when there is none. A file readable by others is
// refused (and left alone) so that a leaked copy is noticed, and so is a file of a format
// newer than CacheFormat (*CacheFormatError). A file without a format is format 1.
func (c *Cache) Load() (Session, error) {
	var s Session
	fi, err := os.Stat(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, ErrNotLoggedIn
	}
	if err != nil {
		return s, fmt.Errorf("login: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return s, fmt.Errorf("login: %s is readable by others (mode %v); make it private (chmod 600) or delete it and log in again",
			c.path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return s, fmt.Errorf("login: %w", err)
	}
	// The format first: a file of a newer format may not even decode as this build's.
	var head struct {
		Format any `json:"format"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&head); err != nil || json.Unmarshal(b, &s) != nil {
		// The JSON error text may quote bytes of the file: none of it is kept.
		return Session{}, fmt.Errorf("login: %s is not valid JSON; log in again to replace it", c.path)
	}
	if f := cacheFormat(head.Format); f < 0 || f > CacheFormat {
		return Session{}, &CacheFormatError{Path: c.path, Format: f, Newest: CacheFormat}
	}
	if s.AccessToken == "" && s.RefreshToken == "" {
		return Session{}, ErrNotLoggedIn
	}
	return s, nil
}

// Save writes s atomically: a temporary file (mode 0600) in the same folder (created 0700),
// synced, then renamed over the cache.
func (c *Cache) Save(s Session) error {
	dir := filepath.Dir(c.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	b, err := json.MarshalIndent(cacheFile{Format: CacheFormat, Session: s}, "", "  ")
	if err != nil {
		return fmt.Errorf("login: encode: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(c.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	ok = true
	return nil
}

// cacheFile is what Save writes: the session with its format.
type cacheFile struct {
	Format int `json:"format"`
	Session
}

// cacheFormat returns the format a cache file's "format" member names: 1 when there is none,
// -1 when it is not a whole number.
func cacheFormat(v any) int {
	switch f := v.(type) {
	case nil:
		return 1
	case json.Number:
		n, err := f.Int64()
		if err != nil || n < 0 || n > math.MaxInt32 {
			return -1
		}
		return int(n)
	default:
		return -1
	}
}

// Delete removes the cache (and its lock file). Deleting a missing cache is not an error.
func (c *Cache) Delete() error {
	if err := os.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("login: %w", err)
	}
	_ = os.Remove(c.path + ".lock")
	return nil
}

// locked runs fn while holding the cache's inter-process lock.
func (c *Cache) locked(fn func() error) error {
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	unlock, err := lockFile(c.path + ".lock")
	if err != nil {
		return fmt.Errorf("login: lock: %w", err)
	}
	defer unlock()
	return fn()
}
