package activities

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/internal/testharness"
	"github.com/oidcflow/oidcflow/pgaccess"
)

// postgresURL returns the admin URL of the dev stack's PostgreSQL. OIDCFLOW_POSTGRES_URL in
// the environment takes precedence (a server of one's own); otherwise the test needs the stack.
func postgresURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("OIDCFLOW_POSTGRES_URL"); u != "" {
		return u
	}
	u := testharness.Load(t).Env("OIDCFLOW_POSTGRES_URL")
	if u == "" {
		t.Fatal("the stack's env file has no OIDCFLOW_POSTGRES_URL")
	}
	return u
}

// bootstrapped returns a context for a minute and a pool on the stack's PostgreSQL, after
// the bootstrap. The pool closes after the test's own cleanups (LIFO), which drop roles
// through it.
func bootstrapped(t *testing.T) (context.Context, *pgxpool.Pool) {
	t.Helper()
	url := postgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	require.NoError(t, pgaccess.Bootstrap(ctx, url, pgaccess.BootstrapOptions{}))
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return ctx, pool
}

type roleState struct {
	exists     bool
	login      bool
	validUntil *time.Time
	members    int // memberships in the group role
}

func inspectRole(t *testing.T, ctx context.Context, pool *pgxpool.Pool, role, group string) roleState {
	t.Helper()
	var st roleState
	err := pool.QueryRow(ctx, "SELECT rolcanlogin, rolvaliduntil FROM pg_roles WHERE rolname = $1", role).
		Scan(&st.login, &st.validUntil)
	if err == pgx.ErrNoRows {
		return st
	}
	require.NoError(t, err)
	st.exists = true
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_auth_members m
		JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
		WHERE r.rolname = $1 AND u.rolname = $2`, group, role).Scan(&st.members))
	return st
}

func TestGrantRevokeAgainstPostgres(t *testing.T) {
	url := postgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, pgaccess.Bootstrap(ctx, url, pgaccess.BootstrapOptions{}))
	require.NoError(t, pgaccess.Bootstrap(ctx, url, pgaccess.BootstrapOptions{}), "bootstrap is idempotent")
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close) // after the tests' own cleanups (LIFO), which drop roles through it

	a := &DatabaseActivities{DB: pool}
	requestID := "test-" + time.Now().Format("20060102T150405.000000000")
	until := time.Now().Add(2 * time.Minute).UTC().Truncate(time.Microsecond)
	in := GrantAccessInput{RequestID: requestID, Requester: "bob", Department: "engineering",
		Database: "demo", Access: pgaccess.AccessRead, ValidUntil: until}
	role, group := pgaccess.RoleName(requestID, "bob"), pgaccess.GroupRole("demo", pgaccess.AccessRead)
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()) })
	bobCtx := identity.WithActivity(ctx, bob)

	first, err := a.GrantAccess(bobCtx, in)
	require.NoError(t, err)
	require.True(t, first.Created)
	second, err := a.GrantAccess(bobCtx, in)
	require.NoError(t, err, "a retry succeeds")
	require.False(t, second.Created)
	require.Equal(t, first.Grant, second.Grant)

	// A drop that began (NOLOGIN) and found the grant taken over leaves the login to the
	// grant's re-run.
	_, err = pool.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" NOLOGIN")
	require.NoError(t, err)
	_, err = a.GrantAccess(bobCtx, in)
	require.NoError(t, err)

	st := inspectRole(t, ctx, pool, role, group)
	require.True(t, st.exists)
	require.True(t, st.login)
	require.Equal(t, 1, st.members, "granted once, never twice")
	require.NotNil(t, st.validUntil)
	require.True(t, until.Equal(*st.validUntil), "VALID UNTIL %v, want %v", st.validUntil, until)

	// The role reads the demo table and cannot write it.
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	cfg.Database = "demo"
	demo, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer demo.Close(ctx)
	// The dev stack's launcher made the demo table; on a server of one's own, the bootstrap's
	// default privileges cover a table made now.
	_, err = demo.Exec(ctx, "CREATE TABLE IF NOT EXISTS public.items (id bigint)")
	require.NoError(t, err)
	var canSelect, canInsert, canConnect bool
	require.NoError(t, demo.QueryRow(ctx, `SELECT has_table_privilege($1, 'public.items', 'SELECT'),
		has_table_privilege($1, 'public.items', 'INSERT'), has_database_privilege($1, 'demo', 'CONNECT')`, role).
		Scan(&canSelect, &canInsert, &canConnect))
	require.True(t, canSelect)
	require.False(t, canInsert)
	require.True(t, canConnect)

	var listed ListGrantsResult
	listed, err = a.ListGrants(identity.WithActivity(ctx, alice), ListGrantsInput{})
	require.NoError(t, err)
	require.Contains(t, listed.Grants, Grant{RoleName: role, GroupRole: group, Database: "demo",
		Access: pgaccess.AccessRead, ValidUntil: until})

	// The requester's department claim changed: the claims check refuses before SQL.
	_, err = a.GrantAccess(identity.WithActivity(ctx, &identity.Identity{Subject: "bob", Department: "sales"}), in)
	require.Error(t, err)

	_, err = a.RevokeAccess(bobCtx, RevokeAccessInput{RequestID: requestID, Requester: "bob"})
	require.ErrorContains(t, err, "pool's own authority", "the requester's session cannot revoke")
	poolCtx := identity.WithPool(ctx)
	r1, err := a.RevokeAccess(poolCtx, RevokeAccessInput{RequestID: requestID, Requester: "bob"})
	require.NoError(t, err)
	require.True(t, r1.Dropped)
	r2, err := a.RevokeAccess(poolCtx, RevokeAccessInput{RequestID: requestID, Requester: "bob"})
	require.NoError(t, err, "a second revoke is fine")
	require.False(t, r2.Dropped)
	require.False(t, inspectRole(t, ctx, pool, role, group).exists, "the role is gone")
}

func TestGrantRefusesRolesItDidNotMake(t *testing.T) {
	ctx, pool := bootstrapped(t)

	requestID := "foreign-" + time.Now().Format("150405.000000000")
	role := pgaccess.RoleName(requestID, "bob")
	_, err := pool.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN")
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()) })

	a := &DatabaseActivities{DB: pool}
	bobCtx := identity.WithActivity(ctx, bob)
	_, err = a.GrantAccess(bobCtx, GrantAccessInput{RequestID: requestID, Requester: "bob",
		Database: "demo", Access: pgaccess.AccessWrite, ValidUntil: time.Now().Add(time.Minute)})
	require.ErrorContains(t, err, "not managed by oidcflow")
	_, err = a.RevokeAccess(identity.WithPool(ctx), RevokeAccessInput{RequestID: requestID, Requester: "bob"})
	require.ErrorContains(t, err, "not managed by oidcflow")
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.Equal(t, TypeNotManaged, app.Type())
	require.True(t, app.NonRetryable(), "a role oidcflow did not make is never dropped, however often it is tried")
}

func TestSweepExpiredAgainstPostgres(t *testing.T) {
	ctx, pool := bootstrapped(t)
	a := &DatabaseActivities{DB: pool}
	bobCtx := identity.WithActivity(ctx, bob)

	// Granted outside an activity, so no run is recorded: VALID UNTIL alone decides. Other
	// tests' sweepers share this database and may drop the expired role first; what counts
	// is that it is gone and the live one is kept.
	stamp := time.Now().Format("150405.000000000")
	expired, live := pgaccess.RoleName("sweep-expired-"+stamp, "bob"), pgaccess.RoleName("sweep-live-"+stamp, "bob")
	for id, until := range map[string]time.Time{
		"sweep-expired-" + stamp: time.Now().Add(-time.Minute),
		"sweep-live-" + stamp:    time.Now().Add(time.Hour),
	} {
		_, err := a.GrantAccess(bobCtx, GrantAccessInput{RequestID: id, Requester: "bob",
			Database: "demo", Access: pgaccess.AccessWrite, ValidUntil: until})
		require.NoError(t, err)
		role := pgaccess.RoleName(id, "bob")
		t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()) })
	}

	res, err := a.SweepExpired(identity.WithActivity(ctx, alice), SweepExpiredInput{})
	require.NoError(t, err)
	require.NotContains(t, res.Dropped, live)
	require.False(t, inspectRole(t, ctx, pool, expired, pgaccess.GroupRole("demo", pgaccess.AccessWrite)).exists)
	require.True(t, inspectRole(t, ctx, pool, live, pgaccess.GroupRole("demo", pgaccess.AccessWrite)).exists)
	t.Logf("this sweep dropped the expired role: %v", slices.Contains(res.Dropped, expired))
}

// TestGrantDurationCountsFromCreation: with a Duration, VALID UNTIL is set when the role is
// created; a retry an hour later (a worker that was down) keeps it instead of moving it.
func TestGrantDurationCountsFromCreation(t *testing.T) {
	ctx, pool := bootstrapped(t)

	created := time.Now().UTC().Truncate(time.Second)
	now := created
	a := &DatabaseActivities{DB: pool, Now: func() time.Time { return now }}
	requestID := "test-duration-" + created.Format("20060102T150405.000000000")
	in := GrantAccessInput{RequestID: requestID, Requester: "bob", Department: "engineering",
		Database: "demo", Access: pgaccess.AccessRead, Duration: 2 * time.Hour}
	role := pgaccess.RoleName(requestID, "bob")
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()) })
	bobCtx := identity.WithActivity(ctx, bob)

	first, err := a.GrantAccess(bobCtx, in)
	require.NoError(t, err)
	require.True(t, first.Created)
	require.True(t, first.Grant.ValidUntil.Equal(created.Add(2*time.Hour)), "valid until %s", first.Grant.ValidUntil)

	now = created.Add(time.Hour)
	retry, err := a.GrantAccess(bobCtx, in)
	require.NoError(t, err)
	require.False(t, retry.Created)
	require.True(t, retry.Grant.ValidUntil.Equal(first.Grant.ValidUntil), "a retry moved VALID UNTIL to %s", retry.Grant.ValidUntil)
	st := inspectRole(t, ctx, pool, role, pgaccess.GroupRole("demo", pgaccess.AccessRead))
	require.True(t, st.validUntil.Equal(first.Grant.ValidUntil))
}
