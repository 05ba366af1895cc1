package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
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

// ManagedComment marks the login roles this package creates (COMMENT ON ROLE). Grant and
// revoke refuse to touch a role of the same name that does not carry it.
const ManagedComment = "oidcflow: just-in-time access role"

// Application error types returned by DatabaseActivities (non-retryable).
const (
	TypeInvalidInput = "oidcflow.InvalidInput"
	TypeNotManaged   = "oidcflow.RoleNotManaged"
	TypeNotBootstrap = "oidcflow.NotBootstrapped"
)

// ErrInvalidInput reports an activity input that can never succeed.
var ErrInvalidInput = errors.New("activities: invalid input")

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

// DB is what DatabaseActivities need from PostgreSQL; *pgxpool.Pool and *pgx.Conn satisfy it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// DatabaseActivities grant and revoke just-in-time PostgreSQL access. Register a pointer.
type DatabaseActivities struct {
	// DB is an administrative connection (CREATEROLE). Required.
	DB DB
	// Logger receives one line per grant/revoke. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for Duration grants. Default time.Now.
	Now func() time.Time
}

// Grant describes a just-in-time login role.
type Grant struct {
	RoleName   string    `json:"role_name"`
	GroupRole  string    `json:"group_role,omitempty"`
	Database   string    `json:"database,omitempty"`
	Access     Access    `json:"access,omitempty"`
	ValidUntil time.Time `json:"valid_until"`
}

// GrantAccessInput is the input of GrantAccess.
type GrantAccessInput struct {
	// RequestID names the grant (RoleName); the workflow id of the request.
	RequestID string `json:"request_id"`
	// Requester is the subject the access is for. The activity's verified identity must be
	// this subject.
	Requester string `json:"requester"`
	// Department, when set, must equal the department claim of the activity's identity: the
	// claim the request was routed by must still hold at grant time.
	Department string    `json:"department,omitempty"`
	Database   string    `json:"database"`
	Access     Access    `json:"access"`
	ValidUntil time.Time `json:"valid_until,omitempty"`
	// Duration, when set, is how long the access lasts from the role's creation: VALID UNTIL
	// is set when the role is created and kept by every retry, so a grant delayed by an
	// outage still lasts its full duration. Set Duration or ValidUntil.
	Duration time.Duration `json:"duration,omitempty"`
}

// GrantAccessResult is the result of GrantAccess.
type GrantAccessResult struct {
	Grant Grant `json:"grant"`
	// Created is false when the role already existed (a retry or replay).
	Created bool `json:"created"`
}

// RevokeAccessInput is the input of RevokeAccess.
type RevokeAccessInput struct {
	RequestID string `json:"request_id"`
	Requester string `json:"requester"`
	// AdminRole lets an identity other than Requester revoke. Default "admin".
	AdminRole string `json:"admin_role,omitempty"`
}

// RevokeAccessResult is the result of RevokeAccess.
type RevokeAccessResult struct {
	RoleName string `json:"role_name"`
	// Dropped is false when there was nothing to drop (a retry, or never granted).
	Dropped bool `json:"dropped"`
}

func (a *DatabaseActivities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

func nonRetryable(typ, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), typ, nil)
}

// validUntilLiteral renders t as a PostgreSQL timestamptz literal. DDL takes no bind
// parameters; the text comes from a time.Time, so it holds digits, '-', ':', ' ' and '+' only.
func validUntilLiteral(t time.Time) string {
	return "'" + t.UTC().Format("2006-01-02 15:04:05.999999+00") + "'"
}

// lockRole serializes grant and revoke of one role across workers for the transaction.
func lockRole(ctx context.Context, tx pgx.Tx, role string) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", role)
	return err
}

// roleComment returns whether role exists and its comment.
func roleComment(ctx context.Context, tx pgx.Tx, role string) (exists bool, comment string, err error) {
	var c *string
	err = tx.QueryRow(ctx,
		"SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", role).Scan(&c)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	if c != nil {
		comment = *c
	}
	return true, comment, nil
}

