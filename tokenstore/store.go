// Package tokenstore keeps people's OAuth sessions (access, ID and refresh tokens) in Vault and
// keeps them fresh for runs that last for days.
//
// A Store writes one Vault KV v2 secret per session at <mount>/data/<prefix>/<id>; every write
// is check-and-set on the version read, so concurrent writers never overwrite each other. A
// Refresher refreshes a session's tokens only when needed, once per rotation even across
// processes, and persists a rotated refresh token before anything uses it. Tokens are written
// nowhere but Vault: Session redacts them in logs, errors and JSON.
//
// The Vault client's own token is kept alive by package tokenstore/vaultauth.
package tokenstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// StoreOptions configures a Store.
type StoreOptions struct {
	// Client is the Vault client (required). Its token is kept valid elsewhere (vaultauth);
	// the Store only reads it per request.
	Client *vault.Client
	// Mount is the path of the KV v2 mount (required), e.g. "oidcflow". The mount should
	// have cas_required set; the Store sends a cas on every write either way.
	Mount string
	// Prefix is the folder of the session secrets inside the mount. Default "sessions".
	Prefix string
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
}

// Store reads and writes sessions in Vault KV v2. It is safe for concurrent use.
type Store struct {
	client *vault.Client
	kv     *vault.KVv2
	mount  string
	prefix string
	now    func() time.Time
}

// NewStore returns a Store for opts.
func NewStore(opts StoreOptions) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("tokenstore: StoreOptions.Client is required")
	}
	mount := strings.Trim(opts.Mount, "/")
	if mount == "" {
		return nil, errors.New("tokenstore: StoreOptions.Mount is required")
	}
	prefix := strings.Trim(opts.Prefix, "/")
	if prefix == "" {
		prefix = "sessions"
	}
	now := opts.Clock
	if now == nil {
		now = time.Now
	}
	return &Store{client: opts.Client, kv: opts.Client.KVv2(mount), mount: mount, prefix: prefix, now: now}, nil
}

func (st *Store) path(id string) string { return st.prefix + "/" + id }

// Create writes a new session with check-and-set 0 (only if absent) and returns it with its
// Version. An empty ID is replaced by NewSessionID(); Created defaults to now. It returns an
// error wrapping ErrConflict if a session with this id exists.
func (st *Store) Create(ctx context.Context, s Session) (Session, error) {
	if s.ID == "" {
		s.ID = NewSessionID()
	}
	if err := ValidateSessionID(s.ID); err != nil {
		return Session{}, err
	}
	if s.Created.IsZero() {
		s.Created = st.now()
	}
	return st.put(ctx, "create", s, 0)
}

// Update writes s with check-and-set on s.Version and returns it with the new Version. It
// returns an error wrapping ErrConflict when the stored version differs (another writer won,
// or the session was destroyed): re-read with Get and decide again.
func (st *Store) Update(ctx context.Context, s Session) (Session, error) {
	if err := ValidateSessionID(s.ID); err != nil {
		return Session{}, err
	}
	if s.Version <= 0 {
		return Session{}, fmt.Errorf("tokenstore: update session %s: no version read (use Get first): %w", s.ID, ErrConflict)
	}
	return st.put(ctx, "update", s, s.Version)
}

func (st *Store) put(ctx context.Context, op string, s Session, cas int) (Session, error) {
	data, err := toData(toRecord(s))
	if err != nil {
		return Session{}, fmt.Errorf("tokenstore: %s session %s: encode: %w", op, s.ID, err)
	}
	out, err := st.kv.Put(ctx, st.path(s.ID), data, vault.WithCheckAndSet(cas))
	if err != nil {
		return Session{}, vaultError(op, s.ID, err)
	}
	if out.VersionMetadata == nil || out.VersionMetadata.Version <= 0 {
		return Session{}, fmt.Errorf("tokenstore: %s session %s: vault answered without a version", op, s.ID)
	}
	s.Version = out.VersionMetadata.Version
	return s.clone(), nil
}

// Get reads the current version of a session. It returns an error wrapping ErrNotFound when
// there is none (or its current version was deleted), and a *FormatError (ErrUnsupportedFormat)
// when the record is in a format newer than SessionFormat: a newer worker wrote it, and this
// one neither reads nor overwrites it.
//
// A record in an older format (one without a "format" member, written by an earlier
// release) is rewritten in SessionFormat with check-and-set on the version read, and the
// rewritten session is returned. When another writer wins that race (a rotation by a worker
// of either release, a Destroy), its write stands: Get reads again and upgrades what it finds,
// so a rotated refresh token is never replaced by the one read before it, and a destroyed
// session is never written back. After upgradeAttempts lost races it returns the session in
// the older format as read; the next Get tries again.
func (st *Store) Get(ctx context.Context, id string) (Session, error) {
	if err := ValidateSessionID(id); err != nil {
		return Session{}, err
	}
	for attempt := 1; ; attempt++ {
		s, format, err := st.read(ctx, id)
		if err != nil || format == SessionFormat || attempt > upgradeAttempts {
			return s, err
		}
		up, err := st.put(ctx, "upgrade", s, s.Version)
		if err == nil {
			return up, nil
		}
		if !errors.Is(err, ErrConflict) {
			return Session{}, err
		}
	}
}

