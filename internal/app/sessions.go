package app

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
	"github.com/oidcflow/oidcflow/telemetry"
	"github.com/oidcflow/oidcflow/tokenstore"
)

// sessions adapts the Vault token store to interceptors.SessionStore.
//
// A refresh token is one chain of rotations: if two sessions held the same one, the first
// refresh would invalidate the other's copy, and its next refresh would trip the IdP's reuse
// detection. So every deposit of one refresh token lands in one session, whose id is a MAC
// of that token under a pool secret, and the runs that share it are listed as its holders
// (a KV v2 secret next to it, written with check-and-set). The last holder to leave revokes.
type sessions struct {
	store     *tokenstore.Store
	refresher *telemetry.Refresher
	kv        *vault.KVv2
	vault     *vault.Client // lists holder lists (sweep)
	mount     string
	prefix    string // where holder lists live in the mount
	idKey     []byte // MAC key for session ids
}

// sessionIDFor returns the id of the session that holds refreshToken: its MAC under the
// pool's session-id key (see LoadSessionIDKey), or a new random id when there is no refresh
// token to share.
func (s *sessions) sessionIDFor(refreshToken string) string {
	if refreshToken == "" {
		return tokenstore.NewSessionID()
	}
	m := hmac.New(sha256.New, s.idKey)
	m.Write([]byte(refreshToken))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *sessions) Deposit(ctx context.Context, id *identity.Identity, tok *oauth2.Token, holder string) (sessionID string, err error) {
	idToken, _ := tok.Extra("id_token").(string)
	sid := s.sessionIDFor(tok.RefreshToken)
	added, err := s.hold(ctx, sid, holder, true)
	if err != nil {
		return "", err
	}
	defer func() {
		// A failed deposit leaves no hold behind: the run fails without ending the session,
		// so a stale holder would keep the session (maybe another person's) from ever being
		// revoked.
		if err != nil && added {
			if _, herr := s.hold(ctx, sid, holder, false); herr != nil {
				err = errors.Join(err, herr)
			}
		}
	}()
	_, err = s.store.Create(ctx, tokenstore.Session{
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
	if errors.Is(err, tokenstore.ErrConflict) {
		// Another run deposited this refresh token first: share its session, which may
		// already hold rotated tokens. It must be the same person's.
		existing, err := s.store.Get(ctx, sid)
		if err != nil {
			return "", err
		}
		if existing.Subject != id.Subject || existing.Issuer != id.Issuer {
			return "", fmt.Errorf("app: refresh token already deposited for another subject: %w", identity.ErrUnauthenticated)
		}
		return sid, nil
	}
	if err != nil {
		return "", err
	}
	return sid, nil
}

// CurrentIDToken returns the session's ID token, refreshed when it or the access token is
// due. When the identity provider's last refresh returned no ID token, the session keeps
// the one before (tokenstore.Session.IDTokenKept), whose person the refresher re-checked
// through userinfo with the new access token: it is vouched for until that access token's
// expiry, which keptUntil reports.
func (s *sessions) CurrentIDToken(ctx context.Context, sessionID string) (raw string, keptUntil time.Time, err error) {
	sess, err := s.refresher.Fresh(ctx, sessionID)
	if err != nil {
		return "", time.Time{}, err
	}
	if sess.IDTokenKept {
		keptUntil = sess.Expiry
	}
	return sess.IDToken, keptUntil, nil
}

func (s *sessions) End(ctx context.Context, sessionID, holder string) error {
	if _, err := s.hold(ctx, sessionID, holder, false); err != nil {
		return err
	}
	left, err := s.holders(ctx, sessionID)
	if err != nil || len(left.list) > 0 {
		return err
	}
	if err := s.refresher.Revoke(ctx, sessionID); err != nil {
		return err
	}
	return s.kv.DeleteMetadata(ctx, s.prefix+"/"+sessionID)
}

type holderList struct {
	list    []string
	version int
}

func (s *sessions) holders(ctx context.Context, sid string) (holderList, error) {
	sec, err := s.kv.Get(ctx, s.prefix+"/"+sid)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return holderList{}, nil
	}
	if err != nil {
		return holderList{}, fmt.Errorf("app: read holders of session %s: %w", sid, err)
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
func (s *sessions) hold(ctx context.Context, sid, holder string, add bool) (changed bool, err error) {
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
		_, err = s.kv.Put(ctx, s.prefix+"/"+sid, map[string]any{"holders": h.list}, vault.WithCheckAndSet(h.version))
		if err == nil {
			return true, nil
		}
		if !isCASError(err) {
			return false, fmt.Errorf("app: write holders of session %s: %w", sid, err)
		}
	}
	return false, fmt.Errorf("app: holders of session %s keep changing; retry: %w", sid, tokenstore.ErrConflict)
}

func isCASError(err error) bool {
	var re *vault.ResponseError
	return errors.As(err, &re) && slices.ContainsFunc(re.Errors, func(m string) bool {
		return strings.Contains(m, "check-and-set")
	})
}

// closedWorkflows tells whether Temporal knows a workflow and none of its runs is running;
// activities.TemporalRuns is one.
type closedWorkflows interface {
	Closed(ctx context.Context, workflowID string) (bool, error)
}

// sweep releases the holds of workflows that are closed and ends every session left without
// a holder: revocation at the IdP and the Vault secret destroyed, as the last End would have
// done. Terminated and reset runs never call End; this is how their sessions go. It returns
// how many sessions it ended. A hold is a workflow id, or an update of one
// ("<workflow id>/update/<update id>"): both go once the workflow is closed. A hold of a
// workflow Temporal does not know is left alone.
func (s *sessions) sweep(ctx context.Context, runs closedWorkflows) (int, error) {
	sec, err := s.vault.Logical().ListWithContext(ctx, s.mount+"/metadata/"+s.prefix)
	if err != nil {
		return 0, fmt.Errorf("app: list session holders: %w", err)
	}
	var ids []string
	if sec != nil {
		raw, _ := sec.Data["keys"].([]any)
		for _, k := range raw {
			if id, ok := k.(string); ok && !strings.HasSuffix(id, "/") {
				ids = append(ids, id)
			}
		}
	}
	ended := 0
	for _, sid := range ids {
		h, err := s.holders(ctx, sid)
		if err != nil {
			return ended, err
		}
		gone := 0
		for _, holder := range h.list {
			workflowID, _, _ := strings.Cut(holder, "/update/")
			closed, err := runs.Closed(ctx, workflowID)
			if err != nil {
				return ended, err
			}
			if closed {
				if err := s.End(ctx, sid, holder); err != nil {
					return ended, err
				}
				gone++
			}
		}
		if gone > 0 && gone == len(h.list) {
			ended++
		}
	}
	return ended, nil
}

// leftovers is the token store's part of the pool's sweep (activities.SessionSweeper).
type leftovers struct {
	sessions *sessions
	oneTime  *tokenstore.OneTime
	runs     closedWorkflows // set once the worker has a Temporal client
}

func (l *leftovers) SweepSessions(ctx context.Context) (int, error) {
	if l.runs == nil {
		return 0, nil
	}
	return l.sessions.sweep(ctx, l.runs)
}

func (l *leftovers) SweepOneTime(ctx context.Context) (int, error) { return l.oneTime.Sweep(ctx) }