// GrantAccess creates the request's login role with VALID UNTIL and makes it a member of the
// group role for the access kind. It first checks the claims of the activity's identity
// (subject = requester, department unchanged). It is idempotent: a re-run finds the role it
// made (by the ManagedComment), refreshes VALID UNTIL to the same instant and grants the
// membership only if missing, so it never double-grants.
//
// The role has no password: connecting is left to the database's own authentication (client
// certificates, a proxy, or a secrets engine); no credential ever enters workflow history.
func (a *DatabaseActivities) GrantAccess(ctx context.Context, in GrantAccessInput) (GrantAccessResult, error) {
	policy := identity.Policy(subjectIs(in.Requester))
	if in.Department != "" {
		policy = identity.All(policy, identity.SameDepartment(in.Department))
	}
	if _, err := requireClaims(ctx, policy); err != nil {
		return GrantAccessResult{}, err
	}
	if in.RequestID == "" || in.Requester == "" || !ValidDatabase(in.Database) || !in.Access.Valid() ||
		in.ValidUntil.IsZero() == (in.Duration <= 0) {
		return GrantAccessResult{}, nonRetryable(TypeInvalidInput,
			"%v: grant needs request id, requester, database, access read|write, and valid until or a duration", ErrInvalidInput)
	}
	if in.Duration > 0 {
		now := time.Now
		if a.Now != nil {
			now = a.Now
		}
		in.ValidUntil = now().Add(in.Duration) // for a new role; an existing one keeps its own
	}
	g := Grant{
		RoleName:   RoleName(in.RequestID, in.Requester),
		GroupRole:  GroupRole(in.Database, in.Access),
		Database:   in.Database,
		Access:     in.Access,
		ValidUntil: in.ValidUntil.UTC().Truncate(time.Microsecond),
	}
	role := pgx.Identifier{g.RoleName}.Sanitize()
	group := pgx.Identifier{g.GroupRole}.Sanitize()

	var created bool
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		if err := lockRole(ctx, tx, g.RoleName); err != nil {
			return err
		}
		if ok, _, err := roleComment(ctx, tx, g.GroupRole); err != nil {
			return err
		} else if !ok {
			return nonRetryable(TypeNotBootstrap,
				"activities: group role %s does not exist; run the database bootstrap for %s", g.GroupRole, g.Database)
		}
		exists, comment, err := roleComment(ctx, tx, g.RoleName)
		if err != nil {
			return err
		}
		switch {
		case !exists:
			if _, err := tx.Exec(ctx, "CREATE ROLE "+role+
				" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT VALID UNTIL "+validUntilLiteral(g.ValidUntil)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "COMMENT ON ROLE "+role+" IS '"+ManagedComment+"'"); err != nil {
				return err
			}
			created = true
		case comment != ManagedComment:
			return nonRetryable(TypeNotManaged, "activities: role %s exists and is not managed by oidcflow", g.RoleName)
		case in.Duration > 0: // a retry: the access lasts from the role's creation
			if err := tx.QueryRow(ctx, "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", g.RoleName).Scan(&g.ValidUntil); err != nil {
				return err
			}
			g.ValidUntil = g.ValidUntil.UTC()
		default:
			if _, err := tx.Exec(ctx, "ALTER ROLE "+role+" VALID UNTIL "+validUntilLiteral(g.ValidUntil)); err != nil {
				return err
			}
		}
		var member bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_auth_members m
			JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
			WHERE r.rolname = $1 AND u.rolname = $2)`, g.GroupRole, g.RoleName).Scan(&member); err != nil {
			return err
		}
		if !member {
			if _, err := tx.Exec(ctx, "GRANT "+group+" TO "+role); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return GrantAccessResult{}, fmt.Errorf("activities: grant %s: %w", g.RoleName, err)
	}
	a.logger().InfoContext(ctx, "access granted", "role", g.RoleName, "group", g.GroupRole,
		"requester", in.Requester, "valid_until", g.ValidUntil, "created", created)
	return GrantAccessResult{Grant: g, Created: created}, nil
}

// RevokeAccess removes the request's login role: NOLOGIN first, then it ends the role's open
// sessions, reassigns and drops what it owns in the connected database, and drops the role.
// It first checks the claims of the activity's identity (the requester, or an identity with
// AdminRole). It is idempotent: a role that is already gone is success (Dropped false).
//
// REASSIGN/DROP OWNED act on the connected database only; the group roles grant no CREATE,
// so a just-in-time role owns nothing elsewhere unless someone granted more by hand, in which
// case DROP ROLE fails and the activity retries until an operator intervenes.
func (a *DatabaseActivities) RevokeAccess(ctx context.Context, in RevokeAccessInput) (RevokeAccessResult, error) {
	adminRole := in.AdminRole
	if adminRole == "" {
		adminRole = "admin"
	}
	if _, err := requireClaims(ctx, identity.Any(subjectIs(in.Requester), identity.HasRole(adminRole))); err != nil {
		return RevokeAccessResult{}, err
	}
	if in.RequestID == "" || in.Requester == "" {
		return RevokeAccessResult{}, nonRetryable(TypeInvalidInput, "%v: revoke needs request id and requester", ErrInvalidInput)
	}
	name := RoleName(in.RequestID, in.Requester)
	dropped, err := a.dropRole(ctx, name)
	if err != nil {
		return RevokeAccessResult{}, fmt.Errorf("activities: revoke %s: %w", name, err)
	}
	a.logger().InfoContext(ctx, "access revoked", "role", name, "requester", in.Requester, "dropped", dropped)
	return RevokeAccessResult{RoleName: name, Dropped: dropped}, nil
}

func (a *DatabaseActivities) dropRole(ctx context.Context, name string) (bool, error) {
	role := pgx.Identifier{name}.Sanitize()
	var dropped bool
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		if err := lockRole(ctx, tx, name); err != nil {
			return err
		}
		exists, comment, err := roleComment(ctx, tx, name)
		if err != nil || !exists {
			return err
		}
		if comment != ManagedComment {
			return nonRetryable(TypeNotManaged, "activities: role %s exists and is not managed by oidcflow", name)
		}
		for _, stmt := range []string{
			"ALTER ROLE " + role + " NOLOGIN",
			"REASSIGN OWNED BY " + role + " TO CURRENT_USER",
			"DROP OWNED BY " + role,
			"DROP ROLE IF EXISTS " + role,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		dropped = true
		return nil
	})
	if err != nil || !dropped {
		return dropped, err
	}
	// Sessions opened before NOLOGIN keep running; end them. Not transactional, so after commit.
	if tx, err := a.DB.Begin(ctx); err == nil {
		_, _ = tx.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name)
		_ = tx.Commit(ctx)
	}
	return true, nil
}

// ListGrantsInput is the input of ListGrants.
type ListGrantsInput struct {
	// AdminRole is required of the activity's identity. Default "admin".
	AdminRole string `json:"admin_role,omitempty"`
}

// ListGrantsResult is the result of ListGrants.
type ListGrantsResult struct {
	Grants []Grant `json:"grants"`
}

func requireAdmin(ctx context.Context, adminRole string) error {
	if adminRole == "" {
		adminRole = "admin"
	}
	_, err := requireClaims(ctx, identity.HasRole(adminRole))
	return err
}

// ListGrants lists the login roles this package manages (admin only).
func (a *DatabaseActivities) ListGrants(ctx context.Context, in ListGrantsInput) (ListGrantsResult, error) {
	if err := requireAdmin(ctx, in.AdminRole); err != nil {
		return ListGrantsResult{}, err
	}
	grants, err := a.listGrants(ctx)
	if err != nil {
		return ListGrantsResult{}, fmt.Errorf("activities: list grants: %w", err)
	}
	return ListGrantsResult{Grants: grants}, nil
}

func (a *DatabaseActivities) listGrants(ctx context.Context) ([]Grant, error) {
	var grants []Grant
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT u.rolname, u.rolvaliduntil,
			COALESCE((SELECT min(r.rolname) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
			          WHERE m.member = u.oid), '')
			FROM pg_roles u WHERE shobj_description(u.oid, 'pg_authid') = $1 ORDER BY u.rolname`, ManagedComment)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g Grant
			var until *time.Time
			if err := rows.Scan(&g.RoleName, &until, &g.GroupRole); err != nil {
				return err
			}
			if until != nil {
				g.ValidUntil = until.UTC()
			}
			if rest, ok := strings.CutPrefix(g.GroupRole, "oidcflow_"); ok {
				for _, acc := range []Access{AccessRead, AccessWrite} {
					if db, ok := strings.CutSuffix(rest, "_"+string(acc)); ok {
						g.Database, g.Access = db, acc
					}
				}
			}
			grants = append(grants, g)
		}
		return rows.Err()
	})
	return grants, err
}

