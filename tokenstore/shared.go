package tokenstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	"golang.org/x/oauth2"

	"github.com/oidcflow/oidcflow/identity"
)

// MinSessionIDKeySize is the shortest session-id key SharedSessions takes, in bytes.
const MinSessionIDKeySize = 32

// HolderListFormat is the format of the holder lists SharedSessions writes, in their
// "format" member. A list without one (written before formats were numbered) is format 1
// too: the same members. SharedSessions neither reads nor writes a list of a newer format
// (*FormatError).
const HolderListFormat = 1

// SessionRefresher is what SharedSessions needs of a *Refresher.
type SessionRefresher interface {
	Fresh(ctx context.Context, sessionID string) (Session, error)
	Revoke(ctx context.Context, sessionID string) error
}

// SharedSessionsOptions configure NewSharedSessions.
type SharedSessionsOptions struct {
	// Store keeps the sessions (required). The holder lists live in its Vault mount.
	Store *Store
	// Refresher refreshes and revokes the sessions (required); it must use Store. A
	// *Refresher is one; a wrapper that measures its calls is another.
	Refresher SessionRefresher
	// IDKey is the pool's session-id key, at least MinSessionIDKeySize bytes (required).
	// Every worker of a pool must use the same one, for as long as any session lives: see
	// pool.LoadSessionIDKey, which keeps it in Vault.
	IDKey []byte
	// HoldersPrefix is the folder of the holder lists inside the Store's mount. Default
	// "sessions/holders" (no session id is that short, so it never meets a session).
	HoldersPrefix string
	// OnFresh, when set, is called after each refresh check CurrentIDToken makes, with the
	// session id and the check's error (nil: the session is fresh). Metrics count refresh
	// failures with it. Default none. It must not block.
	OnFresh func(ctx context.Context, sessionID string, err error)
}

// SharedSessions is the session lifecycle of a worker pool: it keeps people's tokens between
// the steps of their runs (interceptors.SessionStore) and ends each session when no run holds
// it any more. It is safe for concurrent use, and every worker of a pool may use its own.
//
// A refresh token is one chain of rotations: if two sessions held the same one, the first
// refresh would invalidate the other's copy, and its next refresh would trip the identity
// provider's reuse detection, which ends the whole chain. So every deposit of one refresh
// token lands in one session, whose id is an HMAC-SHA256 of that token under the pool's
// session-id key (SessionID), and the runs that share it are listed as its holders: one KV v2
// secret per session at <mount>/data/<HoldersPrefix>/<id>, {"format": HolderListFormat,
// "holders": [...]}, written with check-and-set. A holder list of a newer format (a newer
// worker of the pool wrote it) is neither read nor written: whatever needs it fails with a
// *FormatError, and its session is not ended here. The last holder to leave revokes the refresh token at the identity provider
// (RFC 7009) and destroys the session. Sweep ends the sessions of runs that never left.
//
// Not done: a holder is not checked against Temporal when it is added (the caller, the worker
// interceptor, adds only the run it is executing); holder lists are not encrypted (they hold
// workflow ids, no secret).
//
// The Vault policy needs create, read, update on <mount>/data/<HoldersPrefix>/*, delete on
// <mount>/metadata/<HoldersPrefix>/* and list on <mount>/metadata/<HoldersPrefix>, plus what
// the Store and Refresher need.
type SharedSessions struct {
	store     *Store
	refresher SessionRefresher
	idKey     []byte
	prefix    string
	onFresh   func(context.Context, string, error)
}

// rememberer is a SessionRefresher that keeps a session as it was created (FreshCache), so
// that the first check of a new session needs no Vault read.
type rememberer interface {
	Remember(create func() (Session, error)) (Session, error)
}

