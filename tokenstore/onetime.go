package tokenstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/oidcflow/oidcflow/identity"
)

// oneTimeError is the type of ErrReplayed and the other refusals of OneTime: its message
// stands alone and it unwraps to identity.ErrUnauthenticated, so identity.ApplicationError
// makes it a non-retryable Temporal error.
type oneTimeError struct{ msg string }

func (e *oneTimeError) Error() string { return e.msg }

// Unwrap makes errors.Is(err, identity.ErrUnauthenticated) true.
func (e *oneTimeError) Unwrap() error { return identity.ErrUnauthenticated }

// ErrReplayed: OneTime.Spend found the id already recorded. The envelope or reference was
// honoured before, somewhere in the pool; it wraps identity.ErrUnauthenticated, so it is a
// non-retryable identity error.
var ErrReplayed error = &oneTimeError{"tokenstore: already used (an envelope or reference is honoured once)"}

// errNotRecordable: Spend cannot record the id or until, so it refuses rather than honour
// something it could not honour only once.
var errNotRecordable error = &oneTimeError{"tokenstore: cannot be recorded as used, so it is not honoured"}

const (
	// MaxOneTimeIDLength is the longest id OneTime records, in bytes.
	MaxOneTimeIDLength = 64

	// OneTimeFormat is the format of the one-time records OneTime writes, in their "format"
	// member. A record without one (written before formats were numbered) is format 1 too:
	// the same members. Spend refuses to judge a record of a newer format (*FormatError).
	OneTimeFormat = 1

	// bucketLayout names a bucket: the UTC hour of the records' until.
	bucketLayout = "2006010215"
)

// OneTimeOptions configure NewOneTime.
type OneTimeOptions struct {
	// Client is the Vault client (required). Its token is kept valid elsewhere (vaultauth).
	Client *vault.Client
	// Mount is the path of the KV v2 mount (required): the worker's OIDCFLOW_VAULT_KV_MOUNT.
	Mount string
	// Prefix is the folder of the records inside the mount. Default "onetime".
	Prefix string
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
}

// OneTime is a pool-wide record of ids that may be used once (envelope ids, references): the
// first Spend of an id succeeds, every later one fails with ErrReplayed, whichever pool
// member asks. It is safe for concurrent use.
//
// Layout: one Vault KV v2 secret per id at <mount>/data/<prefix>/<bucket>/<id>, where the
// bucket is the hour of the record's until in UTC, YYYYMMDDHH (for example
// onetime/2026030405/q83vEjRWeJq83vEjRWeJqw), and the data is {"format", "until", "spent_at",
// "owner"} (OneTimeFormat, two times in RFC 3339, and the owner that spent it; no secret). Spend is a create-only write (check-and-set 0), which Vault's KV v2 engine
// applies atomically per key, so exactly one of any number of concurrent Spends of an id
// succeeds. Sweep deletes the metadata of every record in the buckets whose hour has ended,
// listing those buckets only and reading no record.
//
// Assumptions the caller keeps:
//
//   - The same id always comes with the same until: the store looks in one bucket only, so an
//     id spent with an until in another hour is not seen. Derive until from the envelope alone
//     (its IssuedAt plus a pool-wide constant), never from a per-worker setting or clock.
//   - until lies beyond the last moment the id could be honoured (the envelope's issue time
//     plus the maximum age, plus the clock skew between sealers and workers): a swept id can
//     be spent again, so a record must outlive every chance of a replay being accepted.
//
// Not done: a Spend is not undone when the work it authorized fails afterwards (the id stays
// spent; the caller seals a new envelope); records are not encrypted (they hold ids and
// times); ids are not hashed (they are random and not secret).
//
// The Vault policy needs create, read and update on <mount>/data/<prefix>/* (a second Spend
// of an id is an update that check-and-set refuses, then a read of its owner) and list and
// delete on <mount>/metadata/<prefix>/*.
type OneTime struct {
	client *vault.Client
	kv     *vault.KVv2
	mount  string
	prefix string
	now    func() time.Time
}

// NewOneTime returns a OneTime for opts.
func NewOneTime(opts OneTimeOptions) (*OneTime, error) {
	if opts.Client == nil {
		return nil, errors.New("tokenstore: OneTimeOptions.Client is required")
	}
	mount := strings.Trim(opts.Mount, "/")
	if mount == "" {
		return nil, errors.New("tokenstore: OneTimeOptions.Mount is required")
	}
	prefix := strings.Trim(opts.Prefix, "/")
	if prefix == "" {
		prefix = "onetime"
	}
	for _, seg := range strings.Split(prefix, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return nil, fmt.Errorf("tokenstore: OneTimeOptions.Prefix %q is not a clean path", opts.Prefix)
		}
	}
	now := opts.Clock
	if now == nil {
		now = time.Now
	}
	return &OneTime{client: opts.Client, kv: opts.Client.KVv2(mount), mount: mount, prefix: prefix, now: now}, nil
}