// upgradeAttempts bounds how often Get rewrites a record in an older format when other
// writers keep winning.
const upgradeAttempts = 3

// read reads the current version of a session and returns it with its record's format.
func (st *Store) read(ctx context.Context, id string) (Session, int, error) {
	sec, err := st.kv.Get(ctx, st.path(id))
	if err != nil {
		return Session{}, 0, vaultError("get", id, err)
	}
	if sec == nil || sec.Data == nil || sec.VersionMetadata == nil {
		return Session{}, 0, fmt.Errorf("tokenstore: get session %s: %w", id, ErrNotFound)
	}
	// The format first: a newer record may not even decode as this build's record.
	var f struct {
		Format int `json:"format"`
	}
	if err := fromData(sec.Data, &f); err != nil {
		return Session{}, 0, fmt.Errorf("tokenstore: get session %s: decode its format: %w", id, err)
	}
	if err := CheckFormat("session "+id, f.Format, SessionFormat); err != nil {
		return Session{}, 0, err
	}
	var r record
	if err := fromData(sec.Data, &r); err != nil {
		return Session{}, 0, fmt.Errorf("tokenstore: get session %s: decode: %w", id, err)
	}
	if r.ID != id {
		return Session{}, 0, fmt.Errorf("tokenstore: get session %s: stored record names another session", id)
	}
	if r.Format == 0 {
		r.Format = sessionFormatUnnumbered
	}
	return fromRecord(r, sec.VersionMetadata.Version), r.Format, nil
}

// Destroy deletes the session's metadata and so every version of it, for good. Destroying a
// missing session is not an error.
func (st *Store) Destroy(ctx context.Context, id string) error {
	if err := ValidateSessionID(id); err != nil {
		return err
	}
	if err := st.kv.DeleteMetadata(ctx, st.path(id)); err != nil {
		err = vaultError("destroy", id, err)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// casMismatch is the text Vault's KV v2 engine answers (HTTP 400) when a check-and-set
// version does not match; Vault has no error code for it.
const casMismatch = "check-and-set parameter did not match the current version"

// vaultError classifies an error of the Vault client for the session id. Vault's error texts
// name paths, never secret values; the request body is not part of them.
func vaultError(op, id string, err error) error {
	return classifyVaultError(op, "session "+id, err)
}

// classifyVaultError wraps an error of the Vault client as "tokenstore: <op> <what>: ...":
// ErrNotFound (404), ErrConflict (a check-and-set mismatch), a RateLimitedError (429),
// ErrUnavailable (5xx and network errors); other answers stay plain errors.
func classifyVaultError(op, what string, err error) error {
	what = op + " " + what
	if errors.Is(err, vault.ErrSecretNotFound) {
		return fmt.Errorf("tokenstore: %s: %w", what, ErrNotFound)
	}
	var re *vault.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusBadRequest && containsAny(re.Errors, casMismatch):
			return fmt.Errorf("tokenstore: %s: %w", what, ErrConflict)
		case re.StatusCode == http.StatusNotFound:
			return fmt.Errorf("tokenstore: %s: %w", what, ErrNotFound)
		case re.StatusCode == http.StatusTooManyRequests:
			return fmt.Errorf("tokenstore: %s: vault answered 429: %w", what,
				&RateLimitedError{Op: "vault " + op})
		case re.StatusCode >= 500:
			return fmt.Errorf("tokenstore: %s: vault answered %d (%s): %w", what,
				re.StatusCode, strings.Join(re.Errors, "; "), ErrUnavailable)
		default:
			return fmt.Errorf("tokenstore: %s: vault answered %d: %s", what,
				re.StatusCode, strings.Join(re.Errors, "; "))
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("tokenstore: %s: %w", what, err)
	}
	// Network errors: the message names the URL (a path, no secret).
	return fmt.Errorf("tokenstore: %s: %w: %w", what, ErrUnavailable, err)
}

func containsAny(msgs []string, sub string) bool {
	for _, m := range msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

func toData(r record) (map[string]any, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func fromData(m map[string]any, r any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, r)
}