// SweepExpiredInput is the input of SweepExpired.
type SweepExpiredInput struct {
	// AdminRole is required of the activity's identity. Default "admin".
	AdminRole string `json:"admin_role,omitempty"`
	// Now is the instant roles must have expired by (the workflow's clock). Required.
	Now time.Time `json:"now"`
}

// SweepExpiredResult is the result of SweepExpired.
type SweepExpiredResult struct {
	Dropped []string `json:"dropped,omitempty"`
}

// SweepExpired drops managed login roles whose VALID UNTIL lies before in.Now (admin only):
// the safety net for grants whose workflow never reached its revoke. Roles without VALID
// UNTIL are left alone.
func (a *DatabaseActivities) SweepExpired(ctx context.Context, in SweepExpiredInput) (SweepExpiredResult, error) {
	if err := requireAdmin(ctx, in.AdminRole); err != nil {
		return SweepExpiredResult{}, err
	}
	grants, err := a.listGrants(ctx)
	if err != nil {
		return SweepExpiredResult{}, fmt.Errorf("activities: sweep: %w", err)
	}
	var res SweepExpiredResult
	for _, g := range grants {
		if g.ValidUntil.IsZero() || !g.ValidUntil.Before(in.Now) {
			continue
		}
		dropped, err := a.dropRole(ctx, g.RoleName)
		if err != nil {
			return res, fmt.Errorf("activities: sweep %s: %w", g.RoleName, err)
		}
		if dropped {
			res.Dropped = append(res.Dropped, g.RoleName)
		}
	}
	slices.Sort(res.Dropped)
	return res, nil
}