// ValidOneTimeID reports whether id can be recorded: 1 to MaxOneTimeIDLength characters of
// [A-Za-z0-9_-], so that it cannot leave its bucket's path.
func ValidOneTimeID(id string) bool {
	if len(id) == 0 || len(id) > MaxOneTimeIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func bucketOf(until time.Time) string { return until.UTC().Format(bucketLayout) }

// Spend records id as used by owner until `until` (after which the record may be removed).
// It is a create-only write (KV v2 check-and-set with cas=0): exactly one owner spends an id
// across the whole pool; a later Spend by the same owner (a retry of the operation that spent
// it) succeeds again, one by any other owner returns an error wrapping ErrReplayed.
//
// It refuses, with an error wrapping identity.ErrUnauthenticated (not ErrReplayed), an id that
// ValidOneTimeID rejects and an until that is not after the clock's now or lies past the year
// 9999: such a record could not keep the id from being honoured again. Other Vault failures
// are retryable plain errors (ErrUnavailable for 5xx, 429 and network errors) and leave the id
// unspent or spent, as Vault decided: a retry then either succeeds or reports ErrReplayed.
func (o *OneTime) Spend(ctx context.Context, id, owner string, until time.Time) error {
	if !ValidOneTimeID(id) {
		return fmt.Errorf("%w (the id is not 1 to %d characters of [A-Za-z0-9_-])", errNotRecordable, MaxOneTimeIDLength)
	}
	now := o.now()
	if !until.After(now) {
		return fmt.Errorf("%w (id %s: its record would expire at once, until %s is not after %s; it is too old)",
			errNotRecordable, id, until.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if until.UTC().Year() > 9999 {
		return fmt.Errorf("%w (id %s: until lies past the year 9999)", errNotRecordable, id)
	}
	path := o.prefix + "/" + bucketOf(until) + "/" + id
	data := map[string]any{
		"format":   OneTimeFormat,
		"until":    until.UTC().Format(time.RFC3339Nano),
		"spent_at": now.UTC().Format(time.RFC3339Nano),
		"owner":    owner,
	}
	_, err := o.kv.Put(ctx, path, data, vault.WithCheckAndSet(0))
	if err == nil {
		return nil
	}
	err = classifyVaultError("spend", "one-time id "+id, err)
	if !errors.Is(err, ErrConflict) {
		return err
	}
	sec, rerr := o.kv.Get(ctx, path)
	if rerr != nil {
		return classifyVaultError("read", "one-time id "+id, rerr)
	}
	if err := checkOneTimeFormat(id, sec.Data["format"]); err != nil {
		return err // not honoured: whose record it is cannot be read
	}
	if got, _ := sec.Data["owner"].(string); got == owner && owner != "" {
		return nil
	}
	return fmt.Errorf("%w (id %s)", ErrReplayed, id)
}

// Sweep removes records whose `until` has passed (metadata delete, so the id is gone for
// good) and returns how many it removed. It lists the buckets and, for each bucket whose hour
// has ended by the clock's now, lists and deletes its records; a record whose until passed
// within the current hour waits for the next hour's Sweep. Entries under the prefix that are
// not buckets of valid ids are left alone. Several pool members may sweep at once: a record
// another one deleted first is not counted. On an error it stops and returns what it removed
// so far; the next Sweep continues.
func (o *OneTime) Sweep(ctx context.Context) (int, error) {
	now := o.now()
	buckets, err := o.list(ctx, o.prefix)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, b := range buckets {
		name, ok := strings.CutSuffix(b, "/")
		if !ok {
			continue
		}
		start, err := time.Parse(bucketLayout, name)
		if err != nil || start.Format(bucketLayout) != name || start.Add(time.Hour).After(now) {
			continue
		}
		ids, err := o.list(ctx, o.prefix+"/"+name)
		if err != nil {
			return removed, err
		}
		for _, id := range ids {
			if !ValidOneTimeID(id) {
				continue
			}
			if err := o.kv.DeleteMetadata(ctx, o.prefix+"/"+name+"/"+id); err != nil {
				err = classifyVaultError("sweep", "one-time id "+id, err)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return removed, err
			}
			removed++
		}
	}
	return removed, nil
}

// list returns the keys of a KV v2 folder (sub-folders end in "/"); a missing folder is
// empty.
func (o *OneTime) list(ctx context.Context, folder string) ([]string, error) {
	return listFolder(ctx, o.client, o.mount, folder, "one-time folder "+folder)
}

// checkOneTimeFormat returns a *FormatError unless v, the "format" member of a stored record,
// is absent or a format up to OneTimeFormat.
func checkOneTimeFormat(id string, v any) error {
	return CheckStoredFormat("one-time id "+id, v, OneTimeFormat)
}
