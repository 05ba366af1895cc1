// Package pgaccess names the PostgreSQL roles of just-in-time database access and prepares a
// server for it: which databases may be named, the NOLOGIN group role that carries each kind
// of access, the login role of one request, and Bootstrap, which creates the group roles and
// their privileges. package activities grants and revokes the login roles; the dev stack
// bootstraps its demo database. pgaccess imports nothing else of oidcflow.
//
// It creates no login role and no table: GrantAccess does the first, the application (or
// the dev stack, for its demo) the second.
package pgaccess

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
)

// Access is the kind of database access a request grants.
type Access string

// Access kinds; each maps to a group role made by Bootstrap (GroupRole).
const (
	AccessRead  Access = "read"
	AccessWrite Access = "write"
)

// Valid reports whether a is a known access kind.
func (a Access) Valid() bool { return a == AccessRead || a == AccessWrite }

// ErrInvalidDatabase: a database name ValidDatabase refuses.
var ErrInvalidDatabase = errors.New("pgaccess: invalid database name")

var databaseName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// ValidDatabase reports whether name is accepted as a resource (database) name: lower-case
// letters, digits and underscores, starting with a letter, at most 40 characters. The rule
// keeps derived role names within PostgreSQL's 63-byte identifier limit.
func ValidDatabase(name string) bool { return databaseName.MatchString(name) }

// GroupRole is the NOLOGIN group role that carries the privileges of access on database,
// e.g. "oidcflow_demo_read". Bootstrap creates it.
func GroupRole(database string, access Access) string {
	return "oidcflow_" + database + "_" + string(access)
}

// RoleName derives the login role of one request: "jit_<subject>_<hash>", where the subject
// part is a readable, sanitized prefix (at most 20 characters) and the hash is the first 16
// hex digits of SHA-256 over the request id. The same request always maps to the same role,
// which is what makes grant and revoke idempotent across retries and replays.
func RoleName(requestID, subject string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(subject) {
		if b.Len() >= 20 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(requestID))
	return "jit_" + b.String() + "_" + hex.EncodeToString(sum[:8])
}