// NewSharedSessions returns the SharedSessions of opts.
func NewSharedSessions(opts SharedSessionsOptions) (*SharedSessions, error) {
	if opts.Store == nil || opts.Refresher == nil {
		return nil, errors.New("tokenstore: SharedSessionsOptions needs Store and Refresher")
	}
	if len(opts.IDKey) < MinSessionIDKeySize {
		return nil, fmt.Errorf("tokenstore: SharedSessionsOptions.IDKey must be at least %d bytes", MinSessionIDKeySize)
	}
	prefix := strings.Trim(opts.HoldersPrefix, "/")
	if prefix == "" {
		prefix = opts.Store.prefix + "/holders"
	}
	for _, seg := range strings.Split(prefix, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return nil, fmt.Errorf("tokenstore: SharedSessionsOptions.HoldersPrefix %q is not a clean path", opts.HoldersPrefix)
		}
	}
	return &SharedSessions{store: opts.Store, refresher: opts.Refresher, idKey: slices.Clone(opts.IDKey),
		prefix: prefix, onFresh: opts.OnFresh}, nil
}

// SessionID returns the id of the session that holds refreshToken: its HMAC-SHA256 under the
// pool's session-id key, base64url without padding; a new random id when refreshToken is ""
// (no token to share).
func (s *SharedSessions) SessionID(refreshToken string) string {
	if refreshToken == "" {
		return NewSessionID()
	}
	m := hmac.New(sha256.New, s.idKey)
	m.Write([]byte(refreshToken))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Deposit stores tok, the tokens of id (verified), for holder (a run chain, "<workflow
// id>/chain/<first run id>"; an update, "<workflow id>/update/<update id>"; or, as earlier
// releases held, a workflow id) and returns the session id. A deposit of a refresh
// token already deposited joins its session, which may hold rotated tokens by now; one for
// another subject or issuer is refused with an error wrapping identity.ErrUnauthenticated. A
// failed deposit leaves no hold behind.
func (s *SharedSessions) Deposit(ctx context.Context, id *identity.Identity, tok *oauth2.Token, holder string) (sessionID string, err error) {
	idToken, _ := tok.Extra("id_token").(string)
	sid := s.SessionID(tok.RefreshToken)
	added, err := s.hold(ctx, sid, holder, true)
	if err != nil {
		return "", err
	}
	defer func() {
		// A failed deposit's run fails without ending the session, so a stale holder would
		// keep the session (maybe another person's) from ever being revoked.
		if err != nil && added {
			if _, herr := s.hold(ctx, sid, holder, false); herr != nil {
				err = errors.Join(err, herr)
			}
		}
	}()
	create := func() (Session, error) {
		return s.store.Create(ctx, Session{
			ID:       sid,
			Subject:  id.Subject,
			Issuer:   id.Issuer,
			Audience: id.Audience,
			ClientID: id.ClientID,
			// The refresh check (OIDC Core 12.2) compares the refreshed azp with the original.
			AuthorizedParty: id.ClientID,
			AccessToken:     tok.AccessToken,
			IDToken:         idToken,
			RefreshToken:    tok.RefreshToken,
			TokenType:       "Bearer",
			Expiry:          tok.Expiry,
			IDTokenExpiry:   id.Expiry, // the verified exp: the refresh is due before it
		})
	}
	if r, ok := s.refresher.(rememberer); ok {
		_, err = r.Remember(create)
	} else {
		_, err = create()
	}
	if errors.Is(err, ErrConflict) {
		existing, err := s.store.Get(ctx, sid)
		if err != nil {
			return "", err
		}
		if existing.Subject != id.Subject || existing.Issuer != id.Issuer {
			return "", fmt.Errorf("tokenstore: refresh token already deposited for another subject: %w", identity.ErrUnauthenticated)
		}
		return sid, nil
	}
	if err != nil {
		return "", err
	}
	return sid, nil
}

// CurrentIDToken returns the session's ID token, refreshed (Refresher.Fresh) when it or the
// access token is due. When the identity provider's last refresh returned no ID token, the
// session keeps the one before (Session.IDTokenKept), whose person the Refresher re-checked
// through userinfo with the new access token: it is vouched for until that access token's
// expiry, which keptUntil reports; else keptUntil is zero.
func (s *SharedSessions) CurrentIDToken(ctx context.Context, sessionID string) (raw string, keptUntil time.Time, err error) {
	sess, err := s.refresher.Fresh(ctx, sessionID)
	if s.onFresh != nil {
		s.onFresh(ctx, sessionID, err)
	}
	if err != nil {
		return "", time.Time{}, err
	}
	if sess.IDTokenKept {
		keptUntil = sess.Expiry
	}
	return sess.IDToken, keptUntil, nil
}

// End releases holder's hold on the session; when no holder is left, it revokes the refresh
// token at the identity provider and destroys the session and its holder list. Ending a hold
// that is not there is not an error (a retry). A run chain's holder that is not there
// releases its workflow id's hold instead: a run an earlier release of the pool started held
// so. (A retry of an End that released the chain's hold and then failed does that too: while
// runs of an earlier release still run, it may release one of theirs under the same workflow
// id, whose session the sweeper then ends with the run.) A holder list of a newer format
// fails it with a *FormatError before anything is written or revoked.
func (s *SharedSessions) End(ctx context.Context, sessionID, holder string) error {
	if err := ValidateSessionID(sessionID); err != nil {
		return err
	}
	released, err := s.hold(ctx, sessionID, holder, false)
	if err != nil {
		return err
	}
	if chain := chainOf(holder); chain != "" && !released {
		// A run that an earlier release of the pool started held as its workflow id.
		if _, err := s.hold(ctx, sessionID, strings.TrimSuffix(holder, chain), false); err != nil {
			return err
		}
	}
	left, err := s.holders(ctx, sessionID)
	if err != nil || len(left.list) > 0 {
		return err
	}
	if err := s.refresher.Revoke(ctx, sessionID); err != nil {
		return err
	}
	if err := s.store.kv.DeleteMetadata(ctx, s.path(sessionID)); err != nil {
		if err = classifyVaultError("delete", "holders of session "+sessionID, err); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// Holders returns the holders of the session, in the order they joined; a *FormatError when
// its holder list is of a newer format.
func (s *SharedSessions) Holders(ctx context.Context, sessionID string) ([]string, error) {
	if err := ValidateSessionID(sessionID); err != nil {
		return nil, err
	}
	h, err := s.holders(ctx, sessionID)
	return h.list, err
}

func (s *SharedSessions) path(sid string) string { return s.prefix + "/" + sid }

type holderList struct {
	list    []string
	version int
}

func (s *SharedSessions) holders(ctx context.Context, sid string) (holderList, error) {
	sec, err := s.store.kv.Get(ctx, s.path(sid))
	if errors.Is(err, vault.ErrSecretNotFound) {
		return holderList{}, nil
	}
	if err != nil {
		return holderList{}, classifyVaultError("read", "holders of session "+sid, err)
	}
	// A list of a newer format may name its holders otherwise: read as this build's, its
	// holders would look gone, and the session would be revoked under them.
	if err := CheckStoredFormat("holder list of session "+sid, sec.Data["format"], HolderListFormat); err != nil {
		return holderList{}, err
	}
	var h holderList
	if raw, ok := sec.Data["holders"].([]any); ok {
		for _, r := range raw {
			if v, ok := r.(string); ok {
				h.list = append(h.list, v)
			}
		}
	}
	if sec.VersionMetadata != nil {
		h.version = sec.VersionMetadata.Version
	}
	return h, nil
}

// hold adds (or removes) holder in the session's holder list, with check-and-set retries.
// changed is false when the list already was as asked.
func (s *SharedSessions) hold(ctx context.Context, sid, holder string, add bool) (changed bool, err error) {
	for range 10 {
		h, err := s.holders(ctx, sid)
		if err != nil {
			return false, err
		}
		has := slices.Contains(h.list, holder)
		switch {
		case add && has, !add && !has:
			return false, nil
		case add:
			h.list = append(h.list, holder)
		default:
			h.list = slices.DeleteFunc(h.list, func(v string) bool { return v == holder })
		}
		_, err = s.store.kv.Put(ctx, s.path(sid), map[string]any{"format": HolderListFormat, "holders": h.list}, vault.WithCheckAndSet(h.version))
		if err == nil {
			return true, nil
		}
		if err = classifyVaultError("write", "holders of session "+sid, err); !errors.Is(err, ErrConflict) {
			return false, err
		}
	}
	return false, fmt.Errorf("tokenstore: holders of session %s keep changing; retry: %w", sid, ErrConflict)
}

// WorkflowStates tells whether Temporal knows a workflow and none of its runs is running;
// activities.TemporalRuns is one.
type WorkflowStates interface {
	// Closed reports whether Temporal knows the workflow and none of its runs is running.
	// With firstRunID, only the runs of that chain count: the chain is closed too when the
	// workflow's latest run belongs to another chain.
	Closed(ctx context.Context, workflowID, firstRunID string) (bool, error)
}

// Sweep releases the holds of workflows that are closed and ends every session left without
// a holder: revocation at the IdP and the Vault secret destroyed, as the last End would have
// done. Terminated and reset runs never call End; this is how their sessions go. It returns
// how many sessions it ended. A hold is a run chain of a workflow, an update of one, or a
// workflow id (see Deposit): each goes once the workflow is closed. A hold of a workflow
// Temporal does not know is left alone, and so is a holder list that is empty (a deposit in
// flight).
//
// A session whose holder list or record is of a newer format (a newer worker of the pool
// wrote it) is skipped: not revoked, nothing written. The sweep goes on with the other
// sessions and then returns the count with an error wrapping the first *FormatError and
// saying how many were skipped, so that the sweep fails visibly and is retried (on a newer
// worker, when the pool has one) instead of those sessions being left silently. On any other
// error it stops at once; the next Sweep continues.
func (s *SharedSessions) Sweep(ctx context.Context, runs WorkflowStates) (int, error) {
	keys, err := listFolder(ctx, s.store.client, s.store.mount, s.prefix, "session holders")
	if err != nil {
		return 0, err
	}
	ended, skipped := 0, 0
	var first error
	skip := func(err error) bool {
		if !errors.Is(err, ErrUnsupportedFormat) {
			return false
		}
		if skipped++; first == nil {
			first = err
		}
		return true
	}
sessions:
	for _, sid := range keys {
		if strings.HasSuffix(sid, "/") || ValidateSessionID(sid) != nil {
			continue
		}
		h, err := s.holders(ctx, sid)
		if skip(err) {
			continue
		}
		if err != nil {
			return ended, err
		}
		gone := 0
		for _, holder := range h.list {
			workflowID, chain := holderChain(holder)
			closed, err := runs.Closed(ctx, workflowID, chain)
			if err != nil {
				return ended, err
			}
			if closed {
				err := s.End(ctx, sid, holder)
				if skip(err) {
					continue sessions
				}
				if err != nil {
					return ended, err
				}
				gone++
			}
		}
		if gone > 0 && gone == len(h.list) {
			ended++
		}
	}
	if first != nil {
		return ended, fmt.Errorf("tokenstore: sweep skipped %d session(s) stored in a newer format, left to a newer worker (the first: %w)", skipped, first)
	}
	return ended, nil
}

// chainOf returns the "/chain/<first run id>" end of a run chain's holder, else "".
func chainOf(holder string) string {
	const sep = "/chain/"
	i := strings.LastIndex(holder, sep)
	if i < 0 || !IsRunID(holder[i+len(sep):]) {
		return ""
	}
	return holder[i:]
}

// holderChain returns the workflow id of a holder and, for a run chain's, the chain's first
// run id.
func holderChain(holder string) (workflowID, firstRunID string) {
	if wf, _, ok := strings.Cut(holder, "/update/"); ok {
		return wf, ""
	}
	chain := chainOf(holder)
	return strings.TrimSuffix(holder, chain), strings.TrimPrefix(chain, "/chain/")
}

// IsRunID reports whether s has the textual form of a Temporal run id: a UUID (RFC 9562
// section 4).
func IsRunID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// listFolder returns the keys of a KV v2 folder at <mount>/metadata/<folder> (sub-folders end
// in "/"); a missing folder is empty. what names the folder in errors.
func listFolder(ctx context.Context, c *vault.Client, mount, folder, what string) ([]string, error) {
	sec, err := c.Logical().ListWithContext(ctx, mount+"/metadata/"+folder)
	if err != nil {
		err = classifyVaultError("list", what, err)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	if sec == nil || sec.Data == nil || sec.Data["keys"] == nil {
		return nil, nil
	}
	raw, ok := sec.Data["keys"].([]any)
	if !ok {
		return nil, fmt.Errorf("tokenstore: list %s: vault answered keys of type %T", what, sec.Data["keys"])
	}
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if s, ok := k.(string); ok {
			keys = append(keys, s)
		}
	}
	return keys, nil
}
