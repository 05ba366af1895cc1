package activities

import (
	"context"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/oidcflow/oidcflow/identity"
	"github.com/oidcflow/oidcflow/pgaccess"
)

// noDB fails the test if an activity reaches the database.
type noDB struct{ t *testing.T }

func (d noDB) Begin(context.Context) (pgx.Tx, error) {
	d.t.Fatal("the database was reached before the claims were checked")
	return nil, nil
}

var (
	bob   = &identity.Identity{Subject: "bob", Roles: []string{"engineer"}, Department: "engineering"}
	alice = &identity.Identity{Subject: "alice", Roles: []string{"admin"}, Department: "it"}
	erin  = &identity.Identity{Subject: "erin", Department: "engineering"}
)

func TestDatabaseActivitiesCheckClaimsFirst(t *testing.T) {
	grant := GrantAccessInput{RequestID: "wf-1", Requester: "bob", Department: "engineering",
		Database: "demo", Access: pgaccess.AccessRead, ValidUntil: time.Now().Add(time.Hour)}
	moved := &identity.Identity{Subject: "bob", Roles: []string{"engineer"}, Department: "sales"}
	revoke := RevokeAccessInput{RequestID: "wf-1", Requester: "bob"}
	for _, tc := range []struct {
		name string
		who  *identity.Identity
		run  func(context.Context, *DatabaseActivities) error
		typ  string
	}{
		{"grant without identity", nil, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.GrantAccess(ctx, grant)
			return err
		}, identity.TypeUnauthenticated},
		{"grant for someone else", erin, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.GrantAccess(ctx, grant)
			return err
		}, identity.TypeForbidden},
		{"grant after a department change", moved, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.GrantAccess(ctx, grant)
			return err
		}, identity.TypeForbidden},
		{"revoke by a stranger", erin, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.RevokeAccess(ctx, revoke)
			return err
		}, identity.TypeUnauthenticated},
		{"revoke on the requester's session", bob, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.RevokeAccess(ctx, revoke)
			return err
		}, identity.TypeUnauthenticated},
		{"revoke by an admin's session", alice, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.RevokeAccess(ctx, revoke)
			return err
		}, identity.TypeUnauthenticated},
		{"revoke without identity", nil, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.RevokeAccess(ctx, revoke)
			return err
		}, identity.TypeUnauthenticated},
		{"list grants by a non-admin", bob, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.ListGrants(ctx, ListGrantsInput{})
			return err
		}, identity.TypeForbidden},
		{"sweep by a non-admin", bob, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.SweepExpired(ctx, SweepExpiredInput{})
			return err
		}, identity.TypeForbidden},
		{"pool sweep on a person's session", alice, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.SweepGrants(ctx, SweepGrantsInput{})
			return err
		}, identity.TypeUnauthenticated},
		{"pool sweep without identity", nil, func(ctx context.Context, a *DatabaseActivities) error {
			_, err := a.SweepGrants(ctx, SweepGrantsInput{})
			return err
		}, identity.TypeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.who != nil {
				ctx = identity.WithActivity(ctx, tc.who)
			}
			err := tc.run(ctx, &DatabaseActivities{DB: noDB{t}})
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			require.Equal(t, tc.typ, app.Type())
			require.True(t, app.NonRetryable())
		})
	}
}

func TestGrantAccessRejectsBadInput(t *testing.T) {
	ctx := identity.WithActivity(context.Background(), bob)
	for name, in := range map[string]GrantAccessInput{
		"bad database": {RequestID: "r", Requester: "bob", Database: `demo"; DROP ROLE x`, Access: pgaccess.AccessRead, ValidUntil: time.Now()},
		"bad access":   {RequestID: "r", Requester: "bob", Database: "demo", Access: "owner", ValidUntil: time.Now()},
		"no until":     {RequestID: "r", Requester: "bob", Database: "demo", Access: pgaccess.AccessRead},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := (&DatabaseActivities{DB: noDB{t}}).GrantAccess(ctx, in)
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			require.Equal(t, TypeInvalidInput, app.Type())
		})
	}
}

func TestValidUntilLiteral(t *testing.T) {
	at := time.Date(2026, 11, 28, 16, 0, 0, 123456000, time.FixedZone("x", 3600))
	require.Equal(t, "'2026-11-28 15:00:00.123456+00'", validUntilLiteral(at))
}

// unreachableDB is a database whose server does not answer: Begin returns the real pgx
// connection error, which names the server's address.
type unreachableDB struct{ t *testing.T }

func (d unreachableDB) Begin(ctx context.Context) (pgx.Tx, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		d.t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = pgx.Connect(ctx, "postgres://oidcflow@"+addr+"/demo?connect_timeout=5")
	if err == nil || !strings.Contains(err.Error(), addr) {
		d.t.Fatalf("want a connection error naming %s, got %v", addr, err)
	}
	return nil, err
}

