package activities

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/pgaccess"
)

// ManagedComment marks the login roles this package creates (COMMENT ON ROLE). Grant and
// revoke refuse to touch a role of the same name that does not carry it. A role granted by a
// workflow run carries ManagedComment followed by " for workflow <id> run <run id>" (both
// query-escaped, see ownerComment), which is how the sweep maps a role to the run that must
// revoke it; a role with the plain ManagedComment (granted before runs were recorded, or
// outside an activity) is swept by its VALID UNTIL only.
const ManagedComment = "oidcflow: just-in-time access role"

// DB is what DatabaseActivities need from PostgreSQL; *pgxpool.Pool and *pgx.Conn satisfy it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// DatabaseActivities grant, revoke and sweep just-in-time PostgreSQL access. Register a
// pointer.
type DatabaseActivities struct {
	// DB is an administrative connection: CREATEROLE, and pg_signal_backend (or superuser)
	// to end the sessions of revoked roles. Required.
	DB DB
	// AdminRole is the role ListGrants and SweepExpired require of the person they run for.
	// It comes from the worker's configuration, never from an activity's input. Default
	// "admin".
	AdminRole string
	// Runs tells the sweep whether the workflow run that granted a role is still running;
	// roles whose run has ended (completed, failed, terminated, timed out, reset away) are
	// dropped. Default nil: the sweep drops roles by VALID UNTIL only.
	Runs Runs
	// Logger receives one line per grant/revoke/drop. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for Duration grants and for the sweep's expiry. Default time.Now.
	Now func() time.Time
}

// Grant describes a just-in-time login role.
type Grant struct {
	RoleName   string          `json:"role_name"`
	GroupRole  string          `json:"group_role,omitempty"`
	Database   string          `json:"database,omitempty"`
	Access     pgaccess.Access `json:"access,omitempty"`
	ValidUntil time.Time       `json:"valid_until"`
	// WorkflowID and RunID name the workflow run that granted the role and must revoke it;
	// empty for roles granted outside an activity or by an older version.
	WorkflowID string `json:"workflow_id,omitempty"`
	RunID      string `json:"run_id,omitempty"`
}

// GrantAccessInput is the input of GrantAccess.
type GrantAccessInput struct {
	// RequestID names the grant (pgaccess.RoleName); the workflow id of the request.
	RequestID string `json:"request_id"`
	// Requester is the subject the access is for. The activity's verified identity must be
	// this subject.
	Requester string `json:"requester"`
	// Department, when set, must equal the department claim of the activity's identity: the
	// claim the request was routed by must still hold at grant time.
	Department string          `json:"department,omitempty"`
	Database   string          `json:"database"`
	Access     pgaccess.Access `json:"access"`
	ValidUntil time.Time       `json:"valid_until,omitempty"`
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

// RevokeAccessInput is the input of RevokeAccess. Who may revoke early is decided by the
// workflow before it schedules the revoke; the activity runs under the pool's authority.
type RevokeAccessInput struct {
	RequestID string `json:"request_id"`
	Requester string `json:"requester"`
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

func (a *DatabaseActivities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *DatabaseActivities) adminRole() string {
	if a.AdminRole != "" {
		return a.AdminRole
	}
	return "admin"
}

// dbError is what an activity reports for a failed database step: this package's
// ApplicationErrors as they are (unwrapped, so Temporal keeps their type and retry flag), and
// anything else as a retryable TypeDatabase error that names the step and the kind of
// failure only. The full error, which may name the server's address, goes to the log.
func (a *DatabaseActivities) dbError(ctx context.Context, step string, err error) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app
	}
	a.logger().WarnContext(ctx, "database step failed", "step", step, "error", err.Error())
	return temporal.NewApplicationError("activities: "+step+": "+failureKind(err), TypeDatabase)
}

// failureKind names the kind of a database failure without its details.
func failureKind(err error) string {
	var connErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return "the database did not answer in time"
	case errors.As(err, &connErr):
		return "cannot connect to the database"
	case errors.As(err, &pgErr):
		return "the database refused a statement (SQLSTATE " + pgErr.Code + ")"
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection to the database failed"
	}
	return "the database step failed"
}

// ownerComment is the comment of a role granted by workflow run (workflowID, runID). Both
// are query-escaped, so the comment holds no quote or backslash and is a safe SQL literal
// (DDL takes no bind parameters), and no space, so it parses back unambiguously.
func ownerComment(workflowID, runID string) string {
	return ManagedComment + " for workflow " + url.QueryEscape(workflowID) + " run " + url.QueryEscape(runID)
}

// parseComment reports whether comment marks a role this package manages and, when it names
// one, the workflow run that granted it.
func parseComment(comment string) (managed bool, workflowID, runID string) {
	rest, ok := strings.CutPrefix(comment, ManagedComment)
	switch {
	case !ok:
		return false, "", ""
	case rest == "":
		return true, "", ""
	case !strings.HasPrefix(rest, " for workflow "):
		return false, "", ""
	}
	f := strings.Split(strings.TrimPrefix(rest, " "), " ")
	if len(f) != 5 || f[0] != "for" || f[1] != "workflow" || f[3] != "run" {
		return true, "", "" // ours, but the run cannot be read: VALID UNTIL only
	}
	wf, err1 := url.QueryUnescape(f[2])
	run, err2 := url.QueryUnescape(f[4])
	if err1 != nil || err2 != nil || wf == "" {
		return true, "", ""
	}
	return true, wf, run
}

// commentLiteral quotes a comment made by this package as a SQL string literal; it refuses
// (panics on) text that ownerComment cannot produce.
func commentLiteral(c string) string {
	if strings.ContainsAny(c, "'\\\x00") {
		panic("activities: comment with a quote or backslash")
	}
	return "'" + c + "'"
}

// runOf returns the workflow run that scheduled the activity, or empty strings outside an
// activity (a direct call), where no run can be recorded.
func runOf(ctx context.Context) (workflowID, runID string) {
	if !activity.IsActivity(ctx) {
		return "", ""
	}
	e := activity.GetInfo(ctx).WorkflowExecution
	return e.ID, e.RunID
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
// (subject = requester, department unchanged). It records the workflow run that scheduled it
// in the role's comment (ownerComment): the sweep drops the role once that run is no longer
// running. It is idempotent: a re-run finds the role it made (by the ManagedComment), keeps
// VALID UNTIL (Duration) or sets it to the same instant (ValidUntil), records the current
// run when another run of the same request took the grant over (a reset), makes sure the
// role can log in (a drop may have begun, see dropRole), and grants the membership only if
// missing, so it never double-grants.
//
// The role has no password: connecting is left to the database's own authentication (client
// certificates, a proxy, or a secrets engine); no credential ever enters workflow history.
// VALID UNTIL only expires a password, so it does not end such access by itself: the
// workflow's revoke and the sweep do.
func (a *DatabaseActivities) GrantAccess(ctx context.Context, in GrantAccessInput) (GrantAccessResult, error) {
	policy := identity.Policy(subjectIs(in.Requester))
	if in.Department != "" {
		policy = identity.All(policy, identity.SameDepartment(in.Department))
	}
	if _, err := requireClaims(ctx, policy); err != nil {
		return GrantAccessResult{}, err
	}
	if in.RequestID == "" || in.Requester == "" || !pgaccess.ValidDatabase(in.Database) || !in.Access.Valid() ||
		in.ValidUntil.IsZero() == (in.Duration <= 0) {
		return GrantAccessResult{}, nonRetryable(TypeInvalidInput,
			"%v: grant needs request id, requester, database, access read|write, and valid until or a duration", ErrInvalidInput)
	}
	if in.Duration > 0 {
		in.ValidUntil = a.now().Add(in.Duration) // for a new role; an existing one keeps its own
	}
	g := Grant{
		RoleName:   pgaccess.RoleName(in.RequestID, in.Requester),
		GroupRole:  pgaccess.GroupRole(in.Database, in.Access),
		Database:   in.Database,
		Access:     in.Access,
		ValidUntil: in.ValidUntil.UTC().Truncate(time.Microsecond),
	}
	g.WorkflowID, g.RunID = runOf(ctx)
	comment := ManagedComment
	if g.WorkflowID != "" {
		comment = ownerComment(g.WorkflowID, g.RunID)
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
		exists, current, err := roleComment(ctx, tx, g.RoleName)
		if err != nil {
			return err
		}
		if managed, _, _ := parseComment(current); exists && !managed {
			return nonRetryable(TypeNotManaged, "activities: role %s exists and is not managed by oidcflow", g.RoleName)
		}
		switch {
		case !exists:
			if _, err := tx.Exec(ctx, "CREATE ROLE "+role+
				" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT VALID UNTIL "+validUntilLiteral(g.ValidUntil)); err != nil {
				return err
			}
			created = true
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
		if !exists || (current != comment && g.WorkflowID != "") {
			if _, err := tx.Exec(ctx, "COMMENT ON ROLE "+role+" IS "+commentLiteral(comment)); err != nil {
				return err
			}
		}
		if exists { // a drop may have begun (dropRole's NOLOGIN) and then found the grant taken over
			if _, err := tx.Exec(ctx, "ALTER ROLE "+role+" LOGIN"); err != nil {
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
		return GrantAccessResult{}, a.dbError(ctx, "grant "+g.RoleName, err)
	}
	a.logger().InfoContext(ctx, "access granted", "role", g.RoleName, "group", g.GroupRole,
		"requester", in.Requester, "valid_until", g.ValidUntil, "created", created, "workflow_id", g.WorkflowID)
	return GrantAccessResult{Grant: g, Created: created}, nil
}

// RevokeAccess removes the request's login role (see dropRole: NOLOGIN, its sessions ended,
// what it owns in the connected database reassigned and dropped, the role dropped). It runs
// only under the worker pool's own authority (identity.RequirePool), never on the
// requester's session: a requester who kills their own refresh chain at the IdP cannot stop
// it. Who may revoke early is decided by the workflow before it schedules the revoke; the
// activity drops only the role of the run that scheduled it. It is idempotent: a role that
// is already gone is success (Dropped false).
//
// REASSIGN/DROP OWNED act on the connected database only; the group roles grant no CREATE,
// so a just-in-time role owns nothing elsewhere unless someone granted more by hand, in which
// case DROP ROLE fails and the activity retries until an operator intervenes.
func (a *DatabaseActivities) RevokeAccess(ctx context.Context, in RevokeAccessInput) (RevokeAccessResult, error) {
	if err := identity.RequirePool(ctx); err != nil {
		return RevokeAccessResult{}, identity.ApplicationError(err)
	}
	if in.RequestID == "" || in.Requester == "" {
		return RevokeAccessResult{}, nonRetryable(TypeInvalidInput, "%v: revoke needs request id and requester", ErrInvalidInput)
	}
	if wf, _ := runOf(ctx); wf != "" && wf != in.RequestID {
		return RevokeAccessResult{}, nonRetryable(TypeInvalidInput,
			"%v: workflow %s may revoke only its own request's grant", ErrInvalidInput, wf)
	}
	name := pgaccess.RoleName(in.RequestID, in.Requester)
	dropped, backends, err := a.dropRole(ctx, name, nil)
	if err != nil {
		return RevokeAccessResult{}, a.dbError(ctx, "revoke "+name, err)
	}
	a.logger().InfoContext(ctx, "access revoked", "role", name, "requester", in.Requester,
		"dropped", dropped, "backends_ended", backends)
	return RevokeAccessResult{RoleName: name, Dropped: dropped}, nil
}

// managedRole is a login role this package manages, as the database shows it now.
type managedRole struct {
	Grant
	oid     uint32
	comment string
	expired bool // VALID UNTIL lies at or before the instant asked about
}

// readRole reads one role under the caller's lock; exists is false when there is none.
func readRole(ctx context.Context, tx pgx.Tx, name string, now time.Time) (r managedRole, exists bool, err error) {
	var c *string
	err = tx.QueryRow(ctx, `SELECT oid, shobj_description(oid, 'pg_authid'), COALESCE(rolvaliduntil <= $2, false)
		FROM pg_roles WHERE rolname = $1`, name, now).Scan(&r.oid, &c, &r.expired)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	r.RoleName = name
	if c != nil {
		r.comment = *c
	}
	return r, true, nil
}

// endSessions ends the sessions (backends) of the role with oid and counts them. It finds
// them by oid, not name: pg_stat_activity shows no name for a role dropped under them.
func (a *DatabaseActivities) endSessions(ctx context.Context, oid uint32) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) AS ended
			FROM pg_stat_activity WHERE usesysid = $1 AND pid <> pg_backend_pid()) s WHERE ended`, oid).Scan(&n)
	})
	return n, err
}

// dropRole drops the managed role name, if it exists and still(role) holds (nil: always),
// and ends its sessions, in three steps, each under the role's lock where it touches the
// role:
//
//  1. NOLOGIN, committed: no new session can start.
//  2. End the role's open sessions. VALID UNTIL and NOLOGIN stop new logins only; open
//     sessions stay connected until they are ended. If they cannot be ended (the admin
//     lacks pg_signal_backend), the error is returned and the role stays, NOLOGIN, for the
//     next try: a role is never dropped from under sessions that could not be ended.
//  3. REASSIGN and DROP OWNED, DROP ROLE, committed; then end the sessions of the role's
//     oid once more, for a login that passed its check before step 1 was committed.
//
// still is asked again in step 3: a role that a live run took over between the steps
// (GrantAccess records the run and restores LOGIN) is kept.
func (a *DatabaseActivities) dropRole(ctx context.Context, name string, still func(managedRole) bool) (dropped bool, sessions int, err error) {
	role := pgx.Identifier{name}.Sanitize()
	// check reads the role under the lock and reports whether it is to be dropped.
	check := func(tx pgx.Tx) (managedRole, bool, error) {
		if err := lockRole(ctx, tx, name); err != nil {
			return managedRole{}, false, err
		}
		r, exists, err := readRole(ctx, tx, name, a.now())
		if err != nil || !exists {
			return r, false, err
		}
		if managed, _, _ := parseComment(r.comment); !managed {
			return r, false, nonRetryable(TypeNotManaged, "activities: role %s exists and is not managed by oidcflow", name)
		}
		return r, still == nil || still(r), nil
	}
	var oid uint32
	var drop bool
	err = pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		r, ok, err := check(tx)
		if err != nil || !ok {
			return err
		}
		oid, drop = r.oid, true
		_, err = tx.Exec(ctx, "ALTER ROLE "+role+" NOLOGIN")
		return err
	})
	if err != nil || !drop {
		return false, 0, err
	}
	if sessions, err = a.endSessions(ctx, oid); err != nil {
		return false, 0, err
	}
	err = pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		r, ok, err := check(tx)
		if err != nil || !ok || r.oid != oid {
			return err
		}
		for _, stmt := range []string{
			"REASSIGN OWNED BY " + role + " TO CURRENT_USER",
			"DROP OWNED BY " + role,
			"DROP ROLE " + role,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		dropped = true
		return nil
	})
	if err != nil || !dropped {
		return false, sessions, err
	}
	n, err := a.endSessions(ctx, oid)
	// On an error here the role is gone; the sweep ends sessions left without a role.
	return true, sessions + n, err
}

// ListGrantsInput is the input of ListGrants. It has no fields: the role required comes
// from DatabaseActivities.AdminRole (the worker's configuration), never from input.
type ListGrantsInput struct{}

// ListGrantsResult is the result of ListGrants.
type ListGrantsResult struct {
	Grants []Grant `json:"grants"`
}

// requireAdmin requires the configured admin role of the activity's person.
func (a *DatabaseActivities) requireAdmin(ctx context.Context) error {
	_, err := requireClaims(ctx, identity.HasRole(a.adminRole()))
	return err
}

// ListGrants lists the login roles this package manages (AdminRole only).
func (a *DatabaseActivities) ListGrants(ctx context.Context, _ ListGrantsInput) (ListGrantsResult, error) {
	if err := a.requireAdmin(ctx); err != nil {
		return ListGrantsResult{}, err
	}
	roles, err := a.listRoles(ctx, a.now())
	if err != nil {
		return ListGrantsResult{}, a.dbError(ctx, "list grants", err)
	}
	grants := make([]Grant, 0, len(roles))
	for _, r := range roles {
		grants = append(grants, r.Grant)
	}
	return ListGrantsResult{Grants: grants}, nil
}

// listRoles lists the managed login roles, expiry judged at now.
func (a *DatabaseActivities) listRoles(ctx context.Context, now time.Time) ([]managedRole, error) {
	var roles []managedRole
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT u.oid, u.rolname, shobj_description(u.oid, 'pg_authid'),
			CASE WHEN isfinite(u.rolvaliduntil) THEN u.rolvaliduntil END, COALESCE(u.rolvaliduntil <= $3, false),
			COALESCE((SELECT min(r.rolname) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
			          WHERE m.member = u.oid), '')
			FROM pg_roles u
			WHERE shobj_description(u.oid, 'pg_authid') = $1 OR starts_with(shobj_description(u.oid, 'pg_authid'), $2)
			ORDER BY u.rolname`, ManagedComment, ManagedComment+" for workflow ", now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r managedRole
			var until *time.Time
			if err := rows.Scan(&r.oid, &r.RoleName, &r.comment, &until, &r.expired, &r.GroupRole); err != nil {
				return err
			}
			if until != nil {
				r.ValidUntil = until.UTC()
			}
			_, r.WorkflowID, r.RunID = parseComment(r.comment)
			if rest, ok := strings.CutPrefix(r.GroupRole, "oidcflow_"); ok {
				for _, acc := range []pgaccess.Access{pgaccess.AccessRead, pgaccess.AccessWrite} {
					if db, ok := strings.CutSuffix(rest, "_"+string(acc)); ok {
						r.Database, r.Access = db, acc
					}
				}
			}
			roles = append(roles, r)
		}
		return rows.Err()
	})
	return roles, err
}