// TestDatabaseErrorsNameNoAddress: a database failure is reported (and recorded in history)
// as its kind only, retryable, without the server's host and port that pgx puts into its
// connection errors.
func TestDatabaseErrorsNameNoAddress(t *testing.T) {
	pool := identity.WithPool(context.Background())
	dba := &identity.Identity{Subject: "dan", Roles: []string{"dba"}}
	for name, run := range map[string]func(a *DatabaseActivities) error{
		"grant": func(a *DatabaseActivities) error {
			_, err := a.GrantAccess(identity.WithActivity(context.Background(), bob), GrantAccessInput{RequestID: "wf-1",
				Requester: "bob", Database: "demo", Access: pgaccess.AccessRead, Duration: time.Hour})
			return err
		},
		"revoke": func(a *DatabaseActivities) error {
			_, err := a.RevokeAccess(pool, RevokeAccessInput{RequestID: "wf-1", Requester: "bob"})
			return err
		},
		"list": func(a *DatabaseActivities) error {
			_, err := a.ListGrants(identity.WithActivity(context.Background(), dba), ListGrantsInput{})
			return err
		},
		"sweep": func(a *DatabaseActivities) error {
			_, err := a.SweepGrants(pool, SweepGrantsInput{})
			return err
		},
		"admin sweep": func(a *DatabaseActivities) error {
			_, err := a.SweepExpired(identity.WithActivity(context.Background(), dba), SweepExpiredInput{})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := run(&DatabaseActivities{DB: unreachableDB{t}, AdminRole: "dba"})
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			require.Equal(t, TypeDatabase, app.Type())
			require.False(t, app.NonRetryable(), "an unreachable database may come back")
			require.Contains(t, err.Error(), "cannot connect to the database")
			require.NotRegexp(t, `127\.0\.0\.1|:\d{2,5}\b|oidcflow@`, err.Error())
		})
	}
}

// TestAdminRoleComesFromConfig: the role ListGrants and SweepExpired require is the one the
// worker configured; an input has no say (the inputs have no fields).
func TestAdminRoleComesFromConfig(t *testing.T) {
	a := &DatabaseActivities{DB: noDB{t}, AdminRole: "dba"}
	ctx := identity.WithActivity(context.Background(), alice) // holds "admin", not "dba"
	_, err := a.ListGrants(ctx, ListGrantsInput{})
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.Equal(t, identity.TypeForbidden, app.Type())
	require.Contains(t, err.Error(), "dba")
	_, err = a.SweepExpired(ctx, SweepExpiredInput{})
	require.ErrorAs(t, err, &app)
	require.Equal(t, identity.TypeForbidden, app.Type())

	require.Zero(t, reflect.TypeFor[ListGrantsInput]().NumField())
	require.Zero(t, reflect.TypeFor[SweepExpiredInput]().NumField())
	require.Zero(t, reflect.TypeFor[SweepGrantsInput]().NumField())
	require.Equal(t, "admin", (&DatabaseActivities{}).adminRole(), "default")
}

// TestRevokeOnlyItsOwnRun: under the pool's authority a run revokes only its own request's
// grant (the request id is the workflow id); a pool workflow cannot be made to revoke
// another request's role.
func TestRevokeOnlyItsOwnRun(t *testing.T) {
	var env testsuite.WorkflowTestSuite
	aenv := env.NewTestActivityEnvironment()
	aenv.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&poolInterceptor{}}})
	aenv.RegisterActivity(&DatabaseActivities{DB: noDB{t}})
	var a *DatabaseActivities
	_, err := aenv.ExecuteActivity(a.RevokeAccess, RevokeAccessInput{RequestID: "someone-elses-request", Requester: "carol"})
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.Equal(t, TypeInvalidInput, app.Type())
	require.Contains(t, err.Error(), "only its own request")
}

// poolInterceptor runs every activity under the pool's authority, as the worker's
// interceptor does for activities scheduled from identity.AsPool.
type poolInterceptor struct {
	interceptor.WorkerInterceptorBase
}

func (*poolInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &poolInbound{interceptor.ActivityInboundInterceptorBase{Next: next}}
}

type poolInbound struct {
	interceptor.ActivityInboundInterceptorBase
}

func (p *poolInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	return p.Next.ExecuteActivity(identity.WithPool(ctx), in)
}

func TestOwnerComment(t *testing.T) {
	for _, tc := range []struct{ wf, run string }{
		{"access-bob-1", "0193a1c2-7d1e-7a55-9f7e-2f0b7f2b6c11"},
		{"it's; DROP ROLE postgres; --", `a\b'c`},
		{"spaces and ünïcode", ""},
	} {
		c := ownerComment(tc.wf, tc.run)
		require.NotContains(t, c, "'")
		require.NotContains(t, c, `\`)
		require.Equal(t, "'"+c+"'", commentLiteral(c))
		managed, wf, run := parseComment(c)
		require.True(t, managed)
		require.Equal(t, tc.wf, wf)
		require.Equal(t, tc.run, run)
	}
	for c, want := range map[string][3]string{
		ManagedComment:                         {"true", "", ""},
		ManagedComment + " for workflow x":     {"true", "", ""},
		ManagedComment + "x":                   {"false", "", ""},
		"someone else's role":                  {"false", "", ""},
		ManagedComment + " for workflow a run": {"true", "", ""},
	} {
		managed, wf, run := parseComment(c)
		require.Equal(t, want, [3]string{strconv.FormatBool(managed), wf, run}, c)
	}
	require.Panics(t, func() { commentLiteral("it's") })
}

func FuzzOwnerComment(f *testing.F) {
	f.Add("access-bob-1", "run-1")
	f.Add("a b'c\\d\x00", "")
	f.Fuzz(func(t *testing.T, wf, run string) {
		c := ownerComment(wf, run)
		if strings.ContainsAny(c, "'\\\x00") {
			t.Fatalf("comment %q is not a safe literal", c)
		}
		managed, gotWF, gotRun := parseComment(c)
		if !managed || (wf != "" && (gotWF != wf || gotRun != run)) {
			t.Fatalf("parseComment(%q) = %v %q %q", c, managed, gotWF, gotRun)
		}
	})
}
